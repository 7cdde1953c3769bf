"""A real PostgreSQL server for the tests: Debian's binaries, a cluster in a temporary folder, on a free loopback
port, with trust logins on loopback only. PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` user (the Debian package creates it)."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

POSTGRES_USER = "postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs it (apt-get install postgresql).")
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self._settings = settings or {}  # server settings (postgresql.conf's names) on top of the defaults
        self._bin = _binaries()
        # Not under pytest's temporary folder: its parents are private to root, and the server runs as postgres.
        self._dir = Path(tempfile.mkdtemp(prefix="jupyter-assets-postgres-"))
        self.data = self._dir / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self._dir, POSTGRES_USER)
            os.chmod(self._dir, 0o700)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", POSTGRES_USER, "--"] if self._as_root else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        self._run(
            str(self._bin / "initdb"), "-D", str(self.data), "-U", POSTGRES_USER, "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        # fsync off: the tests do not check PostgreSQL's own durability, and it saves seconds per test.
        options = f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        options += "".join(f" -c {name}={value}" for name, value in self._settings.items())
        self._run(
            str(self._bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self._dir / "log"), "-w", "start"
        )
        return self

    def stop(self) -> None:
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self._dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database (one per test: nothing leaks between them)."""
        name = f"assets_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

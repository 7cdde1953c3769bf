"""The catalog: metadata in one DuckDB file, owned by the server process. SQL lives in this package and nowhere else.

The core opens the file, migrates it and owns the writer; each concern (``catalog.assets``, ``catalog.runs``, ...)
is an attribute holding the queries of one part of the schema."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import duckdb

from ..model import utc_now
from .analytics import EXPORTABLE_TABLES, Analytics
from .assets import Assets
from .cleanup import REWRITE_IN_FLIGHT, AssetGoneError, Cleanup
from .concern import T
from .cursor import Cursor
from .jobs import Jobs
from .keys import Keys
from .profiles import Profiles
from .runs import Changes, Runs
from .schema import MIGRATIONS
from .writer import ExpectedWrite, GroupCommitWriter, Insert

__all__ = [
    "EXPORTABLE_TABLES",
    "REWRITE_IN_FLIGHT",
    "AssetGoneError",
    "Catalog",
    "CatalogLockedError",
    "Changes",
    "ExpectedWrite",
    "open_catalog",
]

CATALOG_FILE = "catalog.duckdb"  # under the root folder


class CatalogLockedError(RuntimeError):
    """Another process (usually a running server) holds the catalog file open."""


class Catalog:
    """All reads and writes of the DuckDB file. Thread-safe: a cursor per thread, writes serialised."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = duckdb.connect(str(path))
        except duckdb.IOException as error:
            raise CatalogLockedError(
                f"The catalog {path} is in use by another process (a running jupyter-assets server?): {error}"
            ) from error
        self.path = path
        self._local = threading.local()
        self._migrate()
        self._writer = GroupCommitWriter(Cursor(self._db.cursor()))
        self.assets = Assets(self)
        self.runs = Runs(self)
        self.cleanup = Cleanup(self)
        self.profiles = Profiles(self)
        self.jobs = Jobs(self)
        self.analytics = Analytics(self)
        self.keys = Keys(self)

    def close(self) -> None:
        self._writer.close()
        self._db.close()

    def expect_write(self) -> ExpectedWrite:
        """Announce a write on its way, so that a commit under way waits a moment for it (see
        GroupCommitWriter)."""
        return self._writer.expect()

    def settle(self, committing: Future) -> Future:
        """Wait for the write assets.insert queued to be committed (or to fail); returns its future."""
        return self._writer.settle(committing)

    def schema_version(self) -> int:
        return self._cursor().execute("SELECT max(version) FROM schema_version").fetchone()[0]

    def _cursor(self) -> Cursor:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = Cursor(self._db.cursor())
        return cursor

    def _write(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` in a write transaction and return its result once committed."""
        return self._writer.submit(work)

    def _write_nowait(self, inserts: list[Insert]) -> Future:
        """Queue rows to insert; ``settle`` waits for their commit."""
        return self._writer.submit_nowait(inserts)

    def _migrate(self) -> None:
        cursor = self._cursor()
        cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
        current = cursor.execute("SELECT COALESCE(max(version), 0) FROM schema_version").fetchone()[0]
        for version, ddl in MIGRATIONS:
            if version <= current:
                continue
            cursor.execute("BEGIN TRANSACTION")
            try:
                cursor.execute(ddl)
                cursor.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", [version, utc_now()])
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")


def open_catalog(root_dir: Path) -> Catalog:
    """The catalog of the library under ``root_dir``."""
    return Catalog(root_dir / CATALOG_FILE)

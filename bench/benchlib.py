"""Small helpers shared by the benchmarks: percentiles, free loopback ports, server subprocesses, JSON results.

Every benchmark talks to 127.0.0.1 only and prints ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LOOPBACK = "127.0.0.1"


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def tool(name: str) -> str:
    """A console script of the project's virtual environment (next to this interpreter), else from PATH."""
    for folder in (Path(sys.executable).parent, REPO / ".venv" / "bin"):
        candidate = folder / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable}, in {REPO / '.venv/bin'} or on PATH")
    return found


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str))


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def fmt_number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def process_cpu_seconds(process: Any) -> float:
    """User+system CPU seconds of a server process (a psutil.Process) and its children."""
    import psutil

    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def load_row(results: list[Any]) -> dict[str, Any]:
    """Throughput, latency and errors over the rounds of one load target (each result has ok, errors,
    bytes_sent, latencies_ms, error_samples and elapsed_s)."""
    ok = sum(r.ok for r in results)
    elapsed = sum(r.elapsed_s for r in results)
    latencies = [x for r in results for x in r.latencies_ms]
    return {
        "requests_per_s": ok / elapsed if elapsed else 0.0,
        "mb_per_s": sum(r.bytes_sent for r in results) / elapsed / 1e6 if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50) if latencies else None,
        "p95_ms": percentile(latencies, 95) if latencies else None,
        "ok": ok,
        "errors": sum(r.errors for r in results),
        "error_samples": [s for r in results for s in r.error_samples][:5],
        "per_round_requests_per_s": [r.ok / r.elapsed_s for r in results if r.elapsed_s],
    }


def print_suspicious_log_lines(name: str, log_path: Path) -> None:
    """Tracebacks, errors and 500s in a server's log, the first few of them."""
    if not log_path.exists():
        return
    words = ("Traceback", "ERROR", "Error", " 500 ", "Exception")
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if any(w in line for w in words)]
    if lines:
        print(f"  {name} log: {len(lines)} suspicious line(s), first ones:")
        for line in lines[:8]:
            print(f"    {line[:300]}")


class ServerProcess:
    """A server started as a subprocess, its output in a log file; waits until a URL answers 200."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> ServerProcess:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, url: str, headers: dict[str, str], timeout: float = 60.0) -> float:
        """Poll url until it answers 200; returns the seconds it took. Raises with the log tail on failure."""
        assert self.proc is not None
        started = time.perf_counter()
        last_error = "no answer yet"
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.proc.returncode} before it was ready.\n{self.log_tail()}"
                )
            request = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as error:
                last_error = f"HTTP {error.code}: {error.read()[:300]!r}"
            except OSError as error:
                last_error = repr(error)
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s at {url} ({last_error}).\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(f"    [{self.name}] {line}" for line in text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # The server runs in its own session: signal only its process group (which we created).
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

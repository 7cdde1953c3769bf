"""The worker pool behind the durable job queue (the ``jobs`` table in the catalog).

A job is committed with its asset, so the queue survives a crash: at start the server requeues whatever was
queued or running and the pool works through it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    id: str
    asset_id: str
    skills: tuple[str, ...]


class WorkerPool:
    def __init__(self, process: Callable[[Job], None], workers: int, log: logging.Logger) -> None:
        self._process = process
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._work, name=f"jupyter-assets-worker-{n}", daemon=True) for n in range(workers)
        ]
        self._log = log
        self._idle = threading.Condition()
        self._outstanding = 0

    def start(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.submit(job)
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        with self._idle:
            self._outstanding += 1
        self._queue.put(job)

    def stop(self, timeout: float = 10.0) -> None:
        started = [thread for thread in self._threads if thread.ident is not None]
        for _ in started:
            self._queue.put(None)
        for thread in started:
            thread.join(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once every submitted job has finished (used by the CLI and tests)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self._process(job)
            except Exception:  # a broken job must not kill the worker; it stays queued for the next start
                self._log.exception("enrichment job %s for asset %s failed", job.id, job.asset_id)
            finally:
                with self._idle:
                    self._outstanding -= 1
                    self._idle.notify_all()

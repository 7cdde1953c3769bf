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
    def __init__(
        self, process: Callable[[list[Job]], None], workers: int, log: logging.Logger, batch_size: int = 1
    ) -> None:
        self._process = process
        self._batch_size = batch_size
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
        while batch := self._next_batch():
            try:
                self._process(batch)
            except Exception:  # a broken batch must not kill the worker; its jobs stay queued for the next start
                self._log.exception("enrichment of %d job(s) failed", len(batch))
            finally:
                with self._idle:
                    self._outstanding -= len(batch)
                    self._idle.notify_all()

    def _next_batch(self) -> list[Job]:
        """The next job, and more if they are already waiting (never wait to fill a batch: one upload at a time
        is processed at once): up to batch_size, and no more than this worker's share of the queue, so that the
        other workers are not left idle. Empty when the pool is stopping."""
        job = self._queue.get()
        share = min(self._batch_size, -(-(self._queue.qsize() + 1) // len(self._threads)))
        batch: list[Job] = []
        while job is not None:
            batch.append(job)
            if len(batch) >= share:
                break
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
        else:
            if batch:  # the stop signal is for this worker, after its batch
                self._queue.put(None)
        return batch

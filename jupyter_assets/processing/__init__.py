"""The worker pool behind the durable job queue (the ``jobs`` table in the catalog).

A job is committed with its asset, so the queue survives a crash. Workers claim jobs from the catalog, so the
servers of a team library share one queue: ``wake`` them when a job was committed here; on a team library they
also look now and then for jobs that other servers queued or left behind.
"""

from __future__ import annotations

import logging
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
        self,
        claim: Callable[[], list[Job]],
        process: Callable[[list[Job]], None],
        workers: int,
        log: logging.Logger,
        poll_seconds: float | None = None,
    ) -> None:
        self._claim = claim
        self._process = process
        self._poll_seconds = poll_seconds
        self._threads = [
            threading.Thread(target=self._work, name=f"jupyter-assets-worker-{n}", daemon=True) for n in range(workers)
        ]
        self._log = log
        self._changed = threading.Condition()
        self._wakeups = 0  # how many times jobs were committed here
        self._waiting: dict[str, int] = {}  # idle workers, with the wakeup count they last found nothing at
        self._stopping = False

    @property
    def size(self) -> int:
        return len(self._threads)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """A job was committed: an idle worker claims it."""
        with self._changed:
            self._wakeups += 1
            self._changed.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once every worker has looked for jobs since the last wakeup and found none (used by tests)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: (
                    len(self._waiting) == len(self._threads)
                    and all(seen == self._wakeups for seen in self._waiting.values())
                ),
                timeout,
            )

    def _work(self) -> None:
        name = threading.current_thread().name
        while True:
            with self._changed:
                if self._stopping:
                    return
                seen = self._wakeups
            if self._run_one_batch():
                continue
            with self._changed:
                self._waiting[name] = seen
                self._changed.notify_all()
                self._changed.wait_for(lambda seen=seen: self._stopping or self._wakeups != seen, self._poll_seconds)
                del self._waiting[name]

    def _run_one_batch(self) -> bool:
        """Claim jobs and process them; False when there were none (or the catalog could not be reached)."""
        try:
            batch = self._claim()
        except Exception:  # the catalog is unreachable: try again at the next wakeup or poll
            self._log.exception("claiming enrichment jobs failed")
            return False
        if not batch:
            return False
        try:
            self._process(batch)
        except Exception:  # a broken batch must not kill the worker (Enrichment.process requeues its jobs)
            self._log.exception("enrichment of %d job(s) failed", len(batch))
        return True

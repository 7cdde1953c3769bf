"""The catalog's single writer thread, committing concurrent writes together."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .cursor import Cursor

MAX_BATCH = 64
# How long a commit may wait for more writes (see GroupCommitWriter); an S3 upload's own put overlaps it. With 8
# clients uploading to S3: 5 ms gave 0.49-0.59x boto3 and 12 ms 0.59-0.65x; 25 ms commits about 5.8 uploads at
# once against 4.4 for 12 ms (6% less server CPU per upload), and 40 or 60 ms no more. Waiting also while S3
# uploads store their bytes (writes not settled yet) brings it to about 7.2, for another 4% less CPU.
GATHER_SECONDS = 0.025


@dataclass(frozen=True)
class Insert:
    """One row for a table. Rows for the same table in a batch become one multi-row INSERT (far cheaper than
    one statement each)."""

    table: str
    columns: str
    row: list[Any]

    def execute(self, cursor: Cursor) -> None:
        _insert_rows(cursor, self.table, self.columns, [self.row])


Work = Callable[[Cursor], Any] | list[Insert]
# Queued by settle(): a commit that is gathering looks again at whether to wait (someone now waits for it, or a
# write stopped counting as busy elsewhere).
_WAKE = object()


def _insert_rows(cursor: Cursor, table: str, columns: str, rows: list[list[Any]]) -> None:
    placeholders = "(" + ", ".join("?" * len(rows[0])) + ")"
    cursor.execute(
        f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * len(rows))}",
        [value for row in rows for value in row],
    )


class GroupCommitWriter:
    """Writes that queue up while one commit is under way are committed together: a DuckDB commit costs a WAL
    fsync (milliseconds), so one per write would cap uploads at a few hundred a second. A batch that fails is
    replayed one write per transaction, so one bad write cannot lose the others.

    A write is either a function of the cursor (returning its result) or a list of Inserts.

    Under concurrent uploads the queue is mostly empty when a commit starts, so each upload would pay a commit
    of its own (a DuckDB commit costs as much CPU as several rows). So a commit waits, up to gather_seconds:

    * while writes are on their way (``writes_coming``: uploads whose row is not queued yet);
    * while nobody waits for it yet and two or more writers are busy elsewhere: they queued a write with
      ``submit_nowait`` and have not come back for it with ``settle`` (S3 uploads storing their bytes while their
      row is committed). Waiting then delays nobody, and under such a load new uploads arrive every few
      milliseconds.

    A lone write never waits.
    """

    def __init__(
        self, cursor: Cursor, writes_coming: Callable[[], int] = lambda: 0, gather_seconds: float = GATHER_SECONDS
    ) -> None:
        self._cursor = cursor
        self._writes_coming = writes_coming
        self._gather_seconds = gather_seconds
        self._callers_lock = threading.Lock()
        self._unsettled: set[Future] = set()  # queued with submit_nowait, not settled yet
        self._settling = 0  # callers blocked in settle()
        self._gathering = False  # the writer waits for more writes (set with the callers lock held)
        self._queue: queue.SimpleQueue[tuple[Work, Future] | object | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="jupyter-assets-catalog-writer", daemon=True)
        self._thread.start()

    def submit(self, work: Work) -> Any:
        """Run a write and return its result once committed."""
        return self.settle(self.submit_nowait(work)).result()

    def submit_nowait(self, work: Work) -> Future:
        """Queue a write; the future resolves once it is committed. The caller must ``settle`` it, even when it
        no longer cares: until then it counts as busy elsewhere."""
        future: Future = Future()
        with self._callers_lock:
            self._unsettled.add(future)
        self._queue.put((work, future))
        return future

    def settle(self, future: Future) -> Future:
        """Wait until a queued write is committed or has failed (settling twice is harmless); returns it."""
        with self._callers_lock:
            self._unsettled.discard(future)
            done = future.done()
            if not done:
                self._settling += 1
            # An already committed write may be what a gathering commit still counted as busy elsewhere.
            wake = not done or self._gathering
        if wake:
            self._queue.put(_WAKE)
        if done:
            return future
        try:
            future.exception()  # waits; the write's own error is the caller's to take
        finally:
            with self._callers_lock:
                self._settling -= 1
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            if first is _WAKE:
                continue
            batch = [first]
            deadline = time.monotonic() + self._gather_seconds
            while len(batch) < MAX_BATCH:
                pause = deadline - time.monotonic() if self._worth_gathering() else 0
                try:
                    item = self._queue.get(timeout=pause) if pause > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # close(): commit what was gathered, then stop
                    self._commit(batch)
                    return
                if item is not _WAKE:
                    batch.append(item)
            self._gathering = False  # an extra wake-up from a settle in between is harmless
            self._commit(batch)

    def _worth_gathering(self) -> bool:
        # Under the callers lock: a settle() either changes what is counted here or sees _gathering and wakes us.
        with self._callers_lock:
            self._gathering = self._writes_coming() > 0 or (self._settling == 0 and len(self._unsettled) > 1)
            return self._gathering

    def _commit(self, batch: list[tuple[Work, Future]]) -> None:
        cursor = self._cursor
        pending: dict[tuple[str, str], list[list[Any]]] = {}
        try:
            cursor.execute("BEGIN TRANSACTION")
            results = []
            for work, _ in batch:
                if isinstance(work, list):
                    for insert in work:
                        pending.setdefault((insert.table, insert.columns), []).append(insert.row)
                    results.append(None)
                else:
                    self._flush(pending)  # earlier inserts first: a function may read what they wrote
                    results.append(work(cursor))
            self._flush(pending)
            cursor.execute("COMMIT")
        except Exception as error:
            cursor.execute("ROLLBACK")
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            for item in batch:
                self._commit([item])
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _flush(self, pending: dict[tuple[str, str], list[list[Any]]]) -> None:
        for (table, columns), rows in pending.items():
            _insert_rows(self._cursor, table, columns, rows)
        pending.clear()

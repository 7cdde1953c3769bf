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
# How long a commit may wait for writes announced as on their way (see GroupCommitWriter.expect). Measured
# against a writer that never waits in bench/README.md ("Group commit").
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
# Queued when the last expected write is done: a commit waiting for it looks again (the write was queued, or will
# not come).
_WAKE = object()


def _insert_rows(cursor: Cursor, table: str, columns: str, rows: list[list[Any]]) -> None:
    placeholders = "(" + ", ".join("?" * len(rows[0])) + ")"
    cursor.execute(
        f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * len(rows))}",
        [value for row in rows for value in row],
    )


class ExpectedWrite:
    """A write announced before it is queued (an upload still checking and fsyncing its file): a commit under way
    waits a moment for it instead of leaving it the next commit. ``done`` once it is queued, or will not come."""

    def __init__(self, writer: GroupCommitWriter) -> None:
        self._writer = writer
        self.pending = True
        writer._start_expected()

    def done(self) -> None:
        """Idempotent: a failure path may say it again."""
        self._writer._end_expected(self)


class GroupCommitWriter:
    """Writes that queue up while one commit is under way are committed together: a DuckDB commit costs a WAL
    fsync (milliseconds), so one per write would cap uploads at a few hundred a second. A batch that fails is
    replayed one write per transaction, so one bad write cannot lose the others.

    A write is either a function of the cursor (returning its result) or a list of Inserts.

    Under concurrent uploads the queue is mostly empty when a commit starts, so each upload would pay a commit of
    its own (a DuckDB commit costs as much CPU as several rows). So a commit waits, up to gather_seconds, while
    writes announced with ``expect`` are on their way. A lone write never waits.
    """

    def __init__(self, cursor: Cursor, gather_seconds: float = GATHER_SECONDS) -> None:
        self._cursor = cursor
        self._gather_seconds = gather_seconds
        self._expected = 0
        self._expected_lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Work, Future] | object | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="jupyter-assets-catalog-writer", daemon=True)
        self._thread.start()

    def expect(self) -> ExpectedWrite:
        """Announce a write that will be queued soon; call ``done`` on what this returns once it is queued (or
        will not be)."""
        return ExpectedWrite(self)

    def submit(self, work: Work) -> Any:
        """Run a write and return its result once committed."""
        return self.submit_nowait(work).result()

    def submit_nowait(self, work: Work) -> Future:
        """Queue a write; the future resolves once it is committed (``settle`` waits for it)."""
        future: Future = Future()
        self._queue.put((work, future))
        return future

    @staticmethod
    def settle(future: Future) -> Future:
        """Wait until a queued write is committed or has failed; returns it (its error is the caller's to take)."""
        future.exception()
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _start_expected(self) -> None:
        with self._expected_lock:
            self._expected += 1

    def _end_expected(self, expected: ExpectedWrite) -> None:
        with self._expected_lock:
            if not expected.pending:
                return
            expected.pending = False
            self._expected -= 1
            wake = self._expected == 0
        if wake:
            self._queue.put(_WAKE)

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            if first is _WAKE:
                continue
            batch = [first]
            deadline = time.monotonic() + self._gather_seconds
            while len(batch) < MAX_BATCH:
                pause = deadline - time.monotonic() if self._expected > 0 else 0
                try:
                    item = self._queue.get(timeout=pause) if pause > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # close(): commit what was gathered, then stop
                    self._commit(batch)
                    return
                if item is not _WAKE:
                    batch.append(item)
            self._commit(batch)

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

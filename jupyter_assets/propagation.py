"""What a server of a team library learns from the others' writes: an embedding to add to its search index (or
a deleted asset to remove from it), a revoked API key, a changed storage profile. Each server reads the
catalog's change log every second.

Polling rather than PostgreSQL's LISTEN/NOTIFY: a notification sent while a server is reconnecting is lost, and
each server would hold one more connection outside its pool; reading the log needs neither, and a server that was
away a moment reads what it missed (changes are kept an hour)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from .catalog import Catalog

POLL_SECONDS = 1.0
# Rows become visible when their transaction commits, but are stamped with its start: each look reads this far
# back again (longer than any write transaction takes), skipping the rows already seen.
OVERLAP = timedelta(seconds=30)
KEPT = timedelta(hours=1)  # then the sweep drops them


class ChangeFeed:
    def __init__(self, catalog: Catalog, log: logging.Logger, handlers: dict[str, Callable[[str], None]]) -> None:
        self.catalog = catalog
        self.log = log
        self.handlers = handlers
        self._seen: dict[int, datetime] = {}  # sequence number -> when read, for the overlap
        self._read_up_to: datetime | None = None
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="jupyter-assets-changes", daemon=True)

    def start(self) -> None:
        """Follow the other servers' writes from now on (what they wrote before, the start has loaded)."""
        if self.catalog.is_shared:
            self._read_up_to = self.catalog.change_log.now()
            self._thread.start()

    def stop(self) -> None:
        self._closing.set()
        if self._thread.ident is not None:
            self._thread.join()

    def read(self) -> int:
        """Apply the changes recorded since the last look; how many were new."""
        now = self.catalog.change_log.now()
        start = self._read_up_to - OVERLAP
        applied = 0
        for seq, kind, subject in self.catalog.change_log.since(start):
            if seq in self._seen:
                continue
            self._seen[seq] = now
            applied += 1
            handler = self.handlers.get(kind)
            if handler is not None:
                handler(subject)
        self._seen = {seq: at for seq, at in self._seen.items() if at >= start}
        self._read_up_to = now
        return applied

    def _poll(self) -> None:
        while not self._closing.wait(POLL_SECONDS):
            try:
                self.read()
            except Exception:  # the catalog is unreachable: the next look reads what this one missed
                self.log.exception("reading the team library's changes failed")

"""The storage sweep: files no asset references any more (failed deletes, crashed uploads and skill runs) are
removed at start and, while the server runs, now and then."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from ..library import Library
from ..model import utc_now
from ..propagation import KEPT as CHANGES_KEPT
from ..skills.context import SkillEnvironment
from ..skills.image import settle_rewrites

SWEEP_INTERVAL_SECONDS = 600
TALLY_FOLD_SECONDS = 10
IN_FLIGHT_GRACE = timedelta(hours=1)  # longer than any skill run takes between storing a file and committing it


class Sweeper:
    def __init__(self, library: Library, environment: SkillEnvironment) -> None:
        self.library = library
        self.catalog = library.catalog
        self.environment = environment
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._sweep_now_and_then, name="jupyter-assets-sweeper", daemon=True)

    def start(self) -> None:
        """Keep sweeping in the background (the start's own sweep, of everything, is ``sweep()``)."""
        self._thread.start()

    def stop(self) -> None:
        self._closing.set()
        if self._thread.ident is not None:
            self._thread.join()

    def sweep(self, in_flight_before: datetime | None = None) -> int:
        """Remove files that no asset references any more. At start everything; while running, files of skill
        runs only once they are older than any run can be (``in_flight_before``). Returns the count. Rewrites in
        place that did not commit are settled first. On a team library one server sweeps at a time; the others
        skip their turn."""
        with self.catalog.exclusive("storage-sweep", wait=False) as mine:
            if not mine:
                return 0
            settle_rewrites(self.environment, in_flight_before)
            self.catalog.cleanup.drop_stale()
            self.catalog.change_log.drop_before(self.catalog.change_log.now() - CHANGES_KEPT)
            removed = 0
            for key, profile_id in self.catalog.cleanup.pending(in_flight_before):
                if self.library.remove_file(key, profile_id):
                    removed += 1
            return removed

    def _sweep_now_and_then(self) -> None:
        """Retry removing files whose delete failed, without waiting for the next start; fold a team library's
        tallies more often (see catalog/tallies.py), so that its totals add up few rows."""
        last_sweep = time.monotonic()
        while not self._closing.wait(TALLY_FOLD_SECONDS):
            try:
                self.catalog.tallies.fold()
                if time.monotonic() - last_sweep >= SWEEP_INTERVAL_SECONDS:
                    last_sweep = time.monotonic()
                    self.sweep(in_flight_before=utc_now() - IN_FLIGHT_GRACE)
            except Exception:
                self.library.log.exception("tally fold or storage sweep failed; it will be retried")

"""Recording skill runs: every catalog write a run makes (the notes of the files it stores, the notes of an
original it rewrites, the one commit of its results), and what follows a commit (replaced files removed, search
told of new embeddings). Skills stage their results in a SkillContext and hand them here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..catalog import REWRITE_IN_FLIGHT, Changes
from ..library import Library
from ..model import Asset, SkillExecution

if TYPE_CHECKING:
    import numpy

# Locks by original (hashed into a fixed set, so they are never created or dropped).
_REWRITE_LOCKS = tuple(threading.Lock() for _ in range(64))


class RunRecorder:
    def __init__(self, library: Library, embedding_saved: Callable[[str, str, str, numpy.ndarray], None]) -> None:
        self.library = library
        self.catalog = library.catalog
        self._embedding_saved = embedding_saved  # search by meaning sees a committed embedding at once

    def note_new_file(self, key: str, profile_id: str | None, reason: str) -> None:
        """Note a file before it is stored, so that a run that never commits leaks nothing (the sweep removes
        it); the commit that references it ends the note."""
        self.catalog.cleanup.add(key, profile_id, reason)

    def is_leftover(self, key: str) -> bool:
        """Whether a note says the file under ``key`` may be a leftover (of a run that did not commit)."""
        return self.catalog.cleanup.is_noted(key)

    @staticmethod
    def rewrite_lock(key: str) -> threading.Lock:
        """The lock of the original stored under ``key``, whatever its extension: one rewrite of an original at a
        time, from its note to its commit (or its settling)."""
        return _REWRITE_LOCKS[hash(key.rsplit(".", 1)[0]) % len(_REWRITE_LOCKS)]

    def note_rewrite(self, started: Asset, key: str, in_place: bool) -> None:
        """Note the key a new original of ``started`` is about to be stored under. In place (the same key), the
        note is the one the rewrite recovery follows after a crash; under a new key, an ordinary in-flight file.
        OriginalChangedError if the catalog no longer describes ``started``, AssetGoneError if it was deleted."""
        self.catalog.cleanup.note_rewrite(started, key, REWRITE_IN_FLIGHT if in_place else "original_in_flight")

    def drop_rewrite_note(self, key: str) -> None:
        self.catalog.cleanup.drop_rewrite_note(key)

    def rewrite_notes(self, noted_before: datetime | None) -> list[tuple[str, str | None]]:
        """The keys (and profiles) of rewrites in place that did not commit, noted before ``noted_before``."""
        return self.catalog.cleanup.rewrite_notes(noted_before)

    def asset_stored_at(self, key: str) -> Asset | None:
        """The asset whose original is stored under ``key``."""
        found = self.catalog.assets.find_by_storage_key(key)  # a rewrite note's key is an original's, never a
        return None if found is None else found[0]  # derivative's

    def commit(
        self,
        asset: Asset,
        changes: Changes,
        executions: list[tuple[SkillExecution, dict[str, Any]]],
        finished_job: tuple[str, str] | None = None,
    ) -> bool:
        """Commit a run's ``changes`` with its execution records (and, for a job, its end) in one commit, then
        remove the files it replaced and index its embeddings. False when the asset was deleted meanwhile."""
        if not self.catalog.runs.commit(asset.id, changes, executions, finished_job):
            return False
        for key in changes.replaced_keys:
            self.library.remove_file(key, asset.storage_profile_id)
        for asset_id, model, weights, vector in changes.embeddings:
            self._embedding_saved(model, weights, asset_id, vector)
        return True

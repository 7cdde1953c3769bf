"""Notes of stored files that may have to be removed: uploads and skill outputs in flight (dropped when they
commit), deletes that failed, replaced files, rewrites in place."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..model import Asset, utc_now
from .concern import Concern
from .cursor import Cursor

# The note of an original being rewritten under its own key (see SkillContext.replace_original). Only the rewrite
# recovery (skills.context.settle_rewrite) ends one that its run did not: the file is referenced all along.
REWRITE_IN_FLIGHT = "rewrite_in_flight"
CLEANUP_COLUMNS = "storage_key, storage_profile_id, reason, created_at"


class AssetGoneError(LookupError):
    """The asset was deleted while something (a skill) was still writing results for it."""


class OriginalChangedError(RuntimeError):
    """The asset's original changed (another rewrite committed) since a skill run read it."""


def note_cleanup(tx: Cursor, storage_key: str, storage_profile_id: str | None, reason: str) -> None:
    tx.execute(
        f"INSERT INTO storage_cleanup ({CLEANUP_COLUMNS}) VALUES (?, ?, ?, ?)",
        [storage_key, storage_profile_id, reason, utc_now()],
    )


def note_replaced(tx: Cursor, storage_key: str, asset_id: str) -> None:
    """Note a file an asset no longer uses, under the asset's profile: a sweep after a crash deletes it where it
    is stored."""
    tx.execute(
        f"INSERT INTO storage_cleanup ({CLEANUP_COLUMNS}) SELECT ?, storage_profile_id, 'replaced', ? FROM assets "
        "WHERE id = ?",
        [storage_key, utc_now(), asset_id],
    )


class Cleanup(Concern):
    def note_rewrite(self, asset: Asset, storage_key: str, reason: str) -> None:
        """Note the key a new original of ``asset`` is about to be stored under, if the catalog still describes the
        original the run started from (else OriginalChangedError: another rewrite committed meanwhile, and this one
        would undo it; AssetGoneError when it was deleted)."""

        def work(tx: Cursor) -> None:
            row = tx.execute("SELECT storage_key, checksum_sha256 FROM assets WHERE id = ?", [asset.id]).fetchone()
            if row is None:
                raise AssetGoneError(asset.id)
            if tuple(row) != (asset.storage_key, asset.checksum_sha256):
                raise OriginalChangedError("The original changed while this skill ran; run it again.")
            note_cleanup(tx, storage_key, asset.storage_profile_id, reason)

        self._write(work)

    def add(self, storage_key: str, storage_profile_id: str | None, reason: str) -> None:
        def work(tx: Cursor) -> Any:
            note_cleanup(tx, storage_key, storage_profile_id, reason)

        return self._write(work)

    def remove(self, storage_key: str) -> None:
        """Forget the notes of a file that was removed, but a rewrite's: the rewrite may store the file again
        after the removal (a delete racing it), and its note must outlive that."""

        def work(tx: Cursor) -> Any:
            tx.execute(
                "DELETE FROM storage_cleanup WHERE storage_key = ? AND reason <> ?", [storage_key, REWRITE_IN_FLIGHT]
            )

        return self._write(work)

    def rewrite_notes(self, noted_before: datetime | None = None) -> list[tuple[str, str | None]]:
        """The keys (and profiles) of rewrites in place that did not commit, noted before ``noted_before``."""
        return (
            self._cursor()
            .execute(
                "SELECT DISTINCT storage_key, storage_profile_id FROM storage_cleanup "
                "WHERE reason = ? AND created_at < COALESCE(?, CAST('infinity' AS TIMESTAMP))",
                [REWRITE_IN_FLIGHT, noted_before],
            )
            .fetchall()
        )

    def is_noted(self, storage_key: str) -> bool:
        """Whether a note (of any reason) says the file under ``storage_key`` may be a leftover."""
        return (
            self._cursor()
            .execute("SELECT 1 FROM storage_cleanup WHERE storage_key = ? LIMIT 1", [storage_key])
            .fetchone()
            is not None
        )

    def drop_rewrite_note(self, storage_key: str) -> None:
        def work(tx: Cursor) -> Any:
            tx.execute(
                "DELETE FROM storage_cleanup WHERE storage_key = ? AND reason = ?", [storage_key, REWRITE_IN_FLIGHT]
            )

        return self._write(work)

    def pending(self, in_flight_before: datetime | None = None) -> list[tuple[str, str | None]]:
        """Keys to delete: notes for files that no asset or derivative references (any more). With
        ``in_flight_before``, files a skill run is still writing (noted before it stores them, dropped when it
        commits) are included only if noted before that moment: a sweep must not take them from a run under way,
        whatever older notes say about the same key (a conversion stores under a key the asset had before).
        Rewrites in place are settled, not swept (see REWRITE_IN_FLIGHT)."""
        return (
            self._cursor()
            .execute(
                "SELECT DISTINCT c.storage_key, c.storage_profile_id FROM storage_cleanup c "
                "WHERE c.reason <> ? "
                "AND c.storage_key NOT IN (SELECT storage_key FROM assets) "
                "AND c.storage_key NOT IN (SELECT storage_key FROM derivatives) "
                "AND c.storage_key NOT IN (SELECT storage_key FROM storage_cleanup "
                "WHERE reason LIKE '%in_flight' AND created_at >= COALESCE(?, CAST('infinity' AS TIMESTAMP)))",
                [REWRITE_IN_FLIGHT, in_flight_before],
            )
            .fetchall()
        )

    def drop_stale(self) -> None:
        """Forget notes about keys that are still referenced (their upload did commit), but a rewrite's."""

        def work(tx: Cursor) -> Any:
            tx.execute(
                "DELETE FROM storage_cleanup WHERE reason <> ? AND (storage_key IN (SELECT storage_key FROM assets) "
                "OR storage_key IN (SELECT storage_key FROM derivatives))",
                [REWRITE_IN_FLIGHT],
            )

        return self._write(work)

"""The change log of a team library: what each server must learn from the others' writes (an embedding for its
search index or a deleted asset, a revoked key, a changed storage profile). A write records its change in its own
transaction; every server reads the changes recorded since its last look (see ``jupyter_assets/propagation.py``)."""

from __future__ import annotations

from datetime import datetime

from .concern import Concern
from .cursor import Cursor


class ChangeLog(Concern):
    def record(self, tx: Cursor, kind: str, subject: str) -> None:
        """Note a change in the write transaction ``tx``; a one-server library has no one to tell."""
        if self._core.is_shared:
            tx.execute("INSERT INTO changes (kind, subject) VALUES (?, ?)", [kind, subject])

    def now(self) -> datetime:
        """The catalog's clock (the one ``recorded_at`` is set by, the same for every server)."""
        return self._cursor().execute("SELECT CAST(now() AS TIMESTAMP)").fetchone()[0]

    def since(self, moment: datetime) -> list[tuple[int, str, str]]:
        """(sequence number, kind, subject) of the changes recorded after ``moment``, in order."""
        return (
            self._cursor()
            .execute("SELECT seq, kind, subject FROM changes WHERE recorded_at > ? ORDER BY seq", [moment])
            .fetchall()
        )

    def drop_before(self, moment: datetime) -> None:
        """Forget changes every server has long seen."""
        self._write(lambda tx: tx.execute("DELETE FROM changes WHERE recorded_at < ?", [moment]))

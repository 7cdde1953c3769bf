"""Stored API keys: only their hash, never the key itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..model import ApiKeyRecord
from .concern import Concern
from .cursor import Cursor
from .rows import API_KEY


class Keys(Concern):
    def insert(self, record: ApiKeyRecord, key_hash: str) -> None:
        def work(tx: Cursor) -> Any:
            tx.execute(
                "INSERT INTO api_keys (id, name, key_hash, prefix, scopes, created_at, revoked_at) "
                "VALUES (?, ?, ?, ?, ?, ?, NULL)",
                [record.id, record.name, key_hash, record.prefix, " ".join(record.scopes), record.created_at],
            )

        return self._write(work)

    def find(self, key_hash: str) -> ApiKeyRecord | None:
        row = (
            self._cursor().execute(f"SELECT {API_KEY.select()} FROM api_keys WHERE key_hash = ?", [key_hash]).fetchone()
        )
        return API_KEY(row) if row else None

    def all(self) -> list[ApiKeyRecord]:
        rows = self._cursor().execute(f"SELECT {API_KEY.select()} FROM api_keys ORDER BY created_at, id").fetchall()
        return [API_KEY(row) for row in rows]

    def revoke(self, key_id_or_name: str, revoked_at: datetime) -> int:
        def work(tx: Cursor) -> Any:
            rows = tx.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL RETURNING id",
                [revoked_at, key_id_or_name, key_id_or_name],
            ).fetchall()
            for (key_id,) in rows:
                self._core.change_log.record(tx, "api_key_revoked", key_id)
            return len(rows)

        return self._write(work)

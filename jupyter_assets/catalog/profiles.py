"""Storage provider profiles, with the default one kept in memory: every upload asks for it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..model import StorageProfile, utc_now
from .concern import Concern
from .cursor import Cursor
from .rows import PROFILE

if TYPE_CHECKING:
    from . import Catalog


class Profiles(Concern):
    def __init__(self, core: Catalog) -> None:
        super().__init__(core)
        # The default changes only through the writes below.
        self._default: tuple[StorageProfile | None] | None = None
        self._generation = 0
        self._cache_lock = threading.Lock()

    def all(self) -> list[StorageProfile]:
        """Every profile: the default first, then enabled ones, then by name."""
        rows = (
            self._cursor()
            .execute(
                f"SELECT {PROFILE.select()} FROM storage_profiles "
                "ORDER BY is_default DESC, is_enabled DESC, lower(name), id"
            )
            .fetchall()
        )
        return [PROFILE(row) for row in rows]

    def default(self) -> StorageProfile | None:
        cached = self._default
        if cached is not None:
            return cached[0]
        generation = self._generation
        row = (
            self._cursor()
            .execute(
                f"SELECT {PROFILE.select()} FROM storage_profiles WHERE is_default ORDER BY updated_at DESC LIMIT 1"
            )
            .fetchone()
        )
        profile = PROFILE(row) if row else None
        with self._cache_lock:
            if generation == self._generation:  # no profile write committed meanwhile: safe to keep
                self._default = (profile,)
        return profile

    def get(self, profile_id: str) -> StorageProfile | None:
        row = (
            self._cursor()
            .execute(f"SELECT {PROFILE.select()} FROM storage_profiles WHERE id = ?", [profile_id])
            .fetchone()
        )
        return PROFILE(row) if row else None

    def save(self, profile: StorageProfile) -> None:
        """Insert or replace a profile; a default profile takes the flag from every other."""

        def work(tx: Cursor) -> None:
            if profile.is_default:
                tx.execute("UPDATE storage_profiles SET is_default = false WHERE id <> ?", [profile.id])
            tx.execute("DELETE FROM storage_profiles WHERE id = ?", [profile.id])
            tx.execute(
                f"INSERT INTO storage_profiles ({PROFILE.select()}) VALUES ({', '.join('?' * len(PROFILE.columns))})",
                PROFILE.values(profile),
            )
            self._core.change_log.record(tx, "storage_profile", profile.id)

        try:
            self._write(work)
        finally:
            self.forget_cached()

    def delete(self, profile_id: str) -> str:
        """Remove a profile, or only disable it (and take its default flag) while assets still use it. Returns
        "deleted" or "disabled"."""

        def work(tx: Cursor) -> str:
            self._core.change_log.record(tx, "storage_profile", profile_id)
            used = tx.execute("SELECT 1 FROM assets WHERE storage_profile_id = ? LIMIT 1", [profile_id]).fetchone()
            if used:
                tx.execute(
                    "UPDATE storage_profiles SET is_enabled = false, is_default = false, updated_at = ? WHERE id = ?",
                    [utc_now(), profile_id],
                )
                return "disabled"
            tx.execute("DELETE FROM storage_profiles WHERE id = ?", [profile_id])
            return "deleted"

        try:
            return self._write(work)
        finally:
            self.forget_cached()

    def forget_cached(self) -> None:
        """Called once a profile write has committed, here or on another server: the cached default may be
        stale."""
        with self._cache_lock:
            self._generation += 1
            self._default = None

"""The catalog: metadata in one DuckDB file, owned by the server process. SQL lives here and nowhere else."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
from pyarrow import dataset, parquet

from ..model import (
    ApiKeyRecord,
    Asset,
    ContentTypeUsage,
    Derivative,
    ListQuery,
    Page,
    SkillExecution,
    StepResult,
    StorageProfile,
    StructuredResult,
    UsageStats,
    new_id,
    utc_now,
)
from .cursor import Cursor
from .schema import MIGRATIONS
from .writer import GroupCommitWriter, Insert

ASSET_COLUMNS = (
    "id, owner, status, original_file_name, content_type, extension, size, width, height, checksum_sha256, "
    "storage_provider, storage_profile_id, storage_key, is_public, description, alt_text, created_at, updated_at"
)
DERIVATIVE_COLUMNS = (
    "asset_id, kind, content_type, extension, size, width, height, checksum_sha256, storage_key, created_at"
)
JOB_COLUMNS = "id, asset_id, skills, status, attempts, created_at, updated_at"
PROFILE_COLUMNS = (
    "id, name, display_name, provider_type, is_enabled, is_default, configuration_json, secret_json, created_at, "
    "updated_at"
)
EVENT_COLUMNS = "id, occurred_at, kind, asset_id, actor, content_type, size, skill_name, succeeded"
EXPORTABLE_TABLES = ("assets", "derivatives", "executions", "events")
# Rows that belong to one asset and go with it (skill_steps hang off skill_executions and are deleted first).
ASSET_CHILD_TABLES = ("skill_executions", "derivatives", "structured_results", "jobs", "embeddings", "image_hashes")
SEARCH_SEPARATOR = "\x1f"  # ASCII unit separator: a match never spans two fields
# The note of an original being rewritten under its own key (see SkillContext.replace_original). Only the rewrite
# recovery (skills.context.settle_rewrite) ends one that its run did not: the file is referenced all along.
REWRITE_IN_FLIGHT = "rewrite_in_flight"
ORDER_COLUMNS = {"createdAtUtc": "created_at", "size": "size"}
# What bounds nothing, by column and by "descending": every row is on the right side of it.
ORDER_SENTINELS = {
    "created_at": {True: "'-infinity'::TIMESTAMP", False: "'infinity'::TIMESTAMP"},
    "size": {True: "-1", False: str(2**62)},
}


T = TypeVar("T")


class CatalogLockedError(RuntimeError):
    """Another process (usually a running server) holds the catalog file open."""


def _asset(row: tuple) -> Asset:
    return Asset(*row)


def _profile(row: tuple) -> StorageProfile:
    return StorageProfile(*row[:6], json.loads(row[6]), json.loads(row[7]), *row[8:])


def _visibility(visible_to: str | None, alias: str = "") -> tuple[str, list[Any]]:
    """SQL that keeps what a caller may see: public assets and their own (None means everything: admin)."""
    if visible_to is None:
        return "TRUE", []
    return f"({alias}is_public OR {alias}owner = ?)", [visible_to]


def _filters(query: ListQuery, visible_to: str | None) -> tuple[str, list[Any]]:
    """The list endpoint's WHERE clause (visibility, q, contentType, status) and its parameters."""
    where, params = _visibility(visible_to)
    clauses = [where]
    if query.text:
        clauses.append("contains(search_text, ?)")
        params.append(search_needle(query.text))
    if query.content_type:
        if query.content_type.endswith("/*"):
            clauses.append("starts_with(content_type, ?)")
            params.append(query.content_type[:-1])
        else:
            clauses.append("content_type = ?")
            params.append(query.content_type)
    if query.status:
        clauses.append("status = ?")
        params.append(query.status)
    return " AND ".join(clauses), params


class Catalog:
    """All reads and writes of the DuckDB file. Thread-safe: a cursor per thread, writes serialised."""

    def __init__(self, path: Path, writes_coming: Callable[[], int] = lambda: 0) -> None:
        """``writes_coming``: how many writes are on their way (see GroupCommitWriter)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = duckdb.connect(str(path))
        except duckdb.IOException as error:
            raise CatalogLockedError(
                f"The catalog {path} is in use by another process (a running jupyter-assets server?): {error}"
            ) from error
        self.path = path
        self._local = threading.local()
        # Every upload asks for the default profile; it changes only through the profile methods below.
        self._default_profile: tuple[StorageProfile | None] | None = None
        self._profiles_generation = 0
        self._profiles_cache_lock = threading.Lock()
        self._migrate()
        self._writer = GroupCommitWriter(Cursor(self._db.cursor()), writes_coming)

    def close(self) -> None:
        self._writer.close()
        self._db.close()

    # -- plumbing ---------------------------------------------------------------------------------------

    def _cursor(self) -> Cursor:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = Cursor(self._db.cursor())
        return cursor

    def settle(self, committing: Future) -> Future:
        """Wait for the write insert_asset queued to be committed (or to fail); returns its future."""
        return self._writer.settle(committing)

    def _write(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` in a write transaction and return its result once committed."""
        return self._writer.submit(work)

    def _migrate(self) -> None:
        cursor = self._cursor()
        cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
        current = cursor.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        for version, ddl in MIGRATIONS:
            if version <= current:
                continue
            cursor.execute("BEGIN TRANSACTION")
            try:
                cursor.execute(ddl)
                cursor.execute("INSERT INTO schema_version VALUES (?, ?)", [version, utc_now()])
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def schema_version(self) -> int:
        return self._cursor().execute("SELECT max(version) FROM schema_version").fetchone()[0]

    # -- assets -----------------------------------------------------------------------------------------

    def insert_asset(
        self, asset: Asset, job_skills: list[str] | None, event: dict[str, Any]
    ) -> tuple[str | None, Future]:
        """Commit a new asset, its enrichment job (if any) and its upload event together. Returns at once with the
        job id and the commit's future, so the caller can store the file while the commit is under way; the
        caller must ``settle`` the future (see GroupCommitWriter)."""
        job_id = new_id() if job_skills else None

        row = [
            asset.id, asset.owner, asset.status, asset.original_file_name, asset.content_type, asset.extension,
            asset.size, asset.width, asset.height, asset.checksum_sha256, asset.storage_provider,
            asset.storage_profile_id, asset.storage_key, asset.is_public, asset.description, asset.alt_text,
            asset.created_at, asset.updated_at,
            search_text(asset.original_file_name, asset.description, asset.alt_text),
        ]  # fmt: skip
        inserts = [
            Insert("assets", ASSET_COLUMNS + ", search_text", row),
            _event_insert(event),
        ]
        if job_id:
            inserts.append(
                Insert(
                    "jobs",
                    JOB_COLUMNS,
                    [job_id, asset.id, json.dumps(job_skills), "queued", 0, asset.created_at, asset.created_at],
                )
            )
        return job_id, self._writer.submit_nowait(inserts)

    def get_asset(self, asset_id: str) -> Asset | None:
        row = self._cursor().execute(f"SELECT {ASSET_COLUMNS} FROM assets WHERE id = ?", [asset_id]).fetchone()
        return _asset(row) if row else None

    def get_asset_detail(self, asset_id: str) -> Asset | None:
        asset = self.get_asset(asset_id)
        if asset is None:
            return None
        cursor = self._cursor()
        asset.derivatives = [
            Derivative(*row)
            for row in cursor.execute(
                f"SELECT {DERIVATIVE_COLUMNS} FROM derivatives WHERE asset_id = ? ORDER BY created_at, kind",
                [asset_id],
            ).fetchall()
        ]
        asset.structured_results = [
            StructuredResult(*row)
            for row in cursor.execute(
                "SELECT asset_id, kind, payload_json, model_id, created_at FROM structured_results "
                "WHERE asset_id = ? ORDER BY created_at, kind",
                [asset_id],
            ).fetchall()
        ]
        asset.latest_execution = self._latest_execution(asset_id)
        return asset

    def _latest_execution(self, asset_id: str) -> SkillExecution | None:
        cursor = self._cursor()
        row = cursor.execute(
            "SELECT id, asset_id, skill_name, trigger_source, started_at, completed_at, succeeded "
            "FROM skill_executions WHERE asset_id = ? ORDER BY started_at DESC, id DESC LIMIT 1",
            [asset_id],
        ).fetchone()
        if row is None:
            return None
        execution = SkillExecution(*row)
        execution.steps = [
            StepResult(*step)
            for step in cursor.execute(
                "SELECT step_name, succeeded, error_message, started_at, completed_at FROM skill_steps "
                "WHERE execution_id = ? ORDER BY position",
                [execution.id],
            ).fetchall()
        ]
        return execution

    def find_by_storage_key(self, storage_key: str) -> tuple[Asset, Derivative | None] | None:
        """The asset whose original or derivative is stored under this key (for the public content route)."""
        cursor = self._cursor()
        row = cursor.execute(f"SELECT {ASSET_COLUMNS} FROM assets WHERE storage_key = ?", [storage_key]).fetchone()
        if row:
            return _asset(row), None
        derivative_row = cursor.execute(
            f"SELECT {DERIVATIVE_COLUMNS} FROM derivatives WHERE storage_key = ?", [storage_key]
        ).fetchone()
        if derivative_row is None:
            return None
        derivative = Derivative(*derivative_row)
        asset = self.get_asset(derivative.asset_id)
        return (asset, derivative) if asset else None

    def list_assets(self, query: ListQuery, visible_to: str | None) -> Page:
        condition, params = _filters(query, visible_to)
        direction = "DESC" if query.descending else "ASC"
        column = ORDER_COLUMNS[query.order_by]
        offset = (query.page - 1) * query.page_size
        cursor = self._cursor()
        total = cursor.execute(f"SELECT count(*) FROM assets WHERE {condition}", params).fetchone()[0]
        page_condition, page_params = condition, params
        if not query.text:
            # Sorting by (column, id) over every matching row is the slow part: the id is a string. Find the value
            # of the page's last row first (a sort on one value), then sort only the rows on that side of it:
            # twice as fast for created_at, several times for size (whose values are not in insertion order).
            # Not for text search, where the extra pass over the text would cost more than the sort.
            compare = ">=" if query.descending else "<="
            no_bound = ORDER_SENTINELS[column][query.descending]
            page_condition = (
                f"{condition} AND {column} {compare} coalesce((SELECT {column} FROM assets WHERE {condition} "
                f"ORDER BY {column} {direction} LIMIT 1 OFFSET ?), {no_bound})"
            )
            page_params = [*params, *params, offset + query.page_size - 1]
        rows = cursor.execute(
            f"SELECT {ASSET_COLUMNS} FROM assets WHERE {page_condition} "
            f"ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?",
            [*page_params, query.page_size, offset],
        ).fetchall()
        return Page([_asset(row) for row in rows], query.page, query.page_size, total)

    def matching_assets(self, asset_ids: list[str], query: ListQuery, visible_to: str | None) -> dict[str, Asset]:
        """Those of the given assets that pass the list filters (search by meaning ranks; the catalog filters)."""
        condition, params = _filters(query, visible_to)
        rows = (
            self._cursor()
            .execute(
                f"SELECT {ASSET_COLUMNS} FROM assets WHERE {condition} AND id IN (SELECT unnest(?::VARCHAR[]))",
                [*params, asset_ids],
            )
            .fetchall()
        )
        return {row[0]: _asset(row) for row in rows}

    def derivatives_of_kind(self, asset_ids: list[str], kind: str) -> dict[str, Derivative]:
        """Each given asset's derivative of this kind, by asset id: one query for a whole page of list items."""
        if not asset_ids:
            return {}
        rows = (
            self._cursor()
            .execute(
                f"SELECT {DERIVATIVE_COLUMNS} FROM derivatives "
                "WHERE kind = ? AND asset_id IN (SELECT unnest(?::VARCHAR[]))",
                [kind, asset_ids],
            )
            .fetchall()
        )
        return {row[0]: Derivative(*row) for row in rows}

    def count_embedded(self, query: ListQuery, visible_to: str | None, model: str, weights: str) -> int:
        """How many assets pass the list filters and have an embedding of this model: search by meaning's total."""
        condition, params = _filters(query, visible_to)
        return (
            self._cursor()
            .execute(
                f"SELECT count(*) FROM assets WHERE {condition} AND id IN "
                "(SELECT asset_id FROM embeddings WHERE model = ? AND weights = ?)",
                [*params, model, weights],
            )
            .fetchone()[0]
        )

    def visible_ids(self, visible_to: str | None) -> list[str]:
        condition, params = _visibility(visible_to)
        return [row[0] for row in self._cursor().execute(f"SELECT id FROM assets WHERE {condition}", params).fetchall()]

    def checksum_groups(self, visible_to: str | None) -> list[list[str]]:
        """Assets with identical bytes, by checksum: each group's ids sorted, groups by their first id."""
        condition, params = _visibility(visible_to)
        rows = (
            self._cursor()
            .execute(
                f"SELECT list(id ORDER BY id) AS ids FROM assets WHERE {condition} "
                "GROUP BY checksum_sha256 HAVING count(*) > 1 ORDER BY ids[1]",
                params,
            )
            .fetchall()
        )
        return [row[0] for row in rows]

    def image_hashes(self, visible_to: str | None) -> list[tuple[str, int]]:
        condition, params = _visibility(visible_to, "a.")
        return (
            self._cursor()
            .execute(
                f"SELECT h.asset_id, h.phash FROM image_hashes h JOIN assets a ON a.id = h.asset_id WHERE {condition}",
                params,
            )
            .fetchall()
        )

    def update_asset(self, asset_id: str, changes: dict[str, Any]) -> None:
        """Set the given columns (catalog column names) and bump updated_at."""
        changes = {**changes, "updated_at": utc_now()}
        assignments = ", ".join(f"{column} = ?" for column in changes)

        def work(tx: Cursor) -> Any:
            tx.execute(f"UPDATE assets SET {assignments} WHERE id = ?", [*changes.values(), asset_id])
            if {"original_file_name", "description", "alt_text"} & changes.keys():
                name, description, alt_text = tx.execute(
                    "SELECT original_file_name, description, alt_text FROM assets WHERE id = ?", [asset_id]
                ).fetchone()
                tx.execute(
                    "UPDATE assets SET search_text = ? WHERE id = ?",
                    [search_text(name, description, alt_text), asset_id],
                )
            if "is_public" in changes:
                for table in ("derivatives", "skill_executions"):
                    tx.execute(f"UPDATE {table} SET is_public = ? WHERE asset_id = ?", [changes["is_public"], asset_id])

        return self._write(work)

    def undo_upload(self, asset_id: str) -> None:
        """Forget an upload whose file could not be stored: its row, its job and its event."""

        def work(tx: Cursor) -> None:
            tx.execute("DELETE FROM jobs WHERE asset_id = ?", [asset_id])
            tx.execute("DELETE FROM events WHERE asset_id = ? AND kind = 'upload'", [asset_id])
            tx.execute("DELETE FROM assets WHERE id = ?", [asset_id])

        self._write(work)

    def delete_asset(self, asset_id: str, event: dict[str, Any]) -> list[str] | None:
        """Remove an asset and everything hanging off it; returns the storage keys to delete, or None if absent.

        The keys are recorded in storage_cleanup in the same transaction, so a crash before the files are gone
        leaves a note for the retry sweep instead of a silent leak.
        """

        def work(tx: Cursor) -> Any:
            row = tx.execute("SELECT storage_key, storage_profile_id FROM assets WHERE id = ?", [asset_id]).fetchone()
            if row is None:
                return None
            keys = [row[0]] + [
                r[0]
                for r in tx.execute("SELECT storage_key FROM derivatives WHERE asset_id = ?", [asset_id]).fetchall()
            ]
            tx.execute(
                "DELETE FROM skill_steps WHERE execution_id IN (SELECT id FROM skill_executions WHERE asset_id = ?)",
                [asset_id],
            )
            for table in ASSET_CHILD_TABLES:
                tx.execute(f"DELETE FROM {table} WHERE asset_id = ?", [asset_id])
            tx.execute("DELETE FROM assets WHERE id = ?", [asset_id])
            for key in keys:
                tx.execute("INSERT INTO storage_cleanup VALUES (?, ?, 'delete', ?)", [key, row[1], utc_now()])
            _event_insert(event).execute(tx)
            return keys

        return self._write(work)

    # -- derivatives, results, executions ----------------------------------------------------------------

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
            tx.execute(
                "INSERT INTO storage_cleanup VALUES (?, ?, ?, ?)",
                [storage_key, asset.storage_profile_id, reason, utc_now()],
            )

        self._write(work)

    def embeddings(self, model: str, weights: str) -> tuple[list[str], Any]:
        """Every stored embedding of one model: (asset ids, float32 matrix with a row per id)."""
        import numpy

        table = (
            self._cursor()
            .execute(
                "SELECT asset_id, dim, vector FROM embeddings WHERE model = ? AND weights = ? ORDER BY asset_id",
                [model, weights],
            )
            .fetch_arrow_table()
        )
        if table.num_rows == 0:
            return [], numpy.zeros((0, 0), dtype=numpy.float32)
        dim = table.column("dim")[0].as_py()
        values = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return table.column("asset_id").to_pylist(), values.astype(numpy.float32, copy=False).reshape(-1, dim)

    def commit_run(
        self,
        asset_id: str,
        changes: Changes,
        executions: list[tuple[SkillExecution, dict[str, Any]]],
        finished_job: tuple[str, str] | None = None,
    ) -> bool:
        """Apply what skills wrote, record their executions (with their events) and, for an enrichment job, set
        the asset's status and drop the job (``finished_job``: job id, status), all in one commit: a crash before
        it reruns the job, so no half-recorded run survives. False when the asset was deleted meanwhile (the files
        the run stored are then left to the cleanup sweep)."""

        def work(tx: Cursor) -> bool:
            if tx.execute("SELECT 1 FROM assets WHERE id = ?", [asset_id]).fetchone() is None:
                return False
            changes.apply(tx)
            for execution, event in executions:
                _insert_execution(tx, execution, event)
            if finished_job is not None:
                job_id, status = finished_job
                tx.execute("DELETE FROM jobs WHERE id = ?", [job_id])
                tx.execute("UPDATE assets SET status = ? WHERE id = ?", [status, asset_id])
            # A run changes the asset's JSON (its latest execution at least): updatedAtUtc says so.
            tx.execute("UPDATE assets SET updated_at = ? WHERE id = ?", [utc_now(), asset_id])
            return True

        return self._write(work)

    # -- storage profiles --------------------------------------------------------------------------------

    def storage_profiles(self) -> list[StorageProfile]:
        """Every profile: the default first, then enabled ones, then by name."""
        rows = (
            self._cursor()
            .execute(
                f"SELECT {PROFILE_COLUMNS} FROM storage_profiles "
                "ORDER BY is_default DESC, is_enabled DESC, lower(name), id"
            )
            .fetchall()
        )
        return [_profile(row) for row in rows]

    def default_storage_profile(self) -> StorageProfile | None:
        cached = self._default_profile
        if cached is not None:
            return cached[0]
        generation = self._profiles_generation
        row = (
            self._cursor()
            .execute(
                f"SELECT {PROFILE_COLUMNS} FROM storage_profiles WHERE is_default ORDER BY updated_at DESC LIMIT 1"
            )
            .fetchone()
        )
        profile = _profile(row) if row else None
        with self._profiles_cache_lock:
            if generation == self._profiles_generation:  # no profile write committed meanwhile: safe to keep
                self._default_profile = (profile,)
        return profile

    def _profiles_changed(self) -> None:
        """Called once a profile write has committed: the cached default may be stale."""
        with self._profiles_cache_lock:
            self._profiles_generation += 1
            self._default_profile = None

    def storage_profile(self, profile_id: str) -> StorageProfile | None:
        row = (
            self._cursor()
            .execute(f"SELECT {PROFILE_COLUMNS} FROM storage_profiles WHERE id = ?", [profile_id])
            .fetchone()
        )
        return _profile(row) if row else None

    def save_storage_profile(self, profile: StorageProfile) -> None:
        """Insert or replace a profile; a default profile takes the flag from every other."""

        def work(tx: Cursor) -> None:
            if profile.is_default:
                tx.execute("UPDATE storage_profiles SET is_default = false WHERE id <> ?", [profile.id])
            tx.execute("DELETE FROM storage_profiles WHERE id = ?", [profile.id])
            tx.execute(
                "INSERT INTO storage_profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    profile.id, profile.name, profile.display_name, profile.provider_type, profile.is_enabled,
                    profile.is_default, json.dumps(profile.configuration), json.dumps(profile.secrets),
                    profile.created_at, profile.updated_at,
                ],
            )  # fmt: skip

        try:
            self._write(work)
        finally:
            self._profiles_changed()

    def delete_storage_profile(self, profile_id: str) -> str:
        """Remove a profile, or only disable it (and take its default flag) while assets still use it. Returns
        "deleted" or "disabled"."""

        def work(tx: Cursor) -> str:
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
            self._profiles_changed()

    # -- storage cleanup ---------------------------------------------------------------------------------

    def add_cleanup(self, storage_key: str, storage_profile_id: str | None, reason: str) -> None:
        def work(tx: Cursor) -> Any:
            tx.execute(
                "INSERT INTO storage_cleanup VALUES (?, ?, ?, ?)",
                [storage_key, storage_profile_id, reason, utc_now()],
            )

        return self._write(work)

    def remove_cleanup(self, storage_key: str) -> None:
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
                "WHERE reason = ? AND created_at < coalesce(?, 'infinity'::TIMESTAMP)",
                [REWRITE_IN_FLIGHT, noted_before],
            )
            .fetchall()
        )

    def cleanup_noted(self, storage_key: str) -> bool:
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

    def pending_cleanup(self, in_flight_before: datetime | None = None) -> list[tuple[str, str | None]]:
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
                "WHERE reason LIKE '%in_flight' AND created_at >= coalesce(?, 'infinity'::TIMESTAMP))",
                [REWRITE_IN_FLIGHT, in_flight_before],
            )
            .fetchall()
        )

    def drop_stale_cleanup(self) -> None:
        """Forget notes about keys that are still referenced (their upload did commit), but a rewrite's."""

        def work(tx: Cursor) -> Any:
            tx.execute(
                "DELETE FROM storage_cleanup WHERE reason <> ? AND (storage_key IN (SELECT storage_key FROM assets) "
                "OR storage_key IN (SELECT storage_key FROM derivatives))",
                [REWRITE_IN_FLIGHT],
            )

        return self._write(work)

    # -- jobs ----------------------------------------------------------------------------------------------

    def recover_jobs(self, max_attempts: int) -> list[tuple[str, str, list[str]]]:
        """After a restart: requeue jobs that were running, reset their assets, return every queued job.

        A job that was running when the process died max_attempts times is given up (its asset is failed):
        an image that kills the server must not do so at every start."""

        def work(tx: Cursor) -> Any:
            now = utc_now()
            tx.execute(
                "UPDATE assets SET status = 'failed', updated_at = ? WHERE id IN "
                "(SELECT asset_id FROM jobs WHERE status = 'running' AND attempts >= ?)",
                [now, max_attempts],
            )
            tx.execute("DELETE FROM jobs WHERE status = 'running' AND attempts >= ?", [max_attempts])
            tx.execute("UPDATE jobs SET status = 'queued', updated_at = ? WHERE status = 'running'", [now])
            tx.execute(
                "UPDATE assets SET status = 'pending', updated_at = ? "
                "WHERE status = 'processing' AND id IN (SELECT asset_id FROM jobs)",
                [now],
            )
            rows = tx.execute("SELECT id, asset_id, skills FROM jobs ORDER BY created_at, id").fetchall()
            return [(job_id, asset_id, json.loads(skills)) for job_id, asset_id, skills in rows]

        return self._write(work)

    def start_jobs(self, jobs: list[tuple[str, str]]) -> set[str]:
        """Mark (job id, asset id) pairs running and their assets processing, in one commit; returns the ids of
        the jobs that still exist (a job goes with its asset when the asset is deleted)."""

        def work(tx: Cursor) -> Any:
            started = set()
            for job_id, asset_id in jobs:
                found = tx.execute(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ? "
                    "WHERE id = ? RETURNING id",
                    [utc_now(), job_id],
                ).fetchone()
                if found is not None:
                    tx.execute(
                        "UPDATE assets SET status = 'processing', updated_at = ? WHERE id = ?", [utc_now(), asset_id]
                    )
                    started.add(job_id)
            return started

        return self._write(work)

    def queued_job_count(self) -> int:
        return self._cursor().execute("SELECT count(*) FROM jobs").fetchone()[0]

    # -- usage and export --------------------------------------------------------------------------------

    def usage_stats(self, visible_to: str | None) -> UsageStats:
        """One query. Derivatives and executions carry their asset's owner and visibility, so each table is
        filtered on its own instead of joined to the assets."""
        where, params = _visibility(visible_to)
        row = (
            self._cursor()
            .execute(
                f"""
            WITH visible AS (SELECT content_type, size FROM assets WHERE {where}),
            breakdown AS (
                SELECT content_type, count(*) AS n, sum(size) AS bytes FROM visible GROUP BY content_type
            ),
            skill_runs AS (SELECT skill_name, count(*) AS n FROM skill_executions WHERE {where} GROUP BY skill_name)
            SELECT
                (SELECT count(*) FROM visible),
                (SELECT coalesce(sum(size), 0) FROM visible),
                (SELECT count(*) FROM derivatives WHERE {where}),
                (SELECT list([content_type, n::VARCHAR, bytes::VARCHAR] ORDER BY n DESC, content_type)
                   FROM breakdown),
                (SELECT [skill_name, n::VARCHAR] FROM skill_runs ORDER BY n DESC, skill_name LIMIT 1)
            """,
                params * 3,
            )
            .fetchone()
        )
        total_assets, total_bytes, total_derivatives, breakdown, top_skill = row
        return UsageStats(
            total_assets=total_assets,
            total_bytes=int(total_bytes),
            total_derivatives=total_derivatives,
            content_type_breakdown=[ContentTypeUsage(ct, int(n), int(b)) for ct, n, b in breakdown or []],
            most_active_skill=(top_skill[0], int(top_skill[1])) if top_skill else None,
        )

    def export_parquet(self, table: str, destination: Path, visible_to: str | None) -> None:
        """Write one table (as the caller may see it) to a Parquet file or, for events, a day-partitioned folder."""
        where, params = _visibility(visible_to, "a.")
        visible_ids = f"(SELECT a.id FROM assets a WHERE {where})"
        queries = {
            "assets": f"SELECT a.* EXCLUDE (search_text) FROM assets a WHERE {where}",
            "derivatives": f"SELECT * FROM derivatives WHERE asset_id IN {visible_ids}",
            "executions": (
                "SELECT e.id, e.asset_id, e.skill_name, e.trigger_source, e.started_at, e.completed_at, e.succeeded, "
                "s.position, s.step_name, s.succeeded AS step_succeeded, s.error_message "
                "FROM skill_executions e LEFT JOIN skill_steps s ON s.execution_id = e.id "
                f"WHERE e.asset_id IN {visible_ids}"
            ),
            "events": (
                "SELECT *, CAST(occurred_at AS DATE) AS day FROM events "
                + ("" if visible_to is None else "WHERE actor = ? OR asset_id IN " + visible_ids)
            ),
        }
        sql = queries[table]
        if table == "events" and visible_to is not None:
            params = [visible_to, *params]
        rows = self._cursor().execute(sql, params).fetch_arrow_table()
        if destination.suffix == ".parquet":
            parquet.write_table(rows, destination, compression="zstd")
        else:
            dataset.write_dataset(
                rows,
                destination,
                format="parquet",
                partitioning=["day"],
                partitioning_flavor="hive",
                existing_data_behavior="overwrite_or_ignore",
            )

    # -- api keys ------------------------------------------------------------------------------------------

    def insert_api_key(self, record: ApiKeyRecord, key_hash: str) -> None:
        def work(tx: Cursor) -> Any:
            tx.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
                [record.id, record.name, key_hash, record.prefix, " ".join(record.scopes), record.created_at],
            )

        return self._write(work)

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        row = (
            self._cursor()
            .execute(
                "SELECT id, name, prefix, scopes, created_at, revoked_at FROM api_keys WHERE key_hash = ?",
                [key_hash],
            )
            .fetchone()
        )
        return _api_key(row) if row else None

    def list_api_keys(self) -> list[ApiKeyRecord]:
        rows = (
            self._cursor()
            .execute("SELECT id, name, prefix, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at, id")
            .fetchall()
        )
        return [_api_key(row) for row in rows]

    def revoke_api_key(self, key_id_or_name: str, revoked_at: datetime) -> int:
        def work(tx: Cursor) -> Any:
            rows = tx.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL RETURNING id",
                [revoked_at, key_id_or_name, key_id_or_name],
            ).fetchall()
            return len(rows)

        return self._write(work)


class Changes:
    """The catalog writes of a skill run, kept until the run ends and then applied in one commit with its
    execution record (Catalog.commit_run): one commit per run instead of one per write."""

    def __init__(self) -> None:
        self._writes: list[Callable[[Cursor], None]] = []
        self._replaced: set[str] = set()
        self._parts: list[Changes] = []  # extended with (see extend)

    @property
    def replaced_keys(self) -> set[str]:
        """Files no longer referenced once committed (replaced derivatives, the old original of a conversion):
        removed then. Known once applied."""
        return self._replaced.union(*(part.replaced_keys for part in self._parts))

    def apply(self, tx: Cursor) -> None:
        for write in self._writes:
            write(tx)

    def extend(self, other: Changes) -> Changes:
        """Add the writes of ``other``, applied in their turn after the writes added so far; returns self."""
        self._writes.append(other.apply)
        self._parts.append(other)
        return self

    def upsert_derivative(self, derivative: Derivative) -> None:
        """Store a derivative, replacing one of the same kind, whose file is then noted for removal."""

        def write(tx: Cursor) -> None:
            old = tx.execute(
                "SELECT storage_key FROM derivatives WHERE asset_id = ? AND kind = ?",
                [derivative.asset_id, derivative.kind],
            ).fetchone()
            tx.execute(
                "DELETE FROM derivatives WHERE asset_id = ? AND kind = ?", [derivative.asset_id, derivative.kind]
            )
            tx.execute(
                f"INSERT INTO derivatives ({DERIVATIVE_COLUMNS}, owner, is_public) "
                "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, owner, is_public FROM assets WHERE id = ?",
                [
                    derivative.asset_id, derivative.kind, derivative.content_type, derivative.extension,
                    derivative.size, derivative.width, derivative.height, derivative.checksum_sha256,
                    derivative.storage_key, derivative.created_at, derivative.asset_id,
                ],
            )  # fmt: skip
            tx.execute("DELETE FROM storage_cleanup WHERE storage_key = ?", [derivative.storage_key])
            if old:
                # Noted under the asset's profile, so a sweep after a crash deletes it where it is stored.
                tx.execute(
                    "INSERT INTO storage_cleanup SELECT ?, storage_profile_id, 'replaced', ? FROM assets WHERE id = ?",
                    [old[0], utc_now(), derivative.asset_id],
                )
                self._replaced.add(old[0])  # a set: the writer may run this again after a failed batch

        self._writes.append(write)

    def replace_original(self, asset_id: str, facts: dict[str, Any], old_key: str | None, checksum: str) -> None:
        """Point the asset at its new, already stored original (catalog column names in ``facts``, storage_key
        included), ending the notes of its key (the key is referenced now); ``old_key``: the file it no longer
        uses (a conversion's), noted for removal and removed once committed. Only if the catalog still has the
        original of ``checksum``, the one the rewrite started from: else OriginalChangedError, and nothing of the
        commit is applied (another rewrite committed meanwhile, another server's perhaps, and this one would
        undo it)."""

        def write(tx: Cursor) -> None:
            assignments = ", ".join(f"{column} = ?" for column in facts)
            updated = tx.execute(
                f"UPDATE assets SET {assignments} WHERE id = ? AND checksum_sha256 = ? RETURNING id",
                [*facts.values(), asset_id, checksum],
            ).fetchone()
            if updated is None:
                raise OriginalChangedError(
                    "The original changed while this skill ran (another rewrite committed); run it again."
                )
            tx.execute("DELETE FROM storage_cleanup WHERE storage_key = ?", [facts["storage_key"]])
            if old_key is not None:
                tx.execute(
                    "INSERT INTO storage_cleanup SELECT ?, storage_profile_id, 'replaced', ? FROM assets WHERE id = ?",
                    [old_key, utc_now(), asset_id],
                )
                self._replaced.add(old_key)

        self._writes.append(write)

    def upsert_structured_result(self, result: StructuredResult) -> None:
        def write(tx: Cursor) -> None:
            tx.execute("DELETE FROM structured_results WHERE asset_id = ? AND kind = ?", [result.asset_id, result.kind])
            tx.execute(
                "INSERT INTO structured_results VALUES (?, ?, ?, ?, ?)",
                [result.asset_id, result.kind, result.payload_json, result.model_id, result.created_at],
            )

        self._writes.append(write)

    def upsert_embedding(self, asset_id: str, model: str, weights: str, vector: list[float]) -> None:
        def write(tx: Cursor) -> None:
            tx.execute(
                "DELETE FROM embeddings WHERE asset_id = ? AND model = ? AND weights = ?", [asset_id, model, weights]
            )
            tx.execute(
                "INSERT INTO embeddings VALUES (?, ?, ?, ?, ?, ?)",
                [asset_id, model, weights, len(vector), vector, utc_now()],
            )

        self._writes.append(write)

    def upsert_image_hash(self, asset_id: str, phash: int) -> None:
        def write(tx: Cursor) -> None:
            tx.execute("DELETE FROM image_hashes WHERE asset_id = ?", [asset_id])
            tx.execute("INSERT INTO image_hashes VALUES (?, ?, ?)", [asset_id, phash, utc_now()])

        self._writes.append(write)

    def fill_empty_text(self, asset_id: str, text: str) -> None:
        """Set the description and the alt text to ``text`` where each is still empty; never overwrite."""

        def write(tx: Cursor) -> None:
            name, description, alt_text = tx.execute(
                "SELECT original_file_name, description, alt_text FROM assets WHERE id = ?", [asset_id]
            ).fetchone()
            filled = (
                description if description and description.strip() else text,
                alt_text if alt_text and alt_text.strip() else text,
            )
            if filled != (description, alt_text):
                tx.execute(
                    "UPDATE assets SET description = ?, alt_text = ?, search_text = ?, updated_at = ? WHERE id = ?",
                    [*filled, search_text(name, *filled), utc_now(), asset_id],
                )

        self._writes.append(write)


def _insert_execution(tx: Cursor, execution: SkillExecution, event: dict[str, Any]) -> None:
    """An execution, its steps and its event (the asset must exist: its owner and visibility are copied)."""
    tx.execute(
        "INSERT INTO skill_executions SELECT ?, ?, ?, ?, ?, ?, ?, ?, owner, is_public FROM assets WHERE id = ?",
        [
            execution.id, execution.asset_id, execution.skill_name, execution.trigger_source,
            execution.parameters_json, execution.started_at, execution.completed_at, execution.succeeded,
            execution.asset_id,
        ],
    )  # fmt: skip
    tx.executemany(
        "INSERT INTO skill_steps VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            [execution.id, position, s.name, s.succeeded, s.error_message, s.started_at, s.completed_at]
            for position, s in enumerate(execution.steps)
        ],
    )
    _event_insert(event).execute(tx)


def _event_insert(event: dict[str, Any]) -> Insert:
    return Insert(
        "events",
        EVENT_COLUMNS,
        [
            new_id(), utc_now(), event["kind"], event.get("asset_id"), event.get("actor"),
            event.get("content_type"), event.get("size"), event.get("skill_name"), event.get("succeeded"),
        ],
    )  # fmt: skip


class AssetGoneError(LookupError):
    """The asset was deleted while something (a skill) was still writing results for it."""


class OriginalChangedError(RuntimeError):
    """The asset's original changed (another rewrite committed) since a skill run read it."""


def search_text(name: str, description: str | None, alt_text: str | None) -> str:
    """What `q` matches: the three fields lower-cased, joined by a separator that a needle cannot contain."""
    return SEARCH_SEPARATOR.join(part.lower() for part in (name, description, alt_text) if part)


def search_needle(text: str) -> str:
    return text.lower().replace(SEARCH_SEPARATOR, "")


def _api_key(row: tuple) -> ApiKeyRecord:
    key_id, name, prefix, scopes, created_at, revoked_at = row
    return ApiKeyRecord(key_id, name, prefix, scopes.split(), created_at, revoked_at)

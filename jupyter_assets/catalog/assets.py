"""Assets: their rows, what hangs off them (derivatives, results, executions), and the queries of the list."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from ..model import Asset, Derivative, ListQuery, Page, SkillExecution, new_id, utc_now
from .cleanup import note_cleanup
from .concern import Concern
from .cursor import Cursor
from .jobs import queued_job
from .rows import (
    ASSET,
    ASSET_ROW_COLUMNS,
    DERIVATIVE,
    EXECUTION,
    IN_IDS,
    STEP,
    STRUCTURED_RESULT,
    asset_row,
    event_insert,
    search_needle,
    update_asset_row,
    visibility,
)
from .writer import Insert

# Rows that belong to one asset and go with it (skill_steps hang off skill_executions and are deleted first).
ASSET_CHILD_TABLES = ("skill_executions", "derivatives", "structured_results", "jobs", "embeddings", "image_hashes")
ORDER_COLUMNS = {"createdAtUtc": "created_at", "size": "size"}
# What bounds nothing, by column and by "descending": every row is on the right side of it.
ORDER_SENTINELS = {
    "created_at": {True: "CAST('-infinity' AS TIMESTAMP)", False: "CAST('infinity' AS TIMESTAMP)"},
    "size": {True: "-1", False: str(2**62)},
}


def _contains(dialect: str, text: str) -> tuple[str, str]:
    """The clause and parameter of a substring search (q=). PostgreSQL answers LIKE '%...%' from its trigram
    index (see schema.py); DuckDB scans the column with position()."""
    needle = search_needle(text)
    if dialect == "postgresql":
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return "search_text LIKE ?", f"%{escaped}%"
    return "position(? IN search_text) > 0", needle


def _filters(query: ListQuery, visible_to: str | None, dialect: str) -> tuple[str, list[Any]]:
    """The list endpoint's WHERE clause (visibility, q, contentType, status) and its parameters."""
    where, params = visibility(visible_to)
    clauses = [where]
    if query.text:
        clause, needle = _contains(dialect, query.text)
        clauses.append(clause)
        params.append(needle)
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


class Assets(Concern):
    def insert(self, asset: Asset, job_skills: list[str] | None, event: dict[str, Any]) -> tuple[str | None, Future]:
        """Commit a new asset, its enrichment job (if any) and its upload event together. Returns at once with the
        job id and the commit's future, so the caller can store the file while the commit is under way, then wait
        for it with ``settle``."""
        job_ids, committing = self.insert_many([(asset, job_skills, event)])
        return job_ids[0], committing

    def insert_many(self, new: list[tuple[Asset, list[str] | None, dict[str, Any]]]) -> tuple[list[str | None], Future]:
        """As ``insert``, for several assets in one commit (a batch upload)."""
        job_ids: list[str | None] = []
        inserts = []
        for asset, job_skills, event in new:
            job_id = new_id() if job_skills else None
            job_ids.append(job_id)
            inserts += [Insert("assets", ASSET_ROW_COLUMNS, asset_row(asset)), event_insert(event)]
            if job_id:
                inserts.append(queued_job(job_id, asset.id, job_skills, asset.created_at))
        return job_ids, self._core._write_nowait(inserts)

    def get(self, asset_id: str) -> Asset | None:
        row = self._cursor().execute(f"SELECT {ASSET.select()} FROM assets WHERE id = ?", [asset_id]).fetchone()
        return ASSET(row) if row else None

    def detail(self, asset_id: str) -> Asset | None:
        asset = self.get(asset_id)
        if asset is None:
            return None
        cursor = self._cursor()
        asset.derivatives = [
            DERIVATIVE(row)
            for row in cursor.execute(
                f"SELECT {DERIVATIVE.select()} FROM derivatives WHERE asset_id = ? ORDER BY created_at, kind",
                [asset_id],
            ).fetchall()
        ]
        asset.structured_results = [
            STRUCTURED_RESULT(row)
            for row in cursor.execute(
                f"SELECT {STRUCTURED_RESULT.select()} FROM structured_results "
                "WHERE asset_id = ? ORDER BY created_at, kind",
                [asset_id],
            ).fetchall()
        ]
        asset.latest_execution = self._latest_execution(asset_id)
        return asset

    def _latest_execution(self, asset_id: str) -> SkillExecution | None:
        cursor = self._cursor()
        row = cursor.execute(
            f"SELECT {EXECUTION.select()} FROM skill_executions WHERE asset_id = ? "
            "ORDER BY started_at DESC, id DESC LIMIT 1",
            [asset_id],
        ).fetchone()
        if row is None:
            return None
        execution = EXECUTION(row)
        execution.steps = [
            STEP(step)
            for step in cursor.execute(
                f"SELECT {STEP.select()} FROM skill_steps WHERE execution_id = ? ORDER BY position", [execution.id]
            ).fetchall()
        ]
        return execution

    def find_by_storage_key(self, storage_key: str) -> tuple[Asset, Derivative | None] | None:
        """The asset whose original or derivative is stored under this key (for the public content route)."""
        cursor = self._cursor()
        row = cursor.execute(f"SELECT {ASSET.select()} FROM assets WHERE storage_key = ?", [storage_key]).fetchone()
        if row:
            return ASSET(row), None
        derivative_row = cursor.execute(
            f"SELECT {DERIVATIVE.select()} FROM derivatives WHERE storage_key = ?", [storage_key]
        ).fetchone()
        if derivative_row is None:
            return None
        derivative = DERIVATIVE(derivative_row)
        asset = self.get(derivative.asset_id)
        return (asset, derivative) if asset else None

    def update(self, asset_id: str, changes: dict[str, Any]) -> None:
        """Set the given columns (catalog column names) and bump updated_at."""
        changes = {**changes, "updated_at": utc_now()}

        def work(tx: Cursor) -> Any:
            update_asset_row(tx, asset_id, changes)
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

    def delete(self, asset_id: str, event: dict[str, Any]) -> list[str] | None:
        """Remove an asset and everything hanging off it; returns the storage keys to delete, or None if absent.

        The keys are recorded in storage_cleanup in the same transaction, so a crash before the files are gone
        leaves a note for the retry sweep instead of a silent leak.
        """

        def work(tx: Cursor) -> Any:
            # The asset's row goes first: a server deleting it at the same time waits for this commit, then finds
            # nothing to delete (a SELECT first would let both go on and both report the delete).
            row = tx.execute(
                "DELETE FROM assets WHERE id = ? RETURNING storage_key, storage_profile_id", [asset_id]
            ).fetchone()
            if row is None:
                return None
            storage_key, profile_id = row
            keys = [storage_key] + [
                r[0]
                for r in tx.execute("SELECT storage_key FROM derivatives WHERE asset_id = ?", [asset_id]).fetchall()
            ]
            tx.execute(
                "DELETE FROM skill_steps WHERE execution_id IN (SELECT id FROM skill_executions WHERE asset_id = ?)",
                [asset_id],
            )
            for table in ASSET_CHILD_TABLES:
                tx.execute(f"DELETE FROM {table} WHERE asset_id = ?", [asset_id])
            for key in keys:
                note_cleanup(tx, key, profile_id, "delete")
            event_insert(event).execute(tx)
            self._core.change_log.record(tx, "asset_deleted", asset_id)  # out of the others' search indexes
            return keys

        return self._write(work)

    def derivatives_of_kind(self, asset_ids: list[str], kind: str) -> dict[str, Derivative]:
        """Each given asset's derivative of this kind, by asset id: one query for a whole page of list items."""
        if not asset_ids:
            return {}
        rows = (
            self._cursor()
            .execute(
                f"SELECT {DERIVATIVE.select()} FROM derivatives WHERE kind = ? AND asset_id {IN_IDS}",
                [kind, asset_ids],
            )
            .fetchall()
        )
        return {derivative.asset_id: derivative for derivative in map(DERIVATIVE, rows)}

    def list(self, query: ListQuery, visible_to: str | None) -> Page:
        condition, params = _filters(query, visible_to, self._core.engine.dialect)
        direction = "DESC" if query.descending else "ASC"
        column = ORDER_COLUMNS[query.order_by]
        offset = (query.page - 1) * query.page_size
        cursor = self._cursor()
        shared = self._core.is_shared
        # A team library adds up its tallies (tallies.py), or counts the matches of `q` in the narrow copy of the
        # filtered columns (schema.py, migration 7).
        counted = "count(*) FROM assets"
        if shared:
            counted = "count(*) FROM asset_search" if query.text else "COALESCE(sum(n), 0) FROM asset_tallies"
        total = int(cursor.execute(f"SELECT {counted} WHERE {condition}", params).fetchone()[0])
        page_condition, page_params = condition, params
        if not query.text and not shared:
            # Sorting by (column, id) over every matching row is the slow part: the id is a string. Find the value
            # of the page's last row first (a sort on one value), then sort only the rows on that side of it.
            # Not for text search, where the extra pass over the text would cost more than the sort, nor on
            # PostgreSQL, which walks its index of the order instead (schema.py, migration 6).
            compare = ">=" if query.descending else "<="
            no_bound = ORDER_SENTINELS[column][query.descending]
            page_condition = (
                f"{condition} AND {column} {compare} COALESCE((SELECT {column} FROM assets WHERE {condition} "
                f"ORDER BY {column} {direction} LIMIT 1 OFFSET ?), {no_bound})"
            )
            page_params = [*params, *params, offset + query.page_size - 1]
        rows = cursor.execute(
            f"SELECT {ASSET.select()} FROM assets WHERE {page_condition} "
            f"ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?",
            [*page_params, query.page_size, offset],
        ).fetchall()
        return Page([ASSET(row) for row in rows], query.page, query.page_size, total)

    def matching(self, asset_ids: list[str], query: ListQuery, visible_to: str | None) -> dict[str, Asset]:
        """Those of the given assets that pass the list filters (search by meaning ranks; the catalog filters)."""
        condition, params = _filters(query, visible_to, self._core.engine.dialect)
        rows = (
            self._cursor()
            .execute(f"SELECT {ASSET.select()} FROM assets WHERE {condition} AND id {IN_IDS}", [*params, asset_ids])
            .fetchall()
        )
        return {asset.id: asset for asset in map(ASSET, rows)}

    def count_embedded(self, query: ListQuery, visible_to: str | None, model: str, weights: str) -> int:
        """How many assets pass the list filters and have an embedding of this model: search by meaning's total."""
        condition, params = _filters(query, visible_to, self._core.engine.dialect)
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
        condition, params = visibility(visible_to)
        return [row[0] for row in self._cursor().execute(f"SELECT id FROM assets WHERE {condition}", params).fetchall()]

    def checksum_groups(self, visible_to: str | None) -> list[list[str]]:
        """Assets with identical bytes, by checksum: each group's ids sorted, groups by their first id."""
        condition, params = visibility(visible_to)
        rows = (
            self._cursor()
            .execute(
                f"SELECT array_agg(id ORDER BY id) FROM assets WHERE {condition} "
                "GROUP BY checksum_sha256 HAVING count(*) > 1 ORDER BY min(id)",
                params,
            )
            .fetchall()
        )
        return [row[0] for row in rows]

    def image_hashes(self, visible_to: str | None) -> list[tuple[str, int]]:
        condition, params = visibility(visible_to, "a.")
        rows = (
            self._cursor()
            .execute(
                f"SELECT h.asset_id, h.phash FROM image_hashes h JOIN assets a ON a.id = h.asset_id WHERE {condition}",
                params,
            )
            .fetchall()
        )
        return [(asset_id, int(phash)) for asset_id, phash in rows]  # PostgreSQL's NUMERIC comes as a Decimal

    def embeddings(self, model: str, weights: str, asset_id: str | None = None) -> tuple[list[str], Any]:
        """Every stored embedding of one model (or only ``asset_id``'s): (asset ids, float32 matrix with a row per
        id)."""
        import numpy

        only_one = " AND asset_id = ?" if asset_id is not None else ""
        table = (
            self._cursor()
            .execute(
                f"SELECT asset_id, dim, vector FROM embeddings WHERE model = ? AND weights = ?{only_one} "
                "ORDER BY asset_id",
                [model, weights, *([asset_id] if asset_id is not None else [])],
            )
            .fetch_arrow_table()
        )
        if table.num_rows == 0:
            return [], numpy.zeros((0, 0), dtype=numpy.float32)
        dim = table.column("dim")[0].as_py()
        values = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return table.column("asset_id").to_pylist(), values.astype(numpy.float32, copy=False).reshape(-1, dim)

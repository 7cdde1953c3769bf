"""What a skill run writes: kept in Changes while it runs, committed in one go with its execution records."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..model import Derivative, SkillExecution, StructuredResult, utc_now
from .cleanup import OriginalChangedError, note_replaced
from .concern import Concern
from .cursor import Cursor
from .rows import DERIVATIVE, STRUCTURED_RESULT, event_insert, update_asset_row

if TYPE_CHECKING:
    import numpy


class Runs(Concern):
    def commit(
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
            for embedded_asset, model, weights, _ in changes.embeddings:
                self._core.change_log.record(tx, "embedding", json.dumps([embedded_asset, model, weights]))
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


class Changes:
    """The catalog writes of a skill run, kept until the run ends and then applied in one commit with its
    execution record (Catalog.runs.commit): one commit per run instead of one per write."""

    def __init__(self) -> None:
        self._writes: list[Callable[[Cursor], None]] = []
        self._replaced: set[str] = set()
        self._embeddings: list[tuple[str, str, str, numpy.ndarray]] = []
        self._parts: list[Changes] = []  # extended with (see extend)

    @property
    def replaced_keys(self) -> set[str]:
        """Files no longer referenced once committed (replaced derivatives, the old original of a conversion):
        removed then. Known once applied."""
        return self._replaced.union(*(part.replaced_keys for part in self._parts))

    @property
    def embeddings(self) -> list[tuple[str, str, str, numpy.ndarray]]:
        """The embeddings this commits (asset id, model, weights, vector), for the search index once committed."""
        return self._embeddings + [embedding for part in self._parts for embedding in part.embeddings]

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
            placeholders = ", ".join("?" * len(DERIVATIVE.columns))
            tx.execute(
                f"INSERT INTO derivatives ({DERIVATIVE.select()}, owner, is_public) "
                f"SELECT {placeholders}, owner, is_public FROM assets WHERE id = ?",
                [*DERIVATIVE.values(derivative), derivative.asset_id],
            )
            tx.execute("DELETE FROM storage_cleanup WHERE storage_key = ?", [derivative.storage_key])
            if old:
                note_replaced(tx, old[0], derivative.asset_id)
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
            if not update_asset_row(tx, asset_id, facts, checksum):
                raise OriginalChangedError(
                    "The original changed while this skill ran (another rewrite committed); run it again."
                )
            tx.execute("DELETE FROM storage_cleanup WHERE storage_key = ?", [facts["storage_key"]])
            if old_key is not None:
                note_replaced(tx, old_key, asset_id)
                self._replaced.add(old_key)

        self._writes.append(write)

    def upsert_structured_result(self, result: StructuredResult) -> None:
        def write(tx: Cursor) -> None:
            tx.execute("DELETE FROM structured_results WHERE asset_id = ? AND kind = ?", [result.asset_id, result.kind])
            tx.execute(
                f"INSERT INTO structured_results ({STRUCTURED_RESULT.select()}) VALUES (?, ?, ?, ?, ?)",
                STRUCTURED_RESULT.values(result),
            )

        self._writes.append(write)

    def upsert_embedding(self, asset_id: str, model: str, weights: str, vector: numpy.ndarray) -> None:
        self._embeddings.append((asset_id, model, weights, vector))
        values = vector.tolist()

        def write(tx: Cursor) -> None:
            tx.execute(
                "DELETE FROM embeddings WHERE asset_id = ? AND model = ? AND weights = ?", [asset_id, model, weights]
            )
            tx.execute(
                "INSERT INTO embeddings (asset_id, model, weights, dim, vector, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [asset_id, model, weights, len(values), values, utc_now()],
            )

        self._writes.append(write)

    def upsert_image_hash(self, asset_id: str, phash: int) -> None:
        def write(tx: Cursor) -> None:
            tx.execute("DELETE FROM image_hashes WHERE asset_id = ?", [asset_id])
            tx.execute(
                "INSERT INTO image_hashes (asset_id, phash, created_at) VALUES (?, ?, ?)", [asset_id, phash, utc_now()]
            )

        self._writes.append(write)

    def fill_empty_text(self, asset_id: str, text: str) -> None:
        """Set the description and the alt text to ``text`` where each is still empty; never overwrite."""

        def write(tx: Cursor) -> None:
            description, alt_text = tx.execute(
                "SELECT description, alt_text FROM assets WHERE id = ?", [asset_id]
            ).fetchone()
            filled = {
                "description": description if description and description.strip() else text,
                "alt_text": alt_text if alt_text and alt_text.strip() else text,
            }
            if filled != {"description": description, "alt_text": alt_text}:
                update_asset_row(tx, asset_id, {**filled, "updated_at": utc_now()})

        self._writes.append(write)


def _insert_execution(tx: Cursor, execution: SkillExecution, event: dict[str, Any]) -> None:
    """An execution, its steps and its event (the asset must exist: its owner and visibility are copied)."""
    tx.execute(
        "INSERT INTO skill_executions (id, asset_id, skill_name, trigger_source, parameters_json, started_at, "
        "completed_at, succeeded, owner, is_public) SELECT ?, ?, ?, ?, ?, ?, ?, ?, owner, is_public FROM assets "
        "WHERE id = ?",
        [
            execution.id, execution.asset_id, execution.skill_name, execution.trigger_source,
            execution.parameters_json, execution.started_at, execution.completed_at, execution.succeeded,
            execution.asset_id,
        ],
    )  # fmt: skip
    tx.executemany(
        "INSERT INTO skill_steps (execution_id, position, step_name, succeeded, error_message, started_at, "
        "completed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            [execution.id, position, s.name, s.succeeded, s.error_message, s.started_at, s.completed_at]
            for position, s in enumerate(execution.steps)
        ],
    )
    event_insert(event).execute(tx)

"""Usage statistics and the Parquet export, as the caller may see them."""

from __future__ import annotations

from pathlib import Path

from pyarrow import dataset, parquet

from ..model import ContentTypeUsage, UsageStats
from .concern import Concern
from .rows import ASSET, visibility

EXPORTABLE_TABLES = ("assets", "derivatives", "executions", "events")
# The assets table's columns in its own order, without the text that `q` searches (a copy of three of them).
EXPORTED_ASSET_COLUMNS = (*ASSET.columns[:2], "type", *ASSET.columns[2:])
EXPORT_BATCH_ROWS = 100_000


# What usage stats add up, as the caller may see it: a one-server catalog counts its rows; a team library adds up
# its tallies (see tallies.py), the groups of deleted rows summing to zero.
USAGE_SOURCES = {
    "duckdb": {
        "breakdown": "SELECT content_type, count(*) AS n, sum(size) AS bytes FROM assets WHERE {where} "
        "GROUP BY content_type",
        "derivatives": "SELECT count(*) FROM derivatives WHERE {where}",
        "skill_runs": "SELECT skill_name, count(*) AS n FROM skill_executions WHERE {where} GROUP BY skill_name",
    },
    "postgresql": {
        "breakdown": "SELECT content_type, sum(n) AS n, sum(bytes) AS bytes FROM asset_tallies WHERE {where} "
        "GROUP BY content_type HAVING sum(n) > 0",
        "derivatives": "SELECT COALESCE(sum(n), 0) FROM derivative_tallies WHERE {where}",
        "skill_runs": "SELECT skill_name, sum(n) AS n FROM execution_tallies WHERE {where} GROUP BY skill_name "
        "HAVING sum(n) > 0",
    },
}


class Analytics(Concern):
    def usage_stats(self, visible_to: str | None) -> UsageStats:
        """One query. Derivatives and executions carry their asset's owner and visibility, so each table is
        filtered on its own instead of joined to the assets."""
        where, params = visibility(visible_to)
        source = {part: sql.format(where=where) for part, sql in USAGE_SOURCES[self._core.engine.dialect].items()}
        row = (
            self._cursor()
            .execute(
                f"""
            WITH breakdown AS ({source["breakdown"]}), skill_runs AS ({source["skill_runs"]})
            SELECT
                (SELECT COALESCE(sum(n), 0) FROM breakdown),
                (SELECT COALESCE(sum(bytes), 0) FROM breakdown),
                ({source["derivatives"]}),
                (SELECT array_agg(ARRAY[content_type, CAST(n AS VARCHAR), CAST(bytes AS VARCHAR)]
                   ORDER BY n DESC, content_type) FROM breakdown),
                (SELECT ARRAY[skill_name, CAST(n AS VARCHAR)] FROM skill_runs ORDER BY n DESC, skill_name LIMIT 1)
            """,
                params * 3,
            )
            .fetchone()
        )
        total_assets, total_bytes, total_derivatives, breakdown, top_skill = row
        return UsageStats(
            total_assets=int(total_assets),
            total_bytes=int(total_bytes),
            total_derivatives=int(total_derivatives),
            content_type_breakdown=[ContentTypeUsage(ct, int(n), int(b)) for ct, n, b in breakdown or []],
            most_active_skill=(top_skill[0], int(top_skill[1])) if top_skill else None,
        )

    def export_parquet(self, table: str, destination: Path, visible_to: str | None) -> None:
        """Write one table (as the caller may see it) to a Parquet file or, for events, a day-partitioned folder."""
        where, params = visibility(visible_to, "a.")
        visible_ids = f"(SELECT a.id FROM assets a WHERE {where})"
        queries = {
            "assets": f"SELECT {', '.join(EXPORTED_ASSET_COLUMNS)} FROM assets a WHERE {where}",
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
        # Streamed batch by batch: the table is never held whole in memory.
        with self._core.engine.analytics() as cursor:
            rows = cursor.execute(sql, params).to_arrow_reader(EXPORT_BATCH_ROWS)
            if destination.suffix == ".parquet":
                with parquet.ParquetWriter(destination, rows.schema, compression="zstd") as writer:
                    for batch in rows:
                        writer.write_batch(batch)
            else:
                dataset.write_dataset(
                    rows,
                    destination,
                    format="parquet",
                    partitioning=["day"],
                    partitioning_flavor="hive",
                    existing_data_behavior="overwrite_or_ignore",
                )

"""``catalog_queries.py --catalog postgresql``: the same synthetic rows and queries on a team library's catalog (a
real PostgreSQL server, Debian's, started in a temporary folder) against the DuckDB catalog, in the same run.

The rows are made in DuckDB (``load_duckdb``), then copied with COPY into a migrated PostgreSQL catalog (the
trigram index of ``q`` included). Every PostgreSQL answer is checked against DuckDB's.

Goals (issue 16): list and search p95 < 50 ms, usage stats p95 < 250 ms on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pyarrow
from benchlib import fmt_ratio, percentile, write_json
from pyarrow import parquet

from jupyter_assets.catalog import Catalog, PostgresEngine
from jupyter_assets.catalog.analytics import Analytics
from jupyter_assets.catalog.cursor import Cursor
from jupyter_assets.model import ListQuery

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres_server import PostgresServer  # noqa: E402 - the tests' real PostgreSQL server

LOADED_TABLES = ("assets", "derivatives", "skill_executions")  # what load_duckdb fills
LIMITS_MS = {"list": 50.0, "search": 50.0, "stats": 250.0}
# Set up as a server of its own would be (PostgreSQL's default is 128 MB, for small machines): the catalog's
# tables and indexes (1.6 GB at a million assets) stay in memory, as DuckDB's do in its process.
SERVER_SETTINGS = {"shared_buffers": "2GB"}


def copy_into_postgres(duck: Catalog, url: str, workdir: Path) -> float:
    """COPY the loaded tables from DuckDB into the (migrated, empty) PostgreSQL catalog; seconds taken (with
    the triggers that keep the tallies)."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        for table in LOADED_TABLES:
            path = workdir / f"{table}.csv"
            duck._cursor().execute(f"COPY {table} TO '{path}' (FORMAT csv, HEADER false)")
            with connection.cursor().copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy, path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
            path.unlink()
    return time.perf_counter() - started


def compare(
    duck: Catalog, queries: list[tuple[str, str, ListQuery | None]], users: list[tuple[str, str | None]],
    workdir: Path, reps: int, warmup: int, budget: float, time_calls: Any, json_path: str | None,
) -> int:  # fmt: skip
    server = PostgresServer(SERVER_SETTINGS).start()
    try:
        database = server.new_database()
        Catalog(PostgresEngine(database, 4)).close()  # migrated: the tables and the trigram index exist
        print(f"  PostgreSQL copy {copy_into_postgres(duck, database, workdir):.1f} s", flush=True)
        pg = Catalog(PostgresEngine(database, 4))
        pg.tallies.fold()  # as the sweeper would have: the triggers appended a tally row per copied row
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
            size = connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(f"  PostgreSQL database {size / 2**20:,.0f} MiB", flush=True)
        results = [
            _compare_one(duck, pg, label, kind, query, who, visible_to, reps, warmup, budget, time_calls)
            for who, visible_to in users
            for label, kind, query in queries
        ]
        reading = _duckdb_reading_postgresql(pg, workdir, time_calls)
        pg.close()
    finally:
        server.stop()
    print()
    header = f"{'query':<24} {'as':<8} {'matched':>9} {'pg p50':>8} {'pg p95':>8} {'duck p50':>9} {'pg/duck':>8}  goal"
    print(header)
    print("-" * len(header))
    for e in results:
        goal = f"<{e['limit_ms']:.0f}ms " + ("PASS" if e["meets_latency"] else "FAIL")
        print(
            f"{e['query']:<24} {e['who']:<8} {e['matched']:>9,} {e['postgresql_p50_ms']:>8.2f} "
            f"{e['postgresql_p95_ms']:>8.2f} {e['duckdb_p50_ms']:>9.2f} {fmt_ratio(e['ratio_p50']):>8}  {goal}"
        )
    print()
    for label, (native_ms, attached_ms) in reading.items():
        print(f"{label:<24} admin: in PostgreSQL {native_ms:9.1f} ms, DuckDB reading PostgreSQL {attached_ms:9.1f} ms")
    if json_path:
        payload = {"results": results, "duckdb_reading_postgresql_ms": reading}
        write_json(json_path, {"benchmark": "catalog_queries --catalog postgresql", **payload})
    return 0 if all(e["meets_latency"] for e in results) else 1


def _compare_one(
    duck: Catalog, pg: Catalog, label: str, kind: str, query: ListQuery | None, who: str, visible_to: str | None,
    reps: int, warmup: int, budget: float, time_calls: Any,
) -> dict[str, Any]:  # fmt: skip
    def call(catalog: Catalog) -> Any:
        if query is None:
            stats = catalog.analytics.usage_stats(visible_to)
            return (stats.total_assets, stats.total_bytes, stats.total_derivatives,
                    [(c.content_type, c.count, c.total_bytes) for c in stats.content_type_breakdown])  # fmt: skip
        page = catalog.assets.list(query, visible_to)
        return page.total, [asset.id for asset in page.items]

    duck_ms, duck_answer = time_calls(lambda: call(duck), reps, warmup, budget)
    pg_ms, pg_answer = time_calls(lambda: call(pg), reps, warmup, budget)
    if duck_answer != pg_answer:
        raise AssertionError(f"{label} ({who}): answers differ\n  duckdb: {duck_answer!r}\n  postgresql: {pg_answer!r}")
    entry = {
        "query": label, "who": who, "kind": kind, "matched": duck_answer[0],
        "postgresql_p50_ms": percentile(pg_ms, 50), "postgresql_p95_ms": percentile(pg_ms, 95),
        "duckdb_p50_ms": percentile(duck_ms, 50), "duckdb_p95_ms": percentile(duck_ms, 95),
        "limit_ms": LIMITS_MS[kind], "reps": [len(pg_ms), len(duck_ms)],
    }  # fmt: skip
    entry["ratio_p50"] = entry["postgresql_p50_ms"] / entry["duckdb_p50_ms"]
    entry["meets_latency"] = entry["postgresql_p95_ms"] < entry["limit_ms"]
    print(
        f"    {label:<24} {who:<8} postgresql p50 {entry['postgresql_p50_ms']:8.2f} ms  "
        f"duckdb p50 {entry['duckdb_p50_ms']:8.2f} ms",
        flush=True,
    )
    return entry


class _PsycopgExport:
    """PostgreSQL's rows fetched through psycopg and turned into Arrow: what the export did before it moved to
    DuckDB reading PostgreSQL (engines.py), kept here as the baseline."""

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, parameters: list[Any] | None = None) -> SimpleNamespace:
        table = self._cursor.execute(sql, parameters).fetch_arrow_table()
        batches = lambda rows: pyarrow.RecordBatchReader.from_batches(table.schema, table.to_batches(rows))  # noqa: E731
        return SimpleNamespace(to_arrow_reader=batches)


class _OneCursor:
    """A catalog core for Analytics whose queries all run on ``cursor``, written in ``dialect``: PostgreSQL's
    own, or DuckDB reading PostgreSQL through its postgres extension (engines.py)."""

    def __init__(self, cursor: Cursor, dialect: str) -> None:
        self.engine = SimpleNamespace(dialect=dialect, analytics=lambda: contextlib.nullcontext(cursor))
        self._cursor = lambda: cursor


def _duckdb_reading_postgresql(pg: Catalog, workdir: Path, time_calls: Any) -> dict[str, tuple[float, float]]:
    """Usage stats and the assets export as an admin, computed in PostgreSQL and by DuckDB reading it: p50 ms of
    each (a few reps: the export takes seconds). The catalog's own path is the faster of each: stats in
    PostgreSQL, exports by DuckDB (a DuckDB of its own per export, LOAD and ATTACH included)."""
    timings = {}
    with pg.engine.analytics() as duckdb_cursor:
        for label, run, native, attached in (
            ("usage stats", _usage_total, pg.analytics, Analytics(_OneCursor(duckdb_cursor, "duckdb"))),
            (
                "assets export (Parquet)",
                lambda analytics: _export(analytics, workdir),
                Analytics(_OneCursor(_PsycopgExport(pg.engine.reader()), "postgresql")),
                pg.analytics,
            ),
        ):
            native_ms, native_answer = time_calls(lambda run=run, native=native: run(native), 3, 1, 60.0)
            attached_ms, attached_answer = time_calls(lambda run=run, attached=attached: run(attached), 3, 1, 60.0)
            if native_answer != attached_answer:
                raise AssertionError(f"{label}: {native_answer!r} in PostgreSQL, {attached_answer!r} read by DuckDB")
            timings[label] = (percentile(native_ms, 50), percentile(attached_ms, 50))
    return timings


def _usage_total(analytics: Analytics) -> int:
    return analytics.usage_stats(None).total_assets


def _export(analytics: Analytics, workdir: Path) -> tuple[int, list[str]]:
    destination = workdir / "assets.parquet"
    analytics.export_parquet("assets", destination, None)
    table = parquet.read_table(destination)
    destination.unlink()
    return table.num_rows, table.column_names

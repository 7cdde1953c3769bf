"""Catalog queries at scale: the real Catalog (DuckDB) against the same schema, rows and queries on SQLite.

Bulk-loads N synthetic assets (default 1,000,000) into a real ``jupyter_assets.catalog.Catalog``, copies the same
rows into an SQLite file with the same tables and the indexes a reasonable SQLite user would add, then times:

* ``Catalog.assets.list`` (count + one page, exactly what the list endpoint runs) for page 1, ``q`` search (a
  common word and a word that matches nothing), a ``contentType`` filter and ``orderBy=size``;
* ``Catalog.analytics.usage_stats``;

each as an admin (``visible_to=None``) and as a normal user (``visible_to='owner-7'``), and the equivalent SQL on
SQLite (``instr(lower(x), ?)`` for the substring search). Every SQLite answer is checked against DuckDB's (same
total, same page of ids, same stats) so both engines do the same work.

Then the assets table is exported to Parquet as an admin: seconds, the file's size and the process's RSS growth.

Goals (issue 2, at a million rows): list and search p95 < 50 ms, usage stats p95 < 100 ms, no query slower than
SQLite (compared on p50, the robust statistic on a noisy machine; the p95 ratio is printed too). Issue 17, at ten
million (``--rows 10000000``): list and filters p95 < 50 ms, ``q`` < 250 ms, usage stats < 500 ms, and the export's
RSS growth < 500 MB.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from benchlib import fmt_ratio, percentile, write_json
from catalog_postgresql import compare as compare_with_postgresql

from jupyter_assets.catalog import Catalog, DuckDBEngine
from jupyter_assets.model import ListQuery

NOUNS = [
    "beach", "dog", "cat", "mountain", "sunset", "city", "forest", "river", "car", "bridge", "flower", "portrait",
    "lake", "street", "garden", "bird", "horse", "boat", "snow", "desert", "castle", "market", "train", "kitchen",
    "office", "concert", "wedding", "harbor", "canyon", "meadow", "skyline", "lighthouse", "waterfall", "island",
    "village", "temple", "museum", "stadium", "festival", "library",
]  # fmt: skip
ADJECTIVES = [
    "red", "blue", "green", "quiet", "busy", "old", "new", "bright", "dark", "foggy", "sunny", "rainy", "golden",
    "tiny", "huge", "happy", "lonely", "ancient", "modern", "colorful",
]  # fmt: skip
PLACES = ["at dawn", "at night", "in winter", "in summer", "near the coast", "from above", "in the rain", "at noon"]
# (content type, extension, weight in percent)
CONTENT_TYPES = [
    ("image/jpeg", "jpg", 40), ("image/png", "png", 28), ("image/webp", "webp", 15), ("image/gif", "gif", 8),
    ("image/tiff", "tiff", 5), ("image/bmp", "bmp", 4),
]  # fmt: skip
SKILLS = ["format-convert", "watermark", "exif-strip", "embed", "tags", "caption", "basic_image_enrich"]
OWNERS = 50
USER = "owner-7"
COMMON_WORD = "beach"
NO_MATCH_WORD = "zq%x_no-such"  # also checks that % and _ are literal in both engines
YEAR_START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
YEAR_MS = 365 * 86_400 * 1000
# (label, kind, query; None: usage stats), each asked as an admin and as an ordinary user
QUERIES: list[tuple[str, str, ListQuery | None]] = [
    ("list page 1", "list", ListQuery()),
    (f"q={COMMON_WORD}", "search", ListQuery(text=COMMON_WORD.upper())),
    ("q=<no match>", "search", ListQuery(text=NO_MATCH_WORD)),
    ("contentType=image/webp", "list", ListQuery(content_type="image/webp")),
    ("orderBy=size desc", "list", ListQuery(order_by="size")),
    ("usage stats", "stats", None),
]
USERS = [("admin", None), (USER, USER)]
EXPORT_RSS_LIMIT = 500 * 2**20
FILES = {"DuckDB catalog": "catalog.duckdb", "SQLite baseline": "baseline.sqlite"}
LARGE = 10_000_000  # from here on, issue 17's goals: q and usage stats may take longer


def latency_limits(rows: int) -> dict[str, float]:
    """p95 goals in ms by kind of query: issue 3's at a million assets, issue 17's at ten million."""
    if rows >= LARGE:
        return {"list": 50.0, "search": 250.0, "stats": 500.0}
    return {"list": 50.0, "search": 50.0, "stats": 100.0}


def measure_export(catalog: Catalog, workdir: Path) -> dict[str, float]:
    """The assets table exported to Parquet as an admin: seconds, the file's size and how far the process's RSS
    rose above where it started (sampled every 20 ms by a thread: the export streams, so it must stay flat)."""
    process = psutil.Process()
    start_rss = process.memory_info().rss
    peak = [start_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    destination = workdir / "assets-export.parquet"
    started = time.perf_counter()
    try:
        catalog.analytics.export_parquet("assets", destination, None)
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - started
    size = destination.stat().st_size
    destination.unlink()
    return {"seconds": seconds, "file_bytes": size, "rss_growth_bytes": peak[0] - start_rss}


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(values: list[str], hash_expr: str) -> str:
    return f"list_element({_sql_list(values)}, ({hash_expr} % {len(values)})::INTEGER + 1)"


def _content_type_case(hash_expr: str, index: int) -> str:
    """CASE over the weighted content types: index 0 gives the type, 1 the extension."""
    parts, bound = [], 0
    for entry in CONTENT_TYPES:
        bound += entry[2]
        parts.append(f"WHEN {hash_expr} % 100 < {bound} THEN '{entry[index]}'")
    return "CASE " + " ".join(parts) + " END"


def _columns(cursor: Any, table: str) -> list[tuple[str, str, bool, Any]]:
    """(name, type, nullable, default) of a catalog table, in order."""
    return cursor.execute(
        "SELECT column_name, data_type, is_nullable, column_default FROM duckdb_columns() "
        "WHERE table_name = ? AND schema_name = 'main' AND database_name = current_database() ORDER BY column_index",
        [table],
    ).fetchall()


PLACEHOLDERS = {"VARCHAR": "''", "BOOLEAN": "false", "TIMESTAMP": "TIMESTAMP '2025-01-01'"}


def _insert(cursor: Any, table: str, exprs: dict[str, str], source: str, notes: list[str]) -> None:
    """INSERT INTO table (named columns) SELECT exprs FROM source.

    The schema is still moving: a NOT NULL column this benchmark does not know gets a typed placeholder (and a
    note in the output); an unknown nullable column is left to its default.
    """
    names, values = [], []
    for name, data_type, nullable, default in _columns(cursor, table):
        if name in exprs:
            names.append(name)
            values.append(exprs[name])
        elif not nullable and default is None:
            names.append(name)
            values.append(PLACEHOLDERS.get(data_type, "0"))
            notes.append(f"{table}.{name} ({data_type}) unknown to the benchmark: filled with a placeholder")
    unused = set(exprs) - set(names)
    if unused:
        notes.append(f"{table}: columns no longer in the schema, not loaded: {sorted(unused)}")
    cursor.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)} FROM {source}")


def load_duckdb(catalog: Catalog, rows: int, notes: list[str]) -> dict[str, float]:
    """Fill assets, derivatives and skill_executions with deterministic synthetic rows; returns timings."""
    cursor = catalog._cursor()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    base = f"""(
        WITH base AS (
            SELECT i, hash(i, 1) AS h1, hash(i, 2) AS h2, hash(i, 3) AS h3, hash(i, 4) AS h4, hash(i, 5) AS h5,
                   hash(i, 6) AS h6, hash(i, 7) AS h7, hash(i, 8) AS h8, hash(i, 9) AS h9, hash(i, 10) AS h10,
                   ({YEAR_START_MS} + hash(i, 11) % {YEAR_MS})::BIGINT AS ms
            FROM range({rows}) t(i)
        )
        SELECT *,
            printf('%08x-%04x-7%03x-%04x-%012x', ms >> 16, ms & 65535, (h1 % 4096)::BIGINT,
                   (32768 + h2 % 16384)::BIGINT, i) AS uuid7,
            {_content_type_case("h6", 1)} AS ext,
            epoch_ms(ms) AS created
        FROM base
        ORDER BY ms  -- inserting in key order keeps the primary-key and unique indexes cheap to build
    ) s"""
    desc_noun = _pick(NOUNS, "h3")
    place = _pick(PLACES, "h5")
    _insert(
        cursor,
        "assets",
        {
            "id": "uuid7",
            "owner": f"'owner-' || (h7 % {OWNERS})",
            "type": "'image'",
            "status": "CASE WHEN h8 % 100 < 90 THEN 'ready' WHEN h8 % 100 < 93 THEN 'pending' "
            "WHEN h8 % 100 < 95 THEN 'processing' ELSE 'failed' END",
            "original_file_name": "CASE WHEN h9 % 5 = 0 THEN 'IMG_' || lpad((i % 10000)::VARCHAR, 4, '0') || '.' "
            f"|| upper(ext) ELSE {_pick(ADJECTIVES, 'h2')} || '-' || {_pick(NOUNS, 'h1')} || '_' || (i % 1000) "
            "|| '.' || ext END",
            "content_type": _content_type_case("h6", 0),
            "extension": "ext",
            "size": "(2048 * pow(2, (h10 % 1000) / 100.0))::BIGINT + h3 % 997",
            "width": "(64 + h4 % 4000)::INTEGER",
            "height": "(64 + h5 % 3000)::INTEGER",
            "checksum_sha256": "sha256(i::VARCHAR)",
            "storage_provider": "'local'",
            "storage_profile_id": "NULL",
            "storage_key": "strftime(created, '%Y/%m/%d/') || replace(uuid7, '-', '') || '.' || ext",
            "is_public": "h9 % 10 < 3",
            "description": f"CASE WHEN h10 % 10 < 4 THEN 'A ' || {_pick(ADJECTIVES, 'h4')} || ' ' || {desc_noun} "
            f"|| ' ' || {place} END",
            "alt_text": f"CASE WHEN h10 % 10 >= 7 THEN {desc_noun} || ' ' || {place} END",
            "created_at": "created",
            "updated_at": "created + to_seconds((h1 % 86400)::BIGINT)",
        },
        base,
        notes,
    )
    # What the catalog stores for `q` (jupyter_assets.catalog.rows.search_text): the three fields, lower-cased.
    cursor.execute(
        "UPDATE assets SET search_text = lower(concat_ws(chr(31), original_file_name, description, alt_text))"
    )
    timings["assets"] = time.perf_counter() - started
    started = time.perf_counter()
    # ~1 derivative per asset: a thumbnail for every ready asset (90%), a preview for 1 in 9 of them.
    _insert(
        cursor,
        "derivatives",
        {
            "asset_id": "a.id",
            "kind": "d.kind",
            "content_type": "'image/webp'",
            "extension": "'webp'",
            "size": "(a.size // d.div + 512)::BIGINT",
            "width": "256",
            "height": "192",
            "checksum_sha256": "sha256(a.id || d.kind)",
            "storage_key": "replace(a.storage_key, '.' || a.extension, '') || '_' || d.kind || '.webp'",
            "created_at": "a.updated_at",
            "owner": "a.owner",
            "is_public": "a.is_public",
        },
        "assets a, (VALUES ('thumbnail_256', 40), ('preview_1024', 4)) d(kind, div) "
        "WHERE a.status = 'ready' AND (d.kind = 'thumbnail_256' OR hash(a.id) % 9 = 0)",
        notes,
    )
    timings["derivatives"] = time.perf_counter() - started
    started = time.perf_counter()
    # ~1.5 executions per asset: every asset's upload enrichment plus a manual run for half of them.
    _insert(
        cursor,
        "skill_executions",
        {
            "id": "left(a.id, 19) || printf('%04x', 36864 + k) || right(a.id, 13)",  # unique per (asset, k)
            "asset_id": "a.id",
            "skill_name": f"CASE WHEN k = 0 THEN 'thumbnail' ELSE {_pick(SKILLS, 'hash(a.id, 2)')} END",
            "trigger_source": "CASE WHEN k = 0 THEN 'upload' ELSE 'manual' END",
            "parameters_json": "NULL",
            "started_at": "a.created_at + to_seconds(k * 3600)",
            "completed_at": "a.created_at + to_seconds(k * 3600 + 2)",
            "succeeded": "a.status <> 'failed' OR k = 1",
            "owner": "a.owner",
            "is_public": "a.is_public",
        },
        "assets a, range(2) r(k) WHERE k = 0 OR hash(a.id, 1) % 2 = 0",
        notes,
    )
    timings["skill_executions"] = time.perf_counter() - started
    started = time.perf_counter()
    cursor.execute("CHECKPOINT")
    timings["checkpoint"] = time.perf_counter() - started
    return timings


TABLES = ("assets", "derivatives", "skill_executions")
SQLITE_TYPES = {"VARCHAR": "TEXT", "BOOLEAN": "INTEGER", "TIMESTAMP": "TEXT", "DOUBLE": "REAL", "FLOAT": "REAL"}
# Created after the bulk load (faster), then ANALYZE: what a reasonable SQLite user would add for these queries
# (the (x, id) pairs serve the ORDER BY x, id tie-break without a sort).
SQLITE_INDEXES = """
CREATE INDEX assets_created ON assets (created_at, id);
CREATE INDEX assets_size ON assets (size, id);
CREATE INDEX assets_content_type ON assets (content_type, created_at);
CREATE INDEX assets_owner ON assets (owner, created_at);
CREATE INDEX assets_public ON assets (is_public, created_at);
CREATE INDEX assets_status ON assets (status);
CREATE INDEX skill_executions_asset ON skill_executions (asset_id);
ANALYZE;
"""


def sqlite_ddl(cursor: Any, table: str) -> tuple[str, str]:
    """The catalog table translated to SQLite (same columns, NOT NULL, primary key and unique constraints),
    and the DuckDB SELECT that exports its rows in SQLite's types (timestamps as fixed-width ISO text)."""
    columns = _columns(cursor, table)
    constraints = cursor.execute(
        "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = ? AND schema_name = 'main' AND database_name = current_database() "
        "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE') ORDER BY constraint_index",
        [table],
    ).fetchall()
    lines, exports = [], []
    for name, data_type, nullable, _default in columns:
        base_type = data_type.split("(")[0]
        lines.append(
            f"{name} {SQLITE_TYPES.get(base_type, 'INTEGER' if 'INT' in base_type else 'BLOB')}"
            + ("" if nullable else " NOT NULL")
        )
        if base_type == "TIMESTAMP":
            exports.append(f"strftime({name}, '%Y-%m-%d %H:%M:%S.%f')")
        elif base_type == "BOOLEAN":
            exports.append(f"{name}::INTEGER")
        else:
            exports.append(name)
    order_by = []
    for kind, names in constraints:
        lines.append(f"{kind} ({', '.join(names)})")
        if kind == "PRIMARY KEY":
            order_by = names
    ddl = f"CREATE TABLE {table} (\n    " + ",\n    ".join(lines) + "\n)"
    # Exported in primary-key order, so SQLite builds its indexes by appending (a bulk load would do the same).
    order = f" ORDER BY {', '.join(order_by)}" if order_by else ""
    return ddl, f"SELECT {', '.join(exports)} FROM {table}{order}"


def load_sqlite(catalog: Catalog, path: Path, batch: int = 50_000) -> dict[str, float]:
    """Copy the three tables from the catalog into a fresh SQLite file; returns timings."""
    db = sqlite3.connect(path)
    db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
    cursor = catalog._cursor()
    timings = {}
    for table in TABLES:
        started = time.perf_counter()
        ddl, export = sqlite_ddl(cursor, table)
        db.execute(ddl)
        width = len(_columns(cursor, table))
        result = cursor.execute(export)
        insert = f"INSERT INTO {table} VALUES ({', '.join('?' * width)})"
        while chunk := result.fetchmany(batch):
            db.executemany(insert, chunk)
        db.commit()
        timings[table] = time.perf_counter() - started
    started = time.perf_counter()
    db.executescript(SQLITE_INDEXES)
    db.commit()
    timings["indexes+analyze"] = time.perf_counter() - started
    db.close()
    return timings


class SqliteCatalog:
    """The same list and usage-stats semantics as Catalog, in plain SQLite SQL."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False)
        # Generous settings, so the baseline is a well-configured SQLite: 256 MB of cache and mmap.
        self.db.executescript(
            "PRAGMA journal_mode = WAL; PRAGMA cache_size = -262144; PRAGMA mmap_size = 268435456;"
            "PRAGMA temp_store = MEMORY;"
        )

    @staticmethod
    def _visibility(visible_to: str | None) -> tuple[str, list[Any]]:
        if visible_to is None:
            return "1", []
        return "(is_public = 1 OR owner = ?)", [visible_to]

    def list_assets(self, query: ListQuery, visible_to: str | None) -> tuple[int, list[str]]:
        where, params = self._visibility(visible_to)
        clauses = [where]
        if query.text:
            needle = query.text.lower()
            clauses.append(
                "(instr(lower(original_file_name), ?) > 0 OR instr(lower(coalesce(description, '')), ?) > 0 "
                "OR instr(lower(coalesce(alt_text, '')), ?) > 0)"
            )
            params += [needle, needle, needle]
        if query.content_type:
            clauses.append("content_type = ?")
            params.append(query.content_type)
        if query.status:
            clauses.append("status = ?")
            params.append(query.status)
        condition = " AND ".join(clauses)
        column = {"createdAtUtc": "created_at", "size": "size"}[query.order_by]
        direction = "DESC" if query.descending else "ASC"
        total = self.db.execute(f"SELECT count(*) FROM assets WHERE {condition}", params).fetchone()[0]
        rows = self.db.execute(
            f"SELECT * FROM assets WHERE {condition} ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?",
            [*params, query.page_size, (query.page - 1) * query.page_size],
        ).fetchall()
        return total, [row[0] for row in rows]

    def usage_stats(self, visible_to: str | None) -> tuple[int, int, int, list[tuple[str, int, int]], Any]:
        where, params = self._visibility(visible_to)
        # For an admin the semi-joins are dropped altogether (what one would write by hand for "everything").
        only_visible = "" if visible_to is None else f"WHERE asset_id IN (SELECT id FROM assets WHERE {where})"
        breakdown = self.db.execute(
            f"SELECT content_type, count(*) AS n, sum(size) FROM assets WHERE {where} "
            "GROUP BY content_type ORDER BY n DESC, content_type",
            params,
        ).fetchall()
        total_assets = sum(row[1] for row in breakdown)
        total_bytes = sum(row[2] for row in breakdown)
        derivatives = self.db.execute(f"SELECT count(*) FROM derivatives {only_visible}", params).fetchone()[0]
        top_skill = self.db.execute(
            f"SELECT skill_name, count(*) AS n FROM skill_executions {only_visible} "
            "GROUP BY skill_name ORDER BY n DESC, skill_name LIMIT 1",
            params,
        ).fetchone()
        return total_assets, total_bytes, derivatives, breakdown, top_skill


def time_calls(call: Callable[[], Any], reps: int, warmup: int, budget_s: float) -> tuple[list[float], Any]:
    """Warm up, then time up to reps calls (ms). Stops early once budget_s is spent and 3 samples exist, so a
    multi-second baseline query cannot blow the time limit; the number of samples is printed with the results."""
    started = time.perf_counter()
    result = call()
    first = time.perf_counter() - started
    for _ in range(warmup - 1):
        if first > budget_s / 10:
            break
        result = call()
    samples: list[float] = []
    spent_from = time.perf_counter()
    gc.disable()
    try:
        for _ in range(reps):
            started = time.perf_counter()
            result = call()
            samples.append((time.perf_counter() - started) * 1000)
            if len(samples) >= 3 and time.perf_counter() - spent_from > budget_s:
                break
    finally:
        gc.enable()
    return samples, result


def check_same(name: str, duck: Any, lite: Any) -> None:
    if duck != lite:
        raise AssertionError(f"{name}: DuckDB and SQLite answers differ:\n  duckdb: {duck!r}\n  sqlite: {lite!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="assets to load (default 1,000,000; 200,000 with --quick)")
    parser.add_argument("--reps", type=int, help="timed repetitions per query (default 30; 10 with --quick)")
    parser.add_argument("--quick", action="store_true", help="~1 minute version")
    parser.add_argument("--budget", type=float, help="max seconds of timed reps per query and engine")
    parser.add_argument("--workdir", help="keep the DuckDB and SQLite files here (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="with --workdir: reuse files a previous run left")
    parser.add_argument("--json", help="write the results as JSON to this file")
    parser.add_argument(
        "--catalog", choices=("sqlite", "postgresql"), default="sqlite",
        help="what the DuckDB catalog is measured against: SQLite (the baseline of issue 2), or the PostgreSQL "
        "catalog of a team library (issue 16; see catalog_postgresql.py)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.reuse and not args.workdir:
        parser.error("--reuse needs --workdir")
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    reps = args.reps or (10 if args.quick else 30)
    budget = args.budget or (2.0 if args.quick else 5.0)
    warmup = 2 if args.quick else 3

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    workdir.mkdir(parents=True, exist_ok=True)
    reuse = args.reuse and (workdir / "catalog.duckdb").exists() and (workdir / "baseline.sqlite").exists()
    if not reuse:
        for name in ("catalog.duckdb", "catalog.duckdb.wal", "baseline.sqlite"):
            (workdir / name).unlink(missing_ok=True)
    try:
        return run(workdir, rows, reps, budget, warmup, args.json, reuse, args.catalog)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def run(
    workdir: Path, rows: int, reps: int, budget: float, warmup: int, json_path: str | None, reuse: bool,
    engine: str = "sqlite",
) -> int:  # fmt: skip
    print(
        f"catalog_queries: {rows:,} assets, up to {reps} reps/query ({budget:.0f} s budget each) after "
        f"{warmup} warm-up, workdir {workdir}",
        flush=True,
    )
    catalog = Catalog(DuckDBEngine(workdir / "catalog.duckdb"))
    started = time.perf_counter()
    notes: list[str] = []
    duck_load = {} if reuse else load_duckdb(catalog, rows, notes)
    for note in notes:
        print(f"  NOTE: {note}")
    duck_load_s = time.perf_counter() - started
    cursor = catalog._cursor()
    counts = {
        table: cursor.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("assets", "derivatives", "skill_executions")
    }
    print(
        f"  DuckDB load {duck_load_s:.1f} s ({', '.join(f'{k} {v:.1f}s' for k, v in duck_load.items())}); rows: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
    )
    if reuse:
        rows = counts["assets"]
        print(f"  reusing the files in {workdir}: --rows is ignored")
    if engine == "postgresql":
        try:
            return compare_with_postgresql(
                catalog, QUERIES, USERS, workdir, reps, warmup, budget, time_calls, json_path
            )
        finally:
            catalog.close()
    started = time.perf_counter()
    lite_load = {} if reuse else load_sqlite(catalog, workdir / "baseline.sqlite")
    lite_load_s = time.perf_counter() - started
    print(f"  SQLite load {lite_load_s:.1f} s ({', '.join(f'{k} {v:.1f}s' for k, v in lite_load.items())})")
    lite = SqliteCatalog(workdir / "baseline.sqlite")

    results = []
    for who, visible_to in USERS:
        for label, kind, query in QUERIES:
            if query is None:
                duck_call = lambda v=visible_to: catalog.analytics.usage_stats(v)  # noqa: E731
                lite_call = lambda v=visible_to: lite.usage_stats(v)  # noqa: E731
            else:
                duck_call = lambda q=query, v=visible_to: catalog.assets.list(q, v)  # noqa: E731
                lite_call = lambda q=query, v=visible_to: lite.list_assets(q, v)  # noqa: E731
            duck_ms, duck_result = time_calls(duck_call, reps, warmup, budget)
            lite_ms, lite_result = time_calls(lite_call, reps, warmup, budget)
            if query is None:
                top = duck_result.most_active_skill
                check_same(
                    f"{label} ({who})",
                    (
                        duck_result.total_assets, duck_result.total_bytes, duck_result.total_derivatives,
                        [(c.content_type, c.count, c.total_bytes) for c in duck_result.content_type_breakdown],
                        tuple(top) if top else None,
                    ),
                    lite_result,
                )  # fmt: skip
                matched = duck_result.total_assets
            else:
                check_same(f"{label} ({who})", (duck_result.total, [a.id for a in duck_result.items]), lite_result)
                matched = duck_result.total
            limit = latency_limits(rows)[kind]
            entry = {
                "query": label,
                "who": who,
                "kind": kind,
                "matched": matched,
                "reps": [len(duck_ms), len(lite_ms)],
                "duckdb_p50_ms": percentile(duck_ms, 50),
                "duckdb_p95_ms": percentile(duck_ms, 95),
                "sqlite_p50_ms": percentile(lite_ms, 50),
                "sqlite_p95_ms": percentile(lite_ms, 95),
                "limit_ms": limit,
            }
            entry["ratio_p50"] = entry["sqlite_p50_ms"] / entry["duckdb_p50_ms"]
            entry["ratio_p95"] = entry["sqlite_p95_ms"] / entry["duckdb_p95_ms"]
            entry["meets_latency"] = entry["duckdb_p95_ms"] < limit
            entry["not_slower_than_sqlite"] = entry["ratio_p50"] >= 1.0
            results.append(entry)
            print(
                f"    {label:<24} {who:<8} duckdb p50 {entry['duckdb_p50_ms']:8.2f} ms  "
                f"sqlite p50 {entry['sqlite_p50_ms']:8.2f} ms  ({len(duck_ms)}/{len(lite_ms)} reps)",
                flush=True,
            )
    export = measure_export(catalog, workdir)
    file_sizes = {
        "duckdb": (workdir / "catalog.duckdb").stat().st_size,
        "sqlite": (workdir / "baseline.sqlite").stat().st_size,
    }
    catalog.close()
    lite.db.close()

    print()
    header = (
        f"{'query':<24} {'as':<8} {'matched':>9} {'duck p50':>9} {'duck p95':>9} {'lite p50':>9} {'lite p95':>9} "
        f"{'lite/duck':>9} {'(p95)':>7}  {'p95 goal':<14} vs sqlite"
    )
    print(header)
    print("-" * len(header))
    for e in results:
        goal = f"<{e['limit_ms']:.0f}ms " + ("PASS" if e["meets_latency"] else "FAIL")
        print(
            f"{e['query']:<24} {e['who']:<8} {e['matched']:>9,} {e['duckdb_p50_ms']:>9.2f} {e['duckdb_p95_ms']:>9.2f} "
            f"{e['sqlite_p50_ms']:>9.2f} {e['sqlite_p95_ms']:>9.2f} {fmt_ratio(e['ratio_p50']):>9} "
            f"{fmt_ratio(e['ratio_p95']):>7}  {goal:<14} {'PASS' if e['not_slower_than_sqlite'] else 'FAIL'}"
        )
    print("(times in ms; lite/duck = SQLite time / DuckDB time at p50, (p95) at p95; > 1 means DuckDB is faster)")
    latency_ok = all(e["meets_latency"] for e in results)
    sqlite_ok = all(e["not_slower_than_sqlite"] for e in results)
    export_ok = export["rss_growth_bytes"] < EXPORT_RSS_LIMIT
    limits = latency_limits(rows)
    print(
        f"assets export to Parquet: {export['seconds']:.1f} s, {export['file_bytes'] / 2**20:,.0f} MiB, RSS growth "
        f"{export['rss_growth_bytes'] / 2**20:,.0f} MiB (goal < {EXPORT_RSS_LIMIT / 2**20:.0f} MiB): "
        f"{'PASS' if export_ok else 'FAIL'}"
    )
    print(
        f"files: DuckDB catalog {file_sizes['duckdb'] / 2**20:,.0f} MiB, SQLite {file_sizes['sqlite'] / 2**20:,.0f} MiB"
    )
    print(
        f"GOALS catalog_queries ({rows:,} rows): list p95 < {limits['list']:.0f} ms, search p95 < "
        f"{limits['search']:.0f} ms, usage stats p95 < {limits['stats']:.0f} ms: {'PASS' if latency_ok else 'FAIL'}; "
        f"no query slower than SQLite (p50): {'PASS' if sqlite_ok else 'FAIL'}"
    )
    write_json(
        json_path,
        {
            "benchmark": "catalog_queries",
            "rows": rows,
            "row_counts": counts,
            "load_seconds": {"duckdb": duck_load_s, "sqlite": lite_load_s},
            "results": results,
            "export": export,
            "file_bytes": file_sizes,
            "goals": {"latency": latency_ok, "not_slower_than_sqlite": sqlite_ok, "export_rss": export_ok},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

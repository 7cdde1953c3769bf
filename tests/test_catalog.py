"""Catalog queries against a plain Python model of the same rows: paging and ordering with ties."""

from __future__ import annotations

import random
import threading
import time
import traceback
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import pyarrow
import pytest
from postgres_server import PostgresServer
from pyarrow import parquet as pq

from jupyter_assets.catalog import EXPORTABLE_TABLES, Catalog, CatalogUnreachableError, DuckDBEngine, open_catalog
from jupyter_assets.catalog.cursor import Cursor, DuckDBCursor
from jupyter_assets.catalog.schema import MIGRATIONS, migrations
from jupyter_assets.catalog.writer import GroupCommitWriter
from jupyter_assets.model import Asset, ContentTypeUsage, ListQuery, UsageStats, new_id, utc_now


@pytest.fixture
def catalog(tmp_path: Path, catalog_url: str | None):
    catalog = open_catalog(tmp_path, catalog_url)
    yield catalog
    catalog.close()


def make_asset(
    moment: datetime,
    owner: str = "ann",
    content_type: str = "image/png",
    size: int = 10,
    is_public: bool = False,
    name: str = "f.png",
) -> Asset:
    asset_id = new_id()
    return Asset(
        asset_id, owner, "pending", name, content_type, ".png", size, 1, 1, "x", "local", None, f"k/{asset_id}.png",
        is_public, None, None, moment, moment,
    )  # fmt: skip


def add(catalog: Catalog, asset: Asset, job_skills: list[str] | None = None) -> None:
    _, committing = catalog.assets.insert(asset, job_skills, {"kind": "upload"})
    catalog.settle(committing).result()


def test_every_page_in_every_order_matches_a_full_sort(catalog: Catalog) -> None:
    rng = random.Random(7)
    start = utc_now()
    assets = []
    for _ in range(57):
        moment = start + timedelta(seconds=rng.choice([0, 1, 2, 3]))  # many ties on purpose
        asset = make_asset(moment, rng.choice(["ann", "bo"]), rng.choice(["image/png", "image/gif"]),
                           rng.choice([10, 20, 30]), rng.random() < 0.5)  # fmt: skip
        assets.append(asset)
        add(catalog, asset)

    for order_by, key in (("createdAtUtc", "created_at"), ("size", "size")):
        for descending in (True, False):
            for content_type, viewer in ((None, None), ("image/gif", None), (None, "bo")):
                visible = [
                    a for a in assets
                    if (content_type is None or a.content_type == content_type)
                    and (viewer is None or a.is_public or a.owner == viewer)
                ]  # fmt: skip
                expected = sorted(visible, key=lambda a: (getattr(a, key), a.id), reverse=descending)
                for page in range(1, 6):
                    query = ListQuery(page, 12, None, content_type, None, order_by, descending)
                    result = catalog.assets.list(query, viewer)
                    assert result.total == len(visible)
                    assert [a.id for a in result.items] == [a.id for a in expected[(page - 1) * 12 : page * 12]]


def test_substring_search_takes_wildcards_literally(catalog: Catalog) -> None:
    names = ["50%_off.png", "50xxoff.png", "back\\slash.png", "backslash.png"]
    for name in names:
        add(catalog, make_asset(utc_now(), name=name))

    def found(text: str) -> list[str]:
        query = ListQuery(1, 20, text, None, None, "createdAtUtc", False)
        return [asset.original_file_name for asset in catalog.assets.list(query, None).items]

    assert found("50%_") == ["50%_off.png"]
    assert found("K\\S") == ["back\\slash.png"]
    assert found("OFF") == ["50%_off.png", "50xxoff.png"]


def expected_usage(assets: list[Asset], viewer: str | None, derivatives: int, runs: dict[str, int]) -> UsageStats:
    """Usage stats counted from the model (derivatives and skill runs: those the viewer sees)."""
    seen = [a for a in assets if viewer is None or a.is_public or a.owner == viewer]
    breakdown: dict[str, list[int]] = {}
    for asset in seen:
        counts = breakdown.setdefault(asset.content_type, [0, 0])
        counts[0] += 1
        counts[1] += asset.size
    ordered = sorted(breakdown.items(), key=lambda item: (-item[1][0], item[0]))
    top = min(runs.items(), key=lambda item: (-item[1], item[0]), default=None)
    return UsageStats(len(seen), sum(a.size for a in seen), derivatives,
                      [ContentTypeUsage(ct, n, b) for ct, (n, b) in ordered], top)  # fmt: skip


def test_totals_and_usage_stats_follow_every_change_before_and_after_a_fold(catalog: Catalog) -> None:
    # On PostgreSQL both are added up from tallies that triggers append to and the sweeper folds (tallies.py).
    rng = random.Random(11)
    owners, types, sizes = ["ann", "bo"], ["image/png", "image/gif", "image/webp"], [10, 20, 300]
    assets = [
        make_asset(utc_now(), rng.choice(owners), rng.choice(types), rng.choice(sizes), rng.random() < 0.4)
        for _ in range(30)
    ]
    for asset in assets:
        add(catalog, asset)
    ann_public = next(a for a in assets if a.owner == "ann" and a.is_public)
    now = utc_now()
    derivative = [ann_public.id, "thumbnail_256", "image/webp", ".webp", 5, 1, 1, "x", "k", now, "ann", True]
    runs = [[new_id(), ann_public.id, "thumbnail", "ann", True], [new_id(), assets[0].id, "embed", "x", False]]

    def add_derivative_and_runs(tx: Cursor) -> None:
        tx.execute(f"INSERT INTO derivatives VALUES ({', '.join('?' * len(derivative))})", derivative)
        for run_id, asset_id, skill, owner, is_public in runs:
            tx.execute(
                "INSERT INTO skill_executions VALUES (?, ?, ?, 'upload', NULL, ?, ?, true, ?, ?)",
                [run_id, asset_id, skill, now, now, owner, is_public],
            )

    catalog._write(add_derivative_and_runs)
    # Every kind of change a tally follows: visibility (with the rows that copy it), status, size, a delete.
    catalog.assets.update(ann_public.id, {"is_public": False})
    ann_public.is_public = False
    catalog.assets.update(assets[1].id, {"status": "ready", "size": 7})
    assets[1].status, assets[1].size = "ready", 7
    catalog.assets.update(assets[2].id, {"description": "A Beach"})
    assets[2].description = "A Beach"
    gone = assets.pop(next(i for i in range(2, len(assets)) if assets[i] is not ann_public))
    catalog.assets.delete(gone.id, {"kind": "delete"})

    # The derivative and the thumbnail run are ann's and now private; the embed run is x's, private: admins only.
    seen_by = {None: (1, {"thumbnail": 1, "embed": 1}), "ann": (1, {"thumbnail": 1}), "bo": (0, {})}

    def check() -> None:
        for viewer, (derivatives, runs) in seen_by.items():
            assert catalog.analytics.usage_stats(viewer) == expected_usage(assets, viewer, derivatives, runs)
            filters = [(None, None, None), (None, "image/*", None), (None, "image/gif", None), (None, None, "ready")]
            # `q` totals count a narrow copy of the assets on PostgreSQL (schema.py, migration 7).
            filters += [
                ("F.PNG", None, None),
                ("f.png", "image/gif", "ready"),
                ("beach", None, None),
                ("zz", None, None),
            ]
            for text, content_type, status in filters:
                query = ListQuery(1, 5, text, content_type, status, "createdAtUtc", True)
                matching = [
                    a for a in assets
                    if (viewer is None or a.is_public or a.owner == viewer)
                    and (content_type is None or a.content_type == content_type or content_type == "image/*")
                    and (status is None or a.status == status)
                    and (text is None or text.lower() in f"{a.original_file_name} {a.description or ''}".lower())
                ]  # fmt: skip
                assert catalog.assets.list(query, viewer).total == len(matching), (viewer, text, content_type, status)

    check()
    catalog.tallies.fold()
    check()
    if catalog.is_shared:  # folded: a row per group
        groups = {(a.owner, a.is_public, a.content_type, a.status) for a in assets}
        assert catalog._cursor().execute("SELECT count(*) FROM asset_tallies").fetchone()[0] == len(groups)


def test_a_delete_is_recorded_for_the_other_servers_of_a_team_library(catalog: Catalog) -> None:
    # They drop the asset from their search indexes (propagation.py); a one-server library has no one to tell.
    asset, kept = make_asset(utc_now()), make_asset(utc_now())
    add(catalog, asset)
    add(catalog, kept)
    catalog.assets.delete(asset.id, {"kind": "delete"})
    deleted = [
        subject for _, kind, subject in catalog.change_log.since(datetime(2000, 1, 1)) if kind == "asset_deleted"
    ]
    assert deleted == ([asset.id] if catalog.is_shared else [])


def test_every_export_has_the_same_columns_and_types_from_either_engine(tmp_path: Path, postgres) -> None:
    # A team library's exports are DuckDB reading PostgreSQL (engines.py): a notebook reading them must not care.
    def exported(catalog: Catalog, folder: Path) -> dict[str, pyarrow.Schema]:
        asset, now = make_asset(utc_now()), utc_now()
        _, committing = catalog.assets.insert(asset, None, {"kind": "upload", "asset_id": asset.id, "size": 10})
        catalog.settle(committing).result()

        def add_derivative_and_run(tx: Cursor) -> None:
            tx.execute(
                "INSERT INTO derivatives VALUES (?, 'thumbnail_256', 'image/webp', '.webp', 5, 1, 1, 'x', 'k', "
                "?, ?, ?)",
                [asset.id, now, asset.owner, asset.is_public],
            )
            run_id = new_id()
            tx.execute(
                "INSERT INTO skill_executions VALUES (?, ?, 'thumbnail', 'upload', NULL, ?, ?, true, ?, ?)",
                [run_id, asset.id, now, now, asset.owner, asset.is_public],
            )
            tx.execute("INSERT INTO skill_steps VALUES (?, 0, 'resize', true, NULL, ?, ?)", [run_id, now, now])

        catalog._write(add_derivative_and_run)
        schemas = {}
        for table in EXPORTABLE_TABLES:
            destination = folder / (table if table == "events" else f"{table}.parquet")
            catalog.analytics.export_parquet(table, destination, visible_to=asset.owner)
            rows = pq.ParquetDataset(destination).read() if table == "events" else pq.read_table(destination)
            assert rows.num_rows == 1, table
            schemas[table] = rows.schema.remove_metadata()
        catalog.close()
        return schemas

    (tmp_path / "one").mkdir()
    (tmp_path / "team").mkdir()
    in_duckdb = exported(open_catalog(tmp_path / "one"), tmp_path / "one")
    in_postgresql = exported(open_catalog(tmp_path / "team", postgres.new_database()), tmp_path / "team")
    for table in EXPORTABLE_TABLES:
        assert in_postgresql[table] == in_duckdb[table], table


def test_an_export_while_postgresql_is_down_fails_clearly_without_the_password(tmp_path: Path) -> None:
    server = PostgresServer().start()
    try:
        # The servers of the tests trust local logins: the password is there only to be kept out of messages.
        url = server.new_database().replace("@", ":s3cret@", 1)
        catalog = open_catalog(tmp_path, url)
        catalog.analytics.export_parquet("assets", tmp_path / "before.parquet", None)
        assert pq.read_table(tmp_path / "before.parquet").num_rows == 0
    finally:
        server.stop()
    with pytest.raises(CatalogUnreachableError) as caught:
        catalog.analytics.export_parquet("assets", tmp_path / "after.parquet", None)
    assert "s3cret" not in "".join(traceback.format_exception(caught.value))
    assert str(urlsplit(url).port) in str(caught.value)
    catalog.close()


# -- the job queue: claims and leases ----------------------------------------------------------------------

LEASE = timedelta(minutes=1)


def queue_jobs(catalog: Catalog, count: int) -> list[str]:
    """Assets with an enrichment job each, oldest first; their ids."""
    start = utc_now()
    assets = [make_asset(start + timedelta(milliseconds=n)) for n in range(count)]
    for asset in assets:
        add(catalog, asset, ["thumbnail"])
    return [asset.id for asset in assets]


def test_a_claim_takes_the_oldest_jobs_up_to_a_batch_and_one_workers_share(catalog: Catalog) -> None:
    asset_ids = queue_jobs(catalog, 10)
    batches = []
    while claimed := catalog.jobs.claim("server-a", LEASE, 5, batch_size=4):
        batches.append(sorted(asset_id for _, asset_id, _ in claimed))
    assert batches == [sorted(asset_ids[:4]), sorted(asset_ids[4:8]), sorted(asset_ids[8:])]
    assert {catalog.assets.get(asset_id).status for asset_id in asset_ids} == {"processing"}

    more = queue_jobs(catalog, 3)
    claimed = catalog.jobs.claim("server-a", LEASE, 5, batch_size=8, workers=2)  # 3 waiting, 2 workers: 2 each
    assert sorted(asset_id for _, asset_id, _ in claimed) == sorted(more[:2])


def test_claims_made_at_once_take_each_job_once(catalog: Catalog) -> None:
    asset_ids = queue_jobs(catalog, 60)
    taken: list[str] = []
    barrier = threading.Barrier(4)

    def claim_until_empty(owner: str) -> None:
        barrier.wait()
        while claimed := catalog.jobs.claim(owner, LEASE, 5, batch_size=3):
            taken.extend(asset_id for _, asset_id, _ in claimed)

    threads = [threading.Thread(target=claim_until_empty, args=(f"server-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(asset_ids)


def test_a_job_whose_lease_ran_out_is_claimed_again_and_given_up_after_max_attempts(catalog: Catalog) -> None:
    (asset_id,) = queue_jobs(catalog, 1)
    assert len(catalog.jobs.claim("alive", LEASE, 2)) == 1
    assert catalog.jobs.claim("other", LEASE, 2) == []  # held
    catalog.jobs.renew("alive", timedelta(0))  # as if "alive" had died a lease ago
    assert [a for _, a, _ in catalog.jobs.claim("other", LEASE, 2)] == [asset_id]  # attempt 2 of 2
    catalog.jobs.renew("other", -LEASE)
    assert catalog.jobs.claim("third", LEASE, 2) == []  # attempt 3: given up
    assert catalog.assets.get(asset_id).status == "failed"
    assert catalog.jobs.queued_count() == 0


def test_a_released_job_is_claimed_again_at_once(catalog: Catalog) -> None:
    (asset_id,) = queue_jobs(catalog, 1)
    ((job_id, _, _),) = catalog.jobs.claim("broken-batch", LEASE, 5)
    catalog.jobs.release("someone-else", [job_id])  # only the holder can release
    assert catalog.jobs.claim("other", LEASE, 5) == []
    catalog.jobs.release("broken-batch", [job_id])
    assert [a for _, a, _ in catalog.jobs.claim("other", LEASE, 5)] == [asset_id]


def duckdb_writer(tmp_path: Path) -> GroupCommitWriter:
    """A writer that holds a commit a minute for an expected write (long enough to see it wait)."""
    return GroupCommitWriter(DuckDBCursor(duckdb.connect(str(tmp_path / "writer.duckdb")).cursor()), gather_seconds=60)


def transaction_id(cursor: Cursor) -> int:
    return cursor.execute("SELECT txid_current()").fetchone()[0]


def test_a_commit_waits_for_an_expected_write_but_a_lone_write_never_waits(tmp_path: Path) -> None:
    writer = duckdb_writer(tmp_path)
    try:
        expected = writer.expect()  # an upload still checking its file
        first = writer.submit_nowait(transaction_id)
        time.sleep(0.2)
        assert not first.done()  # held back for the write on its way
        second = writer.submit_nowait(transaction_id)
        expected.done()
        expected.done()  # saying it twice (a failure path) counts once
        assert writer.settle(first).result(timeout=10) == second.result(timeout=10)  # one commit for both
        # With nothing on its way, a write is committed at once, not after the 60 s window.
        assert writer.submit(transaction_id) != first.result()
    finally:
        writer.close()


def test_an_expected_write_that_will_not_come_lets_the_held_commit_go_at_once(tmp_path: Path) -> None:
    writer = duckdb_writer(tmp_path)
    try:
        refused = writer.expect()  # an upload that its checks will refuse
        held = writer.submit_nowait(transaction_id)
        refused.done()
        assert held.result(timeout=10)  # not after the 60 s window
    finally:
        writer.close()


def test_writes_queued_while_a_commit_is_under_way_share_the_next_one(tmp_path: Path) -> None:
    writer = duckdb_writer(tmp_path)
    in_commit, release = threading.Event(), threading.Event()

    def slow(cursor: Cursor) -> int:
        in_commit.set()
        release.wait(10)
        return transaction_id(cursor)

    try:
        first = writer.submit_nowait(slow)
        assert in_commit.wait(10)
        queued = [writer.submit_nowait(transaction_id) for _ in range(3)]
        release.set()
        ids = {writer.settle(future).result(timeout=10) for future in queued}
        assert len(ids) == 1 and ids != {first.result(timeout=10)}
    finally:
        writer.close()


def test_migration_4_moves_jwt_owners_into_their_own_namespace(tmp_path: Path) -> None:
    """Rows written before owners had namespaces: a bare owner came from a JWT subject."""
    path = tmp_path / "catalog.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
    for version, ddl in migrations("duckdb")[:3]:
        connection.execute(ddl)
        connection.execute("INSERT INTO schema_version VALUES (?, now())", [version])
    owners = {"a1": "alice", "a2": "key:svc", "a3": "jupyter:bob", "a4": "config-key"}
    for asset_id, owner in owners.items():
        connection.execute(
            "INSERT INTO assets (id, owner, status, original_file_name, content_type, extension, size,"
            " checksum_sha256, storage_provider, storage_key, is_public, created_at, updated_at)"
            " VALUES (?, ?, 'ready', 'f.png', 'image/png', '.png', 1, 'x', 'local', ?, false, now(), now())",
            [asset_id, owner, asset_id],
        )
        connection.execute(
            "INSERT INTO derivatives VALUES"
            " (?, 'thumbnail_256', 'image/webp', '.webp', 1, 1, 1, 'y', ?, now(), ?, false)",
            [asset_id, f"t-{asset_id}", owner],
        )
        connection.execute(
            "INSERT INTO skill_executions VALUES (?, ?, 'thumbnail', 'manual', NULL, now(), now(), true, ?, false)",
            [f"e-{asset_id}", asset_id, owner],
        )
        connection.execute(
            "INSERT INTO events (id, occurred_at, kind, asset_id, actor) VALUES (?, now(), 'upload', ?, ?)",
            [f"v-{asset_id}", asset_id, owner],
        )
    connection.execute("INSERT INTO events (id, occurred_at, kind, asset_id) VALUES ('w', now(), 'x', 'a1')")
    connection.close()

    catalog = Catalog(DuckDBEngine(path))
    try:
        cursor = catalog._cursor()
        expected = {"a1": "jwt:alice", "a2": "key:svc", "a3": "jupyter:bob", "a4": "config-key"}
        for table, column, key in (
            ("assets", "owner", "id"),
            ("derivatives", "owner", "asset_id"),
            ("skill_executions", "owner", "asset_id"),
        ):
            rows = dict(cursor.execute(f"SELECT {key}, {column} FROM {table}").fetchall())
            assert rows == expected, table
        actors = dict(cursor.execute("SELECT id, actor FROM events").fetchall())
        assert actors == {f"v-{k}": v for k, v in expected.items()} | {"w": None}
        assert catalog.schema_version() == len(MIGRATIONS)
    finally:
        catalog.close()

"""Catalog queries against a plain Python model of the same rows: paging and ordering with ties."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from jupyter_assets.catalog import Catalog, DuckDBEngine, open_catalog
from jupyter_assets.catalog.cursor import Cursor, DuckDBCursor
from jupyter_assets.catalog.schema import MIGRATIONS, migrations
from jupyter_assets.catalog.writer import GroupCommitWriter
from jupyter_assets.model import Asset, ListQuery, new_id, utc_now


@pytest.fixture
def catalog(tmp_path: Path, catalog_url: str | None):
    catalog = open_catalog(tmp_path, catalog_url)
    yield catalog
    catalog.close()


def test_every_page_in_every_order_matches_a_full_sort(catalog: Catalog) -> None:
    rng = random.Random(7)
    start = utc_now()
    assets = []
    for n in range(57):
        asset_id = new_id()
        moment = start + timedelta(seconds=rng.choice([0, 1, 2, 3]))  # many ties on purpose
        assets.append(
            Asset(
                asset_id,
                rng.choice(["ann", "bo"]),
                "ready",
                f"f{n}.png",
                rng.choice(["image/png", "image/gif"]),
                ".png",
                rng.choice([10, 20, 30]),
                1,
                1,
                "x",
                "local",
                None,
                f"k/{asset_id}.png",
                rng.random() < 0.5,
                None,
                None,
                moment,
                moment,
            )  # fmt: skip
        )
        _, committing = catalog.assets.insert(assets[-1], None, {"kind": "upload"})
        catalog.settle(committing).result()

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

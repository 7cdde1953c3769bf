"""Catalog queries against a plain Python model of the same rows: paging and ordering with ties."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from jupyter_assets.catalog import Catalog
from jupyter_assets.catalog.cursor import Cursor
from jupyter_assets.catalog.schema import MIGRATIONS
from jupyter_assets.catalog.writer import GroupCommitWriter
from jupyter_assets.model import Asset, ListQuery, new_id, utc_now


@pytest.fixture
def catalog(tmp_path: Path):
    catalog = Catalog(tmp_path / "catalog.duckdb")
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


def test_a_commit_waits_for_writes_on_their_way_but_a_lone_write_never_waits(tmp_path: Path) -> None:
    coming = [1]  # one upload is still receiving its file
    writer = GroupCommitWriter(
        Cursor(duckdb.connect(str(tmp_path / "writer.duckdb")).cursor()), lambda: coming[0], gather_seconds=60
    )

    def transaction_id(cursor: Cursor) -> int:
        return cursor.execute("SELECT txid_current()").fetchone()[0]

    waiter = ThreadPoolExecutor(2)
    try:
        first = writer.submit_nowait(transaction_id)
        time.sleep(0.2)
        assert not first.done()  # held back for the write on its way
        coming[0] = 0
        second = writer.submit_nowait(transaction_id)
        for future in (first, second):  # as uploads do, their callers come back for them
            waiter.submit(writer.settle, future)
        assert first.result(timeout=10) == second.result(timeout=10)  # one commit for both
        # With nothing on its way, a write is committed at once, not after the 60 s window.
        assert writer.submit_nowait(transaction_id).result(timeout=10) != first.result()
    finally:
        waiter.shutdown()
        writer.close()


def test_settling_a_write_already_committed_lets_a_held_commit_go(tmp_path: Path) -> None:
    coming = [1]
    writer = GroupCommitWriter(
        Cursor(duckdb.connect(str(tmp_path / "writer.duckdb")).cursor()), lambda: coming[0], gather_seconds=60
    )

    def transaction_id(cursor: Cursor) -> int:
        return cursor.execute("SELECT txid_current()").fetchone()[0]

    try:
        first = writer.submit_nowait(transaction_id)
        second = writer.submit_nowait(transaction_id)  # held together with first while a write is coming
        coming[0] = 0
        writer.settle(first)  # commits both; second's caller has not come back for it yet (an S3 put)
        assert second.result(timeout=10) == first.result()
        third = writer.submit_nowait(transaction_id)
        time.sleep(0.2)
        assert not third.done()  # held: second and third count as busy elsewhere
        # Second's caller comes back for a write already committed: only third is busy elsewhere now, and a lone
        # write is not held, so it is committed at once, not after the 60 s window.
        writer.settle(second)
        assert third.result(timeout=10) != first.result()
        writer.settle(third)
    finally:
        writer.close()


def test_a_commit_waits_while_uploads_store_elsewhere_until_someone_waits_for_it(tmp_path: Path) -> None:
    writer = GroupCommitWriter(Cursor(duckdb.connect(str(tmp_path / "writer.duckdb")).cursor()), gather_seconds=60)

    def transaction_id(cursor: Cursor) -> int:
        return cursor.execute("SELECT txid_current()").fetchone()[0]

    waiter = ThreadPoolExecutor(1)
    try:
        # Two S3 uploads queue their rows, then send their bytes: neither waits for the commit yet.
        first = writer.submit_nowait(transaction_id)
        second = writer.submit_nowait(transaction_id)
        time.sleep(0.2)
        assert not first.done()  # nobody waits for it yet: more rows may join
        # Waiting for it commits it, not after the 60 s window.
        assert waiter.submit(writer.settle, first).result(timeout=10) is first
        assert first.result() == second.result()  # one commit for both
        writer.settle(second)
        # A write that only one upload stores alongside (a lone upload) is committed at once.
        lone = writer.submit_nowait(transaction_id)
        assert lone.result(timeout=10) != first.result()
        writer.settle(lone)
        # A write someone waits for (submit) is never held back for uploads storing elsewhere.
        storing = [writer.submit_nowait(transaction_id), writer.submit_nowait(transaction_id)]
        assert waiter.submit(writer.submit, transaction_id).result(timeout=10) != first.result()
        for future in storing:
            writer.settle(future)
    finally:
        waiter.shutdown()
        writer.close()


def test_migration_4_moves_jwt_owners_into_their_own_namespace(tmp_path: Path) -> None:
    """Rows written before owners had namespaces: a bare owner came from a JWT subject."""
    path = tmp_path / "catalog.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
    for version, ddl in MIGRATIONS[:3]:
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

    catalog = Catalog(path)
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

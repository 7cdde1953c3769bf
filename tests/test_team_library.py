"""Several `jupyter-assets serve` processes on one team library: a real PostgreSQL catalog and one shared folder
for the files. What one server does, the others see; the enrichment queue runs each job once, even when a server
is killed in the middle of it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests
from postgres_server import PostgresServer

from conftest import (
    StandaloneServer,
    assert_error,
    free_port,
    model_env,
    png_bytes,
    server_env,
    team_library_env,
)

PROPAGATION_SECONDS = 5  # what the contract promises


@pytest.fixture
def team(postgres: PostgresServer, tmp_path: Path) -> Iterator[Callable[..., list[StandaloneServer]]]:
    """Start servers on one new team library (each with a root of its own, the files in one shared folder)."""
    library = team_library_env(postgres, tmp_path / "shared-files")
    started: list[StandaloneServer] = []

    def start(count: int, *args: str, **env: str) -> list[StandaloneServer]:
        servers = []
        for _ in range(count):
            root = tmp_path / f"server-{len(started)}"
            server = StandaloneServer(root, free_port(), server_env(**library, **env)).start(*args)
            started.append(server)
            servers.append(server)
        return servers

    start.catalog_url = library["JUPYTER_ASSETS_CATALOG_URL"]
    start.files = tmp_path / "shared-files"
    yield start
    for server in started:
        server.stop()


@pytest.fixture
def stopped_at_the_end() -> Iterator[list[StandaloneServer]]:
    servers: list[StandaloneServer] = []
    yield servers
    for server in servers:
        server.stop()


def eventually(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait until ``check()`` holds (another process has acted); the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def query(catalog_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(catalog_url) as connection:
        return connection.execute(sql, params).fetchall()


def test_what_one_server_uploads_another_lists_serves_and_deletes(team) -> None:
    servers = team(2, "--workers", "0")
    first, second = (server.api() for server in servers)
    asset = first.upload_ok(png_bytes(40, 30), description="shared", isPublic="false")
    listed = second.get("/api/v1/assets").json()["data"]["items"]
    assert [item["id"] for item in listed] == [asset["id"]]
    assert second.get(f"/api/v1/assets/{asset['id']}/content").content == png_bytes(40, 30)
    public = first.upload_ok(png_bytes(20, 20))
    served = requests.get(f"{servers[1].url}/content/{public['storageKey']}", timeout=10)
    assert served.content == png_bytes(20, 20)
    assert second.delete(f"/api/v1/assets/{public['id']}").status_code == 200
    assert [p.name for p in team.files.rglob("*.png")] == [Path(asset["storageKey"]).name]
    assert second.delete(f"/api/v1/assets/{asset['id']}").status_code == 200
    assert_error(first.get(f"/api/v1/assets/{asset['id']}"), 404, "asset_not_found")
    assert list(team.files.rglob("*.png")) == []


def test_200_jobs_spread_over_two_servers_each_run_exactly_once(team) -> None:
    (front,) = team(1, "--workers", "0")  # takes the uploads, runs no jobs
    team(2, "--workers", "2")  # the other two share the queue
    api = front.api()
    with ThreadPoolExecutor(4) as pool:
        ids = list(
            pool.map(lambda n: api.upload_ok(png_bytes(8, 8, color=(n, 0, 0)), runEnrichment="true")["id"], range(200))
        )
    eventually(
        lambda: query(team.catalog_url, "SELECT count(*) FROM jobs")[0][0] == 0, 240, "every job done"
    )  # fmt: skip
    statuses = {row[0] for row in query(team.catalog_url, "SELECT DISTINCT status FROM assets")}
    assert statuses == {"ready"}
    runs = dict(
        query(team.catalog_url, "SELECT asset_id, count(*) FROM skill_executions GROUP BY asset_id")
    )  # fmt: skip
    assert runs == dict.fromkeys(ids, 1)  # the thumbnail skill, once per upload


def test_jobs_of_a_server_killed_mid_enrichment_are_finished_by_another(team) -> None:
    lease = {"JUPYTER_ASSETS_JOB_LEASE_SECONDS": "3"}
    doomed, survivor = team(2, "--workers", "1", **lease)
    api = doomed.api()
    ids = [api.upload_ok(png_bytes(300, 300, noise=True), runEnrichment="true")["id"] for _ in range(30)]
    pid = doomed.process.pid
    holding = "SELECT count(*) FROM jobs WHERE status = 'running' AND lease_owner LIKE %s"
    eventually(lambda: query(team.catalog_url, holding, (f"%/{pid}/%",))[0][0] > 0, 60, "the doomed server runs a job")
    doomed.stop(kill=True)
    eventually(
        lambda: query(team.catalog_url, "SELECT count(*) FROM jobs")[0][0] == 0, 120, "the survivor took over"
    )  # fmt: skip
    survivor_api = survivor.api()
    assert {survivor_api.get(f"/api/v1/assets/{asset_id}").json()["data"]["status"] for asset_id in ids} == {"ready"}


def test_batch_deletes_of_overlapping_ids_from_two_servers_delete_each_asset_once(team) -> None:
    first, second = (server.api() for server in team(2, "--workers", "0"))
    ids = [first.upload_ok(png_bytes(8, 8, color=(n, 1, 1)))["id"] for n in range(40)]
    halves = [ids[:30], ids[10:]]  # 20 ids in both
    with ThreadPoolExecutor(2) as pool:
        sent = [
            pool.submit(api.post, "/api/v1/assets/batch-delete", json=half)
            for api, half in zip((first, second), halves, strict=True)
        ]
        responses = [future.result() for future in sent]
    assert [response.status_code for response in responses] == [200, 200]
    bodies = [response.json()["data"] for response in responses]
    assert sum(body["deletedCount"] for body in bodies) == 40
    for body, requested in zip(bodies, halves, strict=True):
        assert body["requestedCount"] == len(requested)
        assert body["deletedCount"] + len(body["notFoundIds"]) == len(requested)
    assert first.get("/api/v1/assets").json()["data"]["total"] == 0
    assert list(team.files.rglob("*.png")) == []


def test_an_embedding_written_by_one_server_is_searchable_on_another_within_5_s(team, tiny_models) -> None:
    models = model_env(tiny_models, caption=False)
    writer, reader = (server.api() for server in team(2, "--workers", "1", **models))
    reader.get("/api/v1/assets?text=warm+up")  # the reader's index exists and is loaded before the upload
    asset = writer.upload_ok(png_bytes(64, 64, color=(250, 10, 10)), runEnrichment="true")
    writer.wait_for_status(asset["id"])

    def found() -> bool:
        items = reader.get("/api/v1/assets?text=a+red+square").json()["data"]["items"]
        return asset["id"] in [item["id"] for item in items]

    eventually(found, PROPAGATION_SECONDS, "the reader finds the writer's embedding")


def test_a_key_revoked_on_one_server_is_refused_by_another_within_5_s(team) -> None:
    first, second = team(2, "--workers", "0")
    created = first.api().post("/api/v1/system/api-keys", json={"name": "contractor"}).json()["data"]
    contractor = second.api(created["key"])
    assert contractor.get("/api/v1/assets").status_code == 200  # known to the second server (and remembered)
    assert first.api().delete(f"/api/v1/system/api-keys/{created['id']}").status_code == 200
    eventually(
        lambda: contractor.get("/api/v1/assets").status_code == 401, PROPAGATION_SECONDS, "the key is refused"
    )  # fmt: skip
    assert_error(contractor.get("/api/v1/assets"), 401, "api_key_invalid")


def test_a_new_default_profile_set_on_one_server_is_used_by_another_within_5_s(team, tmp_path: Path) -> None:
    first, second = (server.api() for server in team(2, "--workers", "0"))
    assert second.upload_ok()["storageProviderProfileId"] is not None  # the second server's default is cached
    elsewhere = tmp_path / "new-shared-files"
    created = first.post(
        "/api/v1/system/storage/providers",
        json={"name": "new-files", "providerType": "local", "configuration": {"rootPath": str(elsewhere)}},
    ).json()["data"]
    assert first.post(f"/api/v1/system/storage/providers/{created['id']}/set-default").status_code == 200

    def uploads_go_to_the_new_default() -> bool:
        return second.upload_ok()["storageProviderProfileId"] == created["id"]

    eventually(uploads_go_to_the_new_default, PROPAGATION_SECONDS, "the second server uploads to the new default")
    assert len(list(elsewhere.rglob("*.png"))) == 1  # the first upload that went there; none before it did


def test_a_team_library_without_a_shared_default_profile_refuses_to_start(postgres, tmp_path: Path) -> None:
    env = server_env(JUPYTER_ASSETS_CATALOG_URL=postgres.new_database())
    server = StandaloneServer(tmp_path / "alone", free_port(), env)
    with pytest.raises(RuntimeError, match="no default storage profile"):
        server.start()


def test_copy_catalog_moves_a_one_server_library_into_a_team_library(
    postgres, tmp_path: Path, stopped_at_the_end: list[StandaloneServer]
) -> None:
    alone = StandaloneServer(tmp_path / "alone", free_port(), server_env()).start()
    stopped_at_the_end.append(alone)
    api = alone.api()
    enriched = api.upload_ok(png_bytes(50, 40), runEnrichment="true", isPublic="false")
    api.wait_for_status(enriched["id"])
    plain = api.upload_ok(png_bytes(30, 20), description="plain")
    key = api.post("/api/v1/system/api-keys", json={"name": "carried", "scopes": ["assets:read"]}).json()["data"]
    before = {asset["id"]: api.get(f"/api/v1/assets/{asset['id']}").json()["data"] for asset in (enriched, plain)}
    alone.stop()

    url = postgres.new_database()
    command = [sys.executable, "-m", "jupyter_assets.cli", "copy-catalog", "--from", str(alone.root), "--to", url]
    copied = subprocess.run(command, env=alone.env, capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    assert "2 assets" in copied.stdout and "library-files" in copied.stdout

    team_server = StandaloneServer(tmp_path / "team", free_port(), server_env(JUPYTER_ASSETS_CATALOG_URL=url)).start()
    stopped_at_the_end.append(team_server)
    team_api = team_server.api()
    listed = team_api.get("/api/v1/assets").json()["data"]["items"]
    assert {item["id"] for item in listed} == set(before)
    after = {asset_id: team_api.get(f"/api/v1/assets/{asset_id}").json()["data"] for asset_id in before}
    for asset_id, item in after.items():
        unchanged = ("originalFileName", "checksumSha256", "storageKey", "owner", "isPublic", "description", "status")
        assert {k: item[k] for k in unchanged} == {k: before[asset_id][k] for k in unchanged}
    assert team_api.get(f"/api/v1/assets/{enriched['id']}/content").content == png_bytes(50, 40)
    assert after[enriched["id"]]["derivatives"] == before[enriched["id"]]["derivatives"] != []
    assert team_server.api(key["key"]).get(f"/api/v1/assets/{plain['id']}").status_code == 200

    again = subprocess.run(command, env=alone.env, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "already holds assets" in again.stderr
    assert team_api.get("/api/v1/assets").json()["data"]["total"] == 2

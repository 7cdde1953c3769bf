"""The Python client (jupyter_assets.client) against a real `jupyter-assets serve` subprocess."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas
import psutil
import pyarrow
import pytest
import requests

from jupyter_assets import AssetsApiError, AssetsClient
from jupyter_assets.client import Asset, AssetList, Page, UploadReport, discover_server, sniff_content_type

from conftest import (
    ADMIN_KEY,
    StandaloneServer,
    jupyter_server_config,
    model_env,
    png_bytes,
    stored_files,
    truncated_png,
)

MiB = 1024 * 1024


@pytest.fixture
def client(server: StandaloneServer) -> AssetsClient:
    return AssetsClient(server.url, ADMIN_KEY)


def colour_png(i: int, size: int = 16) -> bytes:
    """A distinct small image per i (distinct bytes, so distinct checksums)."""
    return png_bytes(size, size, color=(i % 256, (i * 7) % 256, (i * 13) % 256))


# -- upload, read, download -----------------------------------------------------------------------------------


def test_upload_from_path_and_from_bytes(client: AssetsClient, server: StandaloneServer, tmp_path: Path) -> None:
    data = png_bytes(40, 30)
    path = tmp_path / "kitten.png"
    path.write_bytes(data)
    from_path = client.upload(
        path, description="A kitten", alt_text="Orange cat", is_public=False, run_enrichment=False
    )
    assert isinstance(from_path, Asset)
    assert from_path.original_file_name == "kitten.png"
    assert from_path.content_type == "image/png"
    assert from_path.size == len(data)
    assert from_path.checksum_sha256 == hashlib.sha256(data).hexdigest()
    assert (from_path.description, from_path.alt_text, from_path.is_public) == ("A kitten", "Orange cat", False)
    assert (server.root / "files" / from_path.storage_key).read_bytes() == data

    from_bytes = client.upload(data, run_enrichment=False)  # name and type come from the bytes
    assert from_bytes.original_file_name == "image.png"
    assert from_bytes.content_type == "image/png"
    assert from_bytes.is_public is True  # the server's default
    assert from_bytes.public_url

    stored = client.get(from_path.id)
    assert stored.data == {**stored.data, "id": from_path.id, "description": "A kitten", "isPublic": False}
    assert client.list().total == 2


def test_content_and_download(client: AssetsClient, tmp_path: Path) -> None:
    private_data, public_data = png_bytes(20, 20, noise=True), png_bytes(30, 30, noise=True)
    private = client.upload(private_data, file_name="private.png", is_public=False, run_enrichment=False)
    public = client.upload(public_data, file_name="public.png", is_public=True, run_enrichment=False)
    assert client.content(private.id) == private_data  # streamed by the API
    assert client.content(public.id) == public_data  # the 307 to the public URL is followed

    folder = tmp_path / "downloads"
    folder.mkdir()
    saved = client.download(public.id, folder)
    assert saved == folder / "public.png"
    assert saved.read_bytes() == public_data
    named = client.download(private.id, tmp_path / "renamed.png")
    assert named.read_bytes() == private_data
    assert sorted(p.name for p in folder.iterdir()) == ["public.png"]  # no partial file left behind


def test_content_type_is_sniffed_from_the_signature() -> None:
    assert sniff_content_type(b"\x89PNG\r\n\x1a\n....", "photo.jpg") == "image/png"
    assert sniff_content_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff_content_type(b"GIF89a") == "image/gif"
    assert sniff_content_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_content_type(b"BM\x00\x00") == "image/bmp"
    assert sniff_content_type(b"II*\x00") == "image/tiff"
    assert sniff_content_type(b"MM\x00*") == "image/tiff"
    assert sniff_content_type(b"????", "a.jpeg") == "image/jpeg"  # no signature: by name
    assert sniff_content_type(b"????") == "application/octet-stream"


# -- listing --------------------------------------------------------------------------------------------------


def test_list_pages_filters_and_iter_assets(client: AssetsClient) -> None:
    ids = [
        client.upload(colour_png(i), file_name=f"img-{i:02}.png", description="tree" if i < 5 else None).id
        for i in range(25)
    ]
    pages = [client.list(page=n, page_size=10, order_by="createdAtUtc", descending=False) for n in (1, 2, 3)]
    assert all(isinstance(p, Page) and isinstance(p.items, AssetList) for p in pages)
    assert [len(p.items) for p in pages] == [10, 10, 5]
    assert {p.total for p in pages} == {25}
    assert (pages[1].page, pages[1].page_size) == (2, 10)
    assert [a.id for p in pages for a in p.items] == ids  # oldest first, nothing repeated or lost
    newest = client.list(page_size=3)
    assert [a.id for a in newest.items] == ids[::-1][:3]

    assert client.list(q="TREE").total == 5
    assert client.list(content_type="image/*").total == 25
    assert client.list(content_type="image/jpeg").total == 0
    assert client.list(status="failed").total == 0

    everything = list(client.iter_assets())
    assert sorted(a.id for a in everything) == sorted(ids)
    assert sorted(a.id for a in client.iter_assets(q="tree")) == sorted(ids[:5])


def test_list_items_carry_their_thumbnail_url_and_render_it(client: AssetsClient, server: StandaloneServer) -> None:
    thumbnailed = client.upload(colour_png(1, 300), file_name="thumbnailed.png", run_enrichment=False)
    client.run_skill(thumbnailed.id, "thumbnail")
    hidden = client.upload(colour_png(2, 300), file_name="hidden.png", is_public=False, run_enrichment=False)
    client.run_skill(hidden.id, "thumbnail")
    client.upload(colour_png(3), file_name="bare.png", run_enrichment=False)  # no thumbnail made

    page = client.list()
    assert len(page) == 3 and [asset.id for asset in page] == [asset.id for asset in page.items]
    by_name = {asset.original_file_name: asset for asset in page}
    expected = client.get(thumbnailed.id).thumbnail_url  # the detail's thumbnail_256 derivative
    assert expected and by_name["thumbnailed.png"].data["thumbnailUrl"] == expected
    assert requests.get(expected, timeout=10).content[:4] == b"RIFF"  # the WebP, without credentials
    assert by_name["hidden.png"].data["thumbnailUrl"] is None  # private: no URL a browser could load
    assert by_name["bare.png"].data["thumbnailUrl"] is None
    grid = page._repr_html_()
    assert grid.count("<img") == 1 and f'src="{expected}"' in grid
    assert "private" in grid and "no thumbnail yet" in grid  # placeholders say why there is no picture
    # The same field through the plain API, checked against the OpenAPI document.
    items = server.api().get("/api/v1/assets").json()["data"]["items"]
    assert {item["originalFileName"]: item["thumbnailUrl"] for item in items}["thumbnailed.png"] == expected


def test_similar_and_search_results_carry_thumbnail_urls(make_server, tiny_models: dict[str, str]) -> None:
    server = make_server(**model_env(tiny_models, caption=False)).start()
    client = AssetsClient(server.url, ADMIN_KEY)
    ids = [client.upload(colour_png(i, 200), file_name=f"c{i}.png").id for i in range(3)]  # thumbnail, embed, tags
    for asset_id in ids:
        server.api().wait_for_status(asset_id, ("ready",))
    similar = client.similar(ids[0], limit=3)
    found = client.search("a coloured square", page_size=3)
    assert {a.id for a in similar} == {a.id for a in found} == set(ids)
    for asset in [*similar, *found]:
        assert asset.thumbnail_url == client.get(asset.id).thumbnail_url and asset.thumbnail_url
    assert found._repr_html_().count("<img") == 3


# -- changes --------------------------------------------------------------------------------------------------


def test_update_maps_snake_case_and_none_clears(client: AssetsClient) -> None:
    asset = client.upload(png_bytes(), description="before", alt_text="alt", is_public=True, run_enrichment=False)
    updated = client.update(asset.id, description="after", alt_text=None, is_public=False, original_file_name="b.png")
    assert (updated.description, updated.alt_text, updated.is_public) == ("after", None, False)
    assert updated.original_file_name == "b.png"
    again = client.get(asset.id)
    assert (again.description, again.alt_text, again.is_public, again.original_file_name) == (
        "after",
        None,
        False,
        "b.png",
    )
    assert again.public_url is None
    with pytest.raises(TypeError, match="altText"):
        client.update(asset.id, altText="camel case is a typo here")


def test_delete_and_delete_many(client: AssetsClient, server: StandaloneServer) -> None:
    one, two, three = (client.upload(colour_png(i), run_enrichment=False) for i in range(3))
    result = client.delete(one.id, commit_message="remove one")
    assert result["id"] == one.id
    assert result["deletedAtUtc"]
    with pytest.raises(AssetsApiError) as caught:
        client.get(one.id)
    assert caught.value.code == "asset_not_found"

    missing = str(uuid.uuid4())
    batch = client.delete_many([two.id, three.id, missing])
    assert batch == {"requestedCount": 3, "deletedCount": 2, "notFoundIds": [missing]}
    assert client.list().total == 0
    assert stored_files(server.root) == []


# -- errors ---------------------------------------------------------------------------------------------------


def test_errors_carry_the_envelope(client: AssetsClient, server: StandaloneServer) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(AssetsApiError) as caught:
        client.get(missing)
    error = caught.value
    assert (error.code, error.status) == ("asset_not_found", 404)
    assert error.message and error.trace_id
    assert str(error) == f"asset_not_found (404): {error.message} [{error.trace_id}]"

    with pytest.raises(AssetsApiError) as caught:
        client.upload(b"this is not an image", file_name="fake.png", content_type="image/png")
    assert (caught.value.code, caught.value.status) == ("asset_content_type_mismatch", 400)

    asset = client.upload(png_bytes(), run_enrichment=False)
    with pytest.raises(AssetsApiError) as caught:
        client.update(asset.id, description="x" * 1001)
    assert (caught.value.code, caught.value.status) == ("asset_description_too_long", 400)
    with pytest.raises(AssetsApiError) as caught:
        client.export("secrets")
    assert caught.value.code == "export_table_invalid"
    with pytest.raises(AssetsApiError) as caught:
        client.run_skill(asset.id, "watermark", opacity=7)
    assert caught.value.code == "skill_parameters_invalid"

    with pytest.raises(AssetsApiError) as caught:
        AssetsClient(server.url, "wrong-key").list()
    assert caught.value.status == 401
    assert caught.value.code in ("api_key_invalid", "token_invalid")
    assert caught.value.trace_id


def test_an_answer_that_is_not_the_envelope_is_http_error() -> None:
    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            body = b"<html>Bad Gateway</html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    gateway = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=gateway.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(AssetsApiError) as caught:
            AssetsClient(f"http://127.0.0.1:{gateway.server_port}", "t").list()
    finally:
        gateway.shutdown()
        gateway.server_close()
    assert (caught.value.code, caught.value.status, caught.value.trace_id) == ("http_error", 502, None)
    assert "Bad Gateway" in caught.value.message


# -- skills, statistics, search -------------------------------------------------------------------------------


def test_skills_run_skill_and_usage_stats(client: AssetsClient) -> None:
    names = {skill["name"] for skill in client.skills()}
    assert {"thumbnail", "watermark", "format-convert"} <= names

    asset = client.upload(png_bytes(300, 200), is_public=True, run_enrichment=False)
    assert asset.thumbnail_url is None
    result = client.run_skill(asset.id, "thumbnail")
    assert result["succeeded"] is True
    assert isinstance(result["asset"], Asset)
    assert result["asset"].thumbnail_url
    assert client.get(asset.id).thumbnail_url == result["asset"].thumbnail_url
    assert requests.get(result["asset"].thumbnail_url, timeout=10).content[:4] == b"RIFF"  # a public WebP

    converted = client.run_skill(asset.id, "format-convert", targetFormat="jpeg")
    assert converted["succeeded"] is True
    assert client.get(asset.id).content_type == "image/jpeg"

    stats = client.usage_stats()
    assert isinstance(stats, dict)
    assert stats["totalAssets"] == 1


def test_search_similar_and_duplicates(client: AssetsClient) -> None:
    data = colour_png(1)
    first = client.upload(data, file_name="a.png", run_enrichment=False)
    second = client.upload(data, file_name="b.png", run_enrichment=False)
    client.upload(colour_png(2), run_enrichment=False)
    groups = client.duplicates()
    assert groups == [{"reason": "exact", "assetIds": sorted([first.id, second.id]), "score": 1}]
    assert client.duplicates(threshold=0.99)[0]["reason"] == "exact"

    # This test server has no CLIP model: search by meaning is refused with the code that says so.
    with pytest.raises(AssetsApiError) as caught:
        client.search("an orange square")
    assert (caught.value.code, caught.value.status) == ("model_unavailable", 409)
    with pytest.raises(AssetsApiError) as caught:
        client.similar(first.id, limit=5)
    assert caught.value.code == "model_unavailable"


# -- export ---------------------------------------------------------------------------------------------------


def test_export_and_to_pandas(client: AssetsClient) -> None:
    assets = [client.upload(colour_png(i), run_enrichment=False) for i in range(4)]
    table = client.export()
    assert isinstance(table, pyarrow.Table)
    assert table.num_rows == 4
    assert sorted(table.column("id").to_pylist()) == sorted(a.id for a in assets)
    frame = client.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert len(frame) == 4
    assert set(frame["checksum_sha256"]) == {a.checksum_sha256 for a in assets}
    assert client.export("derivatives").num_rows == 0


# -- upload_many ----------------------------------------------------------------------------------------------


def test_upload_batch_answers_each_file_in_order(client: AssetsClient, tmp_path: Path) -> None:
    good, missing = tmp_path / "good.png", tmp_path / "missing.png"
    good.write_bytes(colour_png(5))
    outcomes = client.upload_batch(
        [good, missing, truncated_png(), colour_png(6)], description="d", is_public=False, run_enrichment=False
    )
    assert [type(outcome).__name__ for outcome in outcomes] == ["Asset", "FileNotFoundError", "AssetsApiError", "Asset"]
    assert (outcomes[2].code, outcomes[2].status) == ("asset_image_unreadable", 400)
    first, last = outcomes[0], outcomes[3]
    assert (first.original_file_name, first.description, first.is_public, first.status) == (
        "good.png",
        "d",
        False,
        "ready",
    )
    assert (last.original_file_name, last.description) == ("image.png", "d")
    assert sorted(a.id for a in client.iter_assets()) == sorted([first.id, last.id])
    with pytest.raises(AssetsApiError) as caught:  # refused as a whole: nothing goes up
        client.upload_batch([colour_png(i) for i in range(101)])
    assert caught.value.code == "request_invalid"
    assert client.list().total == 2


def test_upload_many_reports_failures_and_resumes(client: AssetsClient, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "nested" / "deeper").mkdir(parents=True)
    expected = set()
    for i in range(12):
        path = [folder, folder / "nested", folder / "nested" / "deeper"][i % 3] / f"p{i:02}.png"
        path.write_bytes(colour_png(i))
        expected.add(path)
    broken = folder / "nested" / "broken.png"
    broken.write_bytes(truncated_png())
    (folder / "notes.txt").write_text("not an image: not collected")

    report = client.upload_many(folder, workers=4, progress=False, run_enrichment=False, description="batch")
    assert isinstance(report, UploadReport)
    assert len(report.uploaded) == 12 and report.skipped == []
    assert [path for path, _ in report.failed] == [broken]
    error = report.failed[0][1]
    assert isinstance(error, AssetsApiError) and error.code == "asset_image_unreadable"
    assert str(report).splitlines() == [
        "12 uploaded, 0 skipped, 1 failed",
        f"  {broken}: asset_image_unreadable (400): {error.message}",  # the code once, then the server's words
    ]
    assert "asset_image_unreadable" in report._repr_html_()
    library = list(client.iter_assets())
    assert len(library) == 12
    assert {a.description for a in library} == {"batch"}
    assert {a.original_file_name for a in library} == {p.name for p in expected}

    again = client.upload_many(folder, workers=4, progress=False, run_enrichment=False)
    assert again.uploaded == []
    assert sorted(again.skipped) == sorted(expected)
    assert [path for path, _ in again.failed] == [broken]  # a refused file is never stored, so it fails again
    assert client.list().total == 12


def test_upload_many_takes_paths_copies_once_and_missing_files(client: AssetsClient, tmp_path: Path) -> None:
    one, copy, other = tmp_path / "one.png", tmp_path / "copy.png", tmp_path / "other.png"
    one.write_bytes(colour_png(1))
    copy.write_bytes(colour_png(1))
    other.write_bytes(colour_png(2))
    missing = tmp_path / "missing.png"
    report = client.upload_many([one, copy, str(other), missing], workers=3, progress=False, run_enrichment=False)
    assert len(report.uploaded) == 2  # the copy's bytes went up once
    assert len(report.skipped) == 1
    assert [(path, type(error)) for path, error in report.failed] == [(missing, FileNotFoundError)]
    assert "FileNotFoundError" in str(report)
    assert client.list().total == 2

    without_skip = client.upload_many([one], skip_existing=False, progress=False, run_enrichment=False)
    assert len(without_skip.uploaded) == 1
    assert client.list().total == 3


def test_upload_many_reports_each_file_of_a_request_refused_as_a_whole(
    server: StandaloneServer, client: AssetsClient, tmp_path: Path
) -> None:
    old, new = tmp_path / "old.png", tmp_path / "new.png"
    old.write_bytes(colour_png(40))
    new.write_bytes(colour_png(41))
    client.upload(old, run_enrichment=False)
    created = requests.post(
        f"{server.url}/api/v1/system/api-keys", json={"name": "reader", "scopes": ["assets:read"]},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30,
    )  # fmt: skip
    reader = AssetsClient(server.url, created.json()["data"]["key"])
    report = reader.upload_many([old, new], progress=False, run_enrichment=False)  # one request, refused: 403
    assert report.skipped == [old]  # the file the library holds is still reported as skipped
    assert [(path, error.code) for path, error in report.failed] == [(new, "auth_forbidden")]
    assert client.list().total == 1


def test_upload_many_shows_a_progress_bar(client: AssetsClient, tmp_path: Path, capsys) -> None:
    (tmp_path / "a.png").write_bytes(colour_png(3))
    report = client.upload_many(tmp_path, progress=True, run_enrichment=False)
    assert len(report.uploaded) == 1
    assert "1/1" in capsys.readouterr().err


# -- notebook display -----------------------------------------------------------------------------------------


def test_repr_html_escapes_text(client: AssetsClient) -> None:
    asset = client.upload(
        png_bytes(), file_name="<i>bold&.png", description="<script>alert(1)</script>", run_enrichment=False
    )
    asset = client.run_skill(asset.id, "thumbnail")["asset"]
    card = asset._repr_html_()
    assert "<script>" not in card and "&lt;script&gt;alert(1)&lt;/script&gt;" in card
    assert "<i>" not in card and "&lt;i&gt;bold&amp;.png" in card
    assert f'src="{asset.thumbnail_url}"' in card
    grid = AssetList([asset, Asset({**asset.data, "derivatives": []})])._repr_html_()
    assert grid.count("<img") == 1 and "<script>" not in grid
    assert "Assets 1-1 of 1" in client.list()._repr_html_()
    assert AssetList()._repr_html_() == "<em>No assets.</em>"


def test_asset_reads_tags_caption_and_snake_case() -> None:
    asset = Asset(
        {
            "id": "x",
            "originalFileName": "dog.png",
            "structuredResults": [
                {"kind": "tags", "payloadJson": json.dumps({"tags": [{"label": "<dog>", "score": 0.9}]})},
                {"kind": "caption", "payloadJson": json.dumps({"caption": "a dog & a ball"})},
            ],
            "derivatives": [{"kind": "thumbnail_256", "publicUrl": "http://x/t.webp?a=1&b=2"}],
        }
    )
    assert asset.original_file_name == "dog.png"
    assert asset.tags == [{"label": "<dog>", "score": 0.9}]
    assert asset.caption == "a dog & a ball"
    assert asset.thumbnail_url == "http://x/t.webp?a=1&b=2"
    assert "original_file_name" in dir(asset)
    card = asset._repr_html_()
    assert "&lt;dog&gt; (0.90)" in card and "a dog &amp; a ball" in card and "a=1&amp;b=2" in card
    with pytest.raises(AttributeError):
        _ = asset.no_such_field
    bare = Asset({"id": "y"})
    assert (bare.tags, bare.caption, bare.thumbnail_url) == ([], None, None)


# -- discovery ------------------------------------------------------------------------------------------------


def write_runtime_file(folder: Path, name: str, url: str, token: str, root_dir: Path, pid: int | None = None) -> None:
    """A server's runtime file as Jupyter Server writes it. list_running_servers drops (and deletes) a file whose
    pid is not a live process, so the pid is always one: this process's by default."""
    info = {"url": url, "token": token, "root_dir": str(root_dir), "pid": pid or os.getpid(), "base_url": "/"}
    (folder / f"jpserver-{name}.json").write_text(json.dumps(info))


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runtime"
    folder.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(folder))
    for name in (
        "JUPYTERHUB_API_TOKEN",
        "JUPYTERHUB_SERVICE_URL",
        "JUPYTERHUB_SERVICE_PREFIX",
        "JPY_PARENT_PID",  # set when these tests run from a kernel; each test sets what it needs
        "JPY_SESSION_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def unrelated_pid() -> Iterator[int]:
    """The pid of a live process that is neither this one nor its parent: another user's Jupyter server."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield process.pid
    process.stdin.close()  # it exits at the end of its input
    process.wait(timeout=30)


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """Roots of two servers, the kernel's working directory inside the first."""
    paths = {name: tmp_path / name for name in ("served", "other", "served/project")}
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
    return paths


def test_discovery_takes_the_server_whose_pid_is_the_kernels_parent(
    runtime_dir: Path, folders: dict[str, Path], unrelated_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process plays the kernel: its parent process is the Jupyter server that started it, even though
    another server's root holds the working directory."""
    write_runtime_file(runtime_dir, "1", "http://127.0.0.1:9001/", "theirs", folders["served"], unrelated_pid)
    write_runtime_file(runtime_dir, "2", "http://127.0.0.1:9002/", "ours", folders["other"], os.getppid())
    monkeypatch.chdir(folders["served/project"])
    assert discover_server() == ("http://127.0.0.1:9002/", "ours")


def test_discovery_takes_the_server_named_by_jpy_parent_pid(
    runtime_dir: Path, folders: dict[str, Path], unrelated_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel started through a wrapper (a launcher script, conda run) is not the server's child; jupyter_client
    names the server's pid in JPY_PARENT_PID."""
    write_runtime_file(runtime_dir, "1", "http://127.0.0.1:9001/", "theirs", folders["served"], unrelated_pid)
    write_runtime_file(runtime_dir, "2", "http://127.0.0.1:9002/", "ours", folders["other"], os.getpid())
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))
    monkeypatch.chdir(folders["served/project"])
    assert discover_server() == ("http://127.0.0.1:9002/", "ours")


def test_discovery_places_the_notebook_before_the_working_directory(
    runtime_dir: Path, folders: dict[str, Path], unrelated_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_runtime_file(runtime_dir, "1", "http://127.0.0.1:9001/", "cwd", folders["served"], unrelated_pid)
    write_runtime_file(runtime_dir, "2", "http://127.0.0.1:9002/", "notebook", folders["other"], unrelated_pid)
    monkeypatch.chdir(folders["served/project"])
    monkeypatch.setenv("JPY_SESSION_NAME", str(folders["other"] / "analysis.ipynb"))  # what Jupyter Server sets
    assert discover_server() == ("http://127.0.0.1:9002/", "notebook")
    monkeypatch.setenv("JPY_SESSION_NAME", "analysis.ipynb")  # relative to some root: it cannot place the kernel
    assert discover_server() == ("http://127.0.0.1:9001/", "cwd")


def test_discovery_never_falls_back_to_an_unrelated_server(
    runtime_dir: Path, folders: dict[str, Path], unrelated_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_runtime_file(runtime_dir, "1", "http://127.0.0.1:9001/", "theirs", folders["other"], unrelated_pid)
    monkeypatch.chdir(folders["served/project"])
    with pytest.raises(ValueError) as caught:
        discover_server()
    message = str(caught.value)
    assert "None of the 1 running Jupyter servers runs this kernel" in message
    assert "http://127.0.0.1:9001/" in message and "theirs" not in message  # the URL, never the token
    assert "AssetsClient('http://localhost:5121', token='<api key>')" in message


def test_discovery_finds_the_server_of_this_kernel(
    server: StandaloneServer, runtime_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebooks = tmp_path / "notebooks"
    (notebooks / "project").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_runtime_file(runtime_dir, "1", "http://127.0.0.1:9/", "other-token", elsewhere)  # not ours
    write_runtime_file(runtime_dir, "2", f"http://localhost:{server.port}/", ADMIN_KEY, notebooks)
    monkeypatch.chdir(notebooks / "project")
    client = AssetsClient()
    assert client.url == f"http://localhost:{server.port}"
    assert client.list().total == 0
    client.upload(png_bytes(), run_enrichment=False)
    assert AssetsClient(f"http://localhost:{server.port}/").list().total == 1  # the token comes from the file


def test_discovery_under_jupyterhub(server: StandaloneServer, runtime_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", ADMIN_KEY)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", f"http://0.0.0.0:{server.port}/")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/")
    client = AssetsClient()
    assert client.url == f"http://127.0.0.1:{server.port}"
    assert client.list().total == 0


def test_discovery_without_a_server_says_what_to_pass(runtime_dir: Path) -> None:
    with pytest.raises(ValueError, match="pass the API's URL and a token"):
        AssetsClient()


def test_import_stays_light() -> None:
    code = "import sys, jupyter_assets; print('requests' in sys.modules, 'jupyter_assets.client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# -- large files ----------------------------------------------------------------------------------------------


def _peak_rss_growth(action, processes: list[psutil.Process]) -> tuple[list[int], object]:
    """Run action while sampling the RSS of each process; each one's growth over its start, and the result."""
    before = [process.memory_info().rss for process in processes]
    peaks = list(before)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for index, process in enumerate(processes):
                peaks[index] = max(peaks[index], process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    return [peak - start for peak, start in zip(peaks, before, strict=True)], result


def write_big_png(path: Path, width: int, height: int) -> None:
    """A valid 16-bit RGB PNG (6 bytes a pixel, stored uncompressed) written row by row, so that neither this
    process nor any other ever holds the image: ~500 MB at 10000 x 8334, under the server's pixel limit."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    compressor = zlib.compressobj(level=0)
    rows = [b"\x00" + os.urandom(width * 6) for _ in range(7)]  # filter byte 0, then the pixels
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(chunk(b"IHDR", width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([16, 2, 0, 0, 0])))
        for y in range(height):
            data = compressor.compress(rows[y % len(rows)])
            if data:
                handle.write(chunk(b"IDAT", data))
        handle.write(chunk(b"IDAT", compressor.flush()))
        handle.write(chunk(b"IEND", b""))


@pytest.mark.duckdb_only  # about memory while streaming, not the catalog
def test_a_500_mb_upload_keeps_client_and_server_memory_flat(make_server, tmp_path: Path) -> None:
    server = make_server(JUPYTER_ASSETS_MAX_UPLOAD_BYTES=str(600 * MiB)).start()
    client = AssetsClient(server.url, ADMIN_KEY)
    path = tmp_path / "big.png"
    write_big_png(path, 10000, 8334)
    size = path.stat().st_size
    assert size > 500 * 1000 * 1000
    client.upload(png_bytes(), run_enrichment=False)  # warm up: connections, imports, the server's first upload
    processes = [psutil.Process(), psutil.Process(server.process.pid)]
    growth, asset = _peak_rss_growth(lambda: client.upload(path, run_enrichment=False), processes)
    assert (asset.size, asset.width, asset.height) == (size, 10000, 8334)
    assert asset.checksum_sha256 == sha256_of_file(path)
    client_growth, server_growth = growth
    assert client_growth < 20 * MiB, f"the client's RSS grew by {client_growth / MiB:.1f} MiB"
    assert server_growth < 30 * MiB, f"the server's RSS grew by {server_growth / MiB:.1f} MiB"
    downloaded = client.download(asset.id, tmp_path / "back.png")
    assert sha256_of_file(downloaded) == asset.checksum_sha256


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def test_upload_over_the_limit_is_refused_with_the_code(make_server, tmp_path: Path) -> None:
    server = make_server(JUPYTER_ASSETS_MAX_UPLOAD_BYTES=str(MiB)).start()
    client = AssetsClient(server.url, ADMIN_KEY)
    path = tmp_path / "big.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(3 * MiB))
    with pytest.raises(AssetsApiError) as caught:
        client.upload(path)
    assert caught.value.code == "asset_file_too_large"
    assert caught.value.status in (400, 413)
    assert client.list().total == 0


# -- inside Jupyter -------------------------------------------------------------------------------------------


@pytest.fixture
def jp_server_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    return jupyter_server_config(tmp_path / "lib", monkeypatch)


async def test_client_with_jupyters_own_token(jp_serverapp, jp_http_port, jp_base_url, jp_fetch) -> None:
    """The extension inside Jupyter (base URL /a%40b/) with Jupyter's token sent as Bearer. The client is
    synchronous, so it runs in a thread while this loop serves."""
    import asyncio

    url = f"http://localhost:{jp_http_port}{jp_base_url}"
    token = jp_serverapp.identity_provider.token

    def session() -> tuple[int, bytes, int]:
        client = AssetsClient(url, token)
        data = png_bytes(12, 12, noise=True)
        asset = client.upload(data, file_name="in-jupyter.png", is_public=False, run_enrichment=False)
        return client.list().total, client.content(asset.id), len(data)

    total, content, size = await asyncio.to_thread(session)
    assert total == 1 and len(content) == size
    with pytest.raises(AssetsApiError) as caught:
        await asyncio.to_thread(lambda: AssetsClient(url, "not-the-token").list())
    assert caught.value.status in (401, 403)

"""Batch upload (`POST /api/v1/assets/batch`) against real `jupyter-assets serve` processes: an item per file part in
order, each refused file refusing only itself, requests refused as a whole keeping nothing, one catalog commit per
request, and a server killed mid-request keeping nothing of it."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import requests

from jupyter_assets.http.upload import KEEP_IN_MEMORY, KEEP_IN_MEMORY_PER_REQUEST, MultipartUpload
from jupyter_assets.service import AssetService, ServiceConfig

from conftest import ADMIN_KEY, Api, assert_error, jpeg_bytes, png_bytes, stored_files
from test_durability import ADMIN, upload_form
from test_upload import BOUNDARY, HTML, incoming, multipart, noise_png_of_about, part, total

BATCH = "/api/v1/assets/batch"
LIMIT = 50_000


def post_batch(api: Api, body: bytes) -> requests.Response:
    return api.post(BATCH, data=body, headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


def test_a_batch_answers_each_file_in_order_and_refuses_only_the_bad_ones(make_server) -> None:
    server = make_server(JUPYTER_ASSETS_MAX_UPLOAD_BYTES=str(LIMIT)).start()
    api = server.api()
    good_png, good_jpeg = png_bytes(30, 20), jpeg_bytes(40, 30)
    body = multipart(
        part("isPublic", "false"),
        part("file", good_png, "a.png", "image/png"),
        part("description", "first"),
        part("altText", "alt first"),
        part("file", HTML, "page.png", "image/png"),
        part("file", b"", "empty.png", "image/png"),
        part("file", noise_png_of_about(3 * LIMIT), "big.png", "image/png"),  # read past, not kept
        part("file", good_jpeg, "dir/b.jpg", "image/jpeg"),
        part("description", "second"),
        part("file", png_bytes(), "untyped.png"),
        part("file", png_bytes(), "wordy.png", "image/png"),
        part("description", "x" * 1001),
        part("runEnrichment", "false"),  # request-wide fields may come anywhere
    )
    response = post_batch(api, body)
    assert response.status_code == 207, response.text
    items = response.json()["data"]["items"]
    assert [(i["index"], i["fileName"], i["status"]) for i in items] == [
        (0, "a.png", 202), (1, "page.png", 400), (2, "empty.png", 400), (3, "big.png", 400), (4, "dir/b.jpg", 202),
        (5, "untyped.png", 400), (6, "wordy.png", 400),
    ]  # fmt: skip
    codes = [item["error"]["code"] for item in items if "error" in item]
    assert codes == [
        "asset_content_type_mismatch", "asset_file_empty", "asset_file_too_large", "asset_content_type_missing",
        "asset_description_too_long",
    ]  # fmt: skip
    first, second = items[0]["data"], items[4]["data"]
    assert (first["description"], first["altText"], first["isPublic"], first["status"]) == (
        "first", "alt first", False, "ready"
    )  # fmt: skip
    assert (second["description"], second["altText"], second["originalFileName"]) == ("second", None, "b.jpg")
    assert api.get(f"/api/v1/assets/{first['id']}/content").content == good_png
    assert api.get(f"/api/v1/assets/{second['id']}/content").content == good_jpeg
    assert total(api) == 2
    assert len(stored_files(server.root)) == 2
    assert incoming(server.root) == []
    # The server keeps serving on the same connection.
    assert api.get("/api/v1/assets").status_code == 200


def test_a_batch_refused_as_a_whole_keeps_nothing(make_server) -> None:
    server = make_server().start()
    api = server.api()
    one_file = part("file", png_bytes(), "a.png", "image/png")
    refused = [
        (multipart(*[one_file] * 101), 400, "request_invalid"),
        (multipart(part("description", "before any file"), one_file), 400, "request_invalid"),
        (multipart(part("isPublic", "false")), 400, "asset_file_required"),
        (multipart(one_file, close=False), 400, "request_invalid"),  # cut short
        (multipart(one_file, part("isPublic", "maybe")), 207, None),  # a bad request-wide field refuses each file
    ]
    for body, status, code in refused:
        response = post_batch(api, body)
        if code is None:
            assert response.status_code == status, response.text
            assert [item["error"]["code"] for item in response.json()["data"]["items"]] == ["request_invalid"]
        else:
            assert_error(response, status, code)
    created = api.post("/api/v1/system/api-keys", json={"name": "reader", "scopes": ["assets:read"]})
    reader = created.json()["data"]["key"]
    assert_error(post_batch(api.as_(reader), multipart(one_file)), 403, "auth_forbidden")
    assert_error(post_batch(api.as_(None), multipart(one_file)), 401, "auth_required")
    assert total(api) == 0
    assert stored_files(server.root) == []
    assert incoming(server.root) == []


def test_the_accepted_files_of_a_batch_share_one_commit_and_a_failed_store_undoes_only_its_own(
    tmp_path: Path, monkeypatch
) -> None:
    service = AssetService(ServiceConfig(root_dir=tmp_path / "library", public_base_url="http://x"))
    try:
        submissions = []
        write_nowait = service.catalog._write_nowait
        monkeypatch.setattr(
            service.catalog, "_write_nowait", lambda inserts: submissions.append(inserts) or write_nowait(inserts)
        )
        forms = [upload_form(service, png_bytes(10 + i, 10), runenrichment="false") for i in range(3)]
        refused = upload_form(service, b"not an image", runenrichment="false")
        doomed = forms[1].temp_path.stem.replace("-", "")  # the asset's id, as its storage key holds it
        put = service.library.storage.put
        monkeypatch.setattr(service.library.storage, "put", lambda key, *args, **kwargs: (
            (_ for _ in ()).throw(OSError("disk full")) if doomed in key else put(key, *args, **kwargs)
        ))  # fmt: skip
        outcomes = service.uploads.create_batch(ADMIN, [forms[0], refused, forms[1], forms[2]])
        assert len(submissions) == 1  # one commit: the rows of every accepted file in one write
        assert {insert.table for insert in submissions[0]} == {"assets", "events"}
        assert [type(outcome).__name__ for outcome in outcomes] == ["Asset", "ApiError", "OSError", "Asset"]
        kept = [outcomes[0].id, outcomes[3].id]
        assert sorted(service.catalog.assets.visible_ids(None)) == sorted(kept)
        assert sorted(p.stem for p in stored_files(tmp_path / "library")) == sorted(i.replace("-", "") for i in kept)
        assert incoming(tmp_path / "library") == []
    finally:
        service.close()


def test_a_server_killed_mid_batch_keeps_nothing_of_it(make_server) -> None:
    server = make_server().start()
    body = multipart(
        part("file", png_bytes(50, 50, noise=True), "a.png", "image/png"),
        part("file", png_bytes(60, 60, noise=True), "b.png", "image/png"),
        part("file", b"", "c.png", "image/png")[:-2] + png_bytes(400, 400, noise=True),  # unfinished
        close=False,
    )
    head = (
        f"POST {BATCH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body) + 10**6}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body)
        deadline = time.monotonic() + 15
        while len(incoming(server.root)) < 3 and time.monotonic() < deadline:  # the third file has begun
            time.sleep(0.01)
        assert len(incoming(server.root)) == 3, incoming(server.root)
        server.stop(kill=True)
    server.start()
    api = server.api()
    assert total(api) == 0
    assert stored_files(server.root) == []
    assert incoming(server.root) == []


def test_a_batch_keeps_its_small_files_in_memory_only_up_to_a_budget(tmp_path: Path) -> None:
    files = [os.urandom(KEEP_IN_MEMORY) for _ in range(KEEP_IN_MEMORY_PER_REQUEST // KEEP_IN_MEMORY + 3)]
    body = multipart(*[part("file", data, f"{i}.png", "image/png") for i, data in enumerate(files)])
    created = iter(range(len(files)))

    def new_file() -> tuple[int, Path]:
        path = tmp_path / f"{next(created)}.upload"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path

    reader = MultipartUpload(
        f"multipart/form-data; boundary={BOUNDARY}", new_file, lambda form: None, lambda size: None, max_files=100
    )
    for start in range(0, len(body), 100_000):  # in pieces, as the body arrives
        reader.write(body[start : start + 100_000])
    forms = reader.finish_batch()
    assert [form.temp_path.read_bytes() for form in forms] == files  # every file on disk
    in_memory = [form.data is not None for form in forms]
    assert in_memory == [True] * (KEEP_IN_MEMORY_PER_REQUEST // KEEP_IN_MEMORY) + [False] * 3
    assert all(form.data == data for form, data in zip(forms, files, strict=True) if form.data is not None)

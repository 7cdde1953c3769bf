"""Upload (`POST /api/v1/assets`) against a real `jupyter-assets serve` subprocess: the 202 and its fields, every
validation code in the documented order, file names, booleans, the size limit while the body streams, nothing left
behind by a refused request, and memory that stays flat whatever the body size. Also the multipart reader itself:
which files it keeps in memory."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import select
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest
import requests
from PIL import Image

from jupyter_assets.http.upload import KEEP_IN_MEMORY, MultipartUpload
from jupyter_assets.uploads import UploadForm

from conftest import (
    ADMIN_KEY,
    Api,
    StandaloneServer,
    assert_error,
    bomb_png,
    default_profile_id,
    free_port,
    jpeg_bytes,
    png_bytes,
    server_env,
    stored_files,
    truncated_png,
)

API = "/api/v1/assets"
BOUNDARY = "jupyter-assets-test-boundary"
SMALL_LIMIT = 50_000
MiB = 1024 * 1024
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"

# -- helpers --------------------------------------------------------------------------------------------------


def part(
    name: str,
    body: bytes | str,
    filename: str | None = None,
    content_type: str | None = None,
) -> bytes:
    """One multipart part, written by hand (no library decides what a header looks like)."""
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    headers = f"Content-Disposition: {disposition}\r\n"
    if content_type is not None:
        headers += f"Content-Type: {content_type}\r\n"
    data = body.encode() if isinstance(body, str) else body
    return f"--{BOUNDARY}\r\n".encode() + headers.encode() + b"\r\n" + data + b"\r\n"


def multipart(*parts: bytes, close: bool = True) -> bytes:
    return b"".join(parts) + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def post_multipart(api: Api, body: bytes) -> requests.Response:
    return api.post(API, data=body, headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


def total(api: Api) -> int:
    response = api.get(API)
    assert response.status_code == 200, response.text
    return response.json()["data"]["total"]


def incoming(root: Path) -> list[Path]:
    folder = root / "incoming"
    return sorted(folder.rglob("*")) if folder.exists() else []


def assert_refused(
    server: StandaloneServer, send: Callable[[], requests.Response], status: int | tuple[int, ...], code: str
) -> dict:
    """The request is refused with this code, and leaves no file, no row and no temporary file behind."""
    api = server.api()
    files_before, total_before = stored_files(server.root), total(api)
    response = send()
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, f"{response.status_code} {response.text}"
    error = assert_error(response, response.status_code, code)
    assert stored_files(server.root) == files_before
    assert total(api) == total_before
    assert incoming(server.root) == []
    return error


def raw_request(port: int, head: bytes, body: Iterator[bytes] | None = None, watch_for_answer: bool = False) -> bytes:
    """Send a request over a plain socket, stop sending when the server stops reading, return what it answered.

    With watch_for_answer, behave like curl: between pieces, stop sending as soon as the server has answered."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(head)
            for piece in body or ():
                if watch_for_answer and select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return received


def upload_head(port: int, content_length: int | None) -> bytes:
    length = f"Content-Length: {content_length}\r\n" if content_length is not None else ""
    return (
        f"POST {API} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{length}Connection: close\r\n\r\n"
    ).encode()


def status_and_body(raw: bytes) -> tuple[int, bytes]:
    assert raw, "the server closed the connection without any response"
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def bmp_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="BMP")
    return buffer.getvalue()


def png_of_exact_size(size: int) -> bytes:
    """A valid PNG padded with a text chunk to exactly ``size`` bytes."""
    base = png_bytes(64, 48)
    iend = base.rindex(b"IEND") - 4
    payload = b"Comment\0" + b"x" * (size - len(base) - 12 - len(b"Comment\0"))
    chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload + struct.pack(">I", zlib.crc32(b"tEXt" + payload))
    data = base[:iend] + chunk + base[iend:]
    assert len(data) == size
    Image.open(io.BytesIO(data)).load()
    return data


def noise_png_of_about(size: int) -> bytes:
    """A valid PNG of random pixels (incompressible), a little under ``size`` bytes."""
    side = int((size / 3) ** 0.5) - 8
    data = png_bytes(side, side, noise=True)
    assert size * 0.9 < len(data) < size, len(data)
    return data


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneServer]:
    """A server whose upload limit is 50 000 bytes (module-wide: make_server is per test)."""
    root = tmp_path_factory.mktemp("small") / "library"
    server = StandaloneServer(root, free_port(), server_env(JUPYTER_ASSETS_MAX_UPLOAD_BYTES=str(SMALL_LIMIT))).start()
    yield server
    server.stop()


# -- a valid upload -------------------------------------------------------------------------------------------


def test_valid_upload_answers_202_with_every_field(shared_server: StandaloneServer) -> None:
    api = shared_server.api()
    data = png_bytes(64, 48)
    response = api.upload(data, name="kitten.png", description="A kitten", altText="An orange square")
    assert response.status_code == 202, response.text
    asset = response.json()["data"]
    asset_id = asset["id"]

    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", asset_id), asset_id
    assert response.headers["Location"] == f"{API}/{asset_id}"
    assert asset["status"] == "ready"  # runEnrichment=false: ready at once, nothing runs
    assert asset["type"] == "image"
    assert asset["originalFileName"] == "kitten.png"
    assert asset["contentType"] == "image/png"
    assert asset["extension"] == ".png"
    assert asset["size"] == len(data)
    assert (asset["width"], asset["height"]) == (64, 48)
    assert asset["checksumSha256"] == hashlib.sha256(data).hexdigest()
    assert asset["description"] == "A kitten"
    assert asset["altText"] == "An orange square"
    assert asset["isPublic"] is True
    assert asset["storageProvider"] == "local"
    assert asset["storageProviderProfileId"] == default_profile_id(api)
    assert asset["derivatives"] == []
    assert asset["latestExecutionSummary"] is None

    key = asset["storageKey"]
    hex_id = asset_id.replace("-", "")
    assert re.fullmatch(rf"\d{{4}}/\d{{2}}/\d{{2}}/{hex_id}\.png", key), key
    created = datetime.fromisoformat(asset["createdAtUtc"])
    assert created.utcoffset().total_seconds() == 0
    assert key.startswith(f"{created:%Y/%m/%d}/")
    assert asset["storedFileName"] == key.rsplit("/", 1)[-1] == f"{hex_id}.png"
    assert asset["publicUrl"] == f"{shared_server.url}/content/{key}"

    stored = shared_server.root / "files" / key
    assert stored.read_bytes() == data
    assert incoming(shared_server.root) == []

    fetched = api.get(f"{API}/{asset_id}").json()["data"]
    for name in ("id", "status", "storageKey", "checksumSha256", "width", "height", "size", "publicUrl"):
        assert fetched[name] == asset[name]
    public = requests.get(asset["publicUrl"], timeout=30)  # anonymous
    assert public.status_code == 200
    assert public.content == data


def test_jpeg_upload_gets_jpg_extension(shared_server: StandaloneServer) -> None:
    data = jpeg_bytes(40, 30)
    asset = shared_server.api().upload_ok(data, name="photo.jpeg", content_type="image/jpeg")
    assert asset["contentType"] == "image/jpeg"
    assert asset["extension"] == ".jpg"
    assert asset["storageKey"].endswith(asset["id"].replace("-", "") + ".jpg")
    assert asset["storedFileName"].endswith(".jpg")
    assert (asset["width"], asset["height"]) == (40, 30)
    assert (shared_server.root / "files" / asset["storageKey"]).read_bytes() == data


def test_an_octet_stream_part_is_sniffed(shared_server: StandaloneServer) -> None:
    """curl sends application/octet-stream for extensions it does not know (.webp on many systems)."""
    webp = io.BytesIO()
    Image.new("RGB", (33, 22), (10, 200, 30)).save(webp, "WEBP")
    asset = shared_server.api().upload_ok(webp.getvalue(), name="leaf.webp", content_type="application/octet-stream")
    assert (asset["contentType"], asset["extension"], asset["width"]) == ("image/webp", ".webp", 33)

    for data in (b"<html><script>alert(1)</script></html>", bomb_png()):
        response = shared_server.api().upload(data, name="page.webp", content_type="application/octet-stream")
        error = assert_error(response, 400, "asset_content_type_not_allowed")
        assert "'application/octet-stream'" in error["message"] and ";type=image/webp" in error["message"]


def test_the_size_limit_message_names_the_limit_and_the_setting(small_server: StandaloneServer) -> None:
    error = assert_error(small_server.api().upload(png_bytes(200, 200, noise=True)), 400, "asset_file_too_large")
    assert "JUPYTER_ASSETS_MAX_UPLOAD_BYTES" in error["message"] and "KiB" in error["message"], error


@pytest.mark.parametrize(("orientation", "shown"), [(1, (300, 451)), (3, (300, 451)), (6, (451, 300)), (8, (451, 300))])
def test_width_and_height_are_the_picture_as_displayed(
    shared_server: StandaloneServer, orientation: int, shown: tuple[int, int]
) -> None:
    """A camera stores a portrait 300x451 with an EXIF orientation: 6 and 8 show it turned a quarter (451x300)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    api = shared_server.api()
    data = jpeg_bytes(300, 451, exif=exif.tobytes())
    asset = api.upload_ok(data, name="photo.jpg", content_type="image/jpeg", runEnrichment="true")
    assert (asset["width"], asset["height"]) == shown
    (thumbnail,) = api.wait_for_status(asset["id"])["derivatives"]  # what the thumbnail shows, in the same shape
    assert (thumbnail["width"], thumbnail["height"]) == ((256, 170) if shown[0] > shown[1] else (170, 256))


def test_content_type_parameters_and_case_are_accepted(shared_server: StandaloneServer) -> None:
    asset = shared_server.api().upload_ok(png_bytes(), content_type="IMAGE/PNG; charset=binary")
    assert asset["contentType"] == "image/png"


# -- every validation code ------------------------------------------------------------------------------------

LONG = "d" * 1001


def _upload(data: bytes = b"", **kwargs) -> Callable[[Api], requests.Response]:
    return lambda api: api.upload(data, **kwargs)


def _raw(*parts: bytes, close: bool = True) -> Callable[[Api], requests.Response]:
    return lambda api: post_multipart(api, multipart(*parts, close=close))


def case(case_id: str, send: Callable[[Api], requests.Response], code: str, *marks) -> object:
    return pytest.param(send, code, id=case_id, marks=marks)


VALIDATION_CASES = [
    case(
        "no-file-part",
        lambda api: api.post(API, data={"description": "x"}, files={"other": ("a.txt", b"x")}),
        "asset_file_required",
    ),
    case("file-under-another-name", _raw(part("image", png_bytes(), "a.png", "image/png")), "asset_file_required"),
    case("description-1001", _upload(png_bytes(), description=LONG), "asset_description_too_long"),
    case("description-1001-emoji", _upload(png_bytes(), description="🐱" * 1001), "asset_description_too_long"),
    case("description-huge", _upload(png_bytes(), description="d" * 40_000), "asset_description_too_long"),
    case("alt-text-1001", _upload(png_bytes(), altText=LONG), "asset_alt_text_too_long"),
    case("alt-text-huge", _upload(png_bytes(), altText="a" * 40_000), "asset_alt_text_too_long"),
    case("empty-file", _upload(b""), "asset_file_empty"),
    case("no-content-type", _raw(part("file", png_bytes(), "a.png")), "asset_content_type_missing"),
    case("bmp", _upload(bmp_bytes(), name="a.bmp", content_type="image/bmp"), "asset_content_type_not_allowed"),
    case("text-plain", _upload(b"hello", name="a.txt", content_type="text/plain"), "asset_content_type_not_allowed"),
    case("svg", _upload(b"<svg/>", name="a.svg", content_type="image/svg+xml"), "asset_content_type_not_allowed"),
    case("filename-control-only", _upload(png_bytes(), name="\x01\x02\x7f"), "asset_filename_invalid"),
    case("filename-slashes-only", _upload(png_bytes(), name="///"), "asset_filename_invalid"),
    case("filename-backslashes-only", _upload(png_bytes(), name="\\\\"), "asset_filename_invalid"),
    case("filename-blank", _upload(png_bytes(), name="   "), "asset_filename_invalid"),
    case("html-as-png", _upload(HTML, name="a.png"), "asset_content_type_mismatch"),
    case("jpeg-as-png", _upload(jpeg_bytes(), name="a.png"), "asset_content_type_mismatch"),
    case("png-as-jpeg", _upload(png_bytes(), name="a.jpg", content_type="image/jpeg"), "asset_content_type_mismatch"),
    case("truncated-png", _upload(truncated_png(), name="a.png"), "asset_image_unreadable"),
    # Over KEEP_IN_MEMORY the upload is checked from its incoming file, not from memory.
    case(
        "truncated-png-read-from-disk",
        _upload(noise_png_of_about(2_600_000)[:1_300_000], name="a.png"),
        "asset_image_unreadable",
    ),
    case("bomb-over-the-pixel-limit", _upload(bomb_png(12_000, 12_000), name="bomb.png"), "asset_image_too_large"),
    case("decompression-bomb", _upload(bomb_png(), name="bomb.png"), "asset_image_too_large"),
    case("is-public-maybe", _upload(png_bytes(), isPublic="maybe"), "request_invalid"),
    case("run-enrichment-perhaps", _upload(png_bytes(), runEnrichment="perhaps"), "request_invalid"),
    case("json-body", lambda api: api.post(API, json={"file": "x"}), "request_invalid"),
    case("urlencoded-body", lambda api: api.post(API, data={"file": "x"}), "request_invalid"),
    case(
        "multipart-without-boundary",
        lambda api: api.post(API, data=b"x", headers={"Content-Type": "multipart/form-data"}),
        "request_invalid",
    ),
    case(
        "body-cut-before-closing-boundary",
        _raw(part("file", png_bytes(), "a.png", "image/png"), close=False),
        "request_invalid",
    ),
]


@pytest.mark.parametrize(("send", "code"), VALIDATION_CASES)
def test_each_validation_code(shared_server: StandaloneServer, send, code: str) -> None:
    assert_refused(shared_server, lambda: send(shared_server.api()), 400, code)


def test_request_invalid_names_the_boolean_field(shared_server: StandaloneServer) -> None:
    api = shared_server.api()
    error = assert_refused(shared_server, lambda: api.upload(png_bytes(), isPublic="maybe"), 400, "request_invalid")
    assert "isPublic" in error["message"]
    error = assert_refused(
        shared_server, lambda: api.upload(png_bytes(), runEnrichment="perhaps"), 400, "request_invalid"
    )
    assert "runEnrichment" in error["message"]


ORDER_CASES = [
    case(
        "file-required-before-description",
        lambda api: api.post(API, data={"description": LONG, "altText": LONG}, files={"x": ("a", b"")}),
        "asset_file_required",
    ),
    case(
        "description-before-alt-text-and-empty",
        _upload(b"", description=LONG, altText=LONG),
        "asset_description_too_long",
    ),
    case("alt-text-before-empty", _upload(b"", altText=LONG), "asset_alt_text_too_long"),
    case("empty-before-content-type-missing", _raw(part("file", b"", "a.png")), "asset_file_empty"),
    case("content-type-missing-before-filename", _raw(part("file", HTML, "///")), "asset_content_type_missing"),
    case(
        "not-allowed-before-filename",
        _upload(HTML, name="///", content_type="text/html"),
        "asset_content_type_not_allowed",
    ),
    case("filename-before-mismatch", _upload(HTML, name="\x01/"), "asset_filename_invalid"),
    case(
        "mismatch-before-unreadable",
        _upload(truncated_png(), name="a.jpg", content_type="image/jpeg"),
        "asset_content_type_mismatch",
    ),
    case(
        "fields-after-the-file-count-too",
        _raw(part("file", b"", "a.png", "image/png"), part("description", LONG)),
        "asset_description_too_long",
    ),
]


@pytest.mark.parametrize(("send", "code"), ORDER_CASES)
def test_validation_order(shared_server: StandaloneServer, send, code: str) -> None:
    assert_refused(shared_server, lambda: send(shared_server.api()), 400, code)


def test_text_limits_count_code_points(shared_server: StandaloneServer) -> None:
    api = shared_server.api()
    exactly = api.upload_ok(png_bytes(), description="d" * 1000, altText="a" * 1000)
    assert exactly["description"] == "d" * 1000
    assert exactly["altText"] == "a" * 1000
    emoji = "🐱" * 1000  # 1000 code points, 4000 bytes of UTF-8
    asset = api.upload_ok(png_bytes(), description=emoji, altText="é" * 1000)
    assert asset["description"] == emoji
    assert asset["altText"] == "é" * 1000
    assert api.get(f"{API}/{asset['id']}").json()["data"]["description"] == emoji


# -- the size limit -------------------------------------------------------------------------------------------


def test_file_of_exactly_the_limit_is_accepted(small_server: StandaloneServer) -> None:
    data = png_of_exact_size(SMALL_LIMIT)
    asset = small_server.api().upload_ok(data)
    assert asset["size"] == len(data)


def test_file_just_over_the_limit_is_400(small_server: StandaloneServer) -> None:
    """The body fits the Content-Length allowance (limit + multipart overhead); the file itself is one byte over."""
    body = multipart(part("file", png_of_exact_size(SMALL_LIMIT + 1), "a.png", "image/png"))
    raw = raw_request(small_server.port, upload_head(small_server.port, len(body)) + body)
    status, payload = status_and_body(raw)
    assert status == 400
    assert b'"asset_file_too_large"' in payload


def test_file_too_large_comes_before_content_type_missing(small_server: StandaloneServer) -> None:
    api = small_server.api()
    assert_refused(
        small_server, lambda: post_multipart(api, multipart(part("file", b"y" * (SMALL_LIMIT + 1), "a.png"))), 400,
        "asset_file_too_large",
    )  # fmt: skip


def test_file_just_over_the_limit_leaves_nothing(small_server: StandaloneServer) -> None:
    """Whatever the answer, a file over the limit is not stored, not cataloged, and its temporary file is gone."""
    api = small_server.api()
    files_before, total_before = stored_files(small_server.root), total(api)
    body = multipart(part("file", png_bytes() + b"y" * SMALL_LIMIT, "a.png", "image/png"))
    raw_request(small_server.port, upload_head(small_server.port, len(body)) + body)
    assert stored_files(small_server.root) == files_before
    assert total(api) == total_before
    assert incoming(small_server.root) == []
    assert api.upload(png_bytes()).status_code == 202  # still serving


def test_body_far_over_the_limit_is_refused_with_the_code(shared_server: StandaloneServer) -> None:
    """20 MB declared against the default 10 MiB: refused from the headers alone (400 or 413, same code).

    Only the headers are sent: a server that answers early and closes may reset a client still sending, and the
    reset can swallow the answer; what matters here is the answer."""
    api = shared_server.api()
    files_before, total_before = stored_files(shared_server.root), total(api)
    declared = 20 * 1000 * 1000
    prefix = part("file", b"", "big.png", "image/png")[:-2]  # headers of the file part, no data yet
    raw = raw_request(shared_server.port, upload_head(shared_server.port, declared) + prefix)
    status, payload = status_and_body(raw)
    assert status in (400, 413)
    assert b'"code": "asset_file_too_large"' in payload
    assert stored_files(shared_server.root) == files_before
    assert total(api) == total_before
    assert incoming(shared_server.root) == []


def test_chunked_body_over_the_limit_is_answered(small_server: StandaloneServer) -> None:
    """No Content-Length (chunked): the limit is enforced while the body streams, and the client gets the code."""
    head = upload_head(small_server.port, None).replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    body = multipart(part("file", b"y" * (SMALL_LIMIT + 10), "a.png", "image/png"))
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, payload = status_and_body(raw_request(small_server.port, head + chunked))
    assert status in (400, 413)
    assert b'"asset_file_too_large"' in payload


@pytest.mark.duckdb_only  # about HTTP framing, not the catalog
def test_chunked_body_far_over_the_limit_is_answered_with_the_code(shared_server: StandaloneServer) -> None:
    """No Content-Length and 40 MiB against the default 10 MiB: the server reads a bounded part of the rest, then
    answers 413 with the envelope and stops reading; a client that watches for the answer (as curl does) gets it."""
    api = shared_server.api()
    files_before, total_before = stored_files(shared_server.root), total(api)
    head = upload_head(shared_server.port, None).replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    prefix = part("file", b"", "huge.png", "image/png")[:-2]

    def chunks() -> Iterator[bytes]:
        yield b"%x\r\n%s\r\n" % (len(prefix), prefix)
        for _ in range(40):
            yield b"%x\r\n%s\r\n" % (MiB, b"y" * MiB)
        yield b"0\r\n\r\n"

    raw = raw_request(shared_server.port, head, chunks(), watch_for_answer=True)
    assert stored_files(shared_server.root) == files_before
    assert total(api) == total_before
    assert incoming(shared_server.root) == []
    status, payload = status_and_body(raw)
    assert status in (400, 413)
    assert b'"asset_file_too_large"' in payload


# -- file names -----------------------------------------------------------------------------------------------


def test_path_in_file_name_is_dropped_and_never_used_for_storage(shared_server: StandaloneServer) -> None:
    api = shared_server.api()
    before = set(stored_files(shared_server.root))
    asset = api.upload_ok(png_bytes(), name="../../etc/passwd.png")
    assert asset["originalFileName"] == "passwd.png"
    key = asset["storageKey"]
    assert ".." not in key.split("/")
    assert "passwd" not in key
    new = set(stored_files(shared_server.root)) - before
    files_root = (shared_server.root / "files").resolve()
    assert [p.resolve() for p in new] == [(files_root / key).resolve()]
    assert (files_root / key).resolve().is_relative_to(files_root)
    library_parent = shared_server.root.parent
    assert not [p for p in library_parent.rglob("passwd*")]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("a\\b\\c.png", "c.png"),
        ("C:\\Users\\me\\Pictures\\d.png", "d.png"),
        ("dir/sub/e.png", "e.png"),
        ("  spaced.png  ", "spaced.png"),
        ("ki\x07tt\x1ben.png", "kitten.png"),
        ("\x00tab\tand\x7fdel.png", "tabanddel.png"),
    ],
)
def test_file_name_is_the_clean_last_segment(shared_server: StandaloneServer, sent: str, kept: str) -> None:
    asset = shared_server.api().upload_ok(png_bytes(), name=sent)
    assert asset["originalFileName"] == kept


@pytest.mark.parametrize("name", ["café.png", "猫-🐱.png"])
def test_unicode_file_name_is_kept(shared_server: StandaloneServer, name: str) -> None:
    api = shared_server.api()
    try:
        response = api.upload(png_bytes(), name=name)
    except requests.ConnectionError:
        pytest.fail("the server dropped the connection")
    assert response.status_code == 202, response.text
    assert response.json()["data"]["originalFileName"] == name


def test_second_file_part_is_request_invalid(shared_server: StandaloneServer) -> None:
    body = multipart(part("file", png_bytes(), "a.png", "image/png"), part("file", png_bytes(), "b.png", "image/png"))
    api = shared_server.api()
    try:
        assert_refused(shared_server, lambda: post_multipart(api, body), 400, "request_invalid")
    except requests.ConnectionError:
        pytest.fail("the server dropped the connection")


# -- boolean fields -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "public"), [("FALSE", False), ("false", False), ("False", False), ("TRUE", True), ("True", True)]
)
def test_is_public_in_any_case(shared_server: StandaloneServer, value: str, public: bool) -> None:
    api = shared_server.api()
    asset = api.upload_ok(png_bytes(), isPublic=value)
    assert asset["isPublic"] is public
    assert (asset["publicUrl"] is not None) is public
    fetched = api.get(f"{API}/{asset['id']}").json()["data"]
    assert fetched["isPublic"] is public
    assert (fetched["publicUrl"] is not None) is public
    content = requests.get(f"{shared_server.url}/content/{asset['storageKey']}", timeout=30)
    assert content.status_code == (200 if public else 404)


def test_private_upload_is_not_served_publicly(shared_server: StandaloneServer) -> None:
    asset = shared_server.api().upload_ok(png_bytes(), isPublic="FALSE")
    assert asset["publicUrl"] is None
    response = requests.get(f"{shared_server.url}/content/{asset['storageKey']}", timeout=30)
    assert_error(response, 404, "asset_not_found")


def test_run_enrichment_in_any_case(shared_server: StandaloneServer) -> None:
    api = shared_server.api()
    assert api.upload_ok(png_bytes(), runEnrichment="FALSE")["status"] == "ready"
    pending = api.upload_ok(png_bytes(), runEnrichment="TRUE")
    assert pending["status"] == "pending"  # the 202 is sent before any processing
    assert api.wait_for_status(pending["id"])["status"] == "ready"


# -- nothing left behind, memory, still serving ---------------------------------------------------------------


def test_client_that_disconnects_mid_body_leaves_nothing(shared_server: StandaloneServer) -> None:
    api = shared_server.api()
    files_before, total_before = stored_files(shared_server.root), total(api)
    prefix = part("file", b"", "gone.png", "image/png")[:-2] + png_bytes(300, 300)[:100] + b"\0" * (2 * MiB)
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=30) as sock:
        sock.sendall(upload_head(shared_server.port, 5 * MiB) + prefix)
        deadline = time.monotonic() + 10
        while not incoming(shared_server.root) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert incoming(shared_server.root), "the server must have started writing the file before the client left"
    deadline = time.monotonic() + 15
    while incoming(shared_server.root) and time.monotonic() < deadline:  # the server notices asynchronously
        time.sleep(0.05)
    assert incoming(shared_server.root) == []
    assert total(api) == total_before
    assert stored_files(shared_server.root) == files_before


def _rss(server: StandaloneServer) -> int:
    return psutil.Process(server.process.pid).memory_info().rss


def test_memory_stays_flat_on_a_200_mb_body(shared_server: StandaloneServer) -> None:
    api = shared_server.api()
    api.upload_ok(png_bytes(200, 200, noise=True))  # warm up: imports, threads, buffers
    before = _rss(shared_server)
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield part("file", b"", "huge.png", "image/png")[:-2]
        block = b"\x89" * MiB
        for _ in range(200):
            sent += len(block)
            yield block

    files_before, total_before = stored_files(shared_server.root), total(api)
    # The server stops reading; its answer is checked by test_chunked_body_far_over_the_limit_is_answered_*.
    with contextlib.suppress(requests.ConnectionError):
        api.post(API, data=body(), headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    growth = _rss(shared_server) - before
    assert growth < 30 * MiB, f"RSS grew by {growth / MiB:.1f} MiB"
    assert sent >= 10 * MiB  # the body really streamed past the limit
    assert stored_files(shared_server.root) == files_before
    assert total(api) == total_before
    assert incoming(shared_server.root) == []


def test_nine_megabyte_upload_succeeds_with_flat_memory(shared_server: StandaloneServer) -> None:
    api = shared_server.api()
    api.upload_ok(png_bytes(200, 200, noise=True))
    before = _rss(shared_server)
    data = noise_png_of_about(9_400_000)
    asset = api.upload_ok(data, name="big.png")
    growth = _rss(shared_server) - before
    assert asset["size"] == len(data)
    assert asset["checksumSha256"] == hashlib.sha256(data).hexdigest()
    assert (shared_server.root / "files" / asset["storageKey"]).read_bytes() == data
    assert growth < 30 * MiB, f"RSS grew by {growth / MiB:.1f} MiB"


def read_multipart(body: bytes, folder: Path) -> UploadForm:
    """Run the server's multipart reader over a whole body, as the upload handler does."""
    created: list[Path] = []

    def new_file() -> tuple[int, Path]:
        path = folder / f"{len(created)}.upload"
        created.append(path)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path

    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    reader = MultipartUpload(content_type, new_file, lambda form: None, lambda size: None)
    for start in range(0, len(body), 100_000):  # in pieces, as the body arrives
        reader.write(body[start : start + 100_000])
    return reader.finish()


@pytest.mark.parametrize("size", [KEEP_IN_MEMORY, KEEP_IN_MEMORY + 1])
def test_a_small_file_is_also_kept_in_memory_a_large_one_only_on_disk(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    form = read_multipart(multipart(part("file", data, "a.png", "image/png")), tmp_path)
    assert form.temp_path.read_bytes() == data
    assert form.sha256 == hashlib.sha256(data).hexdigest()
    assert form.data == (data if size <= KEEP_IN_MEMORY else None)


def test_server_keeps_serving_after_every_bad_request(shared_server: StandaloneServer) -> None:
    """Runs last in this module: after all the refusals above, reads and uploads still work."""
    assert shared_server.process.poll() is None
    api = shared_server.api()
    response = api.get(API)
    assert response.status_code == 200
    assert response.json()["data"]["total"] >= 1
    asset = api.upload_ok(png_bytes(10, 10))
    assert api.get(f"{API}/{asset['id']}").json()["data"]["status"] == "ready"
    assert incoming(shared_server.root) == []

"""What an attacker (or a buggy client) sends the standalone server: JSON nested past Python's recursion limit,
integers past INT64, unknown filter values, oversized bodies and URLs, stalled connections, and concurrent batch
deletes of the same ids. Each is answered with the envelope and a precise code, and the server keeps serving."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import ADMIN_KEY, StandaloneServer, assert_error, png_bytes

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture(scope="module")
def asset_id(shared_server: StandaloneServer) -> str:
    return shared_server.api().upload_ok(isPublic="false")["id"]


def test_json_nested_past_the_recursion_limit_is_request_invalid_on_every_json_route(
    shared_server: StandaloneServer, asset_id: str
) -> None:
    api = shared_server.api()
    for method, path in [
        ("PATCH", f"/api/v1/assets/{asset_id}"),
        ("DELETE", f"/api/v1/assets/{asset_id}"),
        ("POST", "/api/v1/assets/batch-delete"),
        ("POST", f"/api/v1/assets/{asset_id}/skills/thumbnail/run"),
        ("POST", "/api/v1/system/api-keys"),
        ("POST", "/api/v1/system/storage/providers"),
    ]:
        response = api.request(method, path, data=DEEP, headers={"Content-Type": "application/json"})
        error = assert_error(response, 400, "request_invalid")
        assert "nests too deeply" in error["message"], (method, path)
    assert api.get(f"/api/v1/assets/{asset_id}").status_code == 200


@pytest.mark.parametrize("page", ["9223372036854775807", "99999999999999999999999", "-9223372036854775809"])
def test_a_page_past_int64_is_request_invalid(shared_server: StandaloneServer, page: str) -> None:
    error = assert_error(shared_server.api().get(f"/api/v1/assets?page={page}"), 400, "request_invalid")
    assert "'page'" in error["message"]


def test_the_last_accepted_page_is_empty_and_a_huge_page_size_is_capped(shared_server: StandaloneServer) -> None:
    data = shared_server.api().get("/api/v1/assets?page=2147483647&pageSize=9223372036854775807")
    assert_error(data, 400, "request_invalid")  # pageSize is checked as page is
    data = shared_server.api().get("/api/v1/assets?page=2147483647&pageSize=100000").json()["data"]
    assert (data["items"], data["page"], data["pageSize"]) == ([], 2147483647, 100)


def test_an_unknown_status_filter_is_request_invalid(shared_server: StandaloneServer) -> None:
    error = assert_error(shared_server.api().get("/api/v1/assets?status=readyy"), 400, "request_invalid")
    assert "pending, processing, ready, failed" in error["message"]
    assert shared_server.api().get("/api/v1/assets?status=READY").status_code == 200


def test_a_json_body_over_4_mib_is_413_with_the_envelope(shared_server: StandaloneServer, asset_id: str) -> None:
    api = shared_server.api()
    body = b'{"description": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    for method, path in [("PATCH", f"/api/v1/assets/{asset_id}"), ("POST", "/api/v1/assets/batch-delete")]:
        response = api.request(method, path, data=body, headers={"Content-Type": "application/json"})
        error = assert_error(response, 413, "request_body_too_large")
        assert "4 MiB" in error["message"]
    assert api.get(f"/api/v1/assets/{asset_id}").json()["data"]["description"] is None


def test_a_url_over_64_kib_is_414_with_the_envelope(shared_server: StandaloneServer) -> None:
    response = shared_server.api().get("/api/v1/assets?q=" + "a" * (70 * 1024))
    assert_error(response, 414, "request_uri_too_long")
    assert shared_server.api().get("/api/v1/assets?q=" + "a" * 1000).status_code == 200


def test_concurrent_batch_deletes_account_for_every_id_exactly_once(make_server) -> None:
    server = make_server().start()
    api = server.api()
    for _ in range(3):
        ids = [api.upload_ok(png_bytes(8 + n, 8, (n, 0, 0)))["id"] for n in range(40)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda batch: api.post("/api/v1/assets/batch-delete", json=batch), [ids] * 8))
        answers = [response.json()["data"] for response in answers]
        for answer in answers:
            assert answer["requestedCount"] == answer["deletedCount"] + len(answer["notFoundIds"]), answer
        assert sum(answer["deletedCount"] for answer in answers) == len(ids), answers
    assert api.get("/api/v1/assets").json()["data"]["total"] == 0


def _closed_by_server(sock: socket.socket) -> bool:
    """Wait (up to the socket's timeout) for the server to close the connection, reading whatever it sends."""
    try:
        while sock.recv(65536):
            pass
        return True
    except TimeoutError:
        return False


def test_stalled_connections_are_timed_out_and_leave_nothing(make_server) -> None:
    server = make_server().start("--AssetsApp.idle_timeout=1", "--AssetsApp.body_timeout=2")
    head = (
        f"POST /api/v1/assets HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    ).encode()
    stalled = []
    for n in range(60):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        if n % 3 == 0:
            sock.sendall(b"GET /api/v1/assets HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a head that never ends
        elif n % 3 == 1:
            sock.sendall(head + png_bytes()[:100])  # an upload that stops mid-body
        stalled.append(sock)  # and a third that never sends a byte
    assert server.api().get("/api/v1/assets").status_code == 200  # served while they stall
    try:
        assert all(_closed_by_server(sock) for sock in stalled)
    finally:
        for sock in stalled:
            sock.close()
    assert server.api().get("/api/v1/assets").json()["data"]["total"] == 0
    # The server removes a stalled upload's incoming file when it closes the connection, just after the close.
    deadline = time.monotonic() + 10
    while list((server.root / "incoming").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list((server.root / "incoming").iterdir()) == []
    # Each timed-out request ended there: none was left waiting for its body until the server stopped.
    server.stop()
    assert " 500 " not in server.log(), server.log()[-2000:]


def test_the_server_still_serves_after_all_of_the_above(shared_server: StandaloneServer) -> None:
    assert requests.get(shared_server.url + "/api/v1/assets", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).ok

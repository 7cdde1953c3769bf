"""Managing API keys over HTTP while the server runs (the CLI cannot open a catalog that a server holds)."""

from __future__ import annotations

from conftest import ADMIN_KEY, assert_error


def test_admin_creates_lists_and_revokes_keys(server) -> None:
    admin = server.api(ADMIN_KEY)
    created = admin.post("/api/v1/system/api-keys", json={"name": "reader", "scopes": ["assets:read"]})
    assert created.status_code == 201
    record = created.json()["data"]
    key = record["key"]
    assert key.startswith("ja_") and record["prefix"] == key[:7] and record["scopes"] == ["assets:read"]

    reader = server.api(key)
    assert reader.get("/api/v1/assets").status_code == 200
    assert_error(reader.upload(b"x"), 403, "auth_forbidden")
    assert_error(reader.get("/api/v1/system/api-keys"), 403, "auth_forbidden")

    listed = admin.get("/api/v1/system/api-keys").json()["data"]
    assert [k["name"] for k in listed] == ["reader"]
    assert key not in str(listed)  # only the prefix is ever shown again

    assert admin.delete(f"/api/v1/system/api-keys/{record['id']}").status_code == 200
    assert_error(reader.get("/api/v1/assets"), 401, "api_key_invalid")
    assert admin.get("/api/v1/system/api-keys").json()["data"][0]["revokedAtUtc"] is not None
    assert_error(admin.delete(f"/api/v1/system/api-keys/{record['id']}"), 404, "api_key_not_found")
    assert key not in server.log()


def test_key_creation_validates_input(server) -> None:
    admin = server.api(ADMIN_KEY)
    assert_error(admin.post("/api/v1/system/api-keys", json={"scopes": ["assets:read"]}), 400, "request_invalid")
    assert_error(admin.post("/api/v1/system/api-keys", json={"name": "x", "scopes": ["root"]}), 400, "request_invalid")
    assert_error(admin.post("/api/v1/system/api-keys", json={"name": "x", "scopes": 5}), 400, "request_invalid")
    assert_error(admin.post("/api/v1/system/api-keys", json=[1]), 400, "request_invalid")
    assert admin.get("/api/v1/system/api-keys").json()["data"] == []

"""List, get, patch, delete, batch delete, content, skills, usage stats and the OpenAPI document, end to end."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import requests

from conftest import VALIDATED, Api, assert_error, default_profile_id, jpeg_bytes, png_bytes, stored_files


@pytest.fixture
def three_assets(api: Api) -> list[dict]:
    """Three assets with distinct names, sizes, types and texts, uploaded oldest first."""
    return [
        api.upload_ok(png_bytes(10, 10), name="red_fox.png", description="A Fox in snow"),
        api.upload_ok(jpeg_bytes(300, 200), name="cat.jpg", content_type="image/jpeg", altText="100%_real cat"),
        api.upload_ok(png_bytes(80, 80, noise=True), name="dog.png", description="dog on a beach"),
    ]


def ids(response: requests.Response) -> list[str]:
    return [item["id"] for item in response.json()["data"]["items"]]


def test_list_pages_and_defaults(api: Api, three_assets: list[dict]) -> None:
    newest_first = [a["id"] for a in reversed(three_assets)]
    body = api.get("/api/v1/assets").json()["data"]
    assert (body["page"], body["pageSize"], body["total"]) == (1, 20, 3)
    assert [item["id"] for item in body["items"]] == newest_first
    page2 = api.get("/api/v1/assets?page=2&pageSize=2").json()["data"]
    assert [item["id"] for item in page2["items"]] == newest_first[2:]
    assert (page2["page"], page2["pageSize"], page2["total"]) == (2, 2, 3)
    # Fallbacks, never errors: page < 1 -> 1, pageSize < 1 -> 20, pageSize > 100 -> 100.
    fallback = api.get("/api/v1/assets?page=0&pageSize=0").json()["data"]
    assert (fallback["page"], fallback["pageSize"]) == (1, 20)
    assert api.get("/api/v1/assets?pageSize=1000").json()["data"]["pageSize"] == 100
    assert_error(api.get("/api/v1/assets?page=abc"), 400, "request_invalid")


def test_list_search_is_case_insensitive_and_literal(api: Api, three_assets: list[dict]) -> None:
    fox, cat, dog = three_assets
    assert ids(api.get("/api/v1/assets?q=FOX")) == [fox["id"]]  # description and file name, any case
    assert ids(api.get("/api/v1/assets?query=beach")) == [dog["id"]]
    assert ids(api.get("/api/v1/assets?keyword=cat.JPG")) == [cat["id"]]
    assert ids(api.get("/api/v1/assets?q=100%25_real")) == [cat["id"]]  # alt text; % and _ are literal
    assert ids(api.get("/api/v1/assets?q=%25")) == [cat["id"]]
    assert ids(api.get("/api/v1/assets?q=_")) == [cat["id"], fox["id"]]  # red_fox.png and 100%_real
    assert ids(api.get("/api/v1/assets?q=nothing-like-this")) == []


def test_list_filters_and_sorting(api: Api, three_assets: list[dict]) -> None:
    fox, cat, dog = three_assets
    assert ids(api.get("/api/v1/assets?contentType=image/jpeg")) == [cat["id"]]
    assert set(ids(api.get("/api/v1/assets?contentType=image/*"))) == {fox["id"], cat["id"], dog["id"]}
    assert ids(api.get("/api/v1/assets?contentType=image/p*")) == []  # only a trailing "/*" is a wildcard
    assert len(ids(api.get("/api/v1/assets?status=ready"))) == 3
    assert ids(api.get("/api/v1/assets?status=pending")) == []
    by_size = sorted(three_assets, key=lambda a: a["size"])
    assert ids(api.get("/api/v1/assets?orderBy=size&orderDirection=asc")) == [a["id"] for a in by_size]
    assert ids(api.get("/api/v1/assets?sortBy=size&sortDirection=desc")) == [a["id"] for a in reversed(by_size)]
    assert ids(api.get("/api/v1/assets?orderBy=createdAtUtc&orderDirection=asc")) == [fox["id"], cat["id"], dog["id"]]
    # Unknown values fall back to the defaults (createdAtUtc, desc).
    assert ids(api.get("/api/v1/assets?orderBy=colour&orderDirection=sideways")) == [dog["id"], cat["id"], fox["id"]]


def test_get_returns_full_asset(api: Api) -> None:
    data = png_bytes(33, 22)
    created = api.upload_ok(data, name="tiny.png", description="d", altText="a")
    asset = api.get(f"/api/v1/assets/{created['id']}").json()["data"]
    assert asset["checksumSha256"] == hashlib.sha256(data).hexdigest()
    assert (asset["width"], asset["height"], asset["size"]) == (33, 22, len(data))
    assert asset["derivatives"] == [] and asset["structuredResults"] == []
    assert asset["latestExecutionSummary"] is None
    assert asset["description"] == "d" and asset["altText"] == "a"


def test_get_unknown_or_malformed_id_is_404(api: Api) -> None:
    assert_error(api.get(f"/api/v1/assets/{uuid.uuid4()}"), 404, "asset_not_found")
    assert_error(api.get("/api/v1/assets/not-a-uuid"), 404, "asset_not_found")
    # Ids are parsed leniently (upper case is the same id).
    created = api.upload_ok()
    assert api.get(f"/api/v1/assets/{created['id'].upper()}").status_code == 200


def test_patch_semantics(api: Api) -> None:
    created = api.upload_ok(description="keep me", altText="alt")
    path = f"/api/v1/assets/{created['id']}"
    unchanged = api.patch(path, json={}).json()["data"]
    assert unchanged["description"] == "keep me" and unchanged["altText"] == "alt"
    assert unchanged["updatedAtUtc"] >= created["updatedAtUtc"]
    cleared = api.patch(path, json={"description": None}).json()["data"]
    assert cleared["description"] is None and cleared["altText"] == "alt"
    renamed = api.patch(path, json={"originalFileName": "  folder/new name.png ", "altText": "new"}).json()["data"]
    assert renamed["originalFileName"] == "new name.png" and renamed["altText"] == "new"
    private = api.patch(path, json={"isPublic": False}).json()["data"]
    assert private["isPublic"] is False and private["publicUrl"] is None
    public = api.patch(path, json={"isPublic": True}).json()["data"]
    assert public["publicUrl"].endswith(created["storageKey"])
    assert_error(api.patch(path, json={"isPublic": None}), 400, "request_invalid")
    assert_error(api.patch(path, json={"isPublic": "yes"}), 400, "request_invalid")
    assert_error(api.patch(path, json={"originalFileName": "   "}), 400, "asset_filename_invalid")
    assert_error(api.patch(path, json={"originalFileName": None}), 400, "request_invalid")
    assert_error(api.patch(path, json={"description": "x" * 1001}), 400, "asset_description_too_long")
    assert_error(api.patch(path, json={"altText": "x" * 1001}), 400, "asset_alt_text_too_long")
    assert_error(api.patch(path, json={"description": 5}), 400, "request_invalid")
    assert_error(
        api.patch(path, data="{not json", headers={"Content-Type": "application/json"}), 400, "request_invalid"
    )
    assert_error(api.patch(path, json=["a list"]), 400, "request_invalid")
    assert_error(api.patch(f"/api/v1/assets/{uuid.uuid4()}", json={}), 404, "asset_not_found")
    # The id in another spelling of the same UUID (as GET accepts it) changes the asset, not a 500.
    spelled = api.patch(f"/api/v1/assets/{created['id'].upper()}", json={"altText": "upper"}).json()["data"]
    assert spelled["id"] == created["id"] and spelled["altText"] == "upper"
    api.patch(path, json={"altText": "new"})
    # None of the refused patches changed anything.
    final = api.get(path).json()["data"]
    assert (final["description"], final["altText"], final["originalFileName"]) == (None, "new", "new name.png")


def test_delete_removes_row_and_files(server, api: Api) -> None:
    created = api.upload_ok(runEnrichment="true")
    api.wait_for_status(created["id"])
    assert len(stored_files(server.root)) == 2  # the original and its thumbnail
    response = api.delete(f"/api/v1/assets/{created['id']}", json={"commitMessage": "Remove test asset"})
    assert response.status_code == 200
    assert response.json()["data"]["id"] == created["id"]
    assert response.json()["data"]["status"] == "ready"
    assert stored_files(server.root) == []
    assert_error(api.get(f"/api/v1/assets/{created['id']}"), 404, "asset_not_found")
    assert_error(api.get(f"/api/v1/assets/{created['id']}/content"), 404, "asset_not_found")
    assert_error(api.delete(f"/api/v1/assets/{created['id']}"), 404, "asset_not_found")
    assert_error(api.delete("/api/v1/assets/nope"), 404, "asset_not_found")
    other = api.upload_ok()
    assert_error(
        api.delete(f"/api/v1/assets/{other['id']}", data="{oops", headers={"Content-Type": "application/json"}),
        400,
        "request_invalid",
    )
    assert api.get(f"/api/v1/assets/{other['id']}").status_code == 200


def test_batch_delete(server, api: Api) -> None:
    a, b, c = (api.upload_ok() for _ in range(3))
    missing = str(uuid.uuid4())
    response = api.post("/api/v1/assets/batch-delete", json=[a["id"], missing, a["id"], "not-a-uuid"])
    assert response.json()["data"] == {"requestedCount": 4, "deletedCount": 1, "notFoundIds": [missing, "not-a-uuid"]}
    response = api.post("/api/v1/assets/batch-delete", json={"ids": [b["id"]]})
    assert response.json()["data"] == {"requestedCount": 1, "deletedCount": 1, "notFoundIds": []}
    assert_error(api.post("/api/v1/assets/batch-delete", json=[str(uuid.uuid4())] * 1001), 400, "request_invalid")
    assert_error(api.post("/api/v1/assets/batch-delete", json={"ids": "x"}), 400, "request_invalid")
    assert_error(api.post("/api/v1/assets/batch-delete", json=[1, 2]), 400, "request_invalid")
    assert_error(
        api.post("/api/v1/assets/batch-delete", data="[", headers={"Content-Type": "application/json"}),
        400,
        "request_invalid",
    )
    remaining = api.get("/api/v1/assets").json()["data"]
    assert [item["id"] for item in remaining["items"]] == [c["id"]]
    assert len(stored_files(server.root)) == 1


def test_content_redirects_public_and_streams_private(server, api: Api) -> None:
    data = png_bytes(50, 40, noise=True)
    public = api.upload_ok(data)
    response = api.get(f"/api/v1/assets/{public['id']}/content")
    assert response.status_code == 307
    assert response.headers["Location"] == public["publicUrl"] == f"{server.url}/content/{public['storageKey']}"
    anonymous = requests.get(public["publicUrl"], timeout=10)
    assert anonymous.status_code == 200 and anonymous.content == data
    assert anonymous.headers["Content-Type"] == "image/png"
    assert anonymous.headers["X-Content-Type-Options"] == "nosniff"
    assert anonymous.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    head = requests.head(public["publicUrl"], timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data)) and not head.content

    private = api.upload_ok(data, isPublic="false")
    streamed = api.get(f"/api/v1/assets/{private['id']}/content")
    assert streamed.status_code == 200 and streamed.content == data
    ranged = api.get(f"/api/v1/assets/{private['id']}/content", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == data[10:20]
    assert ranged.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    suffix = api.get(f"/api/v1/assets/{private['id']}/content", headers={"Range": "bytes=-5"})
    assert suffix.status_code == 206 and suffix.content == data[-5:]
    unsatisfiable = api.get(f"/api/v1/assets/{private['id']}/content", headers={"Range": f"bytes={len(data)}-"})
    assert_error(unsatisfiable, 416, "range_not_satisfiable")
    assert unsatisfiable.headers["Content-Range"] == f"bytes */{len(data)}"
    cached = api.get(f"/api/v1/assets/{private['id']}/content", headers={"If-None-Match": streamed.headers["ETag"]})
    assert cached.status_code == 304
    # The anonymous route never serves a private asset, nor a made-up or escaping key.
    assert_error(requests.get(f"{server.url}/content/{private['storageKey']}", timeout=10), 404, "asset_not_found")
    assert_error(requests.get(f"{server.url}/content/2026/01/01/nothing.png", timeout=10), 404, "asset_not_found")
    assert_error(requests.get(f"{server.url}/content/..%2f..%2fcatalog.duckdb", timeout=10), 404, "asset_not_found")
    assert_error(requests.get(f"{server.url}/api/v1/assets/{private['id']}/content", timeout=10), 401, "auth_required")


def test_public_route_serves_derivatives_of_public_assets_only(server, api: Api) -> None:
    asset = api.wait_for_status(api.upload_ok(png_bytes(400, 300), runEnrichment="true")["id"])
    thumbnail = asset["derivatives"][0]
    assert thumbnail["kind"] == "thumbnail_256" and (thumbnail["width"], thumbnail["height"]) == (256, 192)
    response = requests.get(thumbnail["publicUrl"], timeout=10)
    assert response.status_code == 200 and response.content[8:12] == b"WEBP"
    api.patch(f"/api/v1/assets/{asset['id']}", json={"isPublic": False})
    hidden = api.get(f"/api/v1/assets/{asset['id']}").json()["data"]
    assert hidden["derivatives"][0]["publicUrl"] is None
    assert_error(requests.get(thumbnail["publicUrl"], timeout=10), 404, "asset_not_found")


def test_skills_list_and_run(api: Api) -> None:
    skills = api.get("/api/v1/assets/skills").json()["data"]
    thumbnail = next(skill for skill in skills if skill["name"] == "thumbnail")
    assert thumbnail["skillName"] == "thumbnail" and thumbnail["steps"] == ["generate_thumbnail"]
    assert thumbnail["parameters"] == {"type": "object", "properties": {}}
    created = api.upload_ok(png_bytes(20, 10))
    result = api.post(f"/api/v1/assets/{created['id']}/skills/thumbnail/run", json={}).json()["data"]
    assert result["succeeded"] is True and result["skillName"] == "thumbnail"
    assert result["steps"] == [{"name": "generate_thumbnail", "succeeded": True, "errorMessage": None}]
    assert [d["kind"] for d in result["asset"]["derivatives"]] == ["thumbnail_256"]
    summary = result["asset"]["latestExecutionSummary"]
    assert summary["skillName"] == "thumbnail" and summary["triggerSource"] == "manual" and summary["succeeded"]
    # Running again replaces the derivative rather than adding a second one.
    again = api.post(f"/api/v1/assets/{created['id']}/skills/generate_thumbnail/run").json()["data"]
    assert len(again["asset"]["derivatives"]) == 1
    assert_error(api.post(f"/api/v1/assets/{created['id']}/skills/levitate/run", json={}), 404, "skill_not_found")
    assert_error(
        api.post(f"/api/v1/assets/{created['id']}/skills/thumbnail/run", json={"parameters": {"size": 3}}),
        400,
        "skill_parameters_invalid",
    )
    assert_error(
        api.post(f"/api/v1/assets/{created['id']}/skills/thumbnail/run", json={"parameters": [1]}),
        400,
        "skill_parameters_invalid",
    )
    assert_error(api.post(f"/api/v1/assets/{uuid.uuid4()}/skills/thumbnail/run", json={}), 404, "asset_not_found")


def test_usage_stats(api: Api) -> None:
    empty = api.get("/api/v1/assets/usage-stats").json()["data"]
    assert empty == {
        "totalAssets": 0,
        "totalBytes": 0,
        "totalDerivatives": 0,
        "contentTypeBreakdown": [],
        "mostActiveSkill": None,
    }
    png = api.upload_ok(png_bytes(10, 10), runEnrichment="true")
    api.wait_for_status(png["id"])
    jpg = api.upload_ok(jpeg_bytes(), name="a.jpg", content_type="image/jpeg")
    doomed = api.upload_ok(png_bytes(12, 12), runEnrichment="true")
    api.wait_for_status(doomed["id"])
    api.delete(f"/api/v1/assets/{doomed['id']}")
    api.post(f"/api/v1/assets/{png['id']}/skills/thumbnail/run")
    stats = api.get("/api/v1/assets/usage-stats").json()["data"]
    assert stats["totalAssets"] == 2
    assert stats["totalBytes"] == png["size"] + jpg["size"]
    assert stats["totalDerivatives"] == 1  # the thumbnail is replaced, not duplicated; the deleted one's went
    assert stats["contentTypeBreakdown"] == [
        {"contentType": "image/jpeg", "count": 1, "totalBytes": jpg["size"]},
        {"contentType": "image/png", "count": 1, "totalBytes": png["size"]},
    ]
    assert stats["mostActiveSkill"] == {"skillName": "thumbnail", "runCount": 2}


def test_openapi_document_is_served_and_checked(server, api: Api) -> None:
    document = api.get("/api/v1/assets/openapi.json")
    assert document.status_code == 200
    spec = document.json()
    assert spec["openapi"].startswith("3.1") and "/api/v1/assets" in spec["paths"]
    assert_error(requests.get(f"{server.url}/api/v1/assets/openapi.json", timeout=10), 401, "auth_required")
    # The client wrapper validated responses of every kind against the document during this session.
    api.upload_ok()
    api.get("/api/v1/assets")
    assert {"AssetEnvelope", "AssetPageEnvelope", "ErrorEnvelope"} <= set(VALIDATED)


def test_unknown_routes_and_methods_use_the_envelope(server, api: Api) -> None:
    assert_error(api.get("/api/v1/nothing"), 404, "not_found")
    assert_error(api.request("PUT", "/api/v1/assets"), 405, "method_not_allowed")


def test_upload_to_a_storage_profile_that_does_not_exist(server, api: Api) -> None:
    missing = str(uuid.uuid4())
    assert_error(api.upload(png_bytes(), storageProviderProfileId=missing), 404, "storage_provider_profile_not_found")
    assert_error(api.upload(png_bytes(), storageProviderProfileId="not-a-uuid"), 400, "request_invalid")
    assert api.upload_ok(storageProviderProfileId="")["storageProviderProfileId"] == default_profile_id(api)
    assert len(stored_files(server.root)) == 1

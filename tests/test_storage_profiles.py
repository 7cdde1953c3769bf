"""Storage provider profiles over HTTP (`/api/v1/system/storage/providers`) against a real `jupyter-assets serve`
subprocess: the overview, create/patch/set-default/delete with their validation codes, and uploads routed to a
profile's storage: a local folder, a real S3-compatible server (moto's, on the loopback) and a bare git repository
reached by a file:// URL. Secrets are write-only: never in a response, never in the server's log."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
import requests

from conftest import (
    ADMIN_KEY,
    JWT_SECRET,
    Api,
    StandaloneServer,
    assert_error,
    catalog_rows,
    free_port,
    plain_s3_client,
    png_bytes,
    server_env,
    stored_files,
)

PROVIDERS = "/api/v1/system/storage/providers"
REGION = "us-east-1"
# Distinctive values, so that finding one in a response or a log line cannot be a coincidence.
ACCESS_KEY = "AKIAPROFILEACCESS7Q2W"
SECRET_KEY = "s3cr3t-Profile-Qw9eR7tY5uI3oP1aS-zX8c"
TOKEN = "ghp_pr0file-T0KEN-9f8e7d6c5b4a3210"
LOCAL_SECRET = "l0cal-s3cret-that-must-be-refused-77"
SECRETS: list[str] = [ACCESS_KEY, SECRET_KEY, TOKEN, LOCAL_SECRET]
S3_SECRETS = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}

PROFILE_KEYS = {
    "id", "name", "displayName", "providerType", "isEnabled", "isDefault", "capabilities", "configurationSummary",
    "createdAtUtc", "updatedAtUtc",
}  # fmt: skip
SUMMARY_KEYS = {
    "providerName", "rootPath", "endpointHost", "bucketOrContainer", "region", "publicBaseUrl", "forcePathStyle",
    "owner", "repository", "reference", "releaseTagMode", "fixedTag", "pathPrefix", "visibilityPolicy", "basePath",
    "assetPathPrefix", "apiBaseUrl", "rawBaseUrl",
}  # fmt: skip
CAPABILITY_FLAGS = [
    "supportsPublicRead", "supportsPrivateRead", "supportsVisibilityToggle", "supportsDelete",
    "supportsDirectPublicUrl", "requiresAccessProxy", "recommendedForPrimaryStorage", "isPlatformBacked",
    "isExperimental", "requiresTokenForPrivateRead",
]  # fmt: skip
# peer-behaviour §8.1, in the order of CAPABILITY_FLAGS
CAPABILITIES = {
    "local": dict(zip(CAPABILITY_FLAGS, [True, True, True, True, False, True, True, False, False, False], strict=True)),
    "s3": dict(zip(CAPABILITY_FLAGS, [True, True, True, True, True, False, True, False, False, False], strict=True)),
    "github-repo": dict(
        zip(CAPABILITY_FLAGS, [True, True, False, True, True, True, False, True, True, True], strict=True)
    ),
}
NO_DEFAULT_ALIGNMENT = {
    "runtimeSelectionSource": "configuration",
    "hasDefaultProfile": False,
    "isDefaultProfileEnabled": None,
    "providerTypeMatchesDefaultProfile": None,
    "code": "db_default_profile_missing",
    "message": "No default write profile is set in database. Runtime provider is selected from configuration.",
}
ENABLED_DEFAULT_ALIGNMENT = {
    "runtimeSelectionSource": "database-default-profile",
    "hasDefaultProfile": True,
    "isDefaultProfileEnabled": True,
    "providerTypeMatchesDefaultProfile": True,
    "code": "runtime_matches_db_default_provider_type",
    "message": "Runtime write target is resolved from the database default write profile.",
}
DISABLED_DEFAULT_ALIGNMENT = {
    "runtimeSelectionSource": "database-default-profile",
    "hasDefaultProfile": True,
    "isDefaultProfileEnabled": False,
    "providerTypeMatchesDefaultProfile": True,
    "code": "db_default_profile_disabled",
    "message": "Database default write profile is disabled. Uploads without an explicit storage profile will be "
    "rejected until the default profile is enabled or replaced.",
}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Writer",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test Writer",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}
MISSING_ID = "0196a3b4-0000-7000-8000-000000000000"


# -- helpers --------------------------------------------------------------------------------------------------


class RecordingApi(Api):
    """The conftest client that also keeps every response body, so a test can prove no secret was ever sent back."""

    def __init__(self, base_url: str, credential: str | None, seen: list[str]) -> None:
        super().__init__(base_url, credential)
        self.seen = seen

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = super().request(method, path, **kwargs)
        # Bodies only: a presigned S3 URL in a 307's Location carries the access key *id* (X-Amz-Credential), as
        # SigV4 requires; the tests that get one check its Location themselves.
        self.seen.append(f"{method} {path} {response.status_code} {response.text}")
        return response


def isolated_env(tmp: Path, **overrides: str) -> dict[str, str]:
    """The server's environment without any AWS credentials: a profile's own secrets are the only ones it has."""
    env = {key: value for key, value in server_env(**overrides).items() if not key.startswith("AWS_")}
    env.update(
        {
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-credentials"),
            "AWS_CONFIG_FILE": str(tmp / "no-config"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def local_body(name: str, root: Path, **extra: Any) -> dict[str, Any]:
    return {"name": name, "providerType": "local", "configuration": {"rootPath": str(root)}, **extra}


def s3_configuration(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {"endpoint": endpoint, "bucket": bucket, "region": REGION, "forcePathStyle": True, **extra}


def s3_body(name: str, endpoint: str, bucket: str, secrets: dict[str, str] | None = None, **extra: Any) -> dict:
    return {
        "name": name,
        "providerType": "s3",
        "configuration": s3_configuration(endpoint, bucket, **extra.pop("configuration", {})),
        "secretConfiguration": S3_SECRETS if secrets is None else secrets,
        **extra,
    }


def create(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(PROVIDERS, json=body)
    assert response.status_code == 201, response.text
    profile = response.json()["data"]
    assert response.headers["Location"] == f"{PROVIDERS}/{profile['id']}"
    assert_profile_shape(profile)
    return profile


def overview(api: Api) -> dict[str, Any]:
    response = api.get(PROVIDERS)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert set(data) >= {"profiles", "defaultProfile", "defaultWriteProfile", "runtime", "alignment"}
    for profile in data["profiles"]:
        assert_profile_shape(profile)
    return data


def profile_named(api: Api, name: str) -> dict[str, Any]:
    matches = [p for p in overview(api)["profiles"] if p["name"] == name]
    assert len(matches) == 1, matches
    return matches[0]


def assert_profile_shape(profile: dict[str, Any]) -> None:
    assert set(profile) == PROFILE_KEYS, sorted(profile)
    assert profile["providerType"] in CAPABILITIES
    assert profile["capabilities"] == CAPABILITIES[profile["providerType"]]
    assert set(profile["configurationSummary"]) >= SUMMARY_KEYS, sorted(profile["configurationSummary"])
    assert isinstance(profile["isEnabled"], bool) and isinstance(profile["isDefault"], bool)
    uuid.UUID(profile["id"])


def assert_no_secrets(seen: list[str], server: StandaloneServer, *extra: str) -> None:
    secrets = [*SECRETS, *extra]
    assert seen, "no response was recorded"
    for text in seen:
        for secret in secrets:
            assert secret not in text, f"a secret came back in: {text[:300]}"
    log = server.log()
    for secret in secrets:
        assert secret not in log


def total_assets(api: Api) -> int:
    response = api.get("/api/v1/assets")
    assert response.status_code == 200
    return response.json()["data"]["total"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_IDENTITY}, capture_output=True, text=True, check=True
    ).stdout


def git_bytes(cwd: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_IDENTITY}, capture_output=True, check=True
    ).stdout


def bucket_keys(raw: Any, bucket: str, prefix: str = "") -> list[str]:
    listed = raw.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


# -- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw(moto_endpoint: str) -> Any:
    """A plain boto3 client, to make buckets and check what is really in them."""
    return plain_s3_client(moto_endpoint, REGION, ACCESS_KEY, SECRET_KEY)


@pytest.fixture
def bucket(raw: Any) -> str:
    name = f"profiles-{uuid.uuid4().hex[:12]}"
    raw.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def seen() -> list[str]:
    return []


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneServer]:
    """One server for the module. No test sets a default profile on it, so uploads without a profile id stay on
    its own local storage."""
    base = tmp_path_factory.mktemp("profiles")
    server = StandaloneServer(base / "library", free_port(), isolated_env(base)).start()
    yield server
    server.stop()


@pytest.fixture
def api(srv: StandaloneServer, seen: list[str]) -> RecordingApi:
    return RecordingApi(srv.url, ADMIN_KEY, seen)


@pytest.fixture(scope="module")
def existing(srv: StandaloneServer, seen: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A local profile whose name the validation cases collide with."""
    return create(
        RecordingApi(srv.url, ADMIN_KEY, seen), local_body("existing-local", tmp_path_factory.mktemp("existing"))
    )


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


# -- access ---------------------------------------------------------------------------------------------------


def test_only_admins_manage_profiles(api: RecordingApi, srv: StandaloneServer, seen: list[str], tmp_path: Path) -> None:
    profile = create(api, local_body(unique("guarded"), tmp_path))
    created = api.post("/api/v1/system/api-keys", json={"name": "editor", "scopes": ["assets:read", "assets:write"]})
    assert created.status_code == 201, created.text
    key = created.json()["data"]["key"]
    now = int(time.time())
    token = jwt.encode(
        {"sub": "bob", "scope": "assets:read assets:write assets:delete", "iat": now, "exp": now + 600},
        JWT_SECRET,
        algorithm="HS256",
    )
    for credential in (key, token):
        other = RecordingApi(srv.url, credential, seen)
        assert other.get("/api/v1/assets").status_code == 200  # the credential itself is fine
        assert_error(other.get(PROVIDERS), 403, "auth_forbidden")
        assert_error(other.post(PROVIDERS, json=local_body(unique("nope"), tmp_path)), 403, "auth_forbidden")
        assert_error(other.patch(f"{PROVIDERS}/{profile['id']}", json={"displayName": "x"}), 403, "auth_forbidden")
        assert_error(other.post(f"{PROVIDERS}/{profile['id']}/set-default"), 403, "auth_forbidden")
        assert_error(other.delete(f"{PROVIDERS}/{profile['id']}"), 403, "auth_forbidden")
    assert_error(RecordingApi(srv.url, None, seen).get(PROVIDERS), 401, "auth_required")
    # nothing changed
    after = profile_named(api, profile["name"])
    assert after["displayName"] == profile["displayName"] and after["isDefault"] is False
    assert not [p for p in overview(api)["profiles"] if p["name"].startswith("nope-")]


# -- create ---------------------------------------------------------------------------------------------------


def test_create_each_type_and_read_them_back(
    api: RecordingApi, srv: StandaloneServer, seen: list[str], moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    local = create(api, local_body(unique("  local"), tmp_path / "local", displayName="  Local pictures "))
    assert local["name"].startswith("local-") and local["name"] == local["name"].strip()
    assert local["displayName"] == "Local pictures"
    assert local["providerType"] == "local"
    assert local["isEnabled"] is True and local["isDefault"] is False
    assert local["configurationSummary"]["rootPath"] == str(tmp_path / "local")
    assert local["createdAtUtc"] and local["updatedAtUtc"]

    s3 = create(api, s3_body(unique("s3"), moto_endpoint, bucket, configuration={"prefix": "tenant/a"}))
    assert s3["providerType"] == "s3"
    assert s3["displayName"] is None
    summary = s3["configurationSummary"]
    assert summary["endpointHost"] == moto_endpoint.removeprefix("http://")
    assert summary["bucketOrContainer"] == bucket
    assert summary["region"] == REGION
    assert summary["forcePathStyle"] is True
    assert summary["publicBaseUrl"] is None

    alias = create(
        api, {**s3_body(unique("compat"), moto_endpoint, bucket), "providerType": "s3-compatible", "isEnabled": False}
    )
    assert alias["providerType"] == "s3"  # the alias is answered as the type name
    assert alias["isEnabled"] is False

    github = create(
        api,
        {
            "name": unique("github"),
            "providerType": "github-repo",
            "configuration": {"owner": "octo", "repo": "pics", "ref": "main", "basePath": "images"},
            "secretConfiguration": {"token": TOKEN},
        },
    )
    assert github["providerType"] == "github-repo"
    summary = github["configurationSummary"]
    assert (summary["owner"], summary["repository"], summary["reference"]) == ("octo", "pics", "main")
    assert summary["basePath"] == "images"

    response = api.get(PROVIDERS)
    listed = {p["id"]: p for p in response.json()["data"]["profiles"]}
    for profile in (local, s3, alias, github):
        assert listed[profile["id"]] == profile
    for secret_key in ("secretConfiguration", "accessKey", "secretKey", "token"):
        assert f'"{secret_key}"' not in response.text
    assert_no_secrets(seen, srv)


def test_list_order_is_enabled_first_then_by_name(api: RecordingApi, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    names = [f"order-{tag}-a-off", f"order-{tag}-b-on", f"order-{tag}-c-off", f"order-{tag}-d-on"]
    for name in reversed(names):
        create(api, local_body(name, tmp_path / name, isEnabled=name.endswith("-on")))
    mine = [p["name"] for p in overview(api)["profiles"] if p["name"].startswith(f"order-{tag}-")]
    assert mine == [names[1], names[3], names[0], names[2]]


VALID_LOCAL = {"rootPath": "/tmp/jupyter-assets-profile-root"}
DEAD = "http://127.0.0.1:9"
GIT_CFG = {"repo": "pics", "ref": "main"}


def case(code: str, providerType: str | None = "local", **body: Any) -> Any:  # noqa: N803 (the JSON field name)
    """A create body (`...` for a field means: leave it out) and the code it must be refused with."""
    body.setdefault("name", "x1")
    body.setdefault("configuration", VALID_LOCAL)
    if providerType is not None:
        body["providerType"] = providerType
    sent = {key: value for key, value in body.items() if value is not ...}
    return pytest.param(sent, f"storage_provider_profile_{code}", id=f"{code}-{json.dumps(sent)[:60]}")


CREATE_CASES = [
    case("provider_type_required", providerType=None),
    case("provider_type_required", providerType="  "),
    case("provider_type_required", providerType="", name=""),
    case("name_required", name=...),
    case("name_required", name="   "),
    case("name_required", providerType="ftp", name=" "),
    case("name_conflict", name="existing-local"),
    case("name_conflict", name="EXISTING-Local"),
    case("name_conflict", providerType="ftp", name="Existing-LOCAL"),
    case("provider_type_unsupported", providerType="ftp"),
    case("provider_type_unsupported", providerType="azure-blob", configuration={}),
    case("configuration_required", configuration=...),
    case("configuration_required", configuration=None),
    case("configuration_required", configuration="rootPath=/tmp"),
    case("configuration_required", configuration=["/tmp"]),
    case("configuration_required", providerType="s3", configuration=5),
    case("secret_configuration_invalid", secretConfiguration="k"),
    case("secret_configuration_invalid", providerType="s3", configuration={}, secretConfiguration=[1]),
    case("root_path_required", configuration={}),
    case("root_path_required", configuration={"rootPath": "  "}),
    case("secret_not_supported", secretConfiguration={"token": LOCAL_SECRET}),
    case("bucket_required", "s3", configuration={"endpoint": DEAD, "region": REGION}, secretConfiguration=S3_SECRETS),
    case(
        "bucket_required",
        "s3-compatible",
        configuration={"endpoint": DEAD, "bucket": " ", "region": REGION},
        secretConfiguration=S3_SECRETS,
    ),
    case(
        "endpoint_invalid",
        "s3",
        configuration={"endpoint": "ftp://127.0.0.1", "bucket": "b", "region": REGION},
        secretConfiguration=S3_SECRETS,
    ),
    case(
        "endpoint_invalid",
        "s3",
        configuration={"endpoint": "not a url", "bucket": "b", "region": REGION},
        secretConfiguration=S3_SECRETS,
    ),
    case("endpoint_invalid", "s3", configuration={"bucket": "b", "region": REGION}, secretConfiguration=S3_SECRETS),
    case("github_owner_required", "github-repo", configuration=GIT_CFG),
    case(
        "github_owner_required",
        "github-repo",
        configuration={**GIT_CFG, "owner": " "},
        secretConfiguration={"token": TOKEN},
    ),
    case("default_requires_enabled", isEnabled=False, isDefault=True),
]


@pytest.mark.parametrize(("body", "code"), CREATE_CASES)
def test_create_validation(
    api: RecordingApi, srv: StandaloneServer, seen: list[str], existing: dict[str, Any], body: dict, code: str
) -> None:
    before = overview(api)
    assert_error(api.post(PROVIDERS, json=body), 400, code)
    after = overview(api)
    assert after["profiles"] == before["profiles"]
    assert after["defaultProfile"] is None
    assert_no_secrets(seen, srv)


def test_create_with_a_body_that_is_not_an_object(api: RecordingApi) -> None:
    before = overview(api)["profiles"]
    response = api.post(PROVIDERS, data=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert_error(
        api.post(PROVIDERS, data=b"{not json", headers={"Content-Type": "application/json"}), 400, "request_invalid"
    )
    assert overview(api)["profiles"] == before


# -- patch ----------------------------------------------------------------------------------------------------


def test_patch_changes_only_what_is_sent(api: RecordingApi, existing: dict[str, Any], tmp_path: Path) -> None:
    profile = create(api, local_body(unique("patchme"), tmp_path / "one", displayName="One"))
    time.sleep(0.01)
    renamed = api.patch(f"{PROVIDERS}/{profile['id']}", json={"name": f"  {profile['name']}-renamed  "})
    assert renamed.status_code == 200, renamed.text
    data = renamed.json()["data"]
    assert_profile_shape(data)
    assert data["name"] == f"{profile['name']}-renamed"
    assert data["displayName"] == "One"
    assert data["configurationSummary"]["rootPath"] == str(tmp_path / "one")
    assert data["createdAtUtc"] == profile["createdAtUtc"]
    assert data["updatedAtUtc"] > profile["updatedAtUtc"]

    moved = api.patch(
        f"{PROVIDERS}/{profile['id']}",
        json={"displayName": "Two", "configuration": {"rootPath": str(tmp_path / "two")}, "isEnabled": False},
    )
    assert moved.status_code == 200, moved.text
    data = moved.json()["data"]
    assert (data["displayName"], data["isEnabled"]) == ("Two", False)
    assert data["configurationSummary"]["rootPath"] == str(tmp_path / "two")
    assert profile_named(api, data["name"]) == data

    url = f"{PROVIDERS}/{profile['id']}"
    assert_error(
        api.patch(f"{PROVIDERS}/{MISSING_ID}", json={"displayName": "x"}), 404, "storage_provider_profile_not_found"
    )
    assert_error(api.patch(url, json={"name": "EXISTING-LOCAL"}), 400, "storage_provider_profile_name_conflict")
    assert_error(api.patch(url, json={"name": "  "}), 400, "storage_provider_profile_name_required")
    assert_error(api.patch(url, json={"configuration": {}}), 400, "storage_provider_profile_root_path_required")
    assert_error(api.patch(url, json={"configuration": "x"}), 400, "storage_provider_profile_configuration_required")
    assert_error(
        api.patch(url, json={"secretConfiguration": {"token": LOCAL_SECRET}}),
        400,
        "storage_provider_profile_secret_not_supported",
    )
    assert_error(
        api.patch(url, json={"secretConfiguration": 3}), 400, "storage_provider_profile_secret_configuration_invalid"
    )
    assert profile_named(api, data["name"]) == data  # the refused patches changed nothing
    # its own name, in another case, is not a conflict
    same = api.patch(url, json={"name": data["name"].upper()})
    assert same.status_code == 200, same.text
    assert same.json()["data"]["name"] == data["name"].upper()


def test_set_default_and_delete_answer_404_for_unknown_ids(api: RecordingApi) -> None:
    assert_error(api.post(f"{PROVIDERS}/{MISSING_ID}/set-default"), 404, "storage_provider_profile_not_found")
    assert_error(api.delete(f"{PROVIDERS}/{MISSING_ID}"), 404, "storage_provider_profile_not_found")


# -- uploads through a profile ------------------------------------------------------------------------------


def test_upload_without_profiles_uses_the_servers_local_storage(api: RecordingApi, srv: StandaloneServer) -> None:
    data = png_bytes(20, 10, color=(1, 2, 3))
    asset = api.upload_ok(data, isPublic="false")
    assert asset["storageProvider"] == "local"
    assert asset["storageProviderProfileId"] is None
    assert (srv.root / "files" / asset["storageKey"]).read_bytes() == data


def test_upload_with_unknown_or_disabled_profile(api: RecordingApi, tmp_path: Path) -> None:
    total = total_assets(api)
    assert_error(
        api.upload(png_bytes(), storageProviderProfileId=MISSING_ID), 404, "storage_provider_profile_not_found"
    )
    disabled = create(api, local_body(unique("disabled"), tmp_path / "off", isEnabled=False))
    response = api.upload(png_bytes(), storageProviderProfileId=disabled["id"])
    assert_error(response, 400, "storage_provider_profile_disabled")
    assert total_assets(api) == total
    assert not (tmp_path / "off").exists() or not any((tmp_path / "off").rglob("*.png"))


def test_local_profile_stores_under_its_root(api: RecordingApi, srv: StandaloneServer, tmp_path: Path) -> None:
    root = tmp_path / "elsewhere"
    root.mkdir()
    profile = create(api, local_body(unique("local-root"), root))
    before = stored_files(srv.root)
    data = png_bytes(33, 22, color=(9, 99, 199))
    asset = api.upload_ok(data, isPublic="false", storageProviderProfileId=profile["id"])
    assert asset["storageProviderProfileId"] == profile["id"]
    assert asset["storageProvider"] == "local"
    assert (root / asset["storageKey"]).read_bytes() == data
    assert stored_files(srv.root) == before  # not in the server's own folder
    detail = api.get(f"/api/v1/assets/{asset['id']}").json()["data"]
    assert detail["storageProviderProfileId"] == profile["id"]
    content = api.get(f"/api/v1/assets/{asset['id']}/content")
    assert content.status_code == 200
    assert content.content == data
    assert api.delete(f"/api/v1/assets/{asset['id']}").status_code == 200
    assert not (root / asset["storageKey"]).exists()


def test_s3_profile_round_trip(
    api: RecordingApi, srv: StandaloneServer, seen: list[str], moto_endpoint: str, bucket: str, raw: Any
) -> None:
    profile = create(api, s3_body(unique("s3-trip"), moto_endpoint, bucket, configuration={"prefix": "tenant/pics"}))
    before = stored_files(srv.root)

    data = png_bytes(40, 30, noise=True)
    private = api.upload_ok(data, isPublic="false", storageProviderProfileId=profile["id"])
    assert private["storageProviderProfileId"] == profile["id"]
    assert private["storageProvider"] == "s3"
    key = f"tenant/pics/{private['storageKey']}"
    assert raw.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    # The object carries the asset's checksum (S3 checks the body against it and keeps it).
    stored_checksum = raw.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")["ChecksumSHA256"]
    assert base64.b64decode(stored_checksum).hex() == private["checksumSha256"] == hashlib.sha256(data).hexdigest()
    assert stored_files(srv.root) == before  # nothing on the server's disk

    content = api.get(f"/api/v1/assets/{private['id']}/content")
    assert content.status_code == 200
    assert content.content == data
    ranged = api.get(f"/api/v1/assets/{private['id']}/content", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206
    assert ranged.content == data[:10]

    public_data = png_bytes(41, 31, noise=True)
    public = api.upload_ok(public_data, isPublic="true", storageProviderProfileId=profile["id"])
    redirect = api.get(f"/api/v1/assets/{public['id']}/content")
    assert redirect.status_code == 307, redirect.text
    location = redirect.headers["Location"]
    assert location.startswith(f"{moto_endpoint}/{bucket}/tenant/pics/{public['storageKey']}?")
    assert "X-Amz-Signature=" in location
    assert SECRET_KEY not in location and TOKEN not in location
    assert (
        location.count(ACCESS_KEY) == 1 and f"X-Amz-Credential={ACCESS_KEY}%2F" in location
    )  # only where SigV4 puts it
    downloaded = requests.get(location, timeout=10)  # plain HTTP, no credentials
    assert downloaded.status_code == 200
    assert downloaded.content == public_data
    # Without a public base URL the bucket has no lasting public URL: the asset's publicUrl is this server's
    # anonymous /content route, which streams it from the bucket.
    assert public["publicUrl"] == f"{srv.url}/content/{public['storageKey']}"
    anonymous = requests.get(public["publicUrl"], timeout=10)
    assert anonymous.status_code == 200 and anonymous.content == public_data

    assert api.delete(f"/api/v1/assets/{private['id']}").status_code == 200
    assert api.delete(f"/api/v1/assets/{public['id']}").status_code == 200
    assert bucket_keys(raw, bucket) == []
    assert_no_secrets(seen, srv)


def test_s3_profile_enrichment_stores_the_thumbnail_in_the_bucket(
    api: RecordingApi, moto_endpoint: str, bucket: str, raw: Any
) -> None:
    profile = create(api, s3_body(unique("s3-thumb"), moto_endpoint, bucket, configuration={"prefix": "thumbs"}))
    data = png_bytes(600, 400, noise=True)
    asset = api.upload_ok(data, isPublic="false", runEnrichment="true", storageProviderProfileId=profile["id"])
    ready = api.wait_for_status(asset["id"], ("ready",))
    assert [d["kind"] for d in ready["derivatives"]] == ["thumbnail_256"]
    thumbnail = ready["derivatives"][0]
    keys = bucket_keys(raw, bucket)
    assert len(keys) == 2, keys
    assert f"thumbs/{asset['storageKey']}" in keys
    (thumbnail_key,) = [k for k in keys if k != f"thumbs/{asset['storageKey']}"]
    assert thumbnail_key.startswith("thumbs/") and thumbnail_key.endswith(thumbnail["extension"])
    stored = raw.get_object(Bucket=bucket, Key=thumbnail_key)["Body"].read()
    assert len(stored) == thumbnail["size"]
    assert stored[:4] == b"RIFF" and stored[8:12] == b"WEBP"

    assert api.delete(f"/api/v1/assets/{asset['id']}").status_code == 200
    assert bucket_keys(raw, bucket) == []  # the original and its thumbnail


def test_s3_endpoint_down_is_a_clear_400_and_leaves_no_asset(
    api: RecordingApi, srv: StandaloneServer, seen: list[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    profile = create(api, s3_body(unique("s3-down"), dead, "bucket"))
    total = total_assets(api)
    files = stored_files(srv.root)
    started = time.monotonic()
    response = api.upload(png_bytes(), isPublic="false", storageProviderProfileId=profile["id"])
    assert_error(response, 400, "storage_provider_unavailable")
    assert time.monotonic() - started < 30
    assert total_assets(api) == total
    assert stored_files(srv.root) == files
    assert_no_secrets(seen, srv)


@pytest.fixture
def moto_checks_credentials(moto_endpoint: str, bucket: str) -> Iterator[tuple[str, str]]:
    """moto's request authentication on (it is off by default) for one test, with one real IAM access key; the
    test's bucket is made before, while any credentials are accepted."""
    iam = boto3.client(
        "iam", endpoint_url=moto_endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y"
    )
    user = f"user-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def test_patch_without_secrets_keeps_the_stored_secret(
    api: RecordingApi,
    srv: StandaloneServer,
    seen: list[str],
    moto_endpoint: str,
    bucket: str,
    moto_checks_credentials: tuple[str, str],
) -> None:
    access_key, secret_key = moto_checks_credentials
    right = {"accessKey": access_key, "secretKey": secret_key}
    profile = create(api, s3_body(unique("s3-kept"), moto_endpoint, bucket, secrets=right))
    url = f"{PROVIDERS}/{profile['id']}"
    api.upload_ok(png_bytes(), isPublic="false", storageProviderProfileId=profile["id"])  # the secret works

    patched = api.patch(url, json={"displayName": "Renamed only"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["displayName"] == "Renamed only"
    kept = api.upload_ok(png_bytes(12, 12), isPublic="false", storageProviderProfileId=profile["id"])
    assert kept["storageProviderProfileId"] == profile["id"]
    assert api.get(f"/api/v1/assets/{kept['id']}/content").status_code == 200

    # the secret really is what moto checks: a wrong one is refused, the right one again accepted
    wrong = api.patch(url, json={"secretConfiguration": {"accessKey": access_key, "secretKey": SECRET_KEY}})
    assert wrong.status_code == 200, wrong.text
    total = total_assets(api)
    refused = api.upload(png_bytes(), isPublic="false", storageProviderProfileId=profile["id"])
    assert_error(refused, 400, "storage_provider_access_denied")
    assert total_assets(api) == total
    assert api.patch(url, json={"secretConfiguration": right}).status_code == 200
    api.upload_ok(png_bytes(), isPublic="false", storageProviderProfileId=profile["id"])
    assert_no_secrets(seen, srv, access_key, secret_key)


def test_github_repo_profile_commits_uploads_and_deletes(
    api: RecordingApi, srv: StandaloneServer, seen: list[str], remote: Path
) -> None:
    profile = create(
        api,
        {
            "name": unique("git"),
            "providerType": "github-repo",
            "configuration": {"remoteUrl": remote.as_uri(), "owner": "octo", "repo": "pics", "ref": "main"},
            "secretConfiguration": {"token": TOKEN},
        },
    )
    assert profile["configurationSummary"]["reference"] == "main"
    data = png_bytes(25, 25, noise=True)
    asset = api.upload_ok(data, isPublic="true", storageProviderProfileId=profile["id"], commitMessage="Add kitten")
    assert asset["storageProviderProfileId"] == profile["id"]
    assert asset["storageProvider"] == "github-repo"
    key = asset["storageKey"]
    assert asset["publicUrl"] == f"https://raw.githubusercontent.com/octo/pics/main/{key}"
    assert git(remote, "log", "-1", "--format=%s", "main").strip() == "Add kitten"
    assert git_bytes(remote, "show", f"main:{key}") == data

    redirect = api.get(f"/api/v1/assets/{asset['id']}/content")
    assert redirect.status_code == 307
    assert redirect.headers["Location"] == asset["publicUrl"]
    private = api.patch(f"/api/v1/assets/{asset['id']}", json={"isPublic": False})
    assert private.status_code == 200
    streamed = api.get(f"/api/v1/assets/{asset['id']}/content")
    assert streamed.status_code == 200
    assert streamed.content == data

    deleted = api.delete(f"/api/v1/assets/{asset['id']}", json={"commitMessage": "Remove kitten"})
    assert deleted.status_code == 200, deleted.text
    assert git(remote, "log", "-1", "--format=%s", "main").strip() == "Remove kitten"
    assert key in git(remote, "show", "--name-status", "--format=", "main")
    assert key not in git(remote, "ls-tree", "-r", "--name-only", "main")
    assert git(remote, "log", "--format=%s", "main").splitlines() == ["Remove kitten", "Add kitten"]
    assert_no_secrets(seen, srv)


# -- delete ---------------------------------------------------------------------------------------------------


def test_delete_removes_an_unused_profile_and_disables_one_holding_assets(
    api: RecordingApi, moto_endpoint: str, bucket: str, raw: Any, tmp_path: Path
) -> None:
    unused = create(api, local_body(unique("unused"), tmp_path / "unused"))
    response = api.delete(f"{PROVIDERS}/{unused['id']}")
    assert response.status_code == 200, response.text
    result = response.json()["data"]
    assert set(result) == {"id", "wasDefault", "status", "deletedAtUtc"}
    assert (result["id"], result["wasDefault"], result["status"]) == (unused["id"], False, "deleted")
    assert unused["id"] not in [p["id"] for p in overview(api)["profiles"]]
    assert_error(api.delete(f"{PROVIDERS}/{unused['id']}"), 404, "storage_provider_profile_not_found")
    # the name is free again
    create(api, local_body(unused["name"], tmp_path / "unused"))

    used = create(api, s3_body(unique("used"), moto_endpoint, bucket))
    data = png_bytes(50, 50, noise=True)
    first = api.upload_ok(data, isPublic="false", storageProviderProfileId=used["id"])
    second = api.upload_ok(png_bytes(51, 51, noise=True), isPublic="false", storageProviderProfileId=used["id"])
    response = api.delete(f"{PROVIDERS}/{used['id']}")
    assert response.status_code == 200, response.text
    result = response.json()["data"]
    assert (result["id"], result["wasDefault"], result["status"]) == (used["id"], False, "disabled")
    after = profile_named(api, used["name"])
    assert after["isEnabled"] is False and after["isDefault"] is False
    assert_error(api.upload(png_bytes(), storageProviderProfileId=used["id"]), 400, "storage_provider_profile_disabled")

    # its assets stay readable and deletable
    content = api.get(f"/api/v1/assets/{first['id']}/content")
    assert content.status_code == 200
    assert content.content == data
    assert api.delete(f"/api/v1/assets/{first['id']}").status_code == 200
    assert bucket_keys(raw, bucket) == [second["storageKey"]]
    assert api.delete(f"/api/v1/assets/{second['id']}").status_code == 200
    assert bucket_keys(raw, bucket) == []


# -- the default profile (fresh servers: these tests change what uploads without a profile id do) -----------


@pytest.mark.duckdb_only  # starts without any profile, which a team library cannot (it needs a shared default)
def test_default_profile_lifecycle(make_server, tmp_path: Path) -> None:
    server = make_server().start()
    seen: list[str] = []
    api = RecordingApi(server.url, ADMIN_KEY, seen)

    fresh = overview(api)
    assert fresh["profiles"] == []
    assert fresh["defaultProfile"] is None and fresh["defaultWriteProfile"] is None
    assert fresh["runtime"] == {
        "providerType": "local",
        "providerName": "local",
        "capabilities": CAPABILITIES["local"],
        "isConfigurationDriven": True,
        "matchesDefaultProfileType": None,
    }
    assert fresh["alignment"] == NO_DEFAULT_ALIGNMENT
    plain = api.upload_ok(png_bytes(), isPublic="false")
    assert (plain["storageProvider"], plain["storageProviderProfileId"]) == ("local", None)
    assert (server.root / "files" / plain["storageKey"]).is_file()

    first = create(api, local_body("b-first", tmp_path / "first"))
    second = create(api, local_body("c-second", tmp_path / "second", isDefault=True))
    assert second["isDefault"] is True
    listed = overview(api)
    assert listed["defaultProfile"] == listed["defaultWriteProfile"] == profile_named(api, "c-second")
    assert [p["name"] for p in listed["profiles"]] == ["c-second", "b-first"]
    assert listed["runtime"] == {
        "providerType": "local",
        "providerName": "local",
        "capabilities": CAPABILITIES["local"],
        "isConfigurationDriven": False,
        "matchesDefaultProfileType": True,
    }
    assert listed["alignment"] == ENABLED_DEFAULT_ALIGNMENT

    data = png_bytes(14, 15, noise=True)
    on_default = api.upload_ok(data, isPublic="false")
    assert on_default["storageProviderProfileId"] == second["id"]
    assert on_default["storageProvider"] == "local"
    assert (tmp_path / "second" / on_default["storageKey"]).read_bytes() == data
    explicit = api.upload_ok(png_bytes(), isPublic="false", storageProviderProfileId=first["id"])
    assert explicit["storageProviderProfileId"] == first["id"]
    assert (tmp_path / "first" / explicit["storageKey"]).is_file()

    # the default must stay enabled
    assert_error(
        api.patch(f"{PROVIDERS}/{second['id']}", json={"isEnabled": False}),
        400,
        "storage_provider_profile_default_requires_enabled",
    )
    assert profile_named(api, "c-second")["isEnabled"] is True

    # set-default moves the flag
    moved = api.post(f"{PROVIDERS}/{first['id']}/set-default")
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["isDefault"] is True and moved.json()["data"]["id"] == first["id"]
    listed = overview(api)
    assert [(p["name"], p["isDefault"]) for p in listed["profiles"]] == [("b-first", True), ("c-second", False)]
    assert listed["defaultProfile"]["id"] == first["id"]
    assert api.upload_ok(png_bytes(), isPublic="false")["storageProviderProfileId"] == first["id"]

    # a disabled profile cannot become the default; unknown ids are 404
    off = create(api, local_body("a-off", tmp_path / "off", isEnabled=False))
    assert_error(
        api.post(f"{PROVIDERS}/{off['id']}/set-default"), 400, "storage_provider_profile_default_requires_enabled"
    )
    assert_error(api.post(f"{PROVIDERS}/{MISSING_ID}/set-default"), 404, "storage_provider_profile_not_found")
    listed = overview(api)
    assert [p["name"] for p in listed["profiles"]] == ["b-first", "c-second", "a-off"]  # default, enabled, disabled
    assert listed["defaultProfile"]["id"] == first["id"]

    # creating with isDefault takes the flag from the others
    third = create(api, local_body("d-third", tmp_path / "third", isDefault=True))
    listed = overview(api)
    assert [(p["name"], p["isDefault"]) for p in listed["profiles"]] == [
        ("d-third", True), ("b-first", False), ("c-second", False), ("a-off", False),
    ]  # fmt: skip

    # deleting the default (it holds nothing) leaves no default: back to the server's own storage
    response = api.delete(f"{PROVIDERS}/{third['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["wasDefault"] is True
    assert response.json()["data"]["status"] == "deleted"
    listed = overview(api)
    assert listed["defaultProfile"] is None and listed["defaultWriteProfile"] is None
    assert listed["alignment"] == NO_DEFAULT_ALIGNMENT
    assert listed["runtime"]["isConfigurationDriven"] is True
    again = api.upload_ok(png_bytes(), isPublic="false")
    assert again["storageProviderProfileId"] is None
    assert (server.root / "files" / again["storageKey"]).is_file()

    # deleting a default that holds assets disables it and clears the flag; its assets stay readable
    api.post(f"{PROVIDERS}/{second['id']}/set-default")
    response = api.delete(f"{PROVIDERS}/{second['id']}")
    assert response.status_code == 200, response.text
    assert (response.json()["data"]["wasDefault"], response.json()["data"]["status"]) == (True, "disabled")
    gone = profile_named(api, "c-second")
    assert gone["isEnabled"] is False and gone["isDefault"] is False
    assert overview(api)["defaultProfile"] is None
    content = api.get(f"/api/v1/assets/{on_default['id']}/content")
    assert content.status_code == 200 and content.content == data
    assert api.upload_ok(png_bytes(), isPublic="false")["storageProviderProfileId"] is None
    assert_no_secrets(seen, server)


# On a team library the restart below would declare its configured default profile again, undoing the edit.
@pytest.mark.duckdb_only
def test_a_disabled_default_refuses_uploads_without_a_profile(make_server, tmp_path: Path) -> None:
    """The API never lets the default be disabled; a catalog edited behind the server's back (as by an older
    version, or by hand) can hold one. The overview says so and uploads without an explicit profile are refused."""
    server = make_server().start()
    seen: list[str] = []
    api = RecordingApi(server.url, ADMIN_KEY, seen)
    default = create(api, local_body("the-default", tmp_path / "default", isDefault=True))
    other = create(api, local_body("the-other", tmp_path / "other"))
    server.stop()
    catalog_rows(server, "UPDATE storage_profiles SET is_enabled = false WHERE id = ?", (default["id"],))
    server.start()
    api = RecordingApi(server.url, ADMIN_KEY, seen)

    listed = overview(api)
    assert listed["defaultProfile"]["id"] == default["id"]
    assert listed["defaultProfile"]["isEnabled"] is False and listed["defaultProfile"]["isDefault"] is True
    assert listed["defaultWriteProfile"] == listed["defaultProfile"]
    assert listed["alignment"] == DISABLED_DEFAULT_ALIGNMENT
    assert listed["runtime"]["providerType"] == "local"
    assert listed["runtime"]["isConfigurationDriven"] is False
    assert listed["profiles"][0]["id"] == default["id"]  # the default comes first, even disabled

    total = total_assets(api)
    assert_error(api.upload(png_bytes()), 400, "storage_provider_default_write_profile_disabled")
    assert total_assets(api) == total
    explicit = api.upload_ok(png_bytes(), isPublic="false", storageProviderProfileId=other["id"])
    assert explicit["storageProviderProfileId"] == other["id"]
    # making an enabled profile the default repairs it
    assert api.post(f"{PROVIDERS}/{other['id']}/set-default").status_code == 200
    assert overview(api)["alignment"] == ENABLED_DEFAULT_ALIGNMENT
    assert api.upload_ok(png_bytes(), isPublic="false")["storageProviderProfileId"] == other["id"]

"""Authentication and authorization of the standalone server (`jupyter-assets serve` in a subprocess): API keys from
configuration and from `jupyter-assets keys`, JWTs (HS256, RS256, ES256), scopes, ownership, and no secret in logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import io
import json
import re
import time
from pathlib import Path

import jwt
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import ADMIN_KEY, JWT_SECRET, Api, StandaloneServer, assert_error, catalog_rows, png_bytes

ALL_SCOPES = "assets:read assets:write assets:delete"
SENT_TO_SHARED: list[str] = []  # every credential the shared server has seen, for the final log check


# -- helpers --------------------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(sub: str | None = "alice", scope: str | None = ALL_SCOPES, ttl: float | None = 3600, **extra) -> dict:
    now = int(time.time())
    payload: dict = {"iat": now, **extra}
    if sub is not None:
        payload["sub"] = sub
    if scope is not None:
        payload["scope"] = scope
    if ttl is not None:
        payload["exp"] = now + ttl
    return payload


def hs256(secret: str = JWT_SECRET, **kwargs) -> str:
    return jwt.encode(claims(**kwargs), secret, algorithm="HS256")


def hand_made_token(header: dict, payload: dict, hmac_key: bytes | None) -> str:
    """A JWT built by hand: PyJWT refuses to sign with a PEM as an HMAC secret, and `alg: none` needs no key."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = b"" if hmac_key is None else hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def assert_401(response, code: str) -> None:
    assert_error(response, 401, code)
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), response.headers


def assert_log_clean(server: StandaloneServer, *secrets: str) -> None:
    log = server.log()
    assert log, "the server wrote no log at all"
    for secret in secrets:
        assert secret not in log, f"a credential leaked into the server log: {secret[:12]}..."


@pytest.fixture
def shared(shared_server: StandaloneServer):
    """An Api for the module's shared server that remembers every credential it sends."""

    def as_(credential: str | None = ADMIN_KEY) -> Api:
        if credential:
            SENT_TO_SHARED.append(credential)
        return shared_server.api(credential)

    return as_


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def private_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- the Authorization header ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/assets", "/api/v1/assets/usage-stats", "/api/v1/assets/skills", "/api/v1/assets/openapi.json"]
)
def test_no_authorization_is_401_auth_required(shared, path):
    assert_401(shared(None).get(path), "auth_required")


def test_unknown_key_and_wrong_scheme_are_401(shared):
    assert_401(shared("not-a-key-anyone-made").get("/api/v1/assets"), "api_key_invalid")
    assert_401(shared(ADMIN_KEY[:-1]).get("/api/v1/assets"), "api_key_invalid")  # a prefix is not the key
    # The right key in the wrong scheme is still refused.
    basic = "Basic " + base64.b64encode(f"user:{ADMIN_KEY}".encode()).decode()
    response = shared(None).get("/api/v1/assets", headers={"Authorization": basic})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # A valid key without the scheme is refused with the form the header must have, not as an invalid key.
    response = shared(None).get("/api/v1/assets", headers={"Authorization": ADMIN_KEY})
    error = assert_error(response, 401, "auth_required")
    assert "Bearer <" in error["message"]
    # The scheme name is case-insensitive (RFC 9110), the key is not.
    assert shared(None).get("/api/v1/assets", headers={"Authorization": f"bearer {ADMIN_KEY}"}).status_code == 200
    assert_401(shared(ADMIN_KEY.upper()).get("/api/v1/assets"), "api_key_invalid")


def test_a_refused_request_does_not_break_a_kept_alive_connection(shared_server):
    """Requests sent one after another on one connection, the way browsers and HTTP libraries reuse them: a
    refusal either keeps the connection usable or says it closes it, never drops it silently."""
    connection = http.client.HTTPConnection("127.0.0.1", shared_server.port, timeout=10)
    for credential in ("not-a-key", ADMIN_KEY, None, ADMIN_KEY):
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        connection.request("GET", "/api/v1/assets", headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == (200 if credential == ADMIN_KEY else 401)
        if response.will_close:
            connection.close()  # announced: http.client reconnects for the next request
    connection.close()


def test_config_keys_are_comma_separated_and_each_has_every_scope(make_server):
    server = make_server(JUPYTER_ASSETS_API_KEYS="first-config-key,second-config-key").start()
    first, second = server.api("first-config-key"), server.api("second-config-key")
    private = first.upload_ok(isPublic="false")
    # Each config key sees (and may delete) the other's private asset: config keys act as admin.
    assert second.get(f"/api/v1/assets/{private['id']}").status_code == 200
    assert second.get("/api/v1/assets").json()["data"]["total"] == 1
    assert first.get("/api/v1/assets/usage-stats").json()["data"]["totalAssets"] == 1
    assert second.delete(f"/api/v1/assets/{private['id']}").status_code == 200
    # The joined string and the key of the default configuration are not keys here.
    assert_401(server.api("first-config-key,second-config-key").get("/api/v1/assets"), "api_key_invalid")
    assert_401(server.api(ADMIN_KEY).get("/api/v1/assets"), "api_key_invalid")
    assert_log_clean(server, "first-config-key", "second-config-key", JWT_SECRET)


def test_owners_of_different_credential_kinds_never_collide(make_server):
    """A JWT whose subject spells an API key's owner ("key:svc") or the configured keys' ("config-key") owns
    nothing of theirs: each kind of credential has its own namespace of owners."""
    server = make_server(JUPYTER_ASSETS_JWT_SECRET=JWT_SECRET).start()
    admin = server.api()
    created = admin.post("/api/v1/system/api-keys", json={"name": "svc", "scopes": ALL_SCOPES.split()})
    service = server.api(created.json()["data"]["key"])
    by_key = service.upload_ok(png_bytes(20, 20, (9, 9, 9)), isPublic="false")
    by_config = admin.upload_ok(png_bytes(21, 21, (8, 8, 8)), isPublic="false")
    assert (by_key["owner"], by_config["owner"]) == ("key:svc", "config-key")

    for subject in ("key:svc", "config-key", "svc"):
        impostor = server.api(hs256(sub=subject))
        for asset in (by_key, by_config):
            assert_error(impostor.get(f"/api/v1/assets/{asset['id']}"), 404, "asset_not_found")
            assert_error(impostor.delete(f"/api/v1/assets/{asset['id']}"), 404, "asset_not_found")
        assert impostor.get("/api/v1/assets").json()["data"]["total"] == 0
        assert impostor.upload_ok(isPublic="false")["owner"] == f"jwt:{subject}"
    assert service.get(f"/api/v1/assets/{by_key['id']}").status_code == 200


# -- stored API keys: jupyter-assets keys create / list / revoke ---------------------------------------------


def test_keys_create_replace_revokes_the_earlier_keys_of_that_name(make_server):
    """What `make serve` runs at every start: one active key, not a pile of them, and the same owner."""
    server = make_server()
    first = server.cli("keys", "create", "--name", "make-serve", "--replace", "--quiet").stdout.strip()
    other = server.cli("keys", "create", "--name", "kept", "--quiet").stdout.strip()
    second = server.cli("keys", "create", "--name", "make-serve", "--replace").stdout
    assert "Revoked 1 earlier key(s) named 'make-serve'." in second
    listed = json.loads(server.cli("keys", "list", "--json").stdout)
    active = sorted(record["name"] for record in listed if record["revokedAtUtc"] is None)
    assert active == ["kept", "make-serve"] and len(listed) == 3
    server.start()
    assert_401(server.api(first).get("/api/v1/assets"), "api_key_invalid")
    assert server.api(other).get("/api/v1/assets").status_code == 200
    new_key = re.search(r"^\s+(ja_\S+)$", second, re.MULTILINE).group(1)
    assert server.api(new_key).upload_ok()["owner"] == "key:make-serve"


def test_stored_key_lifecycle_scopes_hashing_and_revocation(make_server):
    server = make_server()
    created = server.cli("keys", "create", "--name", "reader", "--scopes", "assets:read", "--quiet")
    key = created.stdout.strip()
    assert key and "\n" not in key and " " not in key
    assert len(key) >= 32

    server.start()
    reader, admin = server.api(key), server.api()
    public = admin.upload_ok()
    assert reader.get("/api/v1/assets").json()["data"]["total"] == 1
    assert reader.get(f"/api/v1/assets/{public['id']}").status_code == 200
    assert reader.get("/api/v1/assets/usage-stats").status_code == 200
    assert_error(reader.upload(png_bytes()), 403, "auth_forbidden")
    assert_error(reader.patch(f"/api/v1/assets/{public['id']}", json={"description": "x"}), 403, "auth_forbidden")
    assert_error(reader.delete(f"/api/v1/assets/{public['id']}"), 403, "auth_forbidden")
    assert admin.get("/api/v1/assets").json()["data"]["total"] == 1
    server.stop()

    # The key is stored hashed: its text is nowhere in the catalog, neither in the file nor in any row.
    if "JUPYTER_ASSETS_CATALOG_URL" not in server.env:  # a PostgreSQL catalog's files belong to its server
        catalog_files = [p for p in server.root.iterdir() if p.name.startswith("catalog.duckdb")]
        assert catalog_files
        for path in catalog_files:
            in_clear = key.encode() in path.read_bytes()
            assert not in_clear, f"{path} holds the API key in clear text"
    rows = catalog_rows(server, "SELECT * FROM api_keys")
    assert len(rows) == 1
    assert all(key not in str(value) for value in rows[0])

    listing = server.cli("keys", "list").stdout
    assert "reader" in listing and key[:7] in listing
    assert key not in listing and key[7:] not in listing

    assert "reader" in server.cli("keys", "revoke", "reader").stdout

    records = json.loads(server.cli("keys", "list", "--json").stdout)
    assert [r["name"] for r in records] == ["reader"]
    assert records[0]["scopes"] == ["assets:read"]
    assert key.startswith(records[0]["prefix"]) and len(records[0]["prefix"]) < len(key) // 2
    assert records[0]["revokedAtUtc"] is not None
    assert key not in json.dumps(records)

    server.start()
    assert_401(server.api(key).get("/api/v1/assets"), "api_key_invalid")
    assert server.api().get("/api/v1/assets").status_code == 200
    assert_log_clean(server, key, ADMIN_KEY, JWT_SECRET)


def test_first_start_without_credentials_creates_and_prints_a_key(make_server):
    server = make_server(JUPYTER_ASSETS_API_KEYS="", JUPYTER_ASSETS_JWT_SECRET="").start()
    # Auth is still required, and nothing configured elsewhere opens the door.
    assert_401(server.api(None).get("/api/v1/assets"), "auth_required")
    assert_401(server.api(ADMIN_KEY).get("/api/v1/assets"), "api_key_invalid")
    assert_401(server.api(hs256()).get("/api/v1/assets"), "token_invalid")

    candidates = set(re.findall(r"[A-Za-z0-9_\-]{24,}", server.log()))
    working = [c for c in candidates if server.api(c).get("/api/v1/assets").status_code == 200]
    assert len(working) == 1, server.log()
    key = working[0]
    api = server.api(key)
    asset = api.upload_ok()
    assert api.delete(f"/api/v1/assets/{asset['id']}").status_code == 200

    # The key is kept: a restart neither prints a new one nor forgets the old one.
    server.stop()
    server.start()
    assert key not in server.log()
    candidates = set(re.findall(r"[A-Za-z0-9_\-]{24,}", server.log()))
    assert not [c for c in candidates if server.api(c).get("/api/v1/assets").status_code == 200], server.log()
    assert server.api(key).get("/api/v1/assets").status_code == 200


# -- JWT (HS256) ----------------------------------------------------------------------------------------------


def test_valid_hs256_token_is_the_sub_and_owns_its_uploads(shared):
    api = shared(hs256(sub="hs-alice"))
    asset = api.upload_ok(isPublic="false")
    assert asset["owner"] == "jwt:hs-alice"
    assert api.get(f"/api/v1/assets/{asset['id']}").json()["data"]["owner"] == "jwt:hs-alice"
    # Another subject does not see the private asset: the subject really is the caller.
    assert_error(shared(hs256(sub="hs-bob")).get(f"/api/v1/assets/{asset['id']}"), 404, "asset_not_found")
    assert api.delete(f"/api/v1/assets/{asset['id']}").status_code == 200


def test_expiry_has_a_30_second_leeway(shared):
    assert_401(shared(hs256(ttl=-60)).get("/api/v1/assets"), "token_expired")
    assert_401(shared(hs256(ttl=-3600)).get("/api/v1/assets"), "token_expired")
    assert shared(hs256(ttl=-10)).get("/api/v1/assets").status_code == 200


@pytest.mark.filterwarnings("ignore:The HMAC key is")
def test_invalid_tokens_are_token_invalid(shared):
    header = {"alg": "HS256", "typ": "JWT"}
    good = hs256()
    head, body, signature = good.split(".")
    forged_body = b64url(json.dumps(claims(sub="mallory")).encode())
    invalid = {
        "wrong secret": hs256(secret="another-secret-that-is-long-enough-for-hs256"),
        "alg none": hand_made_token({"alg": "none", "typ": "JWT"}, claims(), None),
        "alg None": hand_made_token({"alg": "None", "typ": "JWT"}, claims(), None),
        "no exp": hs256(ttl=None),
        "no sub": hs256(sub=None),
        "garbage": "aaaa.bbbb.cccc",
        "empty parts": "..",
        "payload swapped": f"{head}.{forged_body}.{signature}",
        "signature dropped": f"{head}.{body}.",
        "HS384 with the right secret": jwt.encode(claims(), JWT_SECRET, algorithm="HS384"),
        "hand-made, wrong key": hand_made_token(header, claims(), b"not the secret"),
    }
    for name, token in invalid.items():
        response = shared(token).get("/api/v1/assets")
        assert response.status_code == 401, name
        assert_401(response, "token_invalid")
    # The hand-made construction itself is right: with the real secret, it is accepted.
    assert shared(hand_made_token(header, claims(), JWT_SECRET.encode())).get("/api/v1/assets").status_code == 200


def test_issuer_and_audience_are_checked_when_configured(make_server):
    issuer, audience = "https://login.example.org/", "jupyter-assets"
    server = make_server(JUPYTER_ASSETS_JWT_ISSUER=issuer, JUPYTER_ASSETS_JWT_AUDIENCE=audience).start()
    tokens = {
        "right": hs256(iss=issuer, aud=audience),
        "aud list": hs256(iss=issuer, aud=["other", audience]),
        "wrong iss": hs256(iss="https://evil.example.org/", aud=audience),
        "wrong aud": hs256(iss=issuer, aud="another-service"),
        "no iss": hs256(aud=audience),
        "no aud": hs256(iss=issuer),
    }
    assert server.api(tokens["right"]).get("/api/v1/assets").status_code == 200
    assert server.api(tokens["aud list"]).get("/api/v1/assets").status_code == 200
    for name in ("wrong iss", "wrong aud", "no iss", "no aud"):
        response = server.api(tokens[name]).get("/api/v1/assets")
        assert response.status_code == 401, name
        assert_401(response, "token_invalid")
    assert_log_clean(server, JWT_SECRET, ADMIN_KEY, *tokens.values())


def test_cli_token_is_accepted_as_its_subject_with_its_scopes(shared, shared_server):
    token = shared_server.cli(
        "token", "--sub", "cli-alice", "--scopes", "assets:read assets:write", "--ttl", "1h"
    ).stdout.strip()
    decoded = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert decoded["sub"] == "cli-alice"
    assert set(decoded["scope"].split()) == {"assets:read", "assets:write"}
    assert 3500 <= decoded["exp"] - time.time() <= 3700
    api = shared(token)
    asset = api.upload_ok(isPublic="false")
    assert asset["owner"] == "jwt:cli-alice"
    assert api.get(f"/api/v1/assets/{asset['id']}").status_code == 200
    assert_error(api.delete(f"/api/v1/assets/{asset['id']}"), 403, "auth_forbidden")
    assert shared().delete(f"/api/v1/assets/{asset['id']}").status_code == 200


# -- JWT (RS256, ES256) ---------------------------------------------------------------------------------------


def test_rs256_public_key_from_env_text_and_algorithm_confusion(make_server, rsa_key, ec_key, tmp_path):
    pem = public_pem(rsa_key)
    server = make_server(JUPYTER_ASSETS_JWT_SECRET="", JUPYTER_ASSETS_JWT_PUBLIC_KEY=pem.decode()).start()
    good = jwt.encode(claims(sub="rs-alice"), private_pem(rsa_key), algorithm="RS256")
    asset = server.api(good).upload_ok()
    assert asset["owner"] == "jwt:rs-alice"

    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    invalid = {
        "other RSA key": jwt.encode(claims(), private_pem(other_rsa), algorithm="RS256"),
        "unrelated EC key": jwt.encode(claims(), private_pem(ec_key), algorithm="ES256"),
        "HS256 keyed with the public PEM": hand_made_token({"alg": "HS256", "typ": "JWT"}, claims(), pem),
        "HS256 keyed with the stripped PEM": hand_made_token({"alg": "HS256", "typ": "JWT"}, claims(), pem.strip()),
        "HS512 keyed with the public PEM": hand_made_token({"alg": "HS512", "typ": "JWT"}, claims(), pem),
        "HS256 with the default secret": hs256(),
        "alg none": hand_made_token({"alg": "none", "typ": "JWT"}, claims(), None),
        "expired": jwt.encode(claims(ttl=-120), private_pem(rsa_key), algorithm="RS256"),
    }
    for name, token in invalid.items():
        response = server.api(token).get("/api/v1/assets")
        assert response.status_code == 401, name
        assert_401(response, "token_expired" if name == "expired" else "token_invalid")

    # `jupyter-assets token --private-key` signs with RS256 by default; this server accepts it.
    key_file = tmp_path / "signing-key.pem"
    key_file.write_bytes(private_pem(rsa_key))
    token = server.cli("token", "--sub", "rs-cli", "--scopes", "assets:read", "--private-key", str(key_file)).stdout
    token = token.strip()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    api = server.api(token)
    assert api.get("/api/v1/assets").json()["data"]["total"] == 1
    assert_error(api.upload(png_bytes()), 403, "auth_forbidden")
    assert_log_clean(server, good, token, *invalid.values(), ADMIN_KEY)


def test_es256_public_key_from_a_pem_file(make_server, ec_key, rsa_key, tmp_path):
    pem_file = tmp_path / "es256-public.pem"
    pem_file.write_bytes(public_pem(ec_key))
    server = make_server(JUPYTER_ASSETS_JWT_SECRET="", JUPYTER_ASSETS_JWT_PUBLIC_KEY=str(pem_file)).start()
    good = jwt.encode(claims(sub="es-alice"), private_pem(ec_key), algorithm="ES256")
    api = server.api(good)
    assert api.upload_ok()["owner"] == "jwt:es-alice"
    other_ec = ec.generate_private_key(ec.SECP256R1())
    for token in (
        jwt.encode(claims(), private_pem(other_ec), algorithm="ES256"),
        jwt.encode(claims(), private_pem(rsa_key), algorithm="RS256"),
        hand_made_token({"alg": "HS256", "typ": "JWT"}, claims(), pem_file.read_bytes()),
        hand_made_token({"alg": "HS256", "typ": "JWT"}, claims(), str(pem_file).encode()),
    ):
        assert_401(server.api(token).get("/api/v1/assets"), "token_invalid")
    assert_log_clean(server, good, ADMIN_KEY)


# -- scopes ---------------------------------------------------------------------------------------------------


def test_scopes_gate_each_operation(shared):
    admin = shared()
    target = admin.upload_ok(description="untouched")
    path = f"/api/v1/assets/{target['id']}"

    reader = shared(hs256(sub="scope-reader", scope="assets:read"))
    assert reader.get("/api/v1/assets").status_code == 200
    assert reader.get(path).status_code == 200
    assert reader.get("/api/v1/assets/usage-stats").status_code == 200
    assert reader.get("/api/v1/assets/skills").status_code == 200
    assert reader.get(f"{path}/content").status_code == 307  # a public asset redirects to its public URL
    assert_error(reader.upload(png_bytes()), 403, "auth_forbidden")
    assert_error(reader.patch(path, json={"description": "changed"}), 403, "auth_forbidden")
    assert_error(reader.delete(path), 403, "auth_forbidden")
    assert_error(reader.post(f"{path}/skills/thumbnail/run", json={}), 403, "auth_forbidden")
    assert_error(reader.post("/api/v1/assets/batch-delete", json=[target["id"]]), 403, "auth_forbidden")

    nothing = shared(hs256(sub="scope-reader", scope=""))
    assert_error(nothing.get("/api/v1/assets"), 403, "auth_forbidden")
    assert_error(nothing.get("/api/v1/assets/usage-stats"), 403, "auth_forbidden")

    writer = shared(hs256(sub="scope-writer", scope="assets:write"))
    own = writer.upload_ok(isPublic="false")
    assert own["owner"] == "jwt:scope-writer"
    assert writer.patch(f"/api/v1/assets/{own['id']}", json={"description": "mine"}).status_code == 200
    assert_error(writer.get("/api/v1/assets"), 403, "auth_forbidden")
    assert_error(writer.delete(f"/api/v1/assets/{own['id']}"), 403, "auth_forbidden")
    assert_error(writer.post("/api/v1/assets/batch-delete", json=[own["id"]]), 403, "auth_forbidden")

    deleter = shared(hs256(sub="scope-writer", scope="assets:delete"))
    assert deleter.delete(f"/api/v1/assets/{own['id']}").json()["data"]["id"] == own["id"]

    after = admin.get(path).json()["data"]
    assert after["description"] == "untouched"
    assert admin.delete(path).status_code == 200


# -- ownership ------------------------------------------------------------------------------------------------


def test_ownership_private_assets_are_invisible_and_others_public_assets_read_only(server, api):
    alice = server.api(hs256(sub="alice"))
    bob = server.api(hs256(sub="bob"))
    private = alice.upload_ok(png_bytes(30, 20, (1, 1, 1)), isPublic="false", description="alice private")
    public = alice.upload_ok(png_bytes(31, 21, (2, 2, 2)), isPublic="true", description="alice public")
    bobs = bob.upload_ok(png_bytes(32, 22, (3, 3, 3)), isPublic="false")
    assert (private["owner"], public["owner"], bobs["owner"]) == ("jwt:alice", "jwt:alice", "jwt:bob")
    assert private["isPublic"] is False and private["publicUrl"] is None
    assert public["isPublic"] is True and public["publicUrl"]

    listing = bob.get("/api/v1/assets").json()["data"]
    assert {item["id"] for item in listing["items"]} == {public["id"], bobs["id"]}
    assert listing["total"] == 2
    assert {item["id"] for item in alice.get("/api/v1/assets").json()["data"]["items"]} == {private["id"], public["id"]}

    # To bob, alice's private asset does not exist.
    for response in (
        bob.get(f"/api/v1/assets/{private['id']}"),
        bob.get(f"/api/v1/assets/{private['id']}/content"),
        bob.patch(f"/api/v1/assets/{private['id']}", json={"description": "bob was here"}),
        bob.delete(f"/api/v1/assets/{private['id']}"),
        bob.post(f"/api/v1/assets/{private['id']}/skills/thumbnail/run", json={}),
    ):
        assert_error(response, 404, "asset_not_found")
    # Alice's public asset is readable but not bob's to change.
    assert bob.get(f"/api/v1/assets/{public['id']}").json()["data"]["owner"] == "jwt:alice"
    assert bob.get(f"/api/v1/assets/{public['id']}/content").status_code == 307
    assert_error(bob.patch(f"/api/v1/assets/{public['id']}", json={"description": "bob"}), 403, "auth_forbidden")
    assert_error(bob.delete(f"/api/v1/assets/{public['id']}"), 403, "auth_forbidden")
    assert_error(bob.post(f"/api/v1/assets/{public['id']}/skills/thumbnail/run", json={}), 403, "auth_forbidden")
    assert alice.get(f"/api/v1/assets/{public['id']}").json()["data"]["description"] == "alice public"
    assert alice.get(f"/api/v1/assets/{private['id']}").json()["data"]["description"] == "alice private"
    assert alice.get(f"/api/v1/assets/{private['id']}/content").content == png_bytes(30, 20, (1, 1, 1))

    # The anonymous public route serves the public asset and never the private one.
    anonymous = server.api(None)
    assert anonymous.get(f"/content/{public['storageKey']}").content == png_bytes(31, 21, (2, 2, 2))
    assert_error(anonymous.get(f"/content/{private['storageKey']}"), 404, "asset_not_found")

    # Usage stats count what each caller sees.
    def stats(client: Api) -> dict:
        return client.get("/api/v1/assets/usage-stats").json()["data"]

    assert stats(bob)["totalAssets"] == 2
    assert stats(bob)["totalBytes"] == public["size"] + bobs["size"]
    assert stats(alice)["totalAssets"] == 2
    assert stats(alice)["totalBytes"] == private["size"] + public["size"]
    assert stats(api)["totalAssets"] == 3

    # Exports cover only what the caller may see, and so do the thumbnails' and runs' rows.
    bob.post(f"/api/v1/assets/{bobs['id']}/skills/thumbnail/run", json={})
    alice.post(f"/api/v1/assets/{private['id']}/skills/thumbnail/run", json={})

    def exported(client: Api, table: str) -> list[dict]:
        response = client.get(f"/api/v1/assets/export?table={table}")
        assert response.status_code == 200
        return pq.read_table(io.BytesIO(response.content)).to_pylist()

    assert {row["id"] for row in exported(bob, "assets")} == {public["id"], bobs["id"]}
    assert {row["asset_id"] for row in exported(bob, "derivatives")} == {bobs["id"]}
    assert {row["asset_id"] for row in exported(bob, "executions")} == {bobs["id"]}
    assert private["id"] not in {row["asset_id"] for row in exported(bob, "events")}
    assert {row["id"] for row in exported(api, "assets")} == {private["id"], public["id"], bobs["id"]}

    # assets:admin in a token and the config key see everything.
    root = server.api(hs256(sub="root", scope="assets:read assets:admin"))
    assert root.get("/api/v1/assets").json()["data"]["total"] == 3
    assert root.get(f"/api/v1/assets/{private['id']}").status_code == 200
    assert api.get("/api/v1/assets").json()["data"]["total"] == 3
    assert api.delete(f"/api/v1/assets/{private['id']}").status_code == 200
    assert api.delete(f"/api/v1/assets/{public['id']}").status_code == 200
    assert bob.get("/api/v1/assets").json()["data"]["total"] == 1


# -- no secret in the log (keep this test last: it checks everything the shared server has seen) ------------


def test_shared_server_log_never_contains_credentials(shared, shared_server):
    # Make sure there is something to leak even when this test runs alone.
    for credential in (ADMIN_KEY, hs256(), hs256(ttl=-60), hs256(secret="x" * 40), "some-unknown-api-key-123"):
        shared(credential).get("/api/v1/assets/not-a-uuid")
    shared().upload_ok()
    shared(None).get("/api/v1/assets", headers={"Authorization": f"Basic {ADMIN_KEY}"})
    time.sleep(0.2)  # let the log lines reach the file
    assert len(SENT_TO_SHARED) >= 6
    assert_log_clean(shared_server, JWT_SECRET, *SENT_TO_SHARED)
    # Nor any part of a token long enough to matter (a signature or a payload).
    log = shared_server.log()
    for token in (c for c in SENT_TO_SHARED if c.count(".") == 2):
        for part in token.split("."):
            assert len(part) < 16 or part not in log
    assert Path(shared_server.log_path).stat().st_size > 0

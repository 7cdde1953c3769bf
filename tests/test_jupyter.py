"""The server extension inside a real Jupyter server (pytest-jupyter): Jupyter's own credentials, our API keys,
the anonymous public content route, a non-default base URL, and proof that every handler requires authentication."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import sys
import warnings

import pytest
import tornado.web
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.utils import JupyterServerAuthWarning
from jupyterhub.log import log_request as jupyterhub_log_request
from tornado.httpclient import HTTPClientError
from urllib3 import encode_multipart_formdata

from jupyter_assets.app import jupyter_handler
from jupyter_assets.auth import ALL_SCOPES, Principal
from jupyter_assets.http.handlers import PublicContentHandler, routes

from conftest import jupyter_server_config, plain_s3_client, png_bytes, schema_validator, team_library_env

JUPYTER_API_KEY = "jupyter-side-config-key"
HTTP_VERBS = ("get", "post", "patch", "delete", "put", "head")


LOGGED: list = []  # what JupyterHub's request logger made of each request: the user name, or its exception


def log_as_jupyterhub_does(handler) -> None:
    """JupyterHub's single-user servers log every request with jupyterhub.log.log_request (its real code)."""
    try:
        jupyterhub_log_request(handler)
        LOGGED.append(handler.current_user.name if handler.current_user else None)
    except Exception as error:  # noqa: BLE001 - recorded for the test to assert on
        LOGGED.append(error)


@pytest.fixture
def jp_server_config(tmp_path, monkeypatch, catalog_engine, request):
    team = {}
    if catalog_engine == "postgresql":  # a team library, whose admins are named (here the Jupyter user)
        env = team_library_env(request.getfixturevalue("postgres"), tmp_path / "lib" / "files")
        team = {
            "catalog_url": env["JUPYTER_ASSETS_CATALOG_URL"],
            "storage_profiles": json.loads(env["JUPYTER_ASSETS_STORAGE_PROFILES"]),
            "admin_users": [getpass.getuser()],
        }
    config = jupyter_server_config(tmp_path / "lib", monkeypatch, api_keys=[JUPYTER_API_KEY], **team)
    config.ServerApp.tornado_settings = {"log_function": log_as_jupyterhub_does}
    LOGGED.clear()
    return config


# -- helpers --------------------------------------------------------------------------------------------------


def multipart(data: bytes, **fields: str) -> tuple[bytes, str]:
    fields.setdefault("runEnrichment", "false")
    return encode_multipart_formdata({"file": ("kitten.png", data, "image/png"), **fields})


async def upload(jp_fetch, data: bytes | None = None, headers: dict | None = None, **fields: str) -> dict:
    body, content_type = multipart(data if data is not None else png_bytes(), **fields)
    response = await jp_fetch(
        "api/v1/assets", method="POST", body=body, headers={"Content-Type": content_type, **(headers or {})}
    )
    assert response.code == 202, response.body
    payload = json.loads(response.body)
    schema_validator("AssetEnvelope").validate(payload)
    return payload["data"]


async def anonymous(http_server_client, path: str, method: str = "GET", **kwargs):
    """A request with no credentials at all (jp_fetch always adds Jupyter's token)."""
    return await http_server_client.fetch(
        path, method=method, raise_error=False, follow_redirects=False, allow_nonstandard_methods=True, **kwargs
    )


def error_of(response, status: int, code: str) -> dict:
    assert response.code == status, (response.code, response.body)
    payload = json.loads(response.body)
    schema_validator("ErrorEnvelope").validate(payload)
    assert payload["error"]["code"] == code, payload
    assert payload["error"]["status"] == status
    return payload["error"]


async def jupyter_identity(jp_fetch) -> tuple[str, dict]:
    """Jupyter's user name, and the login cookie that keeps it (a token without that cookie gets a new anonymous
    user name on every request)."""
    response = await jp_fetch("api", "me")
    cookies = [c.split(";", 1)[0] for c in response.headers.get_list("Set-Cookie") if c.startswith("username-")]
    assert cookies, response.headers
    return json.loads(response.body)["identity"]["username"], {"Cookie": "; ".join(cookies)}


# -- every handler requires authentication (static) ----------------------------------------------------------


def is_tornado_authenticated(method) -> bool:
    """True when ``method`` is the wrapper that ``tornado.web.authenticated`` returns (it uses functools.wraps)."""
    if not hasattr(method, "__wrapped__") or not hasattr(method, "__code__"):
        return False
    code = method.__code__
    qualname = getattr(code, "co_qualname", None)
    if qualname is not None:
        return (
            qualname.startswith("authenticated.") and code.co_filename == tornado.web.authenticated.__code__.co_filename
        )
    return code.co_filename.replace("\\", "/").endswith("tornado/web.py")


def auth_problems(handler: type, anonymous_allowed: bool, verbs=HTTP_VERBS) -> list[str]:
    """The HTTP methods of ``handler`` that are neither @tornado.web.authenticated nor (where allowed) anonymous."""
    problems = []
    for verb in verbs:
        method = getattr(handler, verb, None)
        if method is None or method is tornado.web.RequestHandler._unimplemented_method:
            continue
        if getattr(method, "__allow_unauthenticated", False):
            if not anonymous_allowed:
                problems.append(f"{handler.__name__}.{verb} is @allow_unauthenticated")
        elif not is_tornado_authenticated(method):
            problems.append(f"{handler.__name__}.{verb} lacks @tornado.web.authenticated")
    return problems


class _Undecorated(tornado.web.RequestHandler):
    async def get(self) -> None: ...


class _OtherDecorator(tornado.web.RequestHandler):
    def _wrap(method):  # noqa: N805 - a decorator that looks like tornado's (functools.wraps) but is not
        import functools

        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            return method(self, *args, **kwargs)

        return wrapper

    @_wrap
    async def post(self) -> None: ...


class _Authenticated(tornado.web.RequestHandler):
    @tornado.web.authenticated
    async def get(self) -> None: ...

    @tornado.web.authenticated
    async def delete(self) -> None: ...


class _Anonymous(tornado.web.RequestHandler):
    @allow_unauthenticated
    async def get(self) -> None: ...


def test_the_auth_check_itself_catches_undecorated_methods():
    assert auth_problems(_Undecorated, anonymous_allowed=False) == ["_Undecorated.get lacks @tornado.web.authenticated"]
    assert auth_problems(_OtherDecorator, anonymous_allowed=False) == [
        "_OtherDecorator.post lacks @tornado.web.authenticated"
    ]
    assert auth_problems(_Anonymous, anonymous_allowed=False) == ["_Anonymous.get is @allow_unauthenticated"]
    assert auth_problems(_Anonymous, anonymous_allowed=True) == []
    assert auth_problems(_Authenticated, anonymous_allowed=False) == []
    # A subclass that overrides a decorated method without the decorator is caught too.
    undecorated_override = type("Override", (_Authenticated,), {"delete": lambda self: None})
    assert auth_problems(undecorated_override, anonymous_allowed=False) == [
        "Override.delete lacks @tornado.web.authenticated"
    ]


def test_every_handler_method_is_authenticated_and_only_public_content_is_anonymous():
    handlers = [handler for _, handler in routes("")]
    assert len(handlers) >= 10
    checked = 0
    for handler in handlers:
        assert auth_problems(handler, anonymous_allowed=handler is PublicContentHandler) == []
        checked += sum(
            getattr(handler, verb) is not tornado.web.RequestHandler._unimplemented_method for verb in HTTP_VERBS
        )
    assert checked >= 14  # the check really looked at the handlers' methods
    anonymous = [
        f"{handler.__name__}.{verb}"
        for handler in handlers
        for verb in HTTP_VERBS
        if getattr(getattr(handler, verb), "__allow_unauthenticated", False)
    ]
    assert anonymous == ["PublicContentHandler.get", "PublicContentHandler.head"]
    # The classes actually mounted in Jupyter (mixed with Jupyter's handlers) keep the decorators, OPTIONS included
    # (Jupyter's own CORS preflight, which Jupyter itself marks as anonymous).
    for handler in handlers:
        mounted = jupyter_handler(handler, trust_jupyter_user=True)
        verbs = (*HTTP_VERBS, "options")
        assert auth_problems(mounted, anonymous_allowed=True, verbs=verbs) == []
        if handler is not PublicContentHandler:
            assert auth_problems(mounted, anonymous_allowed=False, verbs=HTTP_VERBS) == []


# -- every handler requires authentication (at run time) ------------------------------------------------------


def mounted_handlers(router) -> list[type]:
    found = []
    for rule in router.rules:
        if hasattr(rule.target, "rules"):
            found.extend(mounted_handlers(rule.target))
        elif isinstance(rule.target, type):
            found.append(rule.target)
    return found


def test_server_start_emits_no_auth_warning_for_our_handlers(jp_configurable_serverapp, jp_server_config):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = jp_configurable_serverapp(config=jp_server_config)
    assert "jupyter_assets" in app.extension_manager.extensions
    assert app.extension_manager.extensions["jupyter_assets"].enabled
    mounted = {handler.__name__ for handler in mounted_handlers(app.web_app.default_router)}
    assert {"AssetCollectionHandler", "PublicContentHandler"} <= mounted
    names = {handler.__name__ for _, handler in routes("")} | {"api/v1/assets", "/content/"}
    ours = [
        str(w.message)
        for w in caught
        if issubclass(w.category, JupyterServerAuthWarning) and any(name in str(w.message) for name in names)
    ]
    assert ours == []
    # The same mechanism does warn for an undecorated handler: the check above is not vacuous.
    with warnings.catch_warnings(record=True) as control:
        warnings.simplefilter("always")
        app.web_app.add_handlers(".*$", [("/undecorated-probe", _Undecorated)])
    assert any(issubclass(w.category, JupyterServerAuthWarning) and "_Undecorated" in str(w.message) for w in control)


def test_extension_is_listed_enabled_and_ok():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "JPY_"))}
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 0, output
    assert re.search(r"^\s*jupyter_assets\s+enabled\s*$", output, re.MULTILINE), output
    assert re.search(r"^\s*jupyter_assets\s+\S+\s+OK\s*$", output, re.MULTILINE), output


# -- requests through Jupyter --------------------------------------------------------------------------------


async def test_jupyter_token_lists_uploads_and_gets_as_the_jupyter_user(jp_fetch, jp_base_url):
    # With Jupyter's default identity provider, each token request gets a random anonymous name (unless a cookie
    # pins one): the owner is the account running the server, whatever the cookie says.
    _, cookie = await jupyter_identity(jp_fetch)
    username = getpass.getuser()
    response = await jp_fetch("api/v1/assets", headers=dict(cookie))
    assert response.code == 200
    page = json.loads(response.body)
    schema_validator("AssetPageEnvelope").validate(page)
    assert page["data"]["total"] == 0

    asset = await upload(jp_fetch, headers=cookie, description="from jupyter")
    assert asset["owner"] == f"jupyter:{username}"

    body, content_type = multipart(png_bytes())
    response = await jp_fetch("api/v1/assets", method="POST", body=body, headers={"Content-Type": content_type})
    assert response.headers["Location"].endswith(f"api/v1/assets/{json.loads(response.body)['data']['id']}")

    response = await jp_fetch("api/v1/assets", asset["id"], headers=dict(cookie))
    got = json.loads(response.body)
    schema_validator("AssetEnvelope").validate(got)
    assert got["data"]["id"] == asset["id"]
    assert got["data"]["owner"] == f"jupyter:{username}"
    assert got["data"]["description"] == "from jupyter"

    page = json.loads((await jp_fetch("api/v1/assets")).body)["data"]
    assert page["total"] == 2
    assert asset["id"] in {item["id"] for item in page["items"]}

    # The Jupyter user acts as admin: usage stats cover everything, and it may delete.
    stats = json.loads((await jp_fetch("api/v1/assets/usage-stats")).body)["data"]
    assert stats["totalAssets"] == 2
    response = await jp_fetch("api/v1/assets", asset["id"], method="DELETE")
    assert json.loads(response.body)["data"]["id"] == asset["id"]


async def test_no_credentials_is_401_auth_required(jp_fetch, http_server_client, jp_base_url):
    asset = await upload(jp_fetch)
    for method, path in [
        ("GET", "api/v1/assets"),
        ("GET", f"api/v1/assets/{asset['id']}"),
        ("GET", f"api/v1/assets/{asset['id']}/content"),
        ("GET", "api/v1/assets/usage-stats"),
        ("GET", "api/v1/assets/skills"),
        ("GET", "api/v1/assets/openapi.json"),
        ("DELETE", f"api/v1/assets/{asset['id']}"),
        ("PATCH", f"api/v1/assets/{asset['id']}"),
        ("POST", "api/v1/assets/batch-delete"),
        ("POST", f"api/v1/assets/{asset['id']}/skills/thumbnail/run"),
    ]:
        body = None if method in ("GET", "DELETE") else b"{}"
        response = await anonymous(http_server_client, jp_base_url + path, method=method, body=body)
        error_of(response, 401, "auth_required")
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), path

    body, content_type = multipart(png_bytes())
    response = await anonymous(
        http_server_client, jp_base_url + "api/v1/assets", "POST", body=body, headers={"Content-Type": content_type}
    )
    error_of(response, 401, "auth_required")

    # jp_fetch raises on the same request once Jupyter's token is replaced by a wrong one.
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch("api/v1/assets", headers={"Authorization": "token not-the-jupyter-token"})
    assert raised.value.code == 401
    assert json.loads(raised.value.response.body)["error"]["status"] == 401
    # The asset is untouched.
    assert (await jp_fetch("api/v1/assets", asset["id"])).code == 200


async def test_api_keys_and_bearer_jupyter_token_work_inside_jupyter(
    jp_fetch, jp_serverapp, http_server_client, jp_base_url
):
    key_header = {"Authorization": f"Bearer {JUPYTER_API_KEY}"}
    response = await jp_fetch("api/v1/assets", headers=key_header)
    assert response.code == 200
    asset = await upload(jp_fetch, headers=key_header, isPublic="false")
    assert not asset["owner"].startswith("jupyter:")

    # The config key is admin-like: it sees private assets of the Jupyter user and vice versa.
    private = await upload(jp_fetch, isPublic="false")
    response = await jp_fetch("api/v1/assets", private["id"], headers=key_header)
    assert json.loads(response.body)["data"]["id"] == private["id"]

    # The same request without any Jupyter token: the key alone authenticates it.
    response = await http_server_client.fetch(
        jp_base_url + f"api/v1/assets/{asset['id']}", headers=key_header, raise_error=False
    )
    assert response.code == 200, response.body

    # An unknown key is refused with our envelope, even inside Jupyter.
    response = await http_server_client.fetch(
        jp_base_url + "api/v1/assets", headers={"Authorization": "Bearer not-a-key"}, raise_error=False
    )
    error_of(response, 401, "api_key_invalid")

    # Jupyter's token sent as a Bearer credential authenticates as the Jupyter user.
    token = jp_serverapp.identity_provider.token
    bearer = await upload(jp_fetch, headers={"Authorization": f"Bearer {token}"})
    assert bearer["owner"] == f"jupyter:{getpass.getuser()}"


async def test_a_cookie_request_with_a_failing_bearer_header_is_401_and_keeps_the_xsrf_check(
    jp_fetch, http_server_client, jp_base_url, tmp_path
):
    """A page of another site (or, on JupyterHub, of another user on the same origin) can make the browser send
    the login cookie with any header it likes. A Bearer credential that fails must be 401, never fall back to
    the cookie's user, and never skip Jupyter's XSRF check."""
    _, cookie = await jupyter_identity(jp_fetch)
    victim = await upload(jp_fetch, isPublic="false", description="untouched")
    forged = {**cookie, "Authorization": "Bearer x"}
    upload_body, upload_type = multipart(png_bytes())
    profile = {"name": "forged", "providerType": "local", "configuration": {"rootPath": str(tmp_path / "forged")}}
    attempts = [
        ("GET", "api/v1/assets", None, {}),
        ("POST", "api/v1/assets", upload_body, {"Content-Type": upload_type}),
        ("PATCH", f"api/v1/assets/{victim['id']}", b'{"description": "forged"}', {}),
        ("POST", f"api/v1/assets/{victim['id']}/skills/watermark/run", b"{}", {}),
        ("POST", "api/v1/assets/batch-delete", json.dumps([victim["id"]]).encode(), {}),
        ("DELETE", f"api/v1/assets/{victim['id']}", None, {}),
        ("POST", "api/v1/system/api-keys", b'{"name": "forged"}', {}),
        ("POST", "api/v1/system/storage/providers", json.dumps(profile).encode(), {}),
    ]
    for method, path, body, headers in attempts:
        response = await anonymous(
            http_server_client, jp_base_url + path, method=method, body=body, headers={**forged, **headers}
        )
        error_of(response, 401, "api_key_invalid")

    detail = json.loads((await jp_fetch("api/v1/assets", victim["id"])).body)["data"]
    assert (detail["description"], detail["latestExecutionSummary"]) == ("untouched", None)
    assert json.loads((await jp_fetch("api/v1/assets")).body)["data"]["total"] == 1
    assert json.loads((await jp_fetch("api/v1/system/api-keys")).body)["data"] == []
    profiles = json.loads((await jp_fetch("api/v1/system/storage/providers")).body)["data"]["profiles"]
    assert [p["name"] for p in profiles if p["name"] != "team-files"] == []  # none but the team library's own

    # The cookie alone is held to Jupyter's XSRF check, and passes it with the page's token.
    patch = b'{"description": "by the page"}'
    path = jp_base_url + f"api/v1/assets/{victim['id']}"
    response = await anonymous(http_server_client, path, method="PATCH", body=patch, headers=cookie)
    error_of(response, 403, "auth_forbidden")
    with_xsrf = {"Cookie": f"{cookie['Cookie']}; _xsrf=c0ffee", "X-XSRFToken": "c0ffee"}
    response = await anonymous(http_server_client, path, method="PATCH", body=patch, headers=with_xsrf)
    assert response.code == 200, response.body
    assert json.loads(response.body)["data"]["description"] == "by the page"

    # Jupyter's own header form with a stale token (an open JupyterLab tab after a restart) is judged as Jupyter
    # judges it: the cookie counts, held to the XSRF check.
    stale = {"Authorization": "token from-before-the-restart"}
    response = await anonymous(http_server_client, path, method="PATCH", body=patch, headers={**cookie, **stale})
    error_of(response, 403, "auth_forbidden")
    response = await anonymous(http_server_client, path, method="PATCH", body=patch, headers={**with_xsrf, **stale})
    assert response.code == 200, response.body


async def test_jupyterhubs_request_logger_reads_our_users(jp_fetch, http_server_client, jp_base_url):
    """current_user is what Jupyter and JupyterHub expect there (a User with a name), whoever authenticated."""
    _, cookie = await jupyter_identity(jp_fetch)
    LOGGED.clear()
    await jp_fetch("api/v1/assets", headers=dict(cookie))
    key = {"Authorization": f"Bearer {JUPYTER_API_KEY}"}
    response = await http_server_client.fetch(jp_base_url + "api/v1/assets", headers=key, raise_error=False)
    assert response.code == 200
    response = await anonymous(http_server_client, jp_base_url + "api/v1/assets")
    assert response.code == 401
    jupyter_user, *others = LOGGED
    assert isinstance(jupyter_user, str) and jupyter_user, LOGGED  # Jupyter's own User, as Jupyter set it
    assert others == ["config-key", None]


async def content_of_an_asset_deleted_while_it_is_read(jp_fetch, jp_serverapp, monkeypatch) -> dict:
    """Upload, then GET the content with a delete forced between the lookup and the first read (the service's
    read is wrapped only to force that order): the answer must be 404 asset_not_found, not a 500."""
    asset = await upload(jp_fetch, isPublic="false")
    service = jp_serverapp.web_app.settings["jupyter_assets_service"]
    read_content = service.assets.read_content

    def deleted_in_between(content, start, end):
        service.assets.delete(Principal("test-admin", ALL_SCOPES, "api_key"), asset["id"])
        return read_content(content, start, end)

    monkeypatch.setattr(service.assets, "read_content", deleted_in_between)
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch("api/v1/assets", asset["id"], "content")
    error_of(raised.value.response, 404, "asset_not_found")
    monkeypatch.undo()
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch("api/v1/assets", asset["id"])
    error_of(raised.value.response, 404, "asset_not_found")
    return asset


async def test_content_of_an_asset_deleted_while_it_is_being_read_is_404(jp_fetch, jp_serverapp, monkeypatch):
    """A delete can land between the content lookup and the first read (6 times in 793 under load)."""
    asset = await content_of_an_asset_deleted_while_it_is_read(jp_fetch, jp_serverapp, monkeypatch)
    assert asset["storageProvider"] == "local"


async def test_content_of_an_s3_asset_deleted_while_it_is_being_read_is_404(
    jp_fetch, jp_serverapp, monkeypatch, moto_endpoint
):
    """The same race on S3, whose read sends its GET as it opens (local storage reads at the first chunk)."""
    plain_s3_client(moto_endpoint, "us-east-1", "test", "test").create_bucket(Bucket="race")
    profile = {
        "name": "race", "providerType": "s3", "isDefault": True,
        "configuration": {"endpoint": moto_endpoint, "bucket": "race", "region": "us-east-1"},
        "secretConfiguration": {"accessKey": "test", "secretKey": "test"},
    }  # fmt: skip
    created = await jp_fetch("api/v1/system/storage/providers", method="POST", body=json.dumps(profile))
    assert created.code == 201
    asset = await content_of_an_asset_deleted_while_it_is_read(jp_fetch, jp_serverapp, monkeypatch)
    assert asset["storageProvider"] == "s3"


async def test_public_content_is_anonymous_and_private_content_is_404(
    jp_fetch, http_server_client, jp_base_url, jp_serverapp
):
    data = png_bytes(40, 30, (1, 2, 3))
    public = await upload(jp_fetch, data)
    private = await upload(jp_fetch, png_bytes(40, 30, (9, 8, 7)), isPublic="false")
    assert public["publicUrl"].endswith(f"{jp_base_url}content/{public['storageKey']}")
    assert private["publicUrl"] is None

    response = await anonymous(http_server_client, f"{jp_base_url}content/{public['storageKey']}")
    assert response.code == 200, response.body
    assert response.body == data
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response = await anonymous(http_server_client, f"{jp_base_url}content/{public['storageKey']}", "HEAD")
    assert response.code == 200
    assert int(response.headers["Content-Length"]) == len(data)
    # A header meant for someone else (a proxy's Basic auth, a stale Bearer) does not refuse the anonymous route.
    for header in ("Basic dXNlcjpwYXNz", "Bearer stale", "ja_not-a-key"):
        url = f"{jp_base_url}content/{public['storageKey']}"
        response = await anonymous(http_server_client, url, headers={"Authorization": header})
        assert (response.code, response.body) == (200, data), header

    for method in ("GET", "HEAD"):
        response = await anonymous(http_server_client, f"{jp_base_url}content/{private['storageKey']}", method)
        assert response.code == 404
    error_of(
        await anonymous(http_server_client, f"{jp_base_url}content/{private['storageKey']}"), 404, "asset_not_found"
    )
    # Not even Jupyter's own credential opens a private asset on the public route.
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch("content", private["storageKey"])
    error_of(raised.value.response, 404, "asset_not_found")

    # Authenticated content route: public asset redirects to its public URL, private one streams.
    response = await jp_fetch("api/v1/assets", public["id"], "content", follow_redirects=False, raise_error=False)
    assert response.code == 307
    assert response.headers["Location"] == public["publicUrl"]
    response = await jp_fetch("api/v1/assets", private["id"], "content")
    assert response.code == 200
    assert response.body == png_bytes(40, 30, (9, 8, 7))


class TestNonDefaultBaseUrl:
    @pytest.fixture
    def jp_base_url(self):
        return "/a/b/"

    async def test_api_and_public_content_live_under_the_base_url(self, jp_fetch, http_server_client):
        asset = await upload(jp_fetch)
        assert asset["publicUrl"].endswith(f"/a/b/content/{asset['storageKey']}")
        response = await jp_fetch("api/v1/assets")
        assert json.loads(response.body)["data"]["total"] == 1

        # Full URLs, no base-url magic in the client: the API is at /a/b/api/v1/assets ...
        response = await anonymous(http_server_client, "/a/b/api/v1/assets")
        error_of(response, 401, "auth_required")
        response = await anonymous(http_server_client, f"/a/b/content/{asset['storageKey']}")
        assert response.code == 200
        assert response.body == png_bytes()
        # ... and not at the root (Jupyter sends paths outside its base URL back to the base URL).
        for path in ("/api/v1/assets", f"/content/{asset['storageKey']}"):
            response = await anonymous(http_server_client, path)
            assert response.code in (302, 404), path
            assert response.code == 404 or response.headers["Location"].startswith("/a/b/")
            assert png_bytes() != response.body and b"auth_required" not in (response.body or b"")


# -- unexpected failures -------------------------------------------------------------------------------------


async def test_unexpected_error_is_500_with_a_logged_trace_id_and_the_server_keeps_serving(
    jp_fetch, jp_serverapp, monkeypatch, caplog
):
    """A bug (here: the catalog failing in a way nobody planned for) is an enveloped 500 with a trace id that
    is also in the log; the next request is served normally."""
    service = jp_serverapp.web_app.settings["jupyter_assets_service"]

    def broken(*args, **kwargs):
        raise RuntimeError("simulated catalog failure")

    monkeypatch.setattr(service.assets, "usage_stats", broken)
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch("api/v1/assets/usage-stats")
    error = error_of(raised.value.response, 500, "internal_server_error")
    assert "simulated" not in error["message"]  # internals are logged, not returned
    assert any(error["traceId"] in record.getMessage() for record in caplog.records)
    monkeypatch.undo()
    response = await jp_fetch("api/v1/assets/usage-stats")
    assert response.code == 200


class TestOrdinaryTeamMember:
    """On a team library the Jupyter user is an owner like any other, an admin only when named in admin_users."""

    @pytest.fixture
    def jp_server_config(self, tmp_path, monkeypatch, postgres):
        env = team_library_env(postgres, tmp_path / "files")
        return jupyter_server_config(
            tmp_path / "lib", monkeypatch, catalog_url=env["JUPYTER_ASSETS_CATALOG_URL"],
            storage_profiles=json.loads(env["JUPYTER_ASSETS_STORAGE_PROFILES"]), admin_users=["someone-else"],
        )  # fmt: skip

    async def test_the_jupyter_user_writes_but_is_not_an_admin(self, jp_fetch):
        asset = await upload(jp_fetch)
        assert asset["owner"] == f"jupyter:{getpass.getuser()}"
        error_of(await jp_fetch("api/v1/system/api-keys", raise_error=False), 403, "auth_forbidden")
        error_of(await jp_fetch("api/v1/system/storage/providers", raise_error=False), 403, "auth_forbidden")
        response = await jp_fetch("api/v1/assets", asset["id"], method="DELETE")
        assert response.code == 200

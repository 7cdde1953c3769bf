"""A real JupyterHub (its DummyAuthenticator and SimpleLocalProcessSpawner, configurable-http-proxy from npm) with
two users whose single-user servers run the extension on one team library (PostgreSQL and a shared folder):
each reaches the library under /user/<name>/api/v1/assets with a Hub token, and owners stay apart."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from postgres_server import PostgresServer

from conftest import REPO, free_port, png_bytes, team_library_env

PROXY = REPO / ".venv" / "hub-proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
USERS = ("user-a", "user-b")


class Hub:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs)

    def wait_ready(self, user: str, timeout: float = 120) -> None:
        """Until the user's single-user server is up (the Hub says so once its API answers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{user}").json().get("servers", {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(0.2)
        raise AssertionError(f"the server of {user} did not start")

    def user_token(self, user: str) -> str:
        response = self.api("POST", f"/users/{user}/tokens", json={"note": "test"})
        assert response.status_code in (200, 201), response.text
        return response.json()["token"]


@pytest.fixture(scope="module")
def hub(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    assert PROXY.exists(), f"missing {PROXY}: `make test` installs configurable-http-proxy"
    folder = tmp_path_factory.mktemp("hub")
    library = team_library_env(postgres, folder / "shared-files")
    service_token = secrets.token_hex(16)
    port = free_port()
    config = folder / "jupyterhub_config.py"
    config.write_text(
        f"""
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
c.JupyterHub.db_url = "sqlite:///{folder / "hub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(folder / "cookie_secret")!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {set(USERS)!r}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(folder / "home" / "{username}")!r}
c.Spawner.cmd = [{sys.executable!r}, "-m", "jupyterhub.singleuser", "--allow-root"]
c.Spawner.environment = {json.dumps(library)}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.JupyterHub.services = [{{"name": "test", "api_token": {service_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "test", "scopes": ["admin:users", "admin:servers", "tokens"],
                            "services": ["test"]}}]
"""
    )
    log = open(folder / "hub.log", "wb")  # noqa: SIM115 - open for the Hub's whole life
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=folder, stdout=log, stderr=subprocess.STDOUT
    )
    hub = Hub(f"http://127.0.0.1:{port}", service_token)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "hub.log").read_text(errors="replace"))
            try:
                if hub.api("GET", "/").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        for user in USERS:
            assert hub.api("POST", f"/users/{user}").status_code in (201, 409)
            assert hub.api("POST", f"/users/{user}/server").status_code in (201, 202)
        for user in USERS:
            hub.wait_ready(user)
        yield hub
    finally:
        for user in USERS:
            with contextlib.suppress(requests.RequestException):  # the Hub stops what is left anyway
                hub.api("DELETE", f"/users/{user}/server")
        process.terminate()
        process.wait(timeout=60)
        log.close()


def assets_api(hub: Hub, user: str, path: str = "") -> str:
    return f"{hub.url}/user/{user}/api/v1/assets{path}"


def test_two_hub_users_share_one_library_and_keep_their_private_assets(hub: Hub) -> None:
    tokens = {user: hub.user_token(user) for user in USERS}
    headers = {user: {"Authorization": f"token {tokens[user]}"} for user in USERS}

    def upload(user: str, public: bool, data: bytes) -> dict:
        response = requests.post(
            assets_api(hub, user), headers=headers[user], timeout=30,
            files={"file": ("a.png", data, "image/png")},
            data={"isPublic": str(public).lower(), "runEnrichment": "false"},
        )  # fmt: skip
        assert response.status_code == 202, response.text
        return response.json()["data"]

    private = upload("user-a", False, png_bytes(30, 30))
    public = upload("user-a", True, png_bytes(20, 20))
    assert private["owner"] == public["owner"] == "jupyter:user-a"

    seen_by_b = requests.get(assets_api(hub, "user-b"), headers=headers["user-b"], timeout=30)
    assert seen_by_b.status_code == 200, seen_by_b.text
    assert [item["id"] for item in seen_by_b.json()["data"]["items"]] == [public["id"]]
    hidden = requests.get(assets_api(hub, "user-b", f"/{private['id']}"), headers=headers["user-b"], timeout=30)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "asset_not_found"
    read_only = requests.patch(
        assets_api(hub, "user-b", f"/{public['id']}"), headers=headers["user-b"],
        json={"description": "not mine"}, timeout=30,
    )  # fmt: skip
    assert read_only.status_code == 403 and read_only.json()["error"]["code"] == "auth_forbidden"

    # user-a sees both, on its own server; user-b's token does not open user-a's server.
    seen_by_a = requests.get(assets_api(hub, "user-a"), headers=headers["user-a"], timeout=30)
    assert {item["id"] for item in seen_by_a.json()["data"]["items"]} == {private["id"], public["id"]}
    foreign = requests.get(assets_api(hub, "user-a"), headers=headers["user-b"], timeout=30, allow_redirects=False)
    assert foreign.status_code == 401 and foreign.json()["error"]["code"] in ("auth_required", "auth_invalid")

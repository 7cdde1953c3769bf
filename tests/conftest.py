"""Shared fixtures: real image bytes, a real `jupyter-assets serve` subprocess, and an API client that checks
every JSON response against the served OpenAPI document."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker
from PIL import Image
from postgres_server import PostgresServer
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from traitlets.config import Config

pytest_plugins = ("pytest_jupyter.jupyter_server",)

REPO = Path(__file__).resolve().parent.parent
OPENAPI = json.loads((REPO / "jupyter_assets" / "http" / "openapi.json").read_text())
OPENAPI_BASE = "urn:jupyter-assets:openapi"
_REGISTRY = Registry().with_resource(OPENAPI_BASE, Resource.from_contents(OPENAPI, default_specification=DRAFT202012))
ADMIN_KEY = "test-admin-key"
JWT_SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
UUID = r"[0-9a-f-]{36}"


def schema_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": f"{OPENAPI_BASE}#/components/schemas/{name}"}, registry=_REGISTRY, format_checker=FormatChecker()
    )


# Which envelope each successful JSON response must match, by method and path.
RESPONSE_SCHEMAS: list[tuple[str, str, str]] = [
    ("GET", r"/api/v1/assets/?", "AssetPageEnvelope"),
    ("POST", r"/api/v1/assets/?", "AssetEnvelope"),
    ("POST", r"/api/v1/assets/batch", "BatchUploadResultEnvelope"),
    ("POST", r"/api/v1/assets/batch-delete", "BatchDeleteResultEnvelope"),
    ("GET", r"/api/v1/assets/skills", "SkillListEnvelope"),
    ("GET", r"/api/v1/assets/usage-stats", "UsageStatsEnvelope"),
    ("POST", rf"/api/v1/assets/{UUID}/skills/[^/]+/run", "SkillRunResultEnvelope"),
    ("GET", r"/api/v1/assets/duplicates", "DuplicatesEnvelope"),
    ("GET", rf"/api/v1/assets/{UUID}/similar", "SimilarAssetsEnvelope"),
    ("GET", rf"/api/v1/assets/{UUID}", "AssetEnvelope"),
    ("PATCH", rf"/api/v1/assets/{UUID}", "AssetEnvelope"),
    ("DELETE", rf"/api/v1/assets/{UUID}", "DeleteResultEnvelope"),
    ("GET", r"/api/v1/system/api-keys", "ApiKeyListEnvelope"),
    ("POST", r"/api/v1/system/api-keys", "CreatedApiKeyEnvelope"),
    ("DELETE", r"/api/v1/system/api-keys/[^/]+", "RevokedApiKeyEnvelope"),
    ("GET", r"/api/v1/system/storage/providers/?", "StorageOverviewEnvelope"),
    ("POST", r"/api/v1/system/storage/providers/?", "StorageProfileEnvelope"),
    ("PATCH", r"/api/v1/system/storage/providers/[^/]+", "StorageProfileEnvelope"),
    ("DELETE", r"/api/v1/system/storage/providers/[^/]+", "StorageProfileDeleteResultEnvelope"),
    ("POST", r"/api/v1/system/storage/providers/[^/]+/set-default", "StorageProfileEnvelope"),
]
VALIDATED: list[str] = []  # what the OpenAPI check saw, so a test can prove it ran


def check_against_openapi(method: str, path: str, response: requests.Response) -> None:
    """Every JSON body the API sends must match the OpenAPI document: errors and successes alike."""
    if "application/json" not in response.headers.get("Content-Type", "") or path.endswith("openapi.json"):
        return
    body = response.json()
    if response.status_code >= 400:
        schema_validator("ErrorEnvelope").validate(body)
        assert body["error"]["status"] == response.status_code
        VALIDATED.append("ErrorEnvelope")
        return
    for schema_method, pattern, schema in RESPONSE_SCHEMAS:
        if method == schema_method and re.fullmatch(pattern, path):
            schema_validator(schema).validate(body)
            VALIDATED.append(schema)
            return


class Api:
    """A tiny HTTP client for the tests: base URL, a credential, and the OpenAPI check on every response."""

    def __init__(self, base_url: str, credential: str | None, prefix: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.prefix = prefix.rstrip("/")
        self.session = requests.Session()
        if credential:
            self.session.headers["Authorization"] = f"Bearer {credential}"

    def as_(self, credential: str | None) -> Api:
        return Api(self.base_url, credential, self.prefix)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 60)
        response = self.session.request(method, self.base_url + self.prefix + path, **kwargs)
        check_against_openapi(method, path.split("?")[0], response)
        return response

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def upload(
        self, data: bytes, name: str = "kitten.png", content_type: str | None = "image/png", **fields
    ) -> requests.Response:
        fields.setdefault("runEnrichment", "false")
        file_part = (name, data, content_type) if content_type else (name, data)
        return self.post("/api/v1/assets", files={"file": file_part}, data=fields)

    def upload_ok(self, data: bytes | None = None, **fields) -> dict:
        response = self.upload(data if data is not None else png_bytes(), **fields)
        assert response.status_code == 202, response.text
        return response.json()["data"]

    def wait_for_status(self, asset_id: str, statuses: tuple[str, ...] = ("ready", "failed"), timeout=60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            asset = self.get(f"/api/v1/assets/{asset_id}").json()["data"]
            if asset["status"] in statuses:
                return asset
            time.sleep(0.1)
        raise AssertionError(f"asset {asset_id} never reached {statuses}; last: {asset['status']}")


# -- images ---------------------------------------------------------------------------------------------------


def png_bytes(width: int = 64, height: int = 48, color=(200, 120, 40), noise: bool = False) -> bytes:
    image = (
        Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
        if noise
        else Image.new("RGB", (width, height), color)
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48, exif: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", (width, height), (30, 60, 90))
    if exif:
        image.save(buffer, format="JPEG", exif=exif)
    else:
        image.save(buffer, format="JPEG")
    return buffer.getvalue()


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A tiny, valid-looking PNG whose header declares an enormous image (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    row = b"\x00" + b"\x00" * width
    data = zlib.compress(row * 16, 9)  # a few rows only: the decoder would need far more
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def truncated_png() -> bytes:
    full = png_bytes(200, 200, noise=True)
    return full[: len(full) // 2]


# -- a real standalone server ---------------------------------------------------------------------------------


def jupyter_server_config(root: Path, monkeypatch: pytest.MonkeyPatch, **assets: object) -> Config:
    """pytest-jupyter's server config for the extension: no JUPYTER_ASSETS_* from the environment, unauthenticated
    access refused (undecorated handlers then warn), the library under ``root``, and these AssetsApp traits."""
    for name in list(os.environ):
        if name.startswith("JUPYTER_ASSETS_"):
            monkeypatch.delenv(name)
    return Config(
        {
            "ServerApp": {
                # Terminals off: pytest-jupyter would add them, and they are not what these tests are about.
                "jpserver_extensions": {"jupyter_assets": True, "jupyter_server_terminals": False},
                "allow_unauthenticated_access": False,
            },
            "AssetsApp": {"root_dir": str(root), **assets},
        }
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class StandaloneServer:
    root: Path
    port: int
    env: dict[str, str]
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> StandaloneServer:
        self.log_path = self.root.parent / f"server-{self.port}-{time.monotonic_ns()}.log"
        command = [
            sys.executable, "-m", "jupyter_assets.cli", "serve",
            "--root", str(self.root), "--port", str(self.port), *self.extra_args, *extra,
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                requests.get(self.url + "/api/v1/assets", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(timeout=30)

    def api(self, credential: str | None = ADMIN_KEY) -> Api:
        return Api(self.url, credential)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "jupyter_assets.cli", *args, "--root", str(self.root)],
            env=self.env, capture_output=True, text=True, check=check, timeout=60,
        )  # fmt: skip


def server_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_ASSETS_")}
    env.update({"JUPYTER_ASSETS_API_KEYS": ADMIN_KEY, "JUPYTER_ASSETS_JWT_SECRET": JWT_SECRET})
    env.update(overrides)
    return env


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that starts servers runs on both catalog engines, except the ones marked ``duckdb_only`` (each
    says why)."""
    if "catalog_engine" in metafunc.fixturenames:
        engines = ["duckdb"] if metafunc.definition.get_closest_marker("duckdb_only") else ["duckdb", "postgresql"]
        metafunc.parametrize("catalog_engine", engines, indirect=True, scope="module")


@pytest.fixture(scope="module")
def catalog_engine(request: pytest.FixtureRequest) -> str:
    """The catalog engine of this test's servers: "duckdb" (the file under the root) or "postgresql"."""
    return request.param


def team_library_env(postgres: PostgresServer, files: Path) -> dict[str, str]:
    """The environment of a server on a new team library: a new PostgreSQL database, and a local storage profile
    in the folder ``files`` (shared by the team's servers) as the default."""
    profile = {"name": "team-files", "providerType": "local", "configuration": {"rootPath": str(files)}}
    return {
        "JUPYTER_ASSETS_CATALOG_URL": postgres.new_database(),
        "JUPYTER_ASSETS_STORAGE_PROFILES": json.dumps([{**profile, "isDefault": True}]),
    }


@pytest.fixture
def make_server(tmp_path: Path, catalog_engine: str, request: pytest.FixtureRequest) -> Iterator:
    """Start standalone servers with a given environment; all are stopped at the end of the test. On PostgreSQL,
    servers given the same root share one team library (one database per root), as servers given the same root
    share the DuckDB file."""
    started: list[StandaloneServer] = []
    team_libraries: dict[Path, dict[str, str]] = {}

    def make(root: Path | None = None, **env: str) -> StandaloneServer:
        root = root or tmp_path / "library"
        if catalog_engine == "postgresql" and "JUPYTER_ASSETS_CATALOG_URL" not in env:
            if root not in team_libraries:
                team_libraries[root] = team_library_env(request.getfixturevalue("postgres"), root / "files")
            env = {**team_libraries[root], **env}
        server = StandaloneServer(root, free_port(), server_env(**env))
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, catalog_engine: str, request: pytest.FixtureRequest
) -> Iterator[StandaloneServer]:
    """One server for a whole test module (tests on it must not depend on an empty library)."""
    root = tmp_path_factory.mktemp("shared") / "library"
    env = {}
    if catalog_engine == "postgresql":  # the files where a one-server library keeps its own (see stored_files)
        env = team_library_env(request.getfixturevalue("postgres"), root / "files")
    server = StandaloneServer(root, free_port(), server_env(**env)).start()
    yield server
    server.stop()


def catalog_rows(server: StandaloneServer, sql: str, params: tuple = ()) -> list[tuple]:
    """Run ``sql`` (``?`` placeholders) straight on a server's catalog, on either engine (on a DuckDB file only
    once its server stopped); the rows it returns, if any."""
    url = server.env.get("JUPYTER_ASSETS_CATALOG_URL")
    if url:
        with psycopg.connect(url) as connection:
            cursor = connection.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []
    with duckdb.connect(str(server.root / "catalog.duckdb")) as connection:
        cursor = connection.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def default_profile_id(api: Api) -> str | None:
    """The id of the library's default storage profile (None: the library's own files folder)."""
    response = api.get("/api/v1/system/storage/providers")
    assert response.status_code == 200, response.text
    default = response.json()["data"].get("defaultProfile")
    return default["id"] if default else None


@pytest.fixture
def server(make_server) -> StandaloneServer:
    """A fresh server with an empty library."""
    return make_server().start()


@pytest.fixture
def api(server: StandaloneServer) -> Api:
    return server.api()


def stored_files(root: Path) -> list[Path]:
    files = root / "files"
    return sorted(p for p in files.rglob("*") if p.is_file()) if files.exists() else []


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"] and error["traceId"]
    return error


# -- tiny AI models ---------------------------------------------------------------------------------------------

TINY_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_COCA = {
    "embed_dim": 64,
    "vision_cfg": {
        **TINY_CLIP["vision_cfg"],
        "attentional_pool": True,
        "attn_pooler_heads": 2,
        "output_tokens": True,
    },
    "text_cfg": {**TINY_CLIP["text_cfg"], "embed_cls": True, "output_tokens": True},
    "multimodal_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    "custom_text": True,
}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Configs and checkpoints of a tiny CLIP and a tiny CoCa, as a user would point the settings at them."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name, config in (("tiny-clip", TINY_CLIP), ("tiny-coca", TINY_COCA)):
        config_path = folder / f"{name}.json"
        config_path.write_text(json.dumps(config))
        open_clip.add_model_config(config_path)
        torch.manual_seed(0)
        checkpoint = folder / f"{name}.pt"
        torch.save(open_clip.create_model(name).state_dict(), checkpoint)
        paths[name] = str(config_path)
        paths[f"{name}-weights"] = str(checkpoint)
    return paths


def model_env(tiny_models: dict[str, str], caption: bool = True) -> dict[str, str]:
    return {
        "JUPYTER_ASSETS_CLIP_MODEL": tiny_models["tiny-clip"],
        "JUPYTER_ASSETS_CLIP_PRETRAINED": tiny_models["tiny-clip-weights"],
        "JUPYTER_ASSETS_CAPTION_MODEL": tiny_models["tiny-coca"],
        "JUPYTER_ASSETS_CAPTION_PRETRAINED": tiny_models["tiny-coca-weights"] if caption else "",
    }


# -- S3 -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto) on a loopback port, for one test module."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def plain_s3_client(endpoint: str, region: str, access_key: str, secret_key: str) -> Any:
    """A plain boto3 client (path-style), to make buckets and check what is really in them."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole run; each test takes a database of its own (``new_database``)."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def catalog_url(catalog_engine: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The catalog of this test's engine: None for the DuckDB file under the root, else a new PostgreSQL database."""
    if catalog_engine == "duckdb":
        yield None
        return
    postgres: PostgresServer = request.getfixturevalue("postgres")
    url = postgres.new_database()
    yield url
    postgres.drop_database(url)

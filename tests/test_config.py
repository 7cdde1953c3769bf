"""Settings reach the standalone server as they reach Jupyter: environment defaults, config files, command line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from jupyter_core.paths import jupyter_data_dir

from jupyter_assets.app import AssetsApp

from conftest import assert_error, png_bytes


def test_config_file_then_command_line(make_server, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.py").write_text("c.AssetsApp.max_upload_bytes = 3000\n")
    big = png_bytes(60, 60, noise=True)  # about 11 KB
    assert len(big) > 3000

    from_file = make_server(JUPYTER_CONFIG_DIR=str(config_dir)).start()
    assert_error(from_file.api().upload(big), 400, "asset_file_too_large")
    from_file.stop()

    from_command_line = make_server(root=tmp_path / "other", JUPYTER_CONFIG_DIR=str(config_dir)).start(
        "--AssetsApp.max_upload_bytes=100000"
    )
    assert from_command_line.api().upload(big).status_code == 202


def test_unknown_options_are_refused(make_server) -> None:
    server = make_server()
    result = server.cli("serve", "--colour=blue", check=False)
    assert result.returncode == 2 and "unrecognized arguments: --colour=blue" in result.stderr


def test_storage_profiles_declared_in_configuration_are_created_then_updated_by_name(
    make_server, tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    photos = tmp_path / "photos"

    def declare(display_name: str) -> None:
        profile = {
            "name": "photos",
            "displayName": display_name,
            "providerType": "local",
            "isDefault": True,
            "configuration": {"rootPath": str(photos)},
        }
        (config_dir / "jupyter_server_config.py").write_text(f"c.AssetsApp.storage_profiles = [{profile!r}]\n")

    declare("Photos")
    server = make_server(JUPYTER_CONFIG_DIR=str(config_dir)).start()
    api = server.api()
    (profile,) = api.get("/api/v1/system/storage/providers").json()["data"]["profiles"]
    assert (profile["name"], profile["displayName"], profile["isDefault"]) == ("photos", "Photos", True)
    asset = api.upload_ok()
    assert asset["storageProviderProfileId"] == profile["id"]
    assert (photos / asset["storageKey"]).is_file()  # the default profile took the upload
    server.stop()

    declare("Holiday photos")
    server.start()
    (again,) = api.get("/api/v1/system/storage/providers").json()["data"]["profiles"]
    assert (again["id"], again["displayName"]) == (profile["id"], "Holiday photos")


def test_an_invalid_declared_storage_profile_stops_the_start_with_a_clear_error(make_server, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    profile = {"name": "broken", "providerType": "local", "configuration": {}}
    (config_dir / "jupyter_server_config.py").write_text(f"c.AssetsApp.storage_profiles = [{profile!r}]\n")
    server = make_server(JUPYTER_CONFIG_DIR=str(config_dir))
    with pytest.raises(RuntimeError, match="Storage profile 'broken' in configuration: rootPath is required"):
        server.start()


# -- JUPYTER_ASSETS_* variables, read in-process ---------------------------------------------------------------

ENV_CASES = [
    ("JUPYTER_ASSETS_ROOT", "/srv/library", "root_dir", "/srv/library"),
    ("JUPYTER_ASSETS_API_KEYS", " key-one , key-two ,", "api_keys", ["key-one", "key-two"]),
    ("JUPYTER_ASSETS_JWT_SECRET", "s3cret", "jwt_secret", "s3cret"),
    ("JUPYTER_ASSETS_JWT_PUBLIC_KEY", "/keys/jwt.pem", "jwt_public_key", "/keys/jwt.pem"),
    ("JUPYTER_ASSETS_JWT_ISSUER", "issuer", "jwt_issuer", "issuer"),
    ("JUPYTER_ASSETS_JWT_AUDIENCE", "audience", "jwt_audience", "audience"),
    ("JUPYTER_ASSETS_MAX_UPLOAD_BYTES", "4096", "max_upload_bytes", 4096),
    ("JUPYTER_ASSETS_MAX_UPLOAD_BYTES", "0", "max_upload_bytes", 0),
    (
        "JUPYTER_ASSETS_ALLOWED_CONTENT_TYPES",
        "image/png,image/avif",
        "allowed_content_types",
        ["image/png", "image/avif"],
    ),
    ("JUPYTER_ASSETS_PUBLIC_BASE_URL", "https://cdn.example", "public_base_url", "https://cdn.example"),
    ("JUPYTER_ASSETS_ENRICHMENT_SKILLS", "thumbnail,tags", "enrichment_skills", ["thumbnail", "tags"]),
    ("JUPYTER_ASSETS_CLIP_MODEL", "RN50", "clip_model", "RN50"),
    ("JUPYTER_ASSETS_CLIP_PRETRAINED", "openai", "clip_pretrained", "openai"),
    ("JUPYTER_ASSETS_CLIP_PRETRAINED", "openai", "enrichment_skills", ["thumbnail", "embed", "tags"]),
    ("JUPYTER_ASSETS_CAPTION_MODEL", "coca_ViT-L-14", "caption_model", "coca_ViT-L-14"),
    ("JUPYTER_ASSETS_CAPTION_PRETRAINED", "mscoco", "caption_pretrained", "mscoco"),
    ("JUPYTER_ASSETS_MODEL_DEVICE", "cuda:1", "model_device", "cuda:1"),
    ("JUPYTER_ASSETS_JOB_LEASE_SECONDS", "2.5", "job_lease_seconds", 2.5),
]
# What each trait is with nothing in the environment (or an empty variable, or a list with no items), written out
# here so that a change of default shows.
UNSET_DEFAULTS = {
    "api_keys": [],
    "jwt_secret": None,
    "jwt_public_key": None,
    "jwt_issuer": None,
    "jwt_audience": None,
    "max_upload_bytes": 10 * 1024 * 1024,
    "allowed_content_types": ["image/png", "image/jpeg", "image/gif", "image/webp"],
    "public_base_url": None,
    "enrichment_skills": ["thumbnail"],
    "clip_model": "ViT-B-32",
    "clip_pretrained": "",
    "caption_model": "coca_ViT-B-32",
    "caption_pretrained": "",
    "model_device": "auto",
    "max_image_pixels": 100_000_000,
    "workers": 2,
    "job_lease_seconds": 60.0,
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("JUPYTER_ASSETS_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(("variable", "value", "trait", "expected"), ENV_CASES)
def test_each_variable_sets_its_trait(clean_env, variable: str, value: str, trait: str, expected: object) -> None:
    clean_env.setenv(variable, value)
    assert getattr(AssetsApp(), trait) == expected


LIST_VARIABLES = ["JUPYTER_ASSETS_API_KEYS", "JUPYTER_ASSETS_ALLOWED_CONTENT_TYPES", "JUPYTER_ASSETS_ENRICHMENT_SKILLS"]


@pytest.mark.parametrize(
    ("value", "variables"),
    [(None, []), ("", sorted({variable for variable, *_ in ENV_CASES})), (",, ,", LIST_VARIABLES)],
    ids=["unset", "empty", "list-without-items"],
)
def test_unset_or_empty_variables_give_the_defaults(clean_env, value: str | None, variables: list[str]) -> None:
    for variable in variables:
        clean_env.setenv(variable, value)
    app = AssetsApp()
    assert {trait: getattr(app, trait) for trait in UNSET_DEFAULTS} == UNSET_DEFAULTS
    assert app.root_dir == os.path.join(jupyter_data_dir(), "assets")


def test_a_bad_number_in_the_environment_is_refused(clean_env) -> None:
    clean_env.setenv("JUPYTER_ASSETS_MAX_UPLOAD_BYTES", "10MB")
    with pytest.raises(ValueError, match=r"invalid literal for int\(\) with base 10: '10MB'"):
        AssetsApp().max_upload_bytes  # noqa: B018


def test_the_command_line_wins_over_the_environment(clean_env) -> None:
    clean_env.setenv("JUPYTER_ASSETS_MAX_UPLOAD_BYTES", "4096")
    clean_env.setenv("JUPYTER_ASSETS_API_KEYS", "from-env")
    app = AssetsApp()
    app.parse_command_line(["--AssetsApp.max_upload_bytes=100", "--AssetsApp.api_keys=from-cli"])
    assert (app.max_upload_bytes, app.api_keys) == (100, ["from-cli"])

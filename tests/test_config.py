"""Settings reach the standalone server as they reach Jupyter: environment defaults, config files, command line."""

from __future__ import annotations

from pathlib import Path

import pytest

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

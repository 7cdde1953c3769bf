"""Settings reach the standalone server as they reach Jupyter: environment defaults, config files, command line."""

from __future__ import annotations

from pathlib import Path

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

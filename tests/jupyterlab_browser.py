"""What the tests in a real JupyterLab share (test_labextension.py, test_widgets.py): JupyterLab in a subprocess,
isolated from the user's Jupyter setup, and the browser scripts of ``labextension/ui-tests`` run with Node against it
in Debian's Chromium (playwright-core from ``labextension/node_modules``, no downloaded browser)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from conftest import REPO, free_port

LABEXTENSION = REPO / "labextension"  # its node_modules has playwright-core
UI_TESTS = LABEXTENSION / "ui-tests"
CHROMIUM_WRAPPER = Path("/usr/bin/chromium")  # Debian's launcher script
CHROMIUM_BINARY = Path("/usr/lib/chromium/chromium")  # what it runs (Playwright needs the binary itself)
NODE = shutil.which("node")
NPM = shutil.which("npm")


def missing_browser_tooling() -> list[str]:
    """What a browser script needs and is missing, each with the command that provides it."""
    missing = []
    if not NODE:
        missing.append("node (install Node.js >= 20)")
    if not CHROMIUM_BINARY.exists():
        missing.append(f"{CHROMIUM_BINARY} (`make lab-test-deps` installs Debian's chromium)")
    if not (LABEXTENSION / "node_modules" / "playwright-core").is_dir():
        missing.append("labextension/node_modules/playwright-core (`cd labextension && jlpm install`)")
    return missing


def jupyter_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment isolated from the user's Jupyter setup: no JUPYTER_* / JPY_* from outside, fresh config,
    data and runtime folders (so user settings and workspaces start empty). Extensions stay discoverable: the
    server extension through the venv's etc/jupyter, the panel through the venv's share/jupyter/labextensions."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    for name in ("config", "data", "runtime"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        # No AI model unless the caller names one: a default weight would be downloaded (slow, and offline here).
        JUPYTER_ASSETS_CLIP_PRETRAINED="",
        JUPYTER_ASSETS_CAPTION_PRETRAINED="",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class RunningLab:
    url: str  # http://127.0.0.1:<port><base URL>
    token: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for_lab(url: str, token: str, process: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited early ({process.returncode}):\n{log_path.read_text()}")
        try:
            response = requests.get(url + "api/v1/assets", headers={"Authorization": f"token {token}"}, timeout=2)
            if response.status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)  # polling a subprocess that gives no other signal of being ready
    raise RuntimeError(f"JupyterLab did not answer /api/v1/assets in {timeout} s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # Jupyter shuts its kernels down on SIGTERM
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def jupyterlab(root: Path, home: Path, log_path: Path, base_url: str = "/", **env_extra: str) -> Iterator[RunningLab]:
    """JupyterLab with our extensions on a free port, serving ``root`` under ``base_url``, its Jupyter folders in
    ``home`` (see ``jupyter_env``, which gets ``env_extra``); stopped on leaving, its output in ``log_path``."""
    token = secrets.token_hex(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}{base_url}"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True", f"--ServerApp.base_url={base_url}",
    ]  # fmt: skip
    env = jupyter_env(home, **env_extra)
    # No "get notified about Jupyter news?" toast: it pops up at a moment of its own and can take the keyboard
    # focus just as the test presses Enter in the search box (a run failed so, the toast on its screenshot).
    news = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        wait_for_lab(url, token, process, log_path)
        yield RunningLab(url, token, process, log_path)
    finally:
        stop(process)


def run_node(script: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """A script of ``labextension/ui-tests`` (``env`` replaces the environment), from ``labextension`` so that it
    finds playwright-core."""
    return subprocess.run(
        [NODE, str(script)], cwd=LABEXTENSION, env=env, capture_output=True, text=True, timeout=timeout
    )


def script_env(lab: RunningLab, artifacts: Path, chromium: Path = CHROMIUM_WRAPPER, **extra: str) -> dict[str, str]:
    """The environment of a ui-tests script (see ``ui-tests/harness.mjs``) against ``lab``."""
    return {
        **os.environ,
        "LAB_URL": lab.url,
        "TOKEN": lab.token,
        "ARTIFACTS": str(artifacts),
        "CHROMIUM": str(chromium),
        **extra,
    }

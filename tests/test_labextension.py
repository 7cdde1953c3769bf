"""The JupyterLab panel in a real browser: JupyterLab in a subprocess with a seeded library, driven through Debian's
Chromium by ``labextension/ui-tests/panel.mjs`` (playwright-core, no downloaded browser). What the browser did is then
checked on the server over HTTP and on disk. A second test runs JupyterLab's own ``browser_check`` with the extension
installed, with Playwright pointed at the same Debian Chromium."""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import nbformat
import pytest
import requests
from jupyterlab_browser import (
    CHROMIUM_BINARY,
    NODE,
    NPM,
    UI_TESTS,
    RunningLab,
    jupyter_env,
    jupyterlab,
    missing_browser_tooling,
    run_node,
    script_env,
)
from PIL import Image, ImageStat

from conftest import REPO, Api, jpeg_bytes, model_env, png_bytes

ARTIFACTS = REPO / "test-artifacts" / "labextension"
BUNDLE = REPO / "jupyter_assets" / "labextension"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The library the browser sees: (file name, bytes, content type, public?, description, alt text).
SEED = [
    ("harbour-sunset.png", png_bytes(96, 64, (230, 120, 40)), "image/png", True,
     "Sunset over the harbour", "An orange harbour at dusk"),
    ("forest-path.jpg", jpeg_bytes(80, 60), "image/jpeg", True, "A path through a pine forest", "A forest path"),
    ("city-night.png", png_bytes(120, 80, (20, 30, 90)), "image/png", True, "City lights at night", "A dark city"),
    ("mountain-lake.png", png_bytes(64, 64, noise=True), "image/png", False, "A private mountain lake", "A lake"),
    ("obsolete-diagram.png", png_bytes(72, 48, (90, 160, 90)), "image/png", True, "To be deleted", "A diagram"),
    # One series: names too long for a card that differ only at the end (the panel's middle ellipsis shows it).
    ("holiday-photo-2023-summer-0011.jpg", jpeg_bytes(60, 40), "image/jpeg", True, "Holiday 11", "A holiday photo"),
    ("holiday-photo-2023-summer-0012.jpg", jpeg_bytes(40, 60), "image/jpeg", True, "Holiday 12", "A holiday photo"),
]  # fmt: skip
SERIES = ["holiday-photo-2023-summer-0011.jpg", "holiday-photo-2023-summer-0012.jpg"]
BASE_URL = "/user/tester/"
DROPPED_NAME = "desktop-drop.png"
DROPPED = png_bytes(150, 100, noise=True)  # noise: a size no other image here has
PICKED_NAME = "picked-with-the-button.png"  # uploaded through the Upload button's file picker
PICKED = png_bytes(110, 90, noise=True)
SERVER_FILE = "on-the-server.jpg"  # in the notebooks folder, added from the file browser's context menu
SERVER_FILE_BYTES = jpeg_bytes(90, 70)
EDITED_DESCRIPTION = "Described in the browser test"
WATERMARK_TEXT = "UI TEST"


def require_browser_tooling() -> None:
    """The browser tests need Node, Debian's Chromium, playwright-core and the built panel. A missing piece is a
    failure with the command that provides it, never a skip."""
    missing = missing_browser_tooling()
    if not NPM:
        missing.append("npm (install Node.js >= 20)")
    if not (BUNDLE / "package.json").exists():
        missing.append(f"the built panel in {BUNDLE} (`cd labextension && jlpm build:prod`)")
    installed = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "jupyter-assets" / "package.json"
    if not installed.exists():
        missing.append(f"{installed} (`jupyter labextension develop --overwrite .` with the venv's bin on PATH)")
    assert not missing, "cannot run the browser tests; missing: " + "; ".join(missing)


@dataclass(kw_only=True)
class Lab(RunningLab):  # url: http://127.0.0.1:<port>/user/tester/ (the server's base URL, as behind JupyterHub)
    notebooks: Path
    library: Path
    seeded: dict[str, dict] = field(default_factory=dict)  # by file name, as the upload answered

    @property
    def api(self) -> Api:
        """Requests as the Jupyter user, authenticated by Jupyter's token (the way the panel is)."""
        api = Api(self.url, None)
        api.session.headers["Authorization"] = f"token {self.token}"
        return api


@contextmanager
def running_lab(base: Path, **env_extra: str) -> Iterator[Lab]:
    """A real JupyterLab with the extension, under a JupyterHub-like base URL, with an empty notebook
    ``drop.ipynb`` and the image ``SERVER_FILE`` in its notebooks folder; the library in ``base / "library"``."""
    notebooks, library = base / "notebooks", base / "library"
    notebooks.mkdir()
    # Empty, with the kernel named (as in the committed notebooks) so that JupyterLab does not ask for one.
    kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(metadata={"kernelspec": kernelspec}), notebooks / "drop.ipynb")
    (notebooks / SERVER_FILE).write_bytes(SERVER_FILE_BYTES)
    # Under a prefix, as JupyterHub serves a user's server: every URL the panel makes must carry it.
    with jupyterlab(
        notebooks, base / "jupyter", base / "jupyterlab.log", BASE_URL, JUPYTER_ASSETS_ROOT=str(library), **env_extra
    ) as running:
        yield Lab(**vars(running), notebooks=notebooks, library=library)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, str]) -> Iterator[Lab]:
    """JupyterLab with a seeded library, embedded and tagged by a tiny CLIP model (so search by meaning works)."""
    require_browser_tooling()
    with running_lab(tmp_path_factory.mktemp("lab"), **model_env(tiny_models, caption=False)) as running:
        api = running.api
        for name, data, content_type, public, description, alt_text in SEED:
            response = api.upload(
                data, name=name, content_type=content_type, isPublic=str(public).lower(),
                description=description, altText=alt_text, runEnrichment="true",
            )  # fmt: skip
            assert response.status_code == 202, response.text
            running.seeded[name] = api.wait_for_status(response.json()["data"]["id"], ("ready",))
        yield running


@pytest.fixture(scope="module")
def bare_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab without any model (the default configuration) and an empty library."""
    require_browser_tooling()
    with running_lab(tmp_path_factory.mktemp("bare-lab")) as running:
        yield running


def tags_of(asset: dict) -> list[dict]:
    (result,) = [r for r in asset["structuredResults"] if r["kind"] == "tags"]
    return json.loads(result["payloadJson"])["tags"]


def png_image(path: Path) -> Image.Image:
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE), f"{path} is not a PNG ({len(data)} bytes)"
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.width > 50 and image.height > 50, image.size
    return image


def brightness(image: Image.Image) -> float:
    return ImageStat.Stat(image.convert("L")).mean[0]


# -- the panel, driven like a user would --------------------------------------------------------------------------


@pytest.mark.timeout(420)
def test_panel_in_jupyterlab(lab: Lab) -> None:
    seeded = lab.seeded
    edited, watermarked = seeded["city-night.png"], seeded["forest-path.jpg"]
    deleted, dragged = seeded["obsolete-diagram.png"], seeded["harbour-sunset.png"]
    artifacts = ARTIFACTS
    artifacts.mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        for name in ("panel", "toolbar", "uploads-expanded"):
            (artifacts / f"{name}-{theme}.png").unlink(missing_ok=True)  # this run's files only
    for name in ("detail-skill-light.png", "failure.png", "console.log"):
        (artifacts / name).unlink(missing_ok=True)
    drop_file = artifacts / DROPPED_NAME
    drop_file.write_bytes(DROPPED)
    picked_file = artifacts / PICKED_NAME
    picked_file.write_bytes(PICKED)
    plan = {
        "seededCount": len(SEED),
        "search": {"term": "harbour", "expectedId": dragged["id"]},
        # No description holds these words, so only a search by meaning (every asset has an embedding) finds any.
        "meaning": {"text": "a harbour at sunset"},
        "tags": {"id": edited["id"], "labels": [tag["label"] for tag in tags_of(edited)]},
        "series": [{"id": seeded[name]["id"], "name": name} for name in SERIES],
        "drop": {"path": str(drop_file), "name": DROPPED_NAME, "type": "image/png"},
        "picked": {"path": str(picked_file), "name": PICKED_NAME},
        # HTML in a file that says it is a PNG: refused, and the row says why.
        "refusedDrop": {"name": "not-an-image.png", "text": "<html>nope</html>", "code": "asset_content_type_mismatch"},
        "edit": {"id": edited["id"], "description": EDITED_DESCRIPTION},
        "skill": {"id": watermarked["id"], "name": "watermark", "text": WATERMARK_TEXT},
        "delete": {"id": deleted["id"]},
        "drag": {"id": dragged["id"], "altText": dragged["altText"]},
        "notebook": "drop.ipynb",
        "serverFile": {"name": SERVER_FILE},
    }
    env = script_env(lab, artifacts, PLAN=json.dumps(plan))
    started = time.monotonic()
    result = run_node(UI_TESTS / "panel.mjs", env, timeout=300)
    output = f"--- panel.mjs stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    assert result.returncode == 0, f"{output}\n--- JupyterLab log (tail) ---\n{lab.log()[-6000:]}"
    print(f"panel.mjs took {time.monotonic() - started:.1f} s\n{result.stdout}")

    api = lab.api
    # The file dropped from the desktop is an asset, byte for byte.
    response = api.get("/api/v1/assets", params={"q": "desktop-drop", "pageSize": 100})
    assert response.status_code == 200, response.text
    items = response.json()["data"]["items"]
    assert [item["originalFileName"] for item in items] == [DROPPED_NAME], items
    dropped = api.get(f"/api/v1/assets/{items[0]['id']}").json()["data"]
    assert dropped["size"] == len(DROPPED)
    assert dropped["checksumSha256"] == hashlib.sha256(DROPPED).hexdigest()
    assert dropped["contentType"] == "image/png" and (dropped["width"], dropped["height"]) == (150, 100)

    # The file picked with the Upload button, byte for byte.
    response = api.get("/api/v1/assets", params={"q": PICKED_NAME})
    (listed,) = response.json()["data"]["items"]
    picked = api.get(f"/api/v1/assets/{listed['id']}").json()["data"]
    assert picked["originalFileName"] == PICKED_NAME and picked["contentType"] == "image/png"
    assert picked["checksumSha256"] == hashlib.sha256(PICKED).hexdigest()

    # The refused file left nothing behind.
    assert api.get("/api/v1/assets", params={"q": "not-an-image"}).json()["data"]["total"] == 0

    # The description edited and saved in the detail view, and the asset made private there.
    edited_now = api.get(f"/api/v1/assets/{edited['id']}").json()["data"]
    assert edited_now["description"] == EDITED_DESCRIPTION
    assert edited_now["isPublic"] is False and edited_now["publicUrl"] is None

    # The watermark run from the skill form is the asset's latest execution, and it changed the bytes.
    after = api.get(f"/api/v1/assets/{watermarked['id']}").json()["data"]
    summary = after["latestExecutionSummary"]
    assert summary["skillName"] == "watermark" and summary["triggerSource"] == "manual", summary
    assert summary["succeeded"], summary
    assert after["checksumSha256"] != watermarked["checksumSha256"]

    # Deleted through the confirmation dialog.
    response = api.get(f"/api/v1/assets/{deleted['id']}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "asset_not_found"

    # The server file added from the file browser's context menu, byte for byte.
    response = api.get("/api/v1/assets", params={"q": SERVER_FILE})
    (listed,) = response.json()["data"]["items"]
    added = api.get(f"/api/v1/assets/{listed['id']}").json()["data"]
    assert added["originalFileName"] == SERVER_FILE and added["contentType"] == "image/jpeg"
    assert added["checksumSha256"] == hashlib.sha256(SERVER_FILE_BYTES).hexdigest()

    # Everything else is still there: the seeded + 1 dropped + 1 picked + 1 from the file browser - 1 deleted.
    response = api.get("/api/v1/assets", params={"pageSize": 100})
    assert response.json()["data"]["total"] == len(SEED) + 2

    # The card dropped on the notebook's Markdown cell, saved to disk.
    notebook = nbformat.read(lab.notebooks / "drop.ipynb", as_version=4)
    assert [cell.cell_type for cell in notebook.cells] == ["markdown", "code"], notebook.cells
    assert notebook.cells[1].source.strip() == f'client.get("{dragged["id"]}")'
    markdown = [cell for cell in notebook.cells if cell.cell_type == "markdown"]
    assert markdown and notebook.cells[0].cell_type == "markdown", notebook.cells
    source = markdown[0].source
    match = re.fullmatch(r"\s*!\[([^\]]*)\]\(([^)\s]+)\)\s*", source)
    assert match, f"the Markdown cell is not one image link: {source!r}"
    alt_text, url = match.groups()
    assert alt_text == dragged["altText"]
    assert dragged["publicUrl"], dragged
    image_url = urljoin(lab.url, url)
    assert image_url in (urljoin(lab.url, dragged["publicUrl"]), f"{lab.url}api/v1/assets/{dragged['id']}/content")
    # The link works without Jupyter's credentials (a public asset; the notebook may be shared).
    content = requests.get(image_url, timeout=30)
    assert content.status_code == 200, content.status_code
    assert hashlib.sha256(content.content).hexdigest() == dragged["checksumSha256"]

    # Screenshots of the panel in both themes: real PNGs, and the dark ones are darker.
    for name in ("panel", "toolbar", "uploads-expanded"):
        light, dark = png_image(artifacts / f"{name}-light.png"), png_image(artifacts / f"{name}-dark.png")
        assert brightness(dark) < brightness(light) - 40, (name, brightness(light), brightness(dark))
    png_image(artifacts / "detail-skill-light.png")


def run_bare(lab: Lab, check: str, plan: dict) -> subprocess.CompletedProcess:
    """``ui-tests/bare.mjs`` with CHECK=<check> against ``lab``; fails with its output and the server's log."""
    env = script_env(lab, ARTIFACTS, CHECK=check, PLAN=json.dumps(plan))
    result = run_node(UI_TESTS / "bare.mjs", env, timeout=240)
    output = f"--- bare.mjs ({check}) stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    assert result.returncode == 0, f"{output}\n--- JupyterLab log (tail) ---\n{lab.log()[-6000:]}"
    print(output)
    return result


@pytest.mark.timeout(300)
def test_panel_without_a_model(bare_lab: Lab) -> None:
    """Without a CLIP model (the default), "by meaning" is disabled and its tooltip names the setting to change."""
    for name in ("no-model-light.png", "no-model-dark.png", "failure-no-model.png", "console-no-model.log"):
        (ARTIFACTS / name).unlink(missing_ok=True)
    # What the panel asks to find out (the server's own answer, not a mock).
    response = bare_lab.api.get("/api/v1/assets", params={"text": "x", "pageSize": 1})
    assert response.status_code == 409 and response.json()["error"]["code"] == "model_unavailable", response.text
    run_bare(bare_lab, "no-model", {})
    light, dark = png_image(ARTIFACTS / "no-model-light.png"), png_image(ARTIFACTS / "no-model-dark.png")
    assert brightness(dark) < brightness(light) - 40, (brightness(light), brightness(dark))


@pytest.mark.timeout(300)
def test_a_bogus_bearer_header_does_not_skip_xsrf_from_the_lab_page(bare_lab: Lab) -> None:
    """Issue 14, item 1, in the browser: the JupyterLab page is logged in by Jupyter's cookie. A write that carries
    ``Authorization: Bearer x`` (not a valid credential) and no XSRF token must be refused, and do nothing; the same
    write with the page's ``_xsrf`` cookie as ``X-XSRFToken`` and no Authorization header goes through."""
    (ARTIFACTS / "xsrf.json").unlink(missing_ok=True)
    api = bare_lab.api
    target = api.upload_ok(png_bytes(20, 20, (1, 2, 3)), name="xsrf-target.png")
    suffix = secrets.token_hex(4)
    plan = {"assetId": target["id"], "refusedKeyName": f"xsrf-refused-{suffix}", "keyName": f"xsrf-allowed-{suffix}"}
    run_bare(bare_lab, "xsrf", plan)
    results = json.loads((ARTIFACTS / "xsrf.json").read_text())
    report = json.dumps(results, indent=2)

    # The security property: nothing was deleted or created by the requests without an XSRF token.
    assert results["assetAfterBearerDelete"] == 200, f"the asset was deleted without an XSRF token:\n{report}"
    assert plan["refusedKeyName"] not in results["keysAfterBearerKey"], f"a key was created without XSRF:\n{report}"
    for name in ("bearerDelete", "bearerKey"):
        assert 400 <= results[name]["status"] < 500, f"{name} was not refused:\n{report}"
    # How: a Bearer header that does not authenticate is a 401, never a fall-back to the cookie's user.
    for name in ("bearerDelete", "bearerKey"):
        answer = results[name]
        assert answer["status"] == 401 and answer["body"]["error"]["code"] == "api_key_invalid", report

    # The page's own way (cookie + X-XSRFToken, as JupyterLab's ServerConnection sends) works for the same writes.
    assert results["xsrfDelete"]["status"] == 200, report
    assert results["xsrfDelete"]["body"]["data"]["deletedCount"] == 1, report
    assert results["xsrfKey"]["status"] == 201, report
    assert results["xsrfKey"]["body"]["data"]["name"] == plan["keyName"], report
    response = api.get(f"/api/v1/assets/{target['id']}")
    assert response.status_code == 404, response.text
    names = [key["name"] for key in api.get("/api/v1/system/api-keys").json()["data"]]
    assert plan["keyName"] in names and plan["refusedKeyName"] not in names, names


# -- JupyterLab's own smoke test --------------------------------------------------------------------------------


def lab_app_dir(env: dict[str, str]) -> Path:
    """The folder where browser_check keeps its Playwright install: ``<jupyter lab path>/browser_test``."""
    out = subprocess.run(
        [sys.executable, "-c", "from jupyterlab.commands import get_app_dir; print(get_app_dir())"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return Path(out.strip())


def install_browser_check_playwright(target: Path) -> None:
    """What browser_check itself runs when ``browser_test/node_modules`` is missing (the npm registry is the only
    network it needs). Done here first so that the browsers folder can be laid out for that very Playwright."""
    if (target / "node_modules" / "playwright-core").is_dir():
        return
    target.mkdir(parents=True, exist_ok=True)
    for command in (["npm", "init", "-y"], ["npm", "install", "playwright@^1.9.2"]):
        result = subprocess.run(command, cwd=target, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command} failed in {target}:\n{result.stdout}\n{result.stderr}"


@pytest.mark.timeout(600)
def test_jupyterlab_browser_check(tmp_path: Path) -> None:
    """``python -m jupyterlab.browser_check`` loads JupyterLab with our extension in headless Chromium and fails on
    any console error, uncaught error or logged server error (a plugin that fails to activate logs a console error).

    browser_check runs ``npx playwright install chromium``, which would download Playwright's own Chromium (not
    possible here). ``PLAYWRIGHT_BROWSERS_PATH`` points at a folder laid out the way that Playwright expects
    (``ui-tests/debian-chromium.mjs``, from Playwright's own registry), whose executables are Debian's Chromium and
    whose marker files say installed: the install then finds everything present and the launch runs Debian's."""
    require_browser_tooling()
    env = jupyter_env(tmp_path / "jupyter", JUPYTER_ASSETS_ROOT=str(tmp_path / "library"))
    target = lab_app_dir(env) / "browser_test"
    install_browser_check_playwright(target)

    browsers = tmp_path / "ms-playwright"
    env["PLAYWRIGHT_BROWSERS_PATH"] = str(browsers)
    layout = subprocess.run(
        [NODE, str(UI_TESTS / "debian-chromium.mjs"), str(target), str(CHROMIUM_BINARY)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert layout.returncode == 0, layout.stdout + layout.stderr
    executables = json.loads(layout.stdout)
    assert {"chromium", "ffmpeg"} <= set(executables), executables

    output_dir = ARTIFACTS / "browser-check"
    shutil.rmtree(output_dir, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env["JLAB_BROWSER_CHECK_OUTPUT"] = str(output_dir)  # a screenshot of the loaded JupyterLab
    env["DEBUG"] = "pw:browser"  # Playwright logs the executable it launches
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "jupyterlab.browser_check", "--allow-root", "--log-level=DEBUG"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=480,
    )  # fmt: skip
    output = result.stdout + result.stderr
    (ARTIFACTS / "browser-check.log").write_text(output)
    tail = f"exit {result.returncode} after {time.monotonic() - started:.0f} s; output (tail):\n{output[-12000:]}"
    assert result.returncode == 0, tail
    assert "Browser test complete" in output, tail
    assert "Downloading" not in output, tail  # nothing was fetched: the browsers were already "installed"

    # The browser that ran is Debian's Chromium, through the folder laid out above.
    launched = re.findall(r"<launching> (\S+)", output)
    assert launched, tail
    assert all(Path(path).resolve() == CHROMIUM_BINARY.resolve() for path in launched), launched
    assert all(path.startswith(str(browsers)) for path in launched), launched

    # Our extension was loaded: JupyterLab fetched its remote entry and the module exposing the plugin (the access
    # log, at debug level). JupyterLab activates every autoStart plugin before `restored`; an activation error is
    # a console error, which fails browser_check above. So the plugin was activated, without error.
    fetched = re.findall(r"\b200 GET /foo/lab/extensions/jupyter-assets/static/(\S+?)(?:\?\S*)? ", output)
    assert any(name.startswith("remoteEntry.") for name in fetched), tail
    assert any(not name.startswith(("remoteEntry.", "style")) for name in fetched), fetched
    screenshots = sorted(output_dir.glob("*.png"))
    assert screenshots, f"browser_check wrote no screenshot in {output_dir}"
    png_image(screenshots[-1])

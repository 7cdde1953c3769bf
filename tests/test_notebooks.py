"""The tutorial notebooks run top to bottom against a real server, found the way a notebook finds its own Jupyter
server: through a `jpserver-<pid>.json` runtime file in `JUPYTER_RUNTIME_DIR`."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pyarrow
import pyarrow.parquet
import pytest
from nbclient import NotebookClient

from conftest import ADMIN_KEY, REPO, Api, StandaloneServer, jpeg_bytes, png_bytes

# The notebooks speak the HTTP API, which the API tests run on both catalog engines: here, the DuckDB one only.
pytestmark = pytest.mark.duckdb_only

NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts" / "notebooks"
NOTEBOOK_NAMES = ["01-quickstart.ipynb", "02-enrich-and-search.ipynb", "03-usage-analytics.ipynb"]


@dataclass
class Library:
    server: StandaloneServer
    api: Api
    workdir: Path  # the kernel's working directory, inside the fake Jupyter server's root_dir


@pytest.fixture
def library(make_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Library:
    """A fresh server without AI models (an unset caption weight would be downloaded: slow, and offline here),
    announced to kernels as the Jupyter server that runs them."""
    server = make_server(JUPYTER_ASSETS_CLIP_PRETRAINED="", JUPYTER_ASSETS_CAPTION_PRETRAINED="").start()
    root = tmp_path / "root"
    workdir = root / "notebooks"
    workdir.mkdir(parents=True)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    pid = os.getpid()  # list_running_servers drops (and deletes) files whose pid is not alive: use our own
    info = {
        "url": server.url + "/",
        "hostname": "127.0.0.1",
        "port": server.port,
        "sock": "",
        "secure": False,
        "base_url": "/",
        "token": ADMIN_KEY,
        "root_dir": str(root),
        "password": False,
        "pid": pid,
        "version": "2.0.0",
    }
    (runtime / f"jpserver-{pid}.json").write_text(json.dumps(info))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))  # the kernel inherits this environment
    for name in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_SERVICE_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    return Library(server, server.api(), workdir)


def execute(name: str, workdir: Path) -> nbformat.NotebookNode:
    """Run a notebook top to bottom; a failing cell raises CellExecutionError with its traceback."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    resources = {"metadata": {"path": str(workdir)}}  # the kernel's working directory
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources=resources).execute()
    return notebook


def cell(notebook: nbformat.NotebookNode, source_start: str) -> nbformat.NotebookNode:
    matches = [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(source_start)]
    assert len(matches) == 1, f"expected one code cell starting with {source_start!r}, found {len(matches)}"
    return matches[0]


def printed(code_cell: nbformat.NotebookNode) -> str:
    return "".join(output.get("text", "") for output in code_cell.outputs if output.output_type == "stream")


def all_assets(api: Api) -> list[dict]:
    response = api.get("/api/v1/assets", params={"pageSize": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]["items"]


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_committed_notebooks_have_no_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert code_cells
    for code_cell in code_cells:
        assert code_cell.outputs == [] and code_cell.execution_count is None, code_cell.source


def test_quickstart(library: Library) -> None:
    notebook = execute("01-quickstart.ipynb", library.workdir)

    assert "uploaded: 8, skipped: 0, failed: 0" in printed(cell(notebook, "report = client.upload_many"))
    assert "deleted quickstart-08-magenta.png; 7 quickstart assets left" in printed(cell(notebook, "magenta ="))
    listing = cell(notebook, "page = client.list")
    assert any("text/html" in output.get("data", {}) for output in listing.outputs)  # the grid of assets
    widget = cell(notebook, "from jupyter_assets import widgets")
    assert any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in widget.outputs)

    assets = {asset["originalFileName"]: asset for asset in all_assets(library.api)}
    assert sorted(assets) == [
        "quickstart-01-red.png",
        "quickstart-02-orange.png",
        "quickstart-03-yellow.png",
        "quickstart-04-green.png",
        "quickstart-05-cyan.png",
        "quickstart-06-blue.png",
        "quickstart-07-violet.png",
    ]
    assert assets["quickstart-01-red.png"]["description"] == "A white disc on a red background"
    assert assets["quickstart-02-orange.png"]["description"] == "A sample image from the quickstart notebook"


def test_quickstart_runs_twice(library: Library) -> None:
    """Running it again skips what is already there and uploads only the asset it deleted."""
    execute("01-quickstart.ipynb", library.workdir)
    notebook = execute("01-quickstart.ipynb", library.workdir)
    assert "uploaded: 1, skipped: 7, failed: 0" in printed(cell(notebook, "report = client.upload_many"))
    assert len(all_assets(library.api)) == 7


def test_enrich_and_search_without_a_model(library: Library) -> None:
    notebook = execute("02-enrich-and-search.ipynb", library.workdir)

    skills = printed(cell(notebook, "for skill in client.skills()"))
    for skill in ("thumbnail", "watermark", "tags", "caption"):
        assert skill in skills
    assert "thumbnail: succeeded" in printed(cell(notebook, 'result = run(asset.id, "thumbnail")'))
    assert "watermark: succeeded" in printed(cell(notebook, 'result = run(asset.id, "watermark"'))
    # The test server has no model: the step's message is printed instead of a failure.
    assert "tags: step zero_shot_tags failed: " in printed(cell(notebook, 'result = run(asset.id, "tags"'))
    assert "caption: step generate_caption failed: " in printed(cell(notebook, 'result = run(asset.id, "caption")'))
    assert "search is not available here (model_unavailable): " in printed(cell(notebook, "try:\n    hits ="))
    duplicates = printed(cell(notebook, "small = sunset_png"))
    assert "exact 1" in duplicates
    assert "our two copies are an exact group: True" in duplicates

    assert all_assets(library.api) == []  # the notebook cleans up after itself
    # The usage log keeps the skill runs: the two without a model are recorded as failed.
    response = library.api.get("/api/v1/assets/export", params={"table": "events"})
    assert response.status_code == 200, response.text
    events = pyarrow.parquet.read_table(pyarrow.BufferReader(response.content)).to_pylist()
    runs = {event["skill_name"]: event["succeeded"] for event in events if event["kind"] == "skill_run"}
    assert runs == {"thumbnail": True, "watermark": True, "tags": False, "caption": False}


def test_usage_analytics(library: Library) -> None:
    api = library.api
    sizes = []
    for color in ((10, 20, 30), (40, 50, 60), (70, 80, 90)):
        sizes.append(api.upload_ok(png_bytes(color=color))["size"])
    jpeg = api.upload_ok(jpeg_bytes(), name="photo.jpg", content_type="image/jpeg")
    sizes.append(jpeg["size"])
    response = api.post(f"/api/v1/assets/{jpeg['id']}/skills/thumbnail/run", json={})
    assert response.status_code == 200 and response.json()["data"]["succeeded"], response.text
    gone = all_assets(api)[-1]["id"]  # the oldest PNG
    assert api.delete(f"/api/v1/assets/{gone}").status_code == 200

    notebook = execute("03-usage-analytics.ipynb", library.workdir)

    stats = printed(cell(notebook, "stats = client.usage_stats()"))
    assert "assets: 3," in stats
    assert "most active skill: {'skillName': 'thumbnail', 'runCount': 1}" in stats
    assert "6 events, 3 assets" in printed(cell(notebook, "events = events_table.to_pandas()"))

    per_type = printed(cell(notebook, "uploads_per_type = duckdb.sql")).splitlines()
    assert per_type[0].split() == ["content_type", "uploads", "bytes"]
    rows = {line.split()[0]: line.split()[1:] for line in per_type[1:]}
    assert set(rows) == {"image/png", "image/jpeg"}
    assert rows["image/png"][0] == "3" and rows["image/jpeg"][0] == "1"

    per_day = printed(cell(notebook, "bytes_per_day = duckdb.sql")).splitlines()
    assert per_day[0].split() == ["upload_day", "uploads", "bytes"]
    assert len(per_day) == 2 and per_day[1].split()[1] == "4"

    # What the chart draws: uploads, deletes and skill runs per day, and the bytes uploaded apart from them.
    activity = printed(cell(notebook, "activity = duckdb.sql")).splitlines()
    assert activity[0].split() == ["event_day", "uploads", "deletes", "skill_runs", "bytes_uploaded"]
    assert len(activity) == 2 and activity[1].split()[1:] == ["4", "1", "1", str(sum(sizes))]
    chart = cell(notebook, "import matplotlib.pyplot as plt")
    assert not printed(chart)  # no "matplotlib is not installed", no warning
    (figure,) = [output["data"] for output in chart.outputs if "image/png" in output.get("data", {})]
    assert "with 2 Axes" in figure["text/plain"]  # counts and bytes on separate axes
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "usage-per-day.png").write_bytes(base64.b64decode(figure["image/png"]))

"""The notebook widgets, driven from plain Python against a real server: set values, press buttons, then check
both what the widgets show and what the server holds."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import ipywidgets as w
import nbformat
import pytest
from jupyterlab_browser import CHROMIUM_BINARY, UI_TESTS, jupyterlab, missing_browser_tooling, run_node, script_env
from PIL import Image, ImageStat

from jupyter_assets.client import Asset, AssetsApiError, AssetsClient
from jupyter_assets.widgets import AssetBrowser, SkillPanel, UploadPanel, UsageDashboard, show
from jupyter_assets.widgets.skills import SkillForm

from conftest import ADMIN_KEY, REPO, StandaloneServer, jpeg_bytes, png_bytes

ARTIFACTS = REPO / "test-artifacts" / "widgets"

# The widgets speak the HTTP API, which the API tests run on both catalog engines: here, the DuckDB one only.
pytestmark = pytest.mark.duckdb_only


@pytest.fixture
def client(server: StandaloneServer) -> AssetsClient:
    return AssetsClient(server.url, ADMIN_KEY)


def file_value(name: str, data: bytes, content_type: str = "image/png") -> dict:
    """One entry of FileUpload.value as ipywidgets 8 fills it from the browser."""
    return {
        "name": name,
        "type": content_type,
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime.now(timezone.utc),
    }


def add(client: AssetsClient, name: str, data: bytes | None = None, **fields) -> Asset:
    return client.upload(data or png_bytes(), file_name=name, run_enrichment=False, **fields)


def wait_ready(client: AssetsClient, asset_id: str, timeout: float = 60) -> Asset:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        asset = client.get(asset_id)
        if asset.status in ("ready", "failed"):
            return asset
        time.sleep(0.1)
    raise AssertionError(f"asset {asset_id} never finished enrichment")


def names(browser: AssetBrowser) -> list[str]:
    return [asset.original_file_name for asset in browser.assets]


# -- upload ---------------------------------------------------------------------------------------------------


def test_upload_panel_sends_the_chosen_files_with_the_form_fields(client: AssetsClient) -> None:
    panel = UploadPanel(client)
    panel.files.value = (
        file_value("kitten.png", png_bytes(40, 30)),
        file_value("puppy.jpg", jpeg_bytes(), "image/jpeg"),
        file_value("notes.png", b"not an image at all"),
    )
    panel.description.value = "From the widget"
    panel.alt_text.value = "A small square"
    panel.is_public.value = False
    panel.run_enrichment.value = False
    panel.button.click()

    by_name = {asset.original_file_name: asset for asset in client.list().items}
    assert set(by_name) == {"kitten.png", "puppy.jpg"}
    for asset in by_name.values():
        assert asset.id in panel.results.value
        assert (asset.description, asset.alt_text, asset.is_public, asset.status) == (
            "From the widget",
            "A small square",
            False,
            "ready",
        )
    assert "notes.png" in panel.results.value and "asset_content_type_mismatch" in panel.results.value
    assert "Traceback" not in panel.results.value
    assert (panel.progress.value, panel.progress.max) == (3, 3)
    assert panel.files.value == ()  # cleared, so pressing Upload again does not send them twice


def test_upload_panel_uploads_a_kernel_side_folder_and_skips_what_is_there(client: AssetsClient, tmp_path: Path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.png").write_bytes(png_bytes(10, 10))
    (folder / "b.png").write_bytes(png_bytes(20, 10))
    (folder / "nested" / "c.jpg").write_bytes(jpeg_bytes())
    (folder / "readme.txt").write_text("not an image")
    panel = UploadPanel(client)
    panel.folder.value = str(folder)
    panel.run_enrichment.value = False
    panel.upload()

    assets = client.list().items
    assert sorted(a.original_file_name for a in assets) == ["a.png", "b.png", "c.jpg"]
    assert all(a.id in panel.results.value for a in assets)
    assert "readme.txt" not in panel.results.value
    assert (panel.progress.value, panel.progress.max) == (3, 3)

    panel.upload()  # the same folder again: every file is already in the library
    assert panel.results.value.count("skipped") == 3
    assert client.list().total == 3


def test_upload_panel_shows_error_codes_instead_of_tracebacks(client: AssetsClient, tmp_path: Path) -> None:
    panel = UploadPanel(client)
    panel.upload()
    assert "Choose files" in panel.results.value

    panel.folder.value = str(tmp_path / "missing")
    panel.upload()
    assert "FileNotFoundError" in panel.results.value and "missing" in panel.results.value

    panel.folder.value = ""
    panel.files.value = (file_value("kitten.png", png_bytes()),)
    panel.storage_profile_id.value = "not-a-uuid"
    panel.upload()
    assert "request_invalid" in panel.results.value
    assert client.list().total == 0


# -- browser --------------------------------------------------------------------------------------------------


def test_browser_pages_searches_filters_and_sorts(client: AssetsClient) -> None:
    for i in range(5):
        add(client, f"cat-{i}.png", png_bytes(10 + 10 * i, 10), description="a cat" if i == 0 else None)
    add(client, "dog-0.jpg", jpeg_bytes(30, 30))
    add(client, "dog-1.jpg", jpeg_bytes(60, 60))
    browser = AssetBrowser(client, page_size=3)

    assert browser.page_label.value == "Page 1 of 3 · 7 assets"
    assert len(browser.grid.children) == 3 and browser.prev_button.disabled
    assert names(browser) == ["dog-1.jpg", "dog-0.jpg", "cat-4.png"]  # newest first
    browser.next_button.click()
    browser.next_page()
    assert browser.page_label.value == "Page 3 of 3 · 7 assets"
    assert names(browser) == ["cat-0.png"] and browser.next_button.disabled
    browser.prev_page()
    assert browser.page == 2

    browser.query.value = "dog"  # a filter change starts again at page 1
    assert browser.page == 1 and sorted(names(browser)) == ["dog-0.jpg", "dog-1.jpg"]
    browser.query.value = "A CAT"  # the description matches too, case-insensitively
    assert names(browser) == ["cat-0.png"]
    browser.query.value = ""
    browser.content_type.value = "image/jpeg"
    assert browser.total == 2 and all(a.content_type == "image/jpeg" for a in browser.assets)
    browser.content_type.value = ""
    browser.status_filter.value = "failed"
    assert browser.total == 0 and "No assets match" in browser.message.value
    browser.status_filter.value = "ready"
    browser.sort.value = "Smallest first"
    sizes = [a.size for a in browser.assets]
    assert sizes == sorted(sizes) and browser.total == 7
    assert sizes[0] == min(a.size for a in client.list(page_size=100).items)


def test_browser_type_filter_offers_exactly_the_types_uploads_accept(client: AssetsClient) -> None:
    browser = AssetBrowser(client)
    assert browser.content_type.label == "any type" and browser.status_filter.label == "any status"  # shown
    offered = [value for _, value in browser.content_type.options if value]
    assert offered == ["image/png", "image/jpeg", "image/gif", "image/webp"]
    images = {}
    for content_type in offered:  # each one the server takes, and the filter then finds
        fmt = content_type.split("/")[1].upper()
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, format=fmt)
        images[content_type] = add(client, f"one.{fmt.lower()}", buffer.getvalue())
        assert images[content_type].content_type == content_type
    for content_type, asset in images.items():
        browser.content_type.value = content_type
        assert [a.id for a in browser.assets] == [asset.id]
    bmp = io.BytesIO()
    Image.new("RGB", (8, 8)).save(bmp, format="BMP")
    with pytest.raises(AssetsApiError) as refused:  # what the filter used to offer as well
        add(client, "one.bmp", bmp.getvalue())
    assert refused.value.code == "asset_content_type_not_allowed"


def test_browser_cards_hold_their_picture_name_and_controls_in_a_responsive_grid(client: AssetsClient) -> None:
    public = client.run_skill(add(client, "public.png", png_bytes(300, 200)).id, "thumbnail")["asset"]
    private = add(client, "<private>.png", is_public=False)
    browser = AssetBrowser(client)
    assert browser.grid.layout.grid_template_columns == "repeat(auto-fill, minmax(150px, 1fr))"
    assert "jupyter-assets-grid" in browser.grid._dom_classes
    assert "--jp-border-color2" in browser.widget.children[0].value  # the theme's colours, in the style sheet
    by_id = dict(zip([a.id for a in browser.assets], browser.grid.children, strict=True))
    for asset_id, card in by_id.items():
        picture, controls = card.children
        assert "jupyter-assets-card" in card._dom_classes
        assert controls.children == (browser.checkboxes[asset_id], controls.children[1])  # inside its own card
        assert controls.children[1].description == "details"
    public_card = by_id[public.id].children[0].value
    assert f'src="{public.thumbnail_url}"' in public_card  # the list item's thumbnail URL
    assert 'title="public.png"' in public_card  # the full name on hover
    private_card = by_id[private.id].children[0].value
    assert "<img" not in private_card and "&lt;private&gt;.png" in private_card and "private<br>" in private_card

    browser.checkboxes[private.id].value = True
    assert "jupyter-assets-selected" in by_id[private.id]._dom_classes
    browser.select(private.id, False)
    assert "jupyter-assets-selected" not in by_id[private.id]._dom_classes
    browser.select(public.id)
    browser.refresh()  # redrawn cards keep showing the selection
    assert "jupyter-assets-selected" in browser.cards[public.id]._dom_classes


def test_search_by_meaning_without_a_model_shows_the_409(client: AssetsClient) -> None:
    add(client, "cat.png")
    browser = AssetBrowser(client)
    browser.by_meaning.value = True  # no text yet: still the ordinary listing
    assert browser.total == 1
    browser.query.value = "a cat on a sofa"
    assert "model_unavailable" in browser.message.value and "Traceback" not in browser.message.value
    assert browser.grid.children == () and browser.total == 0


def test_browser_detail_pane_edits_are_saved_on_the_server(client: AssetsClient) -> None:
    asset = wait_ready(
        client, client.upload(png_bytes(300, 200), file_name="scene.png", description="old", is_public=False).id
    )
    browser = AssetBrowser(client)
    assert browser.detail_pane.layout.display == "none"
    card = browser.grid.children[0]
    details_button = card.children[1].children[1]
    details_button.click()

    assert browser.detail_pane.layout.display == "flex"
    assert "scene.png" in browser.detail_title.value and asset.id in browser.detail_title.value
    assert browser.detail_description.value == "old" and browser.detail_public.value is False
    assert "thumbnail_256" in browser.detail_info.value  # derivatives
    assert "Latest run: thumbnail (upload), succeeded" in browser.detail_info.value
    assert f"/api/v1/assets/{asset.id}/content" in browser.detail_info.value

    browser.detail_description.value = "A wide orange scene"
    browser.detail_alt_text.value = "orange"
    browser.detail_public.value = True
    browser.save_button.click()

    saved = client.get(asset.id)
    assert (saved.description, saved.alt_text, saved.is_public) == ("A wide orange scene", "orange", True)
    assert "Saved." in browser.detail_message.value
    assert saved.public_url in browser.detail_info.value  # a public asset links its public URL
    assert browser.assets[0].description == "A wide orange scene"  # the grid was re-read

    browser.detail_description.value = ""
    browser.save_details()
    assert client.get(asset.id).description is None


def test_browser_deletes_the_selection_only_after_confirmation(client: AssetsClient) -> None:
    assets = [add(client, f"img-{i}.png") for i in range(4)]
    browser = AssetBrowser(client, page_size=2)
    browser.checkboxes[browser.assets[0].id].value = True  # ticking a card's box selects it
    browser.select(assets[0].id)  # selection spans pages: img-0 is on page 2
    assert browser.selected == {assets[3].id, assets[0].id}
    assert browser.selection_label.value == "2 selected"

    browser.delete_selected_button.click()
    assert browser.batch_confirm.layout.display == "flex"
    assert "Delete 2 selected assets?" in browser.batch_confirm.children[0].value
    assert client.list().total == 4  # nothing is deleted before the confirmation
    browser.batch_confirm.children[2].click()  # Cancel
    assert browser.batch_confirm.layout.display == "none" and client.list().total == 4

    browser.delete_selected_button.click()
    browser.batch_confirm.children[1].click()  # Yes, delete
    remaining = {a.id for a in client.list().items}
    assert remaining == {assets[1].id, assets[2].id}
    assert "Deleted 2 assets." in browser.message.value
    assert browser.selected == set() and browser.selection_label.value == "0 selected"
    assert {a.id for a in browser.assets} == remaining

    browser.open_details(assets[1].id)
    browser.delete_button.click()
    assert browser.detail_confirm.layout.display == "flex" and client.list().total == 2
    browser.detail_confirm.children[1].click()
    assert {a.id for a in client.list().items} == {assets[2].id}
    assert browser.detail_pane.layout.display == "none" and names(browser) == ["img-2.png"]

    browser.open_details(assets[1].id)  # already gone: the code is shown, nothing raised
    assert "asset_not_found" in browser.message.value


def test_browser_batch_delete_on_the_last_page_goes_back_a_page(client: AssetsClient) -> None:
    assets = [add(client, f"img-{i}.png") for i in range(3)]
    browser = AssetBrowser(client, page_size=2)
    browser.next_page()
    assert names(browser) == ["img-0.png"]
    browser.select(assets[0].id)
    browser.delete_selected(confirm=True)
    assert browser.page == 1 and browser.page_label.value == "Page 1 of 1 · 2 assets"


# -- skills ---------------------------------------------------------------------------------------------------


def card_html(browser: AssetBrowser, index: int = 0) -> str:
    return browser.grid.children[index].children[0].value


def test_browser_refreshes_assets_being_processed_by_itself(make_server) -> None:
    """An upload waits in the queue of a server without workers; the browser shows it pending and keeps
    re-reading it, through a server restart, until the restarted server's worker has made it ready."""
    server = make_server().start("--workers", "0")
    client = AssetsClient(server.url, ADMIN_KEY)
    done = add(client, "done.png")
    queued = client.upload(png_bytes(300, 200), file_name="queued.png", run_enrichment=True)
    browser = AssetBrowser(client, auto_refresh=0.1)
    assert names(browser) == ["queued.png", "done.png"]
    assert "pending" in card_html(browser, 0) and "pending" not in card_html(browser, 1)
    watcher = browser._watcher
    assert watcher is not None and watcher.is_alive()
    browser.open_details(queued.id)

    server.stop()
    time.sleep(0.5)  # polls fail meanwhile; the watcher keeps going
    assert watcher.is_alive()
    server.start()  # two workers: the queued job runs
    watcher.join(timeout=60)
    assert not watcher.is_alive(), "the watcher should stop once nothing is in progress"
    assert [asset.status for asset in browser.assets] == ["ready", "ready"]
    assert "pending" not in card_html(browser, 0)
    assert "<img" in card_html(browser, 0)  # the thumbnail made by the worker
    assert "ready" in browser.detail_title.value  # the open detail pane follows
    assert browser.assets[1].id == done.id


def test_browser_watcher_stops_when_closed(make_server) -> None:
    server = make_server().start("--workers", "0")
    client = AssetsClient(server.url, ADMIN_KEY)
    client.upload(png_bytes(), file_name="queued.png", run_enrichment=True)
    browser = AssetBrowser(client, auto_refresh=0.1)
    watcher = browser._watcher
    assert watcher is not None and watcher.is_alive()
    browser.close()
    watcher.join(timeout=5)
    assert not watcher.is_alive()
    assert AssetBrowser(client, auto_refresh=None)._watcher is None


def test_skill_panel_builds_the_watermark_form_and_runs_it(client: AssetsClient) -> None:
    first = add(client, "one.png", png_bytes(200, 100))
    second = add(client, "two.png", png_bytes(120, 80))
    before = client.content(first.id)
    panel = SkillPanel(client)
    assert {"watermark", "thumbnail"} <= set(panel.skill.options)
    panel.skill.value = "watermark"

    fields = panel.form.fields
    assert list(fields) == ["text", "opacity", "fontSize", "position"]
    assert isinstance(fields["text"], w.Text) and fields["text"].value == "jupyter-assets"
    assert isinstance(fields["opacity"], w.FloatText) and fields["opacity"].value == 0.5
    assert isinstance(fields["fontSize"], w.IntText) and fields["fontSize"].value == 36
    assert isinstance(fields["position"], w.Dropdown) and fields["position"].value == "bottomRight"
    assert "topLeft" in fields["position"].options
    assert "draw_watermark" in panel.skill_description.value

    fields["text"].value = "© widgets"
    fields["fontSize"].value = 12
    fields["position"].value = "topLeft"
    panel.asset_ids.value = f"{first.id}\n{second.id}"
    panel.run_button.click()

    assert "✓ draw_watermark" in panel.results.value and "one.png" in panel.results.value
    assert (panel.progress.value, panel.progress.max) == (2, 2)
    assert client.content(first.id) != before
    for asset_id in (first.id, second.id):
        execution = client.get(asset_id).latest_execution_summary
        assert (execution["skillName"], execution["triggerSource"], execution["succeeded"]) == (
            "watermark",
            "manual",
            True,
        )

    fields["opacity"].value = 5.0  # out of range: the server refuses before running
    results = panel.run([first.id])
    assert results == [] and "skill_parameters_invalid" in panel.results.value and "opacity" in panel.results.value


def test_skill_panel_opens_on_the_first_skill_and_its_form(client: AssetsClient) -> None:
    first = client.skills()[0]
    panel = SkillPanel(client)
    assert panel.skill.value == first["name"]
    assert panel.form is not None and panel.form_box.children == (panel.form.widget,)
    assert list(panel.form.fields) == list(first["parameters"].get("properties", {}))
    assert first["description"] in panel.skill_description.value
    asset = add(client, "one.png")
    assert panel.run([asset.id]) and "✓" in panel.results.value  # runnable without choosing anything


def test_skill_form_sends_defaults_required_and_changed_values_only() -> None:
    form = SkillForm(
        {
            "type": "object",
            "properties": {
                "vocabulary": {"type": "array", "items": {"type": "string"}},
                "topK": {"type": "integer", "default": 5, "minimum": 1},
                "threshold": {"type": "number", "minimum": 0},
                "note": {"type": "string"},
                "strict": {"type": "boolean"},
                "format": {"type": "string", "enum": ["png", "jpeg"]},
            },
            "required": ["format"],
        }
    )
    assert isinstance(form.fields["vocabulary"], w.Textarea) and isinstance(form.fields["strict"], w.Checkbox)
    assert form.values() == {"topK": 5, "format": "png"}
    form.fields["vocabulary"].value = "cat\n\n dog \n"
    form.fields["threshold"].value = 0.25
    form.fields["strict"].value = True
    expected = {"vocabulary": ["cat", "dog"], "topK": 5, "threshold": 0.25, "strict": True, "format": "png"}
    assert form.values() == expected
    assert SkillForm({"type": "object", "properties": {}}).values() == {}


# -- usage ----------------------------------------------------------------------------------------------------


def test_usage_dashboard_shows_the_servers_numbers(client: AssetsClient) -> None:
    empty = UsageDashboard(client)
    assert "No assets yet." in empty.breakdown.value and "No skill has run yet." in empty.most_active.value
    assert "No activity yet." in empty.activity.value

    png = [add(client, f"p{i}.png", png_bytes(20 + i, 20)) for i in range(2)]
    add(client, "j.jpg", jpeg_bytes())
    client.run_skill(png[0].id, "watermark", text="x")
    dashboard = UsageDashboard(client)
    stats = client.usage_stats()

    assert dashboard.stats == stats
    assert f"<b>{stats['totalAssets']}</b> assets" in dashboard.totals.value
    assert f"({stats['totalBytes']} bytes)" in dashboard.totals.value
    assert f"<b>{stats['totalDerivatives']}</b> derivatives" in dashboard.totals.value
    for row in stats["contentTypeBreakdown"]:
        assert row["contentType"] in dashboard.breakdown.value
    assert "width:240px" in dashboard.breakdown.value and "width:120px" in dashboard.breakdown.value  # 2 : 1
    assert "<b>watermark</b> (1 runs)" in dashboard.most_active.value
    # Activity per day, counted from the events the server exports.
    events = client.export("events").to_pylist()
    (day,) = {event["occurred_at"].date().isoformat() for event in events}
    counts = [sum(event["kind"] == kind for event in events) for kind in ("upload", "delete", "skill_run")]
    assert counts[0] == 3 and counts[2] >= 1
    cells = [f'<td style="padding:2px 8px">{value}</td>' for value in (day, *counts)]
    assert "".join(cells) in dashboard.activity.value

    add(client, "later.png")
    dashboard.refresh_button.click()
    assert "<b>4</b> assets" in dashboard.totals.value


def test_usage_dashboard_charts_uploads_deletes_and_skill_runs_on_one_scale(client: AssetsClient) -> None:
    assets = [add(client, f"p{i}.png", png_bytes(20 + i, 20)) for i in range(4)]
    client.delete(assets[0].id)
    client.run_skill(assets[1].id, "watermark", text="x")
    client.run_skill(assets[1].id, "thumbnail")
    activity = UsageDashboard(client).activity.value
    # One scale of events: the 4 uploads are the longest bar, 2 skill runs half of it, 1 delete a quarter.
    for label, count, width in (("Uploads", 4, 240), ("Skill runs", 2, 120), ("Deletes", 1, 60)):
        assert re.search(rf'title="{label}: {count}"[^>]*;width:{width}px;', activity), (label, activity)
    assert "the longest bar is 4 events" in activity
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", activity)
    assert headers == ["Day (UTC)", "Uploads", "Deletes", "Skill runs", "Events"]


def test_panels_show_api_errors_for_a_bad_credential(server: StandaloneServer) -> None:
    client = AssetsClient(server.url, "not-a-key")
    assert "api_key_invalid" in UsageDashboard(client).totals.value
    assert "api_key_invalid" in AssetBrowser(client).message.value
    assert "api_key_invalid" in SkillPanel(client).results.value


# -- all together ---------------------------------------------------------------------------------------------


def test_show_builds_four_tabs_and_the_skill_panel_runs_on_the_browsers_selection(client: AssetsClient) -> None:
    asset = add(client, "one.png", png_bytes(100, 100))
    tab = show(client)
    assert isinstance(tab, w.Tab) and len(tab.children) == 4
    assert tab.titles == ("Browse", "Upload", "Skills", "Usage")
    browser, upload, skills, usage = tab.panels
    assert [p.widget for p in tab.panels] == list(tab.children)

    assert "0 asset(s)" in skills.target.value
    browser.select(asset.id)
    assert "1 asset(s)" in skills.target.value
    skills.skill.value = "watermark"
    skills.run()
    assert client.get(asset.id).latest_execution_summary["skillName"] == "watermark"

    upload.files.value = (file_value("two.png", png_bytes(50, 50)),)
    upload.run_enrichment.value = False
    upload.upload()
    tab.selected_index = 3  # showing a tab re-reads it
    assert "<b>2</b> assets" in usage.totals.value
    tab.selected_index = 0
    assert browser.total == 2

    bundle = browser._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


# -- in a real JupyterLab -------------------------------------------------------------------------------------
# labextension/ui-tests/widgets.mjs drives Debian's Chromium (see jupyterlab_browser.py): opens the notebook, runs it,
# waits for every card's picture, measures where the cards and their controls are at two window widths, screenshots
# the output in the light and the dark theme, and prints the measurements as one JSON line.


def brightness(path: Path) -> float:
    """The mean grey level of a screenshot, after checking that it is a real, non-trivial PNG."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    image = Image.open(path)
    assert image.width > 300 and image.height > 150, image.size
    return ImageStat.Stat(image.convert("L")).mean[0]


# A library that shows what a card must cope with: pictures of several shapes, a private asset (no URL a browser
# could load), a name too long for its card.
BROWSER_SEED = [
    ("harbour-sunset.png", png_bytes(300, 200, (230, 120, 40)), True),
    ("forest-path.jpg", jpeg_bytes(200, 300), True),
    ("city-night.png", png_bytes(256, 256, (20, 30, 90)), True),
    ("mountain-lake.png", png_bytes(120, 80, noise=True), False),
    ("a-very-long-file-name-from-a-camera-roll-0001.png", png_bytes(400, 100, (90, 160, 90)), True),
    ("meadow.png", png_bytes(180, 180, (120, 200, 60)), True),
    ("snow.png", png_bytes(200, 120, (235, 235, 240)), True),
]


@pytest.mark.timeout(420)
def test_browser_in_jupyterlab_is_a_grid_of_cards_in_both_themes(client: AssetsClient, tmp_path: Path) -> None:
    """widgets.show() in a notebook of a real JupyterLab, in Debian's Chromium: the cards sit side by side in as
    many columns as the width allows, each card's checkbox and details button inside its own bordered card, in the
    theme's colours. Screenshots (light, with the detail pane, dark, narrow) go to test-artifacts/widgets/."""
    missing = missing_browser_tooling()
    assert not missing, "cannot run the browser test; missing: " + "; ".join(missing)
    for name, data, public in BROWSER_SEED:
        asset = client.upload(data, file_name=name, is_public=public)
        wait_ready(client, asset.id)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("browser-*.png"):
        old.unlink()  # this run's screenshots only

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    code = (
        f"from jupyter_assets import AssetsClient, widgets\n\nwidgets.show(AssetsClient({client.url!r}, {ADMIN_KEY!r}))"
    )
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": kernelspec}, cells=[nbformat.v4.new_code_cell(code)])
    nbformat.write(notebook, notebooks / "browse.ipynb")
    home = tmp_path / "jupyter"
    # Our server extension loads in this JupyterLab too: its own library.
    with jupyterlab(notebooks, home, tmp_path / "jupyterlab.log", JUPYTER_ASSETS_ROOT=str(home / "library")) as lab:
        env = script_env(lab, ARTIFACTS, CHROMIUM_BINARY, NOTEBOOK="browse.ipynb", CARDS=str(len(BROWSER_SEED)))
        result = run_node(UI_TESTS / "widgets.mjs", env, timeout=300)
    lab_log = lab.log()[-4000:]
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n--- JupyterLab log (tail) ---\n{lab_log}"
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["errors"] == []

    def columns(cards: list[dict]) -> int:
        return len({round(card["card"]["left"]) for card in cards})

    def inside(inner: dict, outer: dict) -> bool:
        return all(
            (inner[k] >= outer[k] - 0.5) if k in ("left", "top") else (inner[k] <= outer[k] + 0.5)
            for k in ("left", "top", "right", "bottom")
        )

    wide, dark, narrow = seen["wide"], seen["dark"], seen["narrow"]
    assert sorted(card["name"] for card in wide) == sorted(name for name, _, _ in BROWSER_SEED)
    assert columns(wide) >= 5, wide  # side by side, not one card per row
    assert 2 <= columns(narrow) < columns(wide), narrow  # fewer columns in a narrower window, still a grid
    for card in [*wide, *narrow]:
        for part in ("picture", "checkbox", "button"):
            assert inside(card[part], card["card"]), (part, card)  # the controls are inside their own card
        assert card["picture"]["bottom"] <= card["checkbox"]["top"], card  # under the picture, not beside it
        middle = {part: (card[part]["top"] + card[part]["bottom"]) / 2 for part in ("checkbox", "button")}
        assert abs(middle["checkbox"] - middle["button"]) <= 1, card  # on one line
        assert card["border"] == "1px"
    rows = {}
    for card in wide:
        rows.setdefault(round(card["card"]["top"]), []).append(card)
    for row in rows.values():  # cards of one row line up, whatever the shape of their pictures
        assert len({round(card["card"]["bottom"]) for card in row}) == 1, row
    assert wide[0]["background"] != dark[0]["background"]  # the card follows the theme
    # With the detail pane open beside it, the grid narrows (fewer columns) and stays left of the pane.
    detail, pane = seen["detail"], seen["pane"]
    assert 2 <= columns(detail) < columns(wide), detail
    assert max(card["card"]["right"] for card in detail) <= pane["left"], (detail, pane)
    assert detail[0]["name"] in pane["text"]

    light, dark_shot = brightness(ARTIFACTS / "browser-light.png"), brightness(ARTIFACTS / "browser-dark.png")
    assert dark_shot < light - 40, (light, dark_shot)
    brightness(ARTIFACTS / "browser-narrow.png")

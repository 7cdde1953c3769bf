"""Notebook widgets for the assets library. They run in the kernel and talk to the HTTP API through AssetsClient;
they never open the catalog themselves."""

from __future__ import annotations

import ipywidgets as w

from ..client import AssetsClient
from .browser import AssetBrowser
from .skills import SkillPanel
from .upload import UploadPanel
from .usage import UsageDashboard

__all__ = ["AssetBrowser", "SkillPanel", "UploadPanel", "UsageDashboard", "show"]


def show(client: AssetsClient | None = None) -> w.Tab:
    """All four panels in tabs, on one client; the skill panel runs on the browser's selection."""
    client = client if client is not None else AssetsClient()
    browser = AssetBrowser(client)
    skills = SkillPanel(client, selection=lambda: sorted(browser.selected))
    browser.on_selection_change.append(skills.update_target)
    upload = UploadPanel(client)
    usage = UsageDashboard(client)
    tab = w.Tab(children=[browser.widget, upload.widget, skills.widget, usage.widget])
    tab.titles = ("Browse", "Upload", "Skills", "Usage")

    def on_tab(change: dict) -> None:
        # Other tabs change the library, so the browser and the numbers are re-read when shown.
        if change["new"] == 0:
            browser.refresh()
        elif change["new"] == 3:
            usage.refresh()

    tab.observe(on_tab, names="selected_index")
    tab.panels = (browser, upload, skills, usage)  # the panel objects, for code that wants their methods
    return tab

"""UsageDashboard: library totals, the content-type breakdown as a table with HTML bars, the busiest skill."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ..client import AssetsClient
from ._base import CLIENT_ERRORS, Panel, error_html, esc, human_bytes, table

BAR_PX = 240


class UsageDashboard(Panel):
    def __init__(self, client: AssetsClient | None = None) -> None:
        super().__init__(client)
        self.stats: dict[str, Any] | None = None
        self.totals = w.HTML()
        self.breakdown = w.HTML()
        self.most_active = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.widget = w.VBox([self.refresh_button, self.totals, self.breakdown, self.most_active])
        self.refresh()

    def refresh(self) -> None:
        try:
            stats = self.client.usage_stats()
        except CLIENT_ERRORS as error:
            self.totals.value, self.breakdown.value, self.most_active.value = error_html(error), "", ""
            return
        self.stats = stats
        self.totals.value = (
            f"<b>{stats['totalAssets']}</b> assets · <b>{human_bytes(stats['totalBytes'])}</b> "
            f"({stats['totalBytes']} bytes) · <b>{stats['totalDerivatives']}</b> derivatives"
        )
        breakdown = stats["contentTypeBreakdown"]
        most = max((row["count"] for row in breakdown), default=0)
        rows = [
            [
                esc(row["contentType"]),
                str(row["count"]),
                human_bytes(row["totalBytes"]),
                # Bars are plain CSS widths: no plotting library is needed in the kernel.
                f'<div style="background:#4c78a8;height:12px;width:{round(BAR_PX * row["count"] / most)}px"></div>',
            ]
            for row in breakdown
        ]
        self.breakdown.value = table(["Content type", "Assets", "Bytes", ""], rows) if rows else "No assets yet."
        skill = stats.get("mostActiveSkill")
        self.most_active.value = (
            f"Most active skill: <b>{esc(skill['skillName'])}</b> ({skill['runCount']} runs)"
            if skill
            else "No skill has run yet."
        )

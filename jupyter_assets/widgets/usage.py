"""UsageDashboard: library totals, the content-type breakdown and the activity per day (from the events export) as
tables with HTML bars, the busiest skill."""

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
        self.activity = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.widget = w.VBox([self.refresh_button, self.totals, self.breakdown, self.most_active, self.activity])
        self.refresh()

    def refresh(self) -> None:
        try:
            stats = self.client.usage_stats()
            events = self.client.export("events")
        except CLIENT_ERRORS as error:
            self.totals.value, self.breakdown.value, self.most_active.value = error_html(error), "", ""
            self.activity.value = ""
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
        self.activity.value = _activity(events)


def _activity(events: Any) -> str:
    """Uploads, deletes and skill runs per day (UTC), newest first, from the events table."""
    per_day: dict[str, dict[str, int]] = {}
    for moment, kind in zip(events.column("occurred_at").to_pylist(), events.column("kind").to_pylist(), strict=True):
        counts = per_day.setdefault(moment.date().isoformat(), {"upload": 0, "delete": 0, "skill_run": 0})
        counts[kind] = counts.get(kind, 0) + 1
    if not per_day:
        return "No activity yet."
    most = max(counts["upload"] for counts in per_day.values()) or 1
    rows = [
        [
            day,
            str(counts["upload"]),
            str(counts["delete"]),
            str(counts["skill_run"]),
            f'<div style="background:#f58518;height:12px;width:{round(BAR_PX * counts["upload"] / most)}px"></div>',
        ]
        for day, counts in sorted(per_day.items(), reverse=True)
    ]
    return table(["Day (UTC)", "Uploads", "Deletes", "Skill runs", ""], rows)

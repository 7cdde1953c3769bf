"""UsageDashboard: library totals, the content-type breakdown and the uploads, deletes and skill runs per day (from
the events export) as tables with HTML bars of counts, the busiest skill."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ..client import AssetsClient
from ..model import human_size
from ._base import CLIENT_ERRORS, Panel, error_html, esc, table

BAR_PX = 240
# Uploads, deletes and skill runs: the events table's kinds, their labels and the theme colours of their bars.
ACTIVITY = (
    ("upload", "Uploads", "var(--jp-brand-color1)"),
    ("delete", "Deletes", "var(--jp-error-color1)"),
    ("skill_run", "Skill runs", "var(--jp-success-color1)"),
)


def _bar(width: int, colour: str, title: str) -> str:
    return (
        f'<div title="{esc(title)}" style="background:{colour};height:6px;margin:1px 0;width:{width}px;'
        'min-width:1px"></div>'
    )


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
            f"<b>{stats['totalAssets']}</b> assets · <b>{human_size(stats['totalBytes'])}</b> "
            f"({stats['totalBytes']} bytes) · <b>{stats['totalDerivatives']}</b> derivatives"
        )
        breakdown = stats["contentTypeBreakdown"]
        most = max((row["count"] for row in breakdown), default=0)
        rows = [
            [
                esc(row["contentType"]),
                str(row["count"]),
                human_size(row["totalBytes"]),
                # Bars are plain CSS widths (no plotting library in the kernel), of the asset count only.
                _bar(round(BAR_PX * row["count"] / most), "var(--jp-brand-color1)", f"Assets: {row['count']}"),
            ]
            for row in breakdown
        ]
        headers = ["Content type", "Assets", "Bytes", "Assets (bar)"]
        self.breakdown.value = table(headers, rows) if rows else "No assets yet."
        skill = stats.get("mostActiveSkill")
        self.most_active.value = (
            f"Most active skill: <b>{esc(skill['skillName'])}</b> ({skill['runCount']} runs)"
            if skill
            else "No skill has run yet."
        )
        self.activity.value = _activity(events)


def _activity(events: Any) -> str:
    """Uploads, deletes and skill runs per day (UTC), newest first, from the events table: the counts, and a bar
    per kind and day, all on one scale of events (bytes are never on it)."""
    per_day: dict[str, dict[str, int]] = {}
    for moment, kind in zip(events.column("occurred_at").to_pylist(), events.column("kind").to_pylist(), strict=True):
        counts = per_day.setdefault(moment.date().isoformat(), dict.fromkeys((k for k, _, _ in ACTIVITY), 0))
        counts[kind] = counts.get(kind, 0) + 1
    if not per_day:
        return "No activity yet."
    most = max(counts[kind] for counts in per_day.values() for kind, _, _ in ACTIVITY) or 1
    rows = []
    for day, counts in sorted(per_day.items(), reverse=True):
        bars = "".join(
            _bar(round(BAR_PX * counts[kind] / most), colour, f"{label}: {counts[kind]}")
            for kind, label, colour in ACTIVITY
            if counts[kind]
        )
        rows.append([day, *(str(counts[kind]) for kind, _, _ in ACTIVITY), bars])
    legend = " ".join(f'<span style="color:{colour}">■</span> {label.lower()}' for _, label, colour in ACTIVITY)
    caption = f"<div>Events per day: {legend} (the longest bar is {most} events)</div>"
    return caption + table(["Day (UTC)", *(label for _, label, _ in ACTIVITY), "Events"], rows)

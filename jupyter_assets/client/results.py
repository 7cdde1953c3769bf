"""What the client returns: assets, lists and pages of them, the report of a batch upload; each shows as HTML
in a notebook (a card, a grid of cards, a summary)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import human_size
from .transport import AssetsApiError


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Asset:
    """One asset of the API. ``asset.original_file_name`` reads ``originalFileName``; ``asset.data`` is the raw
    JSON object. List items carry fewer keys than a full asset (no derivatives or results)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__.get("data")  # __dict__: no recursion while unpickling or copying
        if data is not None:
            for key in (_camel(name), name):
                if key in data:
                    return data[key]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {_snake(key) for key in self.data})

    def __repr__(self) -> str:
        return f"Asset(id={self.data.get('id')!r}, name={self.data.get('originalFileName')!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Asset) and other.data == self.data

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dict it wraps

    def _result(self, kind: str) -> Any:
        for result in self.data.get("structuredResults") or []:
            if result.get("kind") == kind:
                try:
                    return json.loads(result.get("payloadJson") or "null")
                except ValueError:
                    return None
        return None

    @property
    def tags(self) -> list[dict[str, Any]]:
        payload = self._result("tags")
        if isinstance(payload, dict):
            payload = payload.get("tags")
        return [tag for tag in payload if isinstance(tag, dict)] if isinstance(payload, list) else []

    @property
    def caption(self) -> str | None:
        payload = self._result("caption")
        if isinstance(payload, dict):
            payload = payload.get("caption")
        return payload if isinstance(payload, str) else None

    @property
    def thumbnail_url(self) -> str | None:
        """The public URL of the 256 px thumbnail: list items carry it as ``thumbnailUrl``, a full asset among its
        derivatives. None while the asset is private or before the thumbnail is made."""
        if "thumbnailUrl" in self.data:
            return self.data["thumbnailUrl"]
        for derivative in self.data.get("derivatives") or []:
            if derivative.get("kind") == "thumbnail_256" and derivative.get("publicUrl"):
                return derivative["publicUrl"]
        return None

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [
            '<div style="border:1px solid var(--jp-border-color2,#ddd);border-radius:6px;padding:6px;'
            'font-size:12px;overflow:hidden">'
        ]
        # The same height with or without a picture, so that a grid's rows line up.
        frame = (
            "height:180px;display:flex;align-items:center;justify-content:center;margin-bottom:4px;"
            "background:var(--jp-layout-color2,#eee);color:var(--jp-ui-font-color2,#666)"
        )
        if self.thumbnail_url:
            alt = self.data.get("altText") or self.data.get("originalFileName") or ""
            parts.append(
                f'<div style="{frame}"><img src="{esc(self.thumbnail_url)}" alt="{esc(alt)}" loading="lazy" '
                'style="max-width:100%;max-height:100%"></div>'
            )
        else:
            reason = "private" if self.data.get("isPublic") is False else "no thumbnail yet"
            parts.append(f'<div style="{frame}">{reason}</div>')
        parts.append(f"<div><b>{esc(str(self.data.get('originalFileName', '')))}</b></div>")
        size = human_size(self.data["size"]) if self.data.get("size") is not None else ""
        parts.append(f"<div>{esc(size)} &middot; {esc(str(self.data.get('status', '')))}</div>")
        if self.data.get("description"):
            parts.append(f"<div>{esc(str(self.data['description']))}</div>")
        if self.tags:
            labels = ", ".join(f"{tag.get('label')} ({float(tag.get('score') or 0):.2f})" for tag in self.tags)
            parts.append(f"<div style='color:var(--jp-ui-font-color2,#555)'>{esc(labels)}</div>")
        if self.caption:
            parts.append(f"<div><i>{esc(self.caption)}</i></div>")
        parts.append("</div>")
        return "".join(parts)


class AssetList(list):
    """A list of Asset that shows as a grid of cards in a notebook."""

    def _repr_html_(self) -> str:
        if not self:
            return "<em>No assets.</em>"
        cards = "".join(asset._repr_html_() for asset in self)
        return (
            f'<div style="display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:8px">{cards}</div>'
        )


@dataclass
class Page:
    """One page of a listing: iterate over it (or use ``items``) for its assets; ``total`` counts every match."""

    items: AssetList
    page: int
    page_size: int
    total: int

    def __iter__(self) -> Iterator[Asset]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def _repr_html_(self) -> str:
        first = (self.page - 1) * self.page_size + 1 if self.items else 0
        last = first + len(self.items) - 1 if self.items else 0
        return f"<div>Assets {first}-{last} of {self.total}</div>{self.items._repr_html_()}"


@dataclass
class UploadReport:
    uploaded: AssetList = field(default_factory=AssetList)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, Exception]] = field(default_factory=list)

    @staticmethod
    def _reason(error: Exception) -> str:
        """The code and HTTP status of an API error, else the exception's type."""
        return f"{error.code} ({error.status})" if isinstance(error, AssetsApiError) else type(error).__name__

    @staticmethod
    def _message(error: Exception) -> str:
        # The API's message alone: str() of an AssetsApiError repeats its code and adds the trace id.
        return error.message if isinstance(error, AssetsApiError) else str(error)

    def __str__(self) -> str:
        lines = [f"{len(self.uploaded)} uploaded, {len(self.skipped)} skipped, {len(self.failed)} failed"]
        lines += [f"  {path}: {self._reason(error)}: {self._message(error)}" for path, error in self.failed]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        summary = (
            f"<b>{len(self.uploaded)}</b> uploaded, <b>{len(self.skipped)}</b> skipped, "
            f"<b>{len(self.failed)}</b> failed"
        )
        if not self.failed:
            return f"<div>{summary}</div>"
        rows = "".join(
            f"<tr><td>{esc(str(path))}</td><td><code>{esc(self._reason(error))}</code></td>"
            f"<td>{esc(self._message(error))}</td></tr>"
            for path, error in self.failed
        )
        return f"<div>{summary}</div><table><tr><th>file</th><th>code</th><th>error</th></tr>{rows}</table>"

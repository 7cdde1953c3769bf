"""AssetBrowser: a paged, filterable grid of assets with a detail pane and batch delete."""

from __future__ import annotations

import threading
from collections.abc import Callable

import ipywidgets as w

from ..client import Asset, AssetsApiError, AssetsClient, Page
from ..model import human_size
from ._base import ALLOWED_CONTENT_TYPES, CLIENT_ERRORS, Panel, error_html, esc, table

STATUSES = ["pending", "processing", "ready", "failed"]
SORTS = {
    "Newest first": ("createdAtUtc", True),
    "Oldest first": ("createdAtUtc", False),
    "Largest first": ("size", True),
    "Smallest first": ("size", False),
}
IN_PROGRESS = ("pending", "processing")
STATUS_BADGES = {"pending": "⏳ pending", "processing": "⚙ processing", "failed": "✗ failed"}
THUMB_PX = 128
# The grid's look, in JupyterLab's theme variables (so it follows the light and dark themes), like the lab panel's
# cards: each card a bordered box holding its picture, name, checkbox and details button.
STYLE = f"""<style>
.jupyter-assets-card {{
  border: 1px solid var(--jp-border-color2); border-radius: 4px; background: var(--jp-layout-color1);
  padding: 4px; box-sizing: border-box; min-width: 0; overflow: hidden;
}}
.jupyter-assets-card.jupyter-assets-selected {{
  border-color: var(--jp-brand-color1); box-shadow: 0 0 0 1px var(--jp-brand-color1);
}}
.jupyter-assets-card .widget-html, .jupyter-assets-card .widget-html-content {{ width: 100%; margin: 0; }}
.jupyter-assets-card .widget-checkbox {{ align-items: center; }}
.jupyter-assets-card .widget-checkbox .widget-label-basic {{ display: flex; }}
.jupyter-assets-card .widget-checkbox input {{ margin: 0 4px; }}
.jupyter-assets-thumb {{
  height: {THUMB_PX}px; display: flex; align-items: center; justify-content: center; overflow: hidden;
  background: var(--jp-layout-color2); border-radius: 2px; color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0); line-height: 1.4; text-align: center;
}}
.jupyter-assets-thumb img {{ max-width: 100%; max-height: 100%; object-fit: contain; }}
.jupyter-assets-name {{
  color: var(--jp-ui-font-color1); font-size: var(--jp-ui-font-size1); line-height: 1.5; margin-top: 2px;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
}}
.jupyter-assets-detail a {{ word-break: break-all; }}
.jupyter-assets-status {{ color: var(--jp-ui-font-color2); font-size: var(--jp-ui-font-size0); line-height: 1.4; }}
</style>"""


def _row(children: list[w.Widget]) -> w.HBox:
    """A row of controls that wraps in a narrow output rather than running off its edge."""
    return w.HBox(children, layout=w.Layout(flex_flow="row wrap"))


def _confirm_bar(on_yes: Callable[[], None]) -> w.HBox:
    """A question with "Yes, delete" and "Cancel" buttons, hidden until asked (see _ask)."""
    question = w.Label()
    yes = w.Button(description="Yes, delete", button_style="danger")
    cancel = w.Button(description="Cancel")
    bar = w.HBox([question, yes, cancel], layout=w.Layout(display="none"))
    yes.on_click(lambda _: on_yes())
    cancel.on_click(lambda _: _hide(bar))
    return bar


def _ask(bar: w.HBox, question: str) -> None:
    bar.children[0].value = question
    bar.layout.display = "flex"


def _hide(bar: w.HBox) -> None:
    bar.layout.display = "none"


class AssetBrowser(Panel):
    """``auto_refresh``: seconds between re-reads of the page's pending and processing assets (None: never).
    They are re-read in a background thread until none is left, so enrichment shows up without a click."""

    def __init__(self, client: AssetsClient | None = None, page_size: int = 12, auto_refresh: float | None = 2.0):
        super().__init__(client)
        self.auto_refresh = auto_refresh
        self._watcher: threading.Thread | None = None
        self._closed = threading.Event()
        self._lock = threading.RLock()  # the kernel's thread and the watcher both redraw cards
        self.page_size = page_size
        self.page = 1
        self.total = 0
        self.assets: list[Asset] = []
        self.selected: set[str] = set()  # kept across pages, so a selection can span them
        self.on_selection_change: list[Callable[[set[str]], None]] = []
        self.detail: Asset | None = None

        self._build_controls()
        self.message = w.HTML()
        # As many columns as fit, each at least 150 px, sharing the rest of the width.
        self.grid = w.GridBox(
            layout=w.Layout(grid_template_columns="repeat(auto-fill, minmax(150px, 1fr))", grid_gap="8px", width="100%")
        )
        self.grid.add_class("jupyter-assets-grid")
        self.checkboxes: dict[str, w.Checkbox] = {}
        self.cards: dict[str, w.VBox] = {}

        self._build_detail_pane()
        self.widget = w.VBox(
            [
                w.HTML(STYLE),
                _row([self.query, self.by_meaning]),
                _row([self.content_type, self.status_filter, self.sort]),
                _row([self.prev_button, self.page_label, self.next_button, self.refresh_button]),
                _row([self.selection_label, self.delete_selected_button]),
                self.batch_confirm,
                self.message,
                # The detail pane sits beside the grid, or under it where the two do not fit side by side.
                w.HBox(
                    [w.Box([self.grid], layout=w.Layout(flex="1 1 320px", min_width="0")), self.detail_pane],
                    layout=w.Layout(width="100%", flex_flow="row wrap", grid_gap="8px"),
                ),
            ]
        )
        self.refresh()

    def _build_controls(self) -> None:
        """The filters, the pager and the batch delete above the grid."""
        self.query = w.Text(placeholder="search file name, description, alt text", description="Search")
        self.by_meaning = w.Checkbox(description="by meaning", value=False, indent=False)
        # "" for "any": ipywidgets 8 takes an option whose value is None for no selection, and shows it blank.
        self.content_type = w.Dropdown(
            options=[("any type", "")] + [(t, t) for t in ALLOWED_CONTENT_TYPES], description="Type"
        )
        self.status_filter = w.Dropdown(options=[("any status", "")] + [(s, s) for s in STATUSES], description="Status")
        self.sort = w.Dropdown(options=list(SORTS), description="Sort")
        self.query.continuous_update = False
        for control in (self.query, self.by_meaning, self.content_type, self.status_filter, self.sort):
            control.observe(lambda _: self.refresh(page=1), names="value")

        self.prev_button = w.Button(description="Prev", icon="arrow-left", layout=w.Layout(width="90px"))
        self.next_button = w.Button(description="Next", icon="arrow-right", layout=w.Layout(width="90px"))
        self.page_label = w.Label()
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="100px"))
        self.prev_button.on_click(lambda _: self.prev_page())
        self.next_button.on_click(lambda _: self.next_page())
        self.refresh_button.on_click(lambda _: self.refresh())

        self.delete_selected_button = w.Button(description="Delete selected", button_style="danger", icon="trash")
        self.delete_selected_button.on_click(lambda _: self.delete_selected(confirm=False))
        self.selection_label = w.Label("0 selected")
        self.batch_confirm = _confirm_bar(lambda: self.delete_selected(confirm=True))

    def _build_detail_pane(self) -> None:
        """The pane that shows one asset in full, to edit or delete it."""
        self.detail_title = w.HTML()
        self.detail_description = w.Textarea(description="Description", layout=w.Layout(width="95%"))
        self.detail_alt_text = w.Text(description="Alt text", layout=w.Layout(width="95%"))
        self.detail_public = w.Checkbox(description="Public")
        self.save_button = w.Button(description="Save", button_style="primary", icon="save")
        self.save_button.on_click(lambda _: self.save_details())
        self.delete_button = w.Button(description="Delete", button_style="danger", icon="trash")
        self.delete_button.on_click(lambda _: self.delete_details(confirm=False))
        self.detail_confirm = _confirm_bar(lambda: self.delete_details(confirm=True))
        self.detail_info = w.HTML()
        self.detail_message = w.HTML()
        self.detail_pane = w.VBox(
            [
                self.detail_title,
                self.detail_description,
                self.detail_alt_text,
                self.detail_public,
                w.HBox([self.save_button, self.delete_button]),
                self.detail_confirm,
                self.detail_message,
                self.detail_info,
            ],
            layout=w.Layout(
                display="none", border="1px solid var(--jp-border-color2)", padding="6px", flex="0 1 420px"
            ),
        )
        self.detail_pane.add_class("jupyter-assets-detail")

    # -- listing ----------------------------------------------------------------------------------------------

    @property
    def page_count(self) -> int:
        return max(1, -(-self.total // self.page_size))

    def _fetch(self) -> Page:
        filters = {"content_type": self.content_type.value or None, "status": self.status_filter.value or None}
        text = self.query.value.strip()
        if self.by_meaning.value and text:
            return self.client.search(text, page=self.page, page_size=self.page_size, **filters)
        order_by, descending = SORTS[self.sort.value]
        return self.client.list(
            page=self.page,
            page_size=self.page_size,
            q=text or None,
            order_by=order_by,
            descending=descending,
            **filters,
        )

    def refresh(self, page: int | None = None) -> None:
        """Fetch the current page (or `page`) with the current filters and redraw the grid."""
        with self._lock:
            self._refresh(page)
        self._watch_in_progress()

    def _refresh(self, page: int | None) -> None:
        if page is not None:
            self.page = page
        try:
            result = self._fetch()
        except CLIENT_ERRORS as error:
            self.assets, self.total = [], 0
            self.message.value = error_html(error)
        else:
            self.assets, self.total = list(result.items), result.total
            self.message.value = "" if self.assets else "No assets match."
        if not self.assets and self.page > 1 and self.total:  # the page emptied (deletes): show the last one
            self._refresh(page=self.page_count)
            return
        self.checkboxes, self.cards = {}, {}
        self.grid.children = [self._card(asset) for asset in self.assets]
        self.page_label.value = f"Page {self.page} of {self.page_count} · {self.total} assets"
        self.prev_button.disabled = self.page <= 1
        self.next_button.disabled = self.page >= self.page_count

    # -- automatic refresh of assets being processed -----------------------------------------------------------

    def _in_progress(self) -> list[str]:
        return [asset.id for asset in self.assets if asset.status in IN_PROGRESS]

    def poll_in_progress(self) -> bool:
        """Re-read this page's pending and processing assets and redraw the cards that changed. True while some
        are still in progress (or the server could not be reached: it is tried again later)."""
        with self._lock:
            waiting = self._in_progress()
        for asset_id in waiting:
            try:
                fresh = self.client.get(asset_id)
            except AssetsApiError:  # deleted meanwhile: the next refresh drops it
                fresh = None
            except OSError:
                return True
            with self._lock:
                index = next((i for i, asset in enumerate(self.assets) if asset.id == asset_id), None)
                if index is None or fresh is None or fresh.status == self.assets[index].status:
                    continue
                self.assets[index] = fresh
                cards = list(self.grid.children)
                cards[index] = self._card(fresh)
                self.grid.children = tuple(cards)
                if self.detail is not None and self.detail.id == asset_id:
                    self._show_details(fresh)
        with self._lock:
            return bool(self._in_progress())

    def _watch_in_progress(self) -> None:
        with self._lock:
            if not self.auto_refresh or self._closed.is_set() or self._watcher is not None:
                return
            if not self._in_progress():
                return
            self._watcher = threading.Thread(target=self._watch, name="asset-browser-refresh", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while not self._closed.wait(self.auto_refresh):
            if self.poll_in_progress():
                continue
            with self._lock:  # a refresh may have shown new pending assets since the poll
                if not self._in_progress():
                    self._watcher = None
                    return
        with self._lock:
            self._watcher = None

    def close(self) -> None:
        """Stop refreshing and close the widgets."""
        self._closed.set()
        self.widget.close()

    def next_page(self) -> None:
        if self.page < self.page_count:
            self.refresh(page=self.page + 1)

    def prev_page(self) -> None:
        if self.page > 1:
            self.refresh(page=self.page - 1)

    def _card(self, asset: Asset) -> w.VBox:
        url = asset.thumbnail_url or asset.public_url
        name = esc(asset.original_file_name)
        # Private assets have no URL the browser could load without the API token, so they show a placeholder.
        picture = (
            f'<img src="{esc(url)}" alt="{esc(asset.alt_text or asset.original_file_name)}" loading="lazy">'
            if url
            else f"private<br>{esc(asset.content_type)}<br>{esc(asset.width)}×{esc(asset.height)}"
        )
        text = (
            f'<div class="jupyter-assets-thumb">{picture}</div>'
            f'<div class="jupyter-assets-name" title="{name}">{name}</div>'  # the full name on hover
        )
        badge = STATUS_BADGES.get(asset.status)
        if badge:
            text += f'<div class="jupyter-assets-status">{esc(badge)}</div>'
        checkbox = w.Checkbox(value=asset.id in self.selected, indent=False, layout=w.Layout(width="auto"))
        checkbox.observe(lambda change, asset_id=asset.id: self.select(asset_id, change["new"]), names="value")
        self.checkboxes[asset.id] = checkbox
        details = w.Button(description="details", icon="info-circle", layout=w.Layout(width="auto"))
        details.on_click(lambda _, asset_id=asset.id: self.open_details(asset_id))
        controls = w.HBox(
            [checkbox, details], layout=w.Layout(justify_content="space-between", align_items="center", width="100%")
        )
        card = w.VBox([w.HTML(text, layout=w.Layout(width="100%")), controls], layout=w.Layout(width="auto"))
        card.add_class("jupyter-assets-card")
        if asset.id in self.selected:
            card.add_class("jupyter-assets-selected")
        self.cards[asset.id] = card
        return card

    # -- selection and batch delete ---------------------------------------------------------------------------

    def select(self, asset_id: str, selected: bool = True) -> None:
        """Add an asset to the selection (or remove it); the card's checkbox follows."""
        if selected:
            self.selected.add(asset_id)
        else:
            self.selected.discard(asset_id)
        checkbox = self.checkboxes.get(asset_id)
        if checkbox is not None and checkbox.value != selected:
            checkbox.value = selected
        card = self.cards.get(asset_id)
        if card is not None:
            (card.add_class if selected else card.remove_class)("jupyter-assets-selected")
        self.selection_label.value = f"{len(self.selected)} selected"
        for callback in self.on_selection_change:
            callback(set(self.selected))

    def clear_selection(self) -> None:
        for asset_id in list(self.selected):
            self.select(asset_id, False)

    def delete_selected(self, confirm: bool = True) -> None:
        """Delete every selected asset; with confirm=False only ask (the button's first click)."""
        if not self.selected:
            self.message.value = "Nothing selected."
            return
        if not confirm:
            _ask(self.batch_confirm, f"Delete {len(self.selected)} selected assets?")
            return
        _hide(self.batch_confirm)
        try:
            result = self.client.delete_many(sorted(self.selected))
        except CLIENT_ERRORS as error:
            self.message.value = error_html(error)
            return
        if self.detail is not None and self.detail.id in self.selected:
            self._close_details()
        self.clear_selection()
        self.refresh(page=min(self.page, self.page_count))
        self.message.value = f"Deleted {result['deletedCount']} assets." + (
            f" Not found: {esc(', '.join(result['notFoundIds']))}" if result.get("notFoundIds") else ""
        )

    # -- details ----------------------------------------------------------------------------------------------

    def open_details(self, asset_id: str) -> None:
        """Load one asset in full and show it in the detail pane."""
        try:
            asset = self.client.get(asset_id)
        except CLIENT_ERRORS as error:
            self.message.value = error_html(error)
            return
        self._show_details(asset)

    def _show_details(self, asset: Asset) -> None:
        self.detail = asset
        self.detail_title.value = (
            f"<b>{esc(asset.original_file_name)}</b><br><code>{esc(asset.id)}</code><br>"
            f"{esc(asset.content_type)} · {esc(asset.width)}×{esc(asset.height)} · {human_size(asset.size)} · "
            f"{esc(asset.status)}"
        )
        self.detail_description.value = asset.description or ""
        self.detail_alt_text.value = asset.alt_text or ""
        self.detail_public.value = bool(asset.is_public)
        self.detail_info.value = self._detail_info(asset)
        self.detail_message.value = ""
        _hide(self.detail_confirm)
        self.detail_pane.layout.display = "flex"

    def _detail_info(self, asset: Asset) -> str:
        content_url = asset.public_url or f"{self.client.api_url}/{asset.id}/content"
        parts = [f'<p>Content: <a href="{esc(content_url)}" target="_blank">{esc(content_url)}</a></p>']
        if asset.caption:
            parts.append(f"<p>Caption: <i>{esc(asset.caption)}</i></p>")
        if asset.tags:
            tags = ", ".join(f"{esc(t['label'])} ({t['score']:.2f})" for t in asset.tags)
            parts.append(f"<p>Tags: {tags}</p>")
        if asset.derivatives:
            rows = [
                [esc(d["kind"]), esc(d["contentType"]), f"{d['width']}×{d['height']}", human_size(d["size"])]
                for d in asset.derivatives
            ]
            parts.append("<p>Derivatives:</p>" + table(["Kind", "Type", "Size (px)", "Bytes"], rows))
        execution = asset.latest_execution_summary
        if execution:
            rows = [
                [esc(s["stepName"]), "✓" if s["succeeded"] else "✗", esc(s.get("errorMessage") or "")]
                for s in execution["steps"]
            ]
            outcome = "succeeded" if execution["succeeded"] else "failed"
            parts.append(
                f"<p>Latest run: {esc(execution['skillName'])} ({esc(execution['triggerSource'])}), {outcome}</p>"
                + table(["Step", "", "Error"], rows)
            )
        return "".join(parts)

    def save_details(self) -> None:
        """Save the detail pane's description, alt text and public flag."""
        if self.detail is None:
            return
        try:
            asset = self.client.update(
                self.detail.id,
                # None clears the field on the server, rather than storing an empty string
                description=self.detail_description.value.strip() or None,
                alt_text=self.detail_alt_text.value.strip() or None,
                is_public=self.detail_public.value,
            )
        except CLIENT_ERRORS as error:
            self.detail_message.value = error_html(error)
            return
        self._show_details(asset)
        self.detail_message.value = "Saved."
        self.refresh()

    def delete_details(self, confirm: bool = True) -> None:
        """Delete the asset in the detail pane; with confirm=False only ask (the button's first click)."""
        if self.detail is None:
            return
        if not confirm:
            _ask(self.detail_confirm, f"Delete {self.detail.original_file_name}?")
            return
        try:
            self.client.delete(self.detail.id)
        except CLIENT_ERRORS as error:
            self.detail_message.value = error_html(error)
            return
        self.select(self.detail.id, False)
        self._close_details()
        self.refresh(page=min(self.page, self.page_count))

    def _close_details(self) -> None:
        self.detail = None
        _hide(self.detail_confirm)
        self.detail_pane.layout.display = "none"

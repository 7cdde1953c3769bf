"""UploadPanel: send notebook-side files (FileUpload) or a kernel-side folder to the assets API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as w

from ..client import AssetsClient, collect_paths
from ._base import ALLOWED_CONTENT_TYPES, CLIENT_ERRORS, Panel, error_html, esc, table

# upload_many runs in chunks so the progress bar moves while a large folder uploads.
FOLDER_CHUNK = 16


class UploadPanel(Panel):
    def __init__(self, client: AssetsClient | None = None) -> None:
        super().__init__(client)
        self.files = w.FileUpload(accept=",".join(ALLOWED_CONTENT_TYPES), multiple=True, description="Files")
        self.folder = w.Text(description="Folder", placeholder="a folder or file path on the kernel's machine")
        self.description = w.Text(description="Description")
        self.alt_text = w.Text(description="Alt text")
        self.is_public = w.Checkbox(description="Public", value=True)  # the API's default for uploads
        self.storage_profile_id = w.Text(description="Storage", placeholder="storage profile id (default storage)")
        self.run_enrichment = w.Checkbox(description="Run enrichment", value=True)
        self.button = w.Button(description="Upload", button_style="primary", icon="upload")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="Progress")
        self.results = w.HTML()
        self.button.on_click(lambda _: self.upload())
        self.widget = w.VBox(
            [
                w.HBox([self.files, self.folder]),
                self.description,
                self.alt_text,
                w.HBox([self.is_public, self.run_enrichment]),
                self.storage_profile_id,
                w.HBox([self.button, self.progress]),
                self.results,
            ]
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "description": self.description.value.strip() or None,
            "alt_text": self.alt_text.value.strip() or None,
            "is_public": self.is_public.value,
            "run_enrichment": self.run_enrichment.value,
            "storage_profile_id": self.storage_profile_id.value.strip() or None,
        }

    def _folder_paths(self) -> list[Path]:
        text = self.folder.value.strip()
        if not text:
            return []
        root = Path(text).expanduser()
        if not (root.is_file() or root.is_dir()):
            raise FileNotFoundError(f"No such folder: {root}")
        return collect_paths(root)  # listed here, as upload_many would, so that the upload can run in chunks

    def upload(self) -> None:
        """Upload the chosen files and the folder's files with the form's fields; what the button calls."""
        rows: list[list[str]] = []
        try:
            paths = self._folder_paths()
        except OSError as error:
            self.results.value = error_html(error)
            return
        files = list(self.files.value)
        if not files and not paths:
            self.results.value = "Choose files or enter a folder first."
            return
        fields = self._fields()
        self.progress.max, self.progress.value = len(files) + len(paths), 0
        self.button.disabled = True
        try:
            for item in files:
                try:
                    asset = self.client.upload(
                        bytes(item["content"]), file_name=item["name"], content_type=item.get("type") or None, **fields
                    )
                    rows.append([esc(item["name"]), f"<code>{esc(asset.id)}</code>"])
                except CLIENT_ERRORS as error:  # shown in the panel; one bad file must not stop the rest
                    rows.append([esc(item["name"]), error_html(error)])
                self.progress.value += 1
                self._show(rows)
            stored = None
            for start in range(0, len(paths), FOLDER_CHUNK):
                chunk = paths[start : start + FOLDER_CHUNK]
                try:
                    stored = self.client.stored_checksums() if stored is None else stored  # read once, kept current
                    report = self.client.upload_many(chunk, progress=False, stored=stored, **fields)
                except CLIENT_ERRORS as error:
                    rows.extend([esc(path.name), error_html(error)] for path in chunk)
                else:
                    rows.extend([esc(a.original_file_name), f"<code>{esc(a.id)}</code>"] for a in report.uploaded)
                    rows.extend([esc(path.name), "skipped (already in the library)"] for path in report.skipped)
                    rows.extend([esc(path.name), error_html(error)] for path, error in report.failed)
                self.progress.value += len(chunk)
                self._show(rows)
        finally:
            self.button.disabled = False
        self.files.value = ()

    def _show(self, rows: list[list[str]]) -> None:
        self.results.value = table(["File", "Asset id or error"], rows)

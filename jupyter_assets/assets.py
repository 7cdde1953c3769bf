"""The assets once stored: list, get, change, delete, their content, the usage statistics and the Parquet export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .auth import Principal
from .catalog import EXPORTABLE_TABLES
from .errors import ApiError, asset_not_found, request_invalid
from .library import Library, check_owner, checked_file_name, checked_text, event_row, may_see
from .model import Asset, Derivative, ListQuery, Page, UsageStats, parse_id, utc_now
from .search import Search
from .storage import Storage, StoredFileChanged

MAX_BATCH_DELETE = 1000


@dataclass(frozen=True)
class Content:
    """How to answer a content request: a redirect, or bytes from storage."""

    redirect_url: str | None = None
    storage: Storage | None = None
    storage_key: str = ""
    content_type: str = ""
    size: int = 0
    etag: str = ""


class Assets:
    def __init__(self, library: Library, search: Search) -> None:
        self.library = library
        self.catalog = library.catalog
        self.search = search

    # -- read ---------------------------------------------------------------------------------------------

    def list(self, principal: Principal, query: ListQuery) -> Page:
        principal.require("assets:read")
        if query.meaning:
            return self.search.by_meaning(principal, query)
        return self.catalog.assets.list(query, principal.visible_owner)

    def get(self, principal: Principal, asset_id: str) -> Asset:
        principal.require("assets:read")
        return self.library.visible(principal, asset_id, detail=True)

    def open_content(self, principal: Principal, asset_id: str) -> Content:
        principal.require("assets:read")
        asset = self.library.visible(principal, asset_id)
        storage = self.library.storage_for(asset.storage_profile_id)
        stored_size = storage.size(asset.storage_key)
        if stored_size is None:
            raise asset_not_found(asset_id)
        if asset.is_public:
            url = storage.redirect_url(asset.storage_key) or self.library.url_of(storage, asset.storage_key)
            return Content(redirect_url=url)
        return _stored_content(storage, asset, stored_size)

    def open_public_content(self, storage_key: str) -> Content:
        """The anonymous route: only public assets and their derivatives, whatever the key."""
        key = storage_key.replace("\\", "/").strip().lstrip("/")
        found = self.catalog.assets.find_by_storage_key(key) if key else None
        if found is None or not found[0].is_public:
            raise ApiError("asset_not_found", "No public asset is stored under this key.")
        asset, derivative = found
        item: Asset | Derivative = derivative or asset
        storage = self.library.storage_for(asset.storage_profile_id)
        stored_size = storage.size(item.storage_key)
        if stored_size is None:
            raise ApiError("asset_not_found", "The stored file is missing.")
        return _stored_content(storage, item, stored_size)

    def read_content(self, content: Content, start: int, end: int) -> Iterator[bytes]:
        """The bytes of ``content`` from ``start`` to ``end``, opened at the first chunk (FileNotFoundError there
        when the file was deleted since the lookup). A file no longer of the size looked up was replaced by a
        rewrite in place, whose commit follows within milliseconds: StoredFileChanged, carrying the content looked
        up again (``current``) for the answer to start over from, so no body ever has another length than the
        one announced."""
        try:
            chunks = content.storage.open(content.storage_key, start, end, expected_size=content.size)
            first = next(chunks, b"")
        except StoredFileChanged as changed:
            found = self.catalog.assets.find_by_storage_key(content.storage_key)
            stored_size = content.storage.size(content.storage_key)
            if found is None or stored_size is None:
                raise FileNotFoundError(content.storage_key) from changed
            changed.current = _stored_content(content.storage, found[1] or found[0], stored_size)
            raise
        yield first
        yield from chunks

    def usage_stats(self, principal: Principal) -> UsageStats:
        principal.require("assets:read")
        return self.catalog.analytics.usage_stats(principal.visible_owner)

    def export(self, principal: Principal, table: str, destination: Path) -> None:
        principal.require("assets:read")
        if table not in EXPORTABLE_TABLES:
            raise ApiError(
                "export_table_invalid",
                f"Unknown table '{table}'; choose one of {', '.join(EXPORTABLE_TABLES)}.",
            )
        self.catalog.analytics.export_parquet(table, destination, principal.visible_owner)

    # -- change -------------------------------------------------------------------------------------------

    def update(self, principal: Principal, asset_id: str, patch: dict[str, Any]) -> Asset:
        """Patch semantics: an omitted field is unchanged, null clears description/altText, a value sets it."""
        principal.require("assets:write")
        changes: dict[str, Any] = {}
        for name, column in (("description", "description"), ("altText", "alt_text")):
            if name in patch:
                value = patch[name]
                if value is not None and not isinstance(value, str):
                    raise request_invalid(f"The field '{name}' must be a string or null.")
                changes[column] = checked_text(name, value)
        if "isPublic" in patch:
            if not isinstance(patch["isPublic"], bool):
                raise request_invalid("The field 'isPublic' must be true or false.")
            changes["is_public"] = patch["isPublic"]
        if "originalFileName" in patch:
            raw = patch["originalFileName"]
            if not isinstance(raw, str):
                raise request_invalid("The field 'originalFileName' must be a string.")
            changes["original_file_name"] = checked_file_name(raw)
        asset = self.library.owned(principal, asset_id)
        self.catalog.assets.update(asset.id, changes)
        updated = self.catalog.assets.detail(asset.id)
        if updated is None:  # deleted meanwhile
            raise asset_not_found(asset_id)
        return updated

    def delete(self, principal: Principal, asset_id: str, commit_message: str | None = None) -> dict[str, Any]:
        principal.require("assets:delete")
        asset = self.library.owned(principal, asset_id)
        deleted = self._delete(principal, asset, commit_message)
        if deleted is None:  # another request deleted it first
            raise asset_not_found(asset_id)
        return deleted

    def batch_delete(self, principal: Principal, ids: list[Any]) -> dict[str, Any]:
        principal.require("assets:delete")
        if len(ids) > MAX_BATCH_DELETE:
            raise request_invalid(f"At most {MAX_BATCH_DELETE} ids can be deleted at once.")
        if not all(isinstance(raw, str) for raw in ids):
            raise request_invalid("Every id must be a string.")
        deleted: set[str] = set()
        not_found: list[str] = []
        for raw in ids:
            asset_id = parse_id(raw)
            if asset_id in deleted:
                continue
            asset = self.catalog.assets.get(asset_id) if asset_id else None
            if asset is None or not may_see(principal, asset):
                not_found.append(raw)
                continue
            check_owner(principal, asset)
            if self._delete(principal, asset):
                deleted.add(asset_id)
            else:  # another request deleted it between the read and the delete: every id is accounted for once
                not_found.append(raw)
        return {"requestedCount": len(ids), "deletedCount": len(deleted), "notFoundIds": not_found}

    def _delete(self, principal: Principal, asset: Asset, message: str | None = None) -> dict[str, Any] | None:
        keys = self.catalog.assets.delete(asset.id, event_row("delete", principal, asset))
        if keys is None:
            return None
        for key in keys:
            self.library.remove_file(key, asset.storage_profile_id, message.strip() if message else None)
        self.search.forget(asset.id)
        return {"id": asset.id, "status": asset.status, "deletedAtUtc": utc_now()}


def _stored_content(storage: Storage, item: Asset | Derivative, stored_size: int) -> Content:
    return Content(
        storage=storage,
        storage_key=item.storage_key,
        content_type=item.content_type,
        size=stored_size,
        etag=item.checksum_sha256,
    )

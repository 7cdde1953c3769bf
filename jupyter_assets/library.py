"""What the use cases share: the catalog, the storage of each profile, public URLs, the access rules, the rules of
an asset's text fields, and the rows of the usage log."""

from __future__ import annotations

import logging
import threading
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .auth import Principal
from .catalog import Catalog
from .errors import ApiError, asset_not_found, forbidden
from .model import THUMBNAIL_KIND, Asset, parse_id
from .storage import Storage, profiles
from .storage.local import LocalStorage

MAX_TEXT_LENGTH = 1000
MAX_FILE_NAME_LENGTH = 255
TEXT_FIELD_CODES = {"description": "asset_description_too_long", "altText": "asset_alt_text_too_long"}


class Library:
    """The catalog and the storages, with the rules every use case applies to them."""

    def __init__(self, catalog: Catalog, root_dir: Path, public_base_url: str, log: logging.Logger) -> None:
        self.catalog = catalog
        self.root_dir = root_dir
        self.log = log
        self.content_url = f"{public_base_url.rstrip('/')}/content"
        # The configuration's storage: assets without a profile live here.
        self.storage: Storage = LocalStorage(root_dir / "files", self.content_url)
        self._profile_storages: dict[str, Storage] = {}  # by profile id, built on first use
        self._profiles_lock = threading.Lock()

    # -- storage ------------------------------------------------------------------------------------------

    def storage_for(self, profile_id: str | None) -> Storage:
        """The storage of an asset's profile (None: the configuration's storage), built once per profile."""
        if profile_id is None:
            return self.storage
        with self._profiles_lock:  # held while building, so concurrent first uses build one client, not eight
            storage = self._profile_storages.get(profile_id)
            if storage is None:
                profile = self.catalog.profiles.get(profile_id)
                if profile is None:
                    message = f"Storage provider profile '{profile_id}' is gone."
                    raise ApiError("asset_storage_provider_profile_not_found", message)
                storage = self._profile_storages[profile_id] = profiles.build(
                    profile.provider_type, profile.configuration, profile.secrets, self.profile_cache(profile.id),
                    self.content_url,
                )  # fmt: skip
            return storage

    def forget_storage(self, profile_id: str) -> None:
        """A profile changed or is gone: its storage is built again (with the new settings) on next use."""
        with self._profiles_lock:
            self._profile_storages.pop(profile_id, None)

    def profile_cache(self, profile_id: str) -> Path:
        """The profile's own folder for what a provider keeps locally (a git clone)."""
        return self.root_dir / "profiles" / profile_id

    def remove_file(self, key: str, profile_id: str | None = None, message: str | None = None) -> bool:
        """Delete a stored file; one that cannot be removed now (a disk error, a storage that is down, a profile
        that is gone) is noted for the retry sweep, never leaked."""
        try:
            self.storage_for(profile_id).delete(key, message=message)
        except (OSError, ApiError) as error:
            self.log.warning("could not delete %s (kept for the retry sweep): %s", key, error)
            self.catalog.cleanup.add(key, profile_id, "delete_failed")
            return False
        self.catalog.cleanup.remove(key)
        return True

    # -- public URLs --------------------------------------------------------------------------------------

    def public_url(self, asset: Asset) -> str | None:
        return self.url_of(self.storage_for(asset.storage_profile_id), asset.storage_key)

    def derivative_urls(self, asset: Asset) -> dict[str, str | None]:
        storage = self.storage_for(asset.storage_profile_id)
        return {d.kind: self.url_of(storage, d.storage_key) for d in asset.derivatives}

    def thumbnail_urls(self, assets: list[Asset]) -> dict[str, str | None]:
        """The thumbnail URL of each asset that has one, found for the whole list in one catalog query."""
        thumbnails = self.catalog.assets.derivatives_of_kind([asset.id for asset in assets], THUMBNAIL_KIND)
        return {
            asset.id: self.url_of(self.storage_for(asset.storage_profile_id), thumbnails[asset.id].storage_key)
            for asset in assets
            if asset.id in thumbnails
        }

    def url_of(self, storage: Storage, key: str) -> str | None:
        """The provider's own public URL, else this server's /content route, which streams public files from any
        provider (an S3 bucket without a public base URL, a private git repository)."""
        return storage.public_url(key) or f"{self.content_url}/{quote(key)}"

    # -- access rules -------------------------------------------------------------------------------------

    def visible(self, principal: Principal, asset_id: str, detail: bool = False) -> Asset:
        """The asset, if the caller may see it; else 404 (never 403: its existence is not disclosed)."""
        canonical = parse_id(asset_id)
        asset = None
        if canonical:
            asset = self.catalog.assets.detail(canonical) if detail else self.catalog.assets.get(canonical)
        if asset is None or not may_see(principal, asset):
            raise asset_not_found(asset_id)
        return asset

    def owned(self, principal: Principal, asset_id: str) -> Asset:
        """The asset, if the caller may change it."""
        asset = self.visible(principal, asset_id)
        check_owner(principal, asset)
        return asset


def may_see(principal: Principal, asset: Asset) -> bool:
    return asset.is_public or principal.is_admin or asset.owner == principal.subject


def check_owner(principal: Principal, asset: Asset) -> None:
    if not principal.is_admin and asset.owner != principal.subject:
        raise forbidden("Only the owner of this asset (or an admin) may change it.")


def checked_text(name: str, value: str | None, oversized: bool = False) -> str | None:
    """A description or alt text (``name`` as the API spells it) within the length limit (``oversized``: the
    upload's parser already found it too long to keep)."""
    if oversized or (value is not None and len(value) > MAX_TEXT_LENGTH):
        raise ApiError(TEXT_FIELD_CODES[name], f"The field '{name}' exceeds {MAX_TEXT_LENGTH} characters.")
    return value


def checked_file_name(raw: str) -> str:
    """The last path segment, control characters removed, trimmed; refused when empty or too long. Never used to
    build a path."""
    last = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in last if unicodedata.category(ch) != "Cc").strip()
    if not name or len(name) > MAX_FILE_NAME_LENGTH:
        raise ApiError("asset_filename_invalid", "The file name is empty or too long.")
    return name


def event_row(kind: str, principal: Principal | None, asset: Asset, execution: Any = None) -> dict[str, Any]:
    """A row of the usage log (the events table)."""
    return {
        "kind": kind,
        "asset_id": asset.id,
        "actor": principal.subject if principal else None,
        "content_type": asset.content_type,
        "size": asset.size,
        "skill_name": execution.skill_name if execution else None,
        "succeeded": execution.succeeded if execution else None,
    }

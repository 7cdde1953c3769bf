"""The use cases. Handlers, the CLI and the worker call these; nothing else touches the catalog or storage."""

from __future__ import annotations

import json
import logging
import os
import threading
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .auth import ALL_SCOPES, Principal
from .auth.keys import ApiKeys
from .catalog import EXPORTABLE_TABLES, open_catalog
from .errors import ApiError, asset_not_found, forbidden, request_invalid
from .images import EXTENSIONS, inspect_upload, sniff_format
from .model import (
    THUMBNAIL_KIND,
    Asset,
    Derivative,
    ListQuery,
    Page,
    SkillExecution,
    StorageProfile,
    UsageStats,
    file_sha256,
    human_size,
    new_id,
    parse_id,
    utc_now,
)
from .processing import Job, WorkerPool
from .skills import SkillRegistry, default_registry, run_skill
from .skills.context import SkillContext, SkillEnvironment
from .skills.image import settle_rewrites
from .skills.models import ClipModel, ModelHub, ModelSettings, ModelUnavailableError, not_configured
from .storage import Storage, StoredFileChanged, profiles, storage_key
from .storage.local import LocalStorage, fsync_directory, fsync_file
from .vectors import VectorIndex, group_similar, hamming_groups

MAX_TEXT_LENGTH = 1000
UNKNOWN_CONTENT_TYPE = "application/octet-stream"
MAX_FILE_NAME_LENGTH = 255
MAX_BATCH_DELETE = 1000
MAX_JOB_ATTEMPTS = 5  # interrupted by a crash this many times: give up (an image that kills the server)
SWEEP_INTERVAL_SECONDS = 600
IN_FLIGHT_GRACE = timedelta(hours=1)  # longer than any skill run takes between storing a file and committing it
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
JOB_BATCH = 8  # queued jobs a worker takes at once: one forward pass of the model serves them all
HASH_BITS = 64
# Near-identical copies differ by a few bits of their perceptual hash: up to 6 for a resized flat graphic, whose
# many near-zero frequencies flip easily. The threshold maps onto bits at twice the naive rate (0.95: 6 bits);
# past 6 the search slows sharply (multi-index hashing needs many more tables) and finds look-alikes, not copies.
MAX_NEAR_BITS = 6
# The similar tier compares every pair of embeddings: about 1.5 s at 20,000 on 2 cores, growing with the square.
# Past this many a request would take minutes, so the tier is left out (exact and near still answer).
MAX_SIMILAR_TIER = 50_000


class ConfigurationError(Exception):
    """A setting the server cannot start with (the message says which and why)."""


@dataclass
class ServiceConfig:
    root_dir: Path
    public_base_url: str
    max_upload_bytes: int = 10 * 1024 * 1024
    allowed_content_types: tuple[str, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp")
    enrichment_skills: tuple[str, ...] = ("thumbnail",)
    max_image_pixels: int = 100_000_000
    workers: int = 2
    models: ModelSettings = field(default_factory=ModelSettings)
    storage_profiles: tuple[dict[str, Any], ...] = ()  # declared in configuration: created or updated at start


@dataclass(eq=False)  # compared (and hashed) by identity: one per upload
class UploadForm:
    """What the multipart parser received. The file is already on disk (``temp_path``), hashed and counted; a
    small one is also in memory (``data``)."""

    file_received: bool = False
    file_name: str | None = None
    content_type: str | None = None
    temp_path: Path | None = None
    size: int = 0
    sha256: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    oversized_fields: set[str] = field(default_factory=set)
    data: bytes | None = None


@dataclass(frozen=True)
class Content:
    """How to answer a content request: a redirect, or bytes from storage."""

    redirect_url: str | None = None
    storage: Storage | None = None
    storage_key: str = ""
    content_type: str = ""
    size: int = 0
    etag: str = ""


def clean_file_name(raw: str) -> str:
    """The last path segment, control characters removed, trimmed. Never used to build a path."""
    last = raw.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in last if unicodedata.category(ch) != "Cc").strip()


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise request_invalid(f"The field '{name}' must be true or false, not '{value}'.")
    return lowered == "true"


class AssetService:
    def __init__(self, config: ServiceConfig, log: logging.Logger | None = None) -> None:
        self.config = config
        self.log = log or logging.getLogger("jupyter_assets")
        config.root_dir.mkdir(parents=True, exist_ok=True)
        self.incoming_dir = config.root_dir / "incoming"
        self.incoming_dir.mkdir(exist_ok=True)
        # Uploads under way whose catalog row is not queued yet: the catalog's writer waits a moment for them,
        # so that concurrent uploads share a commit.
        self._uploads_before_commit: set[UploadForm] = set()
        self.catalog = open_catalog(config.root_dir, lambda: len(self._uploads_before_commit))
        self.content_url = f"{config.public_base_url.rstrip('/')}/content"
        # The configuration's storage: assets without a profile live here.
        self.storage: Storage = LocalStorage(config.root_dir / "files", self.content_url)
        self._profile_storages: dict[str, Storage] = {}  # by profile id, built on first use
        self._profiles_lock = threading.Lock()
        self.skills: SkillRegistry = default_registry()
        self.models = ModelHub(config.models, self.log, config.root_dir / "cache", config.workers)
        # Search by meaning: one in-memory index per (model, weights), loaded at start, kept in step after.
        self._indexes: dict[tuple[str, str], VectorIndex] = {}
        self._indexes_lock = threading.Lock()
        self._environment = SkillEnvironment(
            self.catalog,
            self.storage_for,
            self.models,
            config.max_image_pixels,
            self.log,
            self._remove_file,
            self._embedding_saved,
        )
        # Blocking work (file I/O, hashing, DuckDB, Pillow) runs here, never on the event loop.
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="jupyter-assets-io")
        # Requests that may load or run a model (skill runs, search by meaning) run on threads of that model
        # instead: a load can take a minute (or hang on a download), and eight such requests must leave neither
        # the reads nor the other model without a thread.
        self.model_executors = {
            model: ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"jupyter-assets-{model}")
            for model in ("clip", "caption")
        }
        self.workers = WorkerPool(self.process_jobs, config.workers, self.log, JOB_BATCH)
        self.api_keys = ApiKeys(self.catalog)
        self._closing = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_now_and_then, name="jupyter-assets-sweeper", daemon=True)

    def start(self) -> None:
        """Finish what a previous run left: uploads committed but not yet stored, files to remove, jobs not done."""
        self._declare_storage_profiles()
        self._recover_incoming()
        self.sweep_storage()
        self._load_vector_index()
        recovered = self.catalog.jobs.recover(MAX_JOB_ATTEMPTS)
        jobs = [Job(job_id, asset_id, tuple(skills)) for job_id, asset_id, skills in recovered]
        if jobs:
            self.log.info("resuming %d enrichment job(s) left by the previous run", len(jobs))
        self.workers.start(jobs)
        self._sweeper.start()

    def _recover_incoming(self) -> None:
        """An incoming file is named after its asset: store it if its row was committed and the bytes are the
        ones the row describes; a row whose bytes never became durable is forgotten (it was never acknowledged).
        Without a row, the bytes may still have reached a storage that copies them while the commit is under
        way (see _create_asset): what such a profile holds under the upload's key is removed. Which profile it
        went to is not recorded, so every one that copies is asked (a missing object is not an error)."""
        leftovers = list(self.incoming_dir.iterdir())
        if not leftovers:
            return
        listed = self.catalog.profiles.all()
        copying_profiles = [profile.id for profile in listed if profiles.copies_on_put(profile.provider_type)]
        for leftover in leftovers:
            asset_id = parse_id(leftover.stem) if leftover.suffix == ".upload" else None
            asset = self.catalog.assets.get(asset_id) if asset_id else None
            if asset is None:
                if asset_id:
                    self._remove_uncommitted_upload(asset_id, leftover, copying_profiles)
            elif (storage := self.storage_for(asset.storage_profile_id)).size(asset.storage_key) is None:
                if file_sha256(leftover) == asset.checksum_sha256:
                    self.log.info("storing upload %s that was committed before a crash", asset.id)
                    storage.put(asset.storage_key, leftover, sha256=asset.checksum_sha256)
                else:
                    self.log.warning("dropping upload %s: its bytes were not durable before a crash", asset.id)
                    self.catalog.assets.undo_upload(asset.id)
            leftover.unlink(missing_ok=True)

    def _remove_uncommitted_upload(self, asset_id: str, leftover: Path, profile_ids: list[str]) -> None:
        """Its key follows from its id and its format. The bytes of an upload to a storage that copies were not
        fsynced (see _create_asset): when the crash lost them, the key of every format is removed."""
        if not profile_ids:
            return
        sniffed = sniff_format(leftover, self.config.max_image_pixels)
        for extension in [sniffed[1]] if sniffed else EXTENSIONS:
            for profile_id in profile_ids:
                self._remove_file(storage_key(asset_id, extension), profile_id)

    def close(self) -> None:
        self._closing.set()
        if self._sweeper.ident is not None:
            self._sweeper.join()
        self.workers.stop()
        for executor in self.model_executors.values():
            executor.shutdown(wait=True)
        self.executor.shutdown(wait=True)
        self.catalog.close()

    # -- upload -------------------------------------------------------------------------------------------

    def new_incoming_file(self) -> tuple[int, Path]:
        """A file for an upload's bytes, named after the id the asset will get (see _recover_incoming)."""
        path = self.incoming_dir / f"{new_id()}.upload"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path

    def upload_started(self, form: UploadForm) -> None:
        """An upload request began: its row is on its way (until create_asset or drop_upload)."""
        self._uploads_before_commit.add(form)

    def drop_upload(self, form: UploadForm) -> None:
        """Forget an upload, whatever became of it, and remove its incoming file."""
        self._uploads_before_commit.discard(form)
        if form.temp_path is not None:
            form.temp_path.unlink(missing_ok=True)

    def check_size(self, size: int) -> None:
        if size > self.config.max_upload_bytes:
            raise ApiError(
                "asset_file_too_large",
                f"The file is larger than this server's limit of {human_size(self.config.max_upload_bytes)}: "
                "an administrator can raise it with JUPYTER_ASSETS_MAX_UPLOAD_BYTES (c.AssetsApp.max_upload_bytes).",
                400,
            )

    def create_asset(self, principal: Principal, form: UploadForm) -> Asset:
        """Validate, store and catalog an upload. The temporary file is consumed or removed, whatever happens."""
        try:
            return self._create_asset(principal, form)
        finally:
            self.drop_upload(form)

    def _create_asset(self, principal: Principal, form: UploadForm) -> Asset:
        principal.require("assets:write")
        fields = form.fields
        if not form.file_received:
            raise ApiError("asset_file_required", "The 'file' field is required.", 400)
        description = fields.get("description")
        alt_text = fields.get("alttext")
        if "description" in form.oversized_fields or (description and len(description) > MAX_TEXT_LENGTH):
            raise ApiError("asset_description_too_long", f"Description exceeds {MAX_TEXT_LENGTH} characters.", 400)
        if "alttext" in form.oversized_fields or (alt_text and len(alt_text) > MAX_TEXT_LENGTH):
            raise ApiError("asset_alt_text_too_long", f"Alt text exceeds {MAX_TEXT_LENGTH} characters.", 400)
        if form.size == 0:
            raise ApiError("asset_file_empty", "The uploaded file is empty.", 400)
        self.check_size(form.size)
        if not form.content_type:
            raise ApiError("asset_content_type_missing", "The file part has no Content-Type.", 400)
        content_type = form.content_type.split(";", 1)[0].strip().lower()
        allowed = self.config.allowed_content_types
        if content_type == UNKNOWN_CONTENT_TYPE:  # what curl sends for extensions it does not know (.webp)
            sniffed = sniff_format(form.temp_path if form.data is None else form.data, self.config.max_image_pixels)
            content_type = sniffed[0] if sniffed and sniffed[0] in allowed else content_type
        if content_type not in allowed:
            message = f"Content type '{content_type}' is not allowed; allowed: {', '.join(allowed)}."
            if content_type == UNKNOWN_CONTENT_TYPE:
                message += " Send the file's own type, e.g. with curl: -F 'file=@photo.webp;type=image/webp'."
            raise ApiError("asset_content_type_not_allowed", message, 400)
        file_name = clean_file_name(form.file_name or "")
        if not file_name or len(file_name) > MAX_FILE_NAME_LENGTH:
            raise ApiError("asset_filename_invalid", "The file name is empty or too long.", 400)
        is_public = parse_bool("isPublic", fields.get("ispublic"), True)
        run_enrichment = parse_bool("runEnrichment", fields.get("runenrichment"), True)
        profile_id, storage = self._write_target(fields.get("storageproviderprofileid"))
        source = form.temp_path if form.data is None else form.data
        facts = inspect_upload(source, content_type, self.config.max_image_pixels)

        now = utc_now()
        asset_id = form.temp_path.stem
        asset = Asset(
            id=asset_id,
            owner=principal.subject,
            status="pending" if run_enrichment else "ready",
            original_file_name=file_name,
            content_type=facts.content_type,
            extension=facts.extension,
            size=form.size,
            width=facts.width,
            height=facts.height,
            checksum_sha256=form.sha256,
            storage_provider=storage.name,
            storage_profile_id=profile_id,
            storage_key=storage_key(asset_id, facts.extension),
            is_public=is_public,
            description=description or None,
            alt_text=alt_text or None,
            created_at=now,
            updated_at=now,
        )
        skills = list(self.config.enrichment_skills) if run_enrichment else None
        # incoming/<id>.upload is durable before the row can commit: its name always, its bytes when the storage
        # moves them (local, git) once the row is committed. A storage that copies them (S3) stores them while
        # the row is being committed, and the upload is acknowledged only when both are done: the storage has
        # the bytes by then, so they are not fsynced here. After a crash the next start stores the bytes of a
        # committed row that its storage lacks, and removes what a storage that copies holds of an upload whose
        # row never committed (_recover_incoming).
        if not storage.put_copies:
            fsync_file(form.temp_path)
        fsync_directory(self.incoming_dir)
        job_id, committing = self.catalog.assets.insert(asset, skills, self._event("upload", principal, asset))
        self._uploads_before_commit.discard(form)
        try:
            if storage.put_copies:
                storage.put(asset.storage_key, form.temp_path, sha256=form.sha256, data=form.data)
            self.catalog.settle(committing).result()
            if not storage.put_copies:
                storage.put(asset.storage_key, form.temp_path, message=fields.get("commitmessage") or None)
        except BaseException:
            if self.catalog.settle(committing).exception() is None:  # undo a row that did commit
                self.catalog.assets.undo_upload(asset.id)
            self._remove_file(asset.storage_key, profile_id)
            raise
        if job_id:
            self.workers.submit(Job(job_id, asset.id, tuple(skills)))
        return asset

    def _write_target(self, requested: str | None) -> tuple[str | None, Storage]:
        """Where an upload goes: the profile it names (existing and enabled), else the default profile (enabled),
        else the configuration's storage (no profile)."""
        if requested is not None and requested.strip():
            if parse_id(requested.strip()) is None:
                raise request_invalid("The field 'storageProviderProfileId' must be a UUID.")
            profile = self._profile(requested)
            if not profile.is_enabled:
                raise ApiError(
                    "storage_provider_profile_disabled", f"Storage provider profile '{profile.id}' is disabled.", 400
                )
            return profile.id, self.storage_for(profile.id)
        default = self.catalog.profiles.default()
        if default is None:
            return None, self.storage
        if not default.is_enabled:
            raise ApiError(
                "storage_provider_default_write_profile_disabled",
                f"The default storage provider profile '{default.name}' is disabled: enable it, set another "
                "default, or name a profile with storageProviderProfileId.",
                400,
            )
        return default.id, self.storage_for(default.id)

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
                    raise ApiError("asset_storage_provider_profile_not_found", message, 400)
                storage = self._profile_storages[profile_id] = profiles.build(
                    profile.provider_type, profile.configuration, profile.secrets, self._profile_cache(profile.id),
                    self.content_url,
                )  # fmt: skip
            return storage

    def _profile_cache(self, profile_id: str) -> Path:
        return self.config.root_dir / "profiles" / profile_id

    # -- storage provider profiles ------------------------------------------------------------------------

    def _declare_storage_profiles(self) -> None:
        """Create or update (by name) the profiles declared in configuration; an invalid one stops the start."""
        configuration = Principal("configuration", ALL_SCOPES, "configuration")
        for declared in self.config.storage_profiles:
            name = str(declared.get("name", "")).strip().lower()
            existing = next((p for p in self.catalog.profiles.all() if p.name.lower() == name), None)
            try:
                if existing is None:
                    self.create_storage_profile(configuration, declared)
                else:
                    changes = {
                        key: value for key, value in declared.items() if key not in ("providerType", "isDefault")
                    }
                    self.update_storage_profile(configuration, existing.id, changes)
                    if declared.get("isDefault") and not existing.is_default:
                        self.set_default_storage_profile(configuration, existing.id)
            except ApiError as error:
                raise ConfigurationError(
                    f"Storage profile '{declared.get('name')}' in configuration: {error.message}"
                ) from None

    def _profile(self, profile_id: str) -> StorageProfile:
        canonical = parse_id(profile_id.strip())
        profile = self.catalog.profiles.get(canonical) if canonical else None
        if profile is None:
            raise ApiError(
                "storage_provider_profile_not_found",
                f"Storage provider profile '{profile_id.strip()}' was not found.",
                404,
            )
        return profile

    def storage_overview(self, principal: Principal) -> dict[str, Any]:
        principal.require("assets:admin")
        return profiles.overview(self.catalog.profiles.all(), self.storage.name)

    def create_storage_profile(self, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        principal.require("assets:admin")
        raw_type = body.get("providerType")
        if not isinstance(raw_type, str) or not raw_type.strip():
            raise ApiError("storage_provider_profile_provider_type_required", "providerType is required.", 400)
        name = self._profile_name(body.get("name"), None)
        provider_type = profiles.PROVIDER_TYPES.get(raw_type.strip().lower())
        if provider_type is None:
            raise ApiError(
                "storage_provider_profile_provider_type_unsupported",
                f"providerType '{raw_type.strip()}' is not supported: use local, s3 or github-repo.",
                400,
            )
        configuration, secrets = _profile_objects(body, required=True)
        is_enabled = _optional_bool(body, "isEnabled", True)
        is_default = _optional_bool(body, "isDefault", False)
        profile_id = new_id()
        profiles.check(provider_type, configuration, secrets or {}, self._profile_cache(profile_id))
        if is_default and not is_enabled:
            raise ApiError(
                "storage_provider_profile_default_requires_enabled",
                "A default storage provider profile must be enabled.",
                400,
            )
        now = utc_now()
        profile = StorageProfile(
            profile_id, name, _display_name(body.get("displayName")), provider_type, is_enabled, is_default,
            configuration, secrets or {}, now, now,
        )  # fmt: skip
        self.catalog.profiles.save(profile)
        return profiles.profile_json(profile)

    def update_storage_profile(self, principal: Principal, profile_id: str, body: dict[str, Any]) -> dict[str, Any]:
        principal.require("assets:admin")
        if "isEnabled" in body and body["isEnabled"] is None:
            raise request_invalid("The field 'isEnabled' must be true or false.")
        profile = self._profile(profile_id)
        if "name" in body:
            profile.name = self._profile_name(body["name"], profile.id)
        if "displayName" in body:
            profile.display_name = _display_name(body["displayName"])
        if "isEnabled" in body:
            profile.is_enabled = _optional_bool(body, "isEnabled", profile.is_enabled)
            if profile.is_default and not profile.is_enabled:
                raise ApiError(
                    "storage_provider_profile_default_requires_enabled",
                    "Default storage provider profiles must remain enabled.",
                    400,
                )
        if "configuration" in body or "secretConfiguration" in body:
            configuration, secrets = _profile_objects(body, required="configuration" in body)
            if "configuration" in body:
                profile.configuration = configuration
            if "secretConfiguration" in body:  # null clears the secret; omitted keeps it
                profile.secrets = secrets or {}
            profiles.check(
                profile.provider_type, profile.configuration, profile.secrets, self._profile_cache(profile.id)
            )
        profile.updated_at = utc_now()
        self.catalog.profiles.save(profile)
        with self._profiles_lock:
            self._profile_storages.pop(profile.id, None)  # rebuilt with the new settings on next use
        return profiles.profile_json(profile)

    def set_default_storage_profile(self, principal: Principal, profile_id: str) -> dict[str, Any]:
        principal.require("assets:admin")
        profile = self._profile(profile_id)
        if not profile.is_enabled:
            raise ApiError(
                "storage_provider_profile_default_requires_enabled",
                "Only enabled storage provider profiles can be set as default.",
                400,
            )
        profile.is_default = True
        profile.updated_at = utc_now()
        self.catalog.profiles.save(profile)
        return profiles.profile_json(profile)

    def delete_storage_profile(self, principal: Principal, profile_id: str) -> dict[str, Any]:
        """Remove a profile; one that still holds assets is disabled instead, so they stay readable."""
        principal.require("assets:admin")
        profile = self._profile(profile_id)
        status = self.catalog.profiles.delete(profile.id)
        if status == "deleted":
            with self._profiles_lock:
                self._profile_storages.pop(profile.id, None)
        return {"id": profile.id, "wasDefault": profile.is_default, "status": status, "deletedAtUtc": utc_now()}

    def _profile_name(self, raw: Any, own_id: str | None) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise ApiError("storage_provider_profile_name_required", "name is required.", 400)
        name = raw.strip()
        if any(p.name.lower() == name.lower() and p.id != own_id for p in self.catalog.profiles.all()):
            raise ApiError(
                "storage_provider_profile_name_conflict",
                f"A storage provider profile named '{name}' already exists.",
                400,
            )
        return name

    # -- read ---------------------------------------------------------------------------------------------

    def list_assets(self, principal: Principal, query: ListQuery) -> Page:
        principal.require("assets:read")
        if query.meaning:
            return self._search_by_meaning(principal, query)
        return self.catalog.assets.list(query, principal.visible_owner)

    def get_asset(self, principal: Principal, asset_id: str) -> Asset:
        principal.require("assets:read")
        return self._visible(principal, asset_id, detail=True)

    def public_url(self, asset: Asset) -> str | None:
        return self._public_url(self.storage_for(asset.storage_profile_id), asset.storage_key)

    def derivative_urls(self, asset: Asset) -> dict[str, str | None]:
        storage = self.storage_for(asset.storage_profile_id)
        return {d.kind: self._public_url(storage, d.storage_key) for d in asset.derivatives}

    def thumbnail_urls(self, assets: list[Asset]) -> dict[str, str | None]:
        """The thumbnail URL of each asset that has one, found for the whole list in one catalog query."""
        thumbnails = self.catalog.assets.derivatives_of_kind([asset.id for asset in assets], THUMBNAIL_KIND)
        return {
            asset.id: self._public_url(self.storage_for(asset.storage_profile_id), thumbnails[asset.id].storage_key)
            for asset in assets
            if asset.id in thumbnails
        }

    def _public_url(self, storage: Storage, key: str) -> str | None:
        """The provider's own public URL, else this server's /content route, which streams public files from any
        provider (an S3 bucket without a public base URL, a private git repository)."""
        return storage.public_url(key) or f"{self.content_url}/{quote(key)}"

    def open_content(self, principal: Principal, asset_id: str) -> Content:
        principal.require("assets:read")
        asset = self._visible(principal, asset_id)
        storage = self.storage_for(asset.storage_profile_id)
        stored_size = storage.size(asset.storage_key)
        if stored_size is None:
            raise asset_not_found(asset_id)
        if asset.is_public:
            url = storage.redirect_url(asset.storage_key) or self._public_url(storage, asset.storage_key)
            return Content(redirect_url=url)
        return _stored_content(storage, asset, stored_size)

    def open_public_content(self, storage_key: str) -> Content:
        """The anonymous route: only public assets and their derivatives, whatever the key."""
        key = storage_key.replace("\\", "/").strip().lstrip("/")
        found = self.catalog.assets.find_by_storage_key(key) if key else None
        if found is None or not found[0].is_public:
            raise ApiError("asset_not_found", "No public asset is stored under this key.", 404)
        asset, derivative = found
        item: Asset | Derivative = derivative or asset
        storage = self.storage_for(asset.storage_profile_id)
        stored_size = storage.size(item.storage_key)
        if stored_size is None:
            raise ApiError("asset_not_found", "The stored file is missing.", 404)
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
                400,
            )
        self.catalog.analytics.export_parquet(table, destination, principal.visible_owner)

    # -- change -------------------------------------------------------------------------------------------

    def update_asset(self, principal: Principal, asset_id: str, patch: dict[str, Any]) -> Asset:
        """Patch semantics: an omitted field is unchanged, null clears description/altText, a value sets it."""
        principal.require("assets:write")
        changes: dict[str, Any] = {}
        for name, column in (("description", "description"), ("altText", "alt_text")):
            if name in patch:
                value = patch[name]
                if value is not None and not isinstance(value, str):
                    raise request_invalid(f"The field '{name}' must be a string or null.")
                if value is not None and len(value) > MAX_TEXT_LENGTH:
                    code = "asset_description_too_long" if name == "description" else "asset_alt_text_too_long"
                    raise ApiError(code, f"The field '{name}' exceeds {MAX_TEXT_LENGTH} characters.", 400)
                changes[column] = value
        if "isPublic" in patch:
            if not isinstance(patch["isPublic"], bool):
                raise request_invalid("The field 'isPublic' must be true or false.")
            changes["is_public"] = patch["isPublic"]
        if "originalFileName" in patch:
            raw = patch["originalFileName"]
            if not isinstance(raw, str):
                raise request_invalid("The field 'originalFileName' must be a string.")
            name = clean_file_name(raw)
            if not name or len(name) > MAX_FILE_NAME_LENGTH:
                raise ApiError("asset_filename_invalid", "The file name is empty or too long.", 400)
            changes["original_file_name"] = name
        self._owned(principal, asset_id)
        self.catalog.assets.update(asset_id, changes)
        return self.catalog.assets.detail(asset_id)

    def delete_asset(self, principal: Principal, asset_id: str, commit_message: str | None = None) -> dict[str, Any]:
        principal.require("assets:delete")
        asset = self._owned(principal, asset_id)
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
            if asset is None or not self._may_see(principal, asset):
                not_found.append(raw)
                continue
            self._check_owner(principal, asset)
            if self._delete(principal, asset):
                deleted.add(asset_id)
            else:  # another request deleted it between the read and the delete: every id is accounted for once
                not_found.append(raw)
        return {"requestedCount": len(ids), "deletedCount": len(deleted), "notFoundIds": not_found}

    def _delete(self, principal: Principal, asset: Asset, message: str | None = None) -> dict[str, Any] | None:
        keys = self.catalog.assets.delete(asset.id, self._event("delete", principal, asset))
        if keys is None:
            return None
        for key in keys:
            self._remove_file(key, asset.storage_profile_id, message.strip() if message else None)
        for index in list(self._indexes.values()):
            index.remove(asset.id)
        return {"id": asset.id, "status": asset.status, "deletedAtUtc": utc_now()}

    # -- skills -------------------------------------------------------------------------------------------

    def list_skills(self, principal: Principal) -> list[dict[str, Any]]:
        principal.require("assets:read")
        return [skill.to_json() for skill in self.skills.all()]

    def model_of_skill(self, skill_name: str) -> str | None:
        """The model a skill runs ("clip", "caption"), if any; None also for an unknown skill."""
        skill = self.skills.get(skill_name)
        return skill.model if skill else None

    def run_skill(self, principal: Principal, asset_id: str, skill_name: str, parameters: Any) -> dict[str, Any]:
        principal.require("assets:write")
        asset = self._owned(principal, asset_id)
        skill = self.skills.get(skill_name)
        if skill is None:
            raise ApiError("skill_not_found", f"Skill '{skill_name}' was not found for asset '{asset_id}'.", 404)
        normalised = skill.validate_parameters(parameters)
        context = self._context(asset, normalised)
        execution = run_skill(skill, context, "manual", json.dumps(normalised) if normalised else None)
        if not context.commit([(execution, self._event("skill_run", principal, asset, execution))]):
            raise asset_not_found(asset_id)  # deleted while the skill ran
        return {
            "succeeded": execution.succeeded,
            "skillName": skill.name,
            "steps": [step.to_run_json() for step in execution.steps],
            "asset": self.catalog.assets.detail(asset.id),
        }

    def process_jobs(self, jobs: list[Job]) -> None:
        """Run uploads' enrichment: pending -> processing -> ready, or failed when the image cannot be decoded.
        Work a skill can share across the batch (one forward pass of a model) is done first."""
        assets = {job.id: self.catalog.assets.get(job.asset_id) for job in jobs}
        runnable = [(job.id, job.asset_id) for job in jobs if assets[job.id] is not None]
        started_ids = self.catalog.jobs.start(runnable)
        started = [(job, self._context(assets[job.id], {})) for job in jobs if job.id in started_ids]
        self._prepare_batch(started)
        for job, context in started:
            executions: list[tuple[SkillExecution, dict[str, Any]]] = []
            try:
                status = self._enrich(job, context, executions)
            except Exception:  # a bug, not a bad image: the asset must not stay "processing" for ever
                self.log.exception("enrichment of asset %s failed unexpectedly", job.asset_id)
                status = "failed"
            context.commit(executions, (job.id, status))

    def _prepare_batch(self, started: list[tuple[Job, SkillContext]]) -> None:
        batches: dict[Any, list[SkillContext]] = {}
        for job, context in started:
            for name in job.skills:
                skill = self.skills.get(name)
                if skill is not None and skill.prepare_batch is not None:
                    batch = batches.setdefault(skill.prepare_batch, [])
                    if context not in batch:
                        batch.append(context)
        for prepare, contexts in batches.items():
            try:
                prepare(contexts)
            except Exception:  # the steps run one by one and report the failure themselves
                self.log.exception("batch preparation for %d asset(s) failed", len(contexts))

    def _enrich(self, job: Job, context: SkillContext, executions: list[tuple[SkillExecution, dict[str, Any]]]) -> str:
        """Run the job's skills, adding their execution records to ``executions``; the asset's new status."""
        for name in job.skills:
            skill = self.skills.get(name)
            if skill is None:
                self.log.warning("enrichment skill %r is not registered; skipped", name)
                continue
            context.parameters = skill.validate_parameters(None)  # its defaults
            execution = run_skill(skill, context, "upload", None)
            executions.append((execution, self._event("skill_run", None, context.asset, execution)))
        return "ready" if context.decodable() else "failed"

    def _context(self, asset: Asset, parameters: dict[str, Any]) -> SkillContext:
        return SkillContext(asset, parameters, self._environment)

    # -- search by meaning and duplicates -----------------------------------------------------------------

    def _load_vector_index(self) -> None:
        key = self.models.clip_key()
        if key is None:
            return
        ids, matrix = self.catalog.assets.embeddings(*key)
        if ids:
            index = VectorIndex(matrix.shape[1])
            index.load(ids, matrix)
            self._indexes[key] = index
            self.log.info("search by meaning: %d embeddings of %s/%s loaded", len(ids), *key)

    def _embedding_saved(self, model: str, weights: str, asset_id: str, vector: Any) -> None:
        with self._indexes_lock:
            index = self._indexes.get((model, weights))
            if index is None:
                index = self._indexes[(model, weights)] = VectorIndex(len(vector))
        index.add(asset_id, vector)

    def _clip_model(self) -> ClipModel:
        try:
            return self.models.clip()
        except ModelUnavailableError as error:
            raise ApiError("model_unavailable", str(error), 409) from error

    def _index(self) -> tuple[str, VectorIndex | None]:
        """The configured model's id and its index (None before the first embedding), or 409 model_unavailable."""
        key = self.models.clip_key()
        if key is None:
            raise ApiError(
                "model_unavailable", str(not_configured(self.config.models.clip_model, "clip_pretrained")), 409
            )
        return "/".join(key), self._indexes.get(key)

    def _search_by_meaning(self, principal: Principal, query: ListQuery) -> Page:
        model = self._clip_model()
        _, index = self._index()
        if index is None:
            return Page([], query.page, query.page_size, 0)
        vector = model.encode_texts([query.meaning])[0]
        items = self._ranked(principal, index, vector, query)
        total = self.catalog.assets.count_embedded(query, principal.visible_owner, model.model_name, model.weights)
        return Page(items, query.page, query.page_size, total)

    def similar_assets(self, principal: Principal, asset_id: str, limit: int) -> dict[str, Any]:
        """The nearest neighbours of an asset's embedding, the asset itself first (score 1)."""
        principal.require("assets:read")
        model_id, index = self._index()
        asset = self._visible(principal, asset_id)
        vector = index.vector(asset.id) if index is not None else None
        if vector is None:
            raise ApiError(
                "asset_not_embedded",
                f"Asset '{asset.id}' has no embedding from {model_id} yet: wait for its enrichment or run the "
                "'embed' skill on it.",
                409,
            )
        return {"items": self._ranked(principal, index, vector, ListQuery(page_size=limit)), "model": model_id}

    def _ranked(self, principal: Principal, index: VectorIndex, vector: Any, query: ListQuery) -> list[Asset]:
        """One page of the assets nearest to ``vector`` among those that pass the query's filters. The index
        ranks; the catalog filters; the candidate list grows until the page is full or the index exhausted."""
        wanted = query.page * query.page_size
        limit = max(2 * wanted, 64)
        while True:
            ranked = index.search(vector, limit)
            passing = self.catalog.assets.matching([asset_id for asset_id, _ in ranked], query, principal.visible_owner)
            hits = [(passing[asset_id], score) for asset_id, score in ranked if asset_id in passing]
            if len(hits) >= wanted or len(ranked) < limit:
                break
            limit *= 4
        page = hits[wanted - query.page_size : wanted]
        for asset, score in page:
            asset.score = round(float(score), 6)
        return [asset for asset, _ in page]

    def duplicates(self, principal: Principal, threshold: float) -> list[dict[str, Any]]:
        """Groups of exact copies (same bytes), near-identical images (perceptual hashes within the threshold)
        and, when embeddings exist, similar images (cosine similarity at least the threshold)."""
        principal.require("assets:read")
        visible_to = principal.visible_owner
        groups = [
            {"reason": "exact", "assetIds": ids, "score": 1.0}
            for ids in self.catalog.assets.checksum_groups(visible_to)
        ]
        max_distance = min(round((1 - threshold) * 2 * HASH_BITS), MAX_NEAR_BITS)
        for ids in hamming_groups(self.catalog.assets.image_hashes(visible_to), max_distance):
            groups.append({"reason": "near", "assetIds": ids, "score": None})
        key = self.models.clip_key()
        index = self._indexes.get(key) if key else None
        if index is not None and len(index):
            only = set(self.catalog.assets.visible_ids(visible_to)) if visible_to is not None else None
            ids, matrix = index.snapshot(only)
            if len(ids) > MAX_SIMILAR_TIER:
                self.log.warning("duplicates: similar tier left out for %d embeddings", len(ids))
            else:
                for members, score in group_similar(ids, matrix, threshold):
                    groups.append({"reason": "similar", "assetIds": members, "score": round(float(score), 6)})
        # A group wholly inside a stronger one says nothing new. Such a group holds the first member too, so only
        # the kept groups holding that member are compared.
        kept: list[dict[str, Any]] = []
        kept_holding: dict[str, list[set[str]]] = {}
        for group in groups:
            members = set(group["assetIds"])
            if not any(members <= stronger for stronger in kept_holding.get(group["assetIds"][0], [])):
                kept.append(group)
                for asset_id in members:
                    kept_holding.setdefault(asset_id, []).append(members)
        return kept

    # -- housekeeping -------------------------------------------------------------------------------------

    def _sweep_now_and_then(self) -> None:
        """Retry removing files whose delete failed, without waiting for the next start."""
        while not self._closing.wait(SWEEP_INTERVAL_SECONDS):
            try:
                self.sweep_storage(in_flight_before=utc_now() - IN_FLIGHT_GRACE)
            except Exception:
                self.log.exception("storage sweep failed; it will be retried")

    def sweep_storage(self, in_flight_before: datetime | None = None) -> int:
        """Remove files that no asset references any more (failed deletes, crashed uploads and skill runs). At
        start everything; while running, files of skill runs only once they are older than any run can be
        (``in_flight_before``). Returns the count. Rewrites in place that did not commit are settled first."""
        settle_rewrites(self._environment, in_flight_before)
        self.catalog.cleanup.drop_stale()
        removed = 0
        for key, profile_id in self.catalog.cleanup.pending(in_flight_before):
            if self._remove_file(key, profile_id):
                removed += 1
        return removed

    def _remove_file(self, key: str, profile_id: str | None = None, message: str | None = None) -> bool:
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

    # -- access rules -------------------------------------------------------------------------------------

    @staticmethod
    def _may_see(principal: Principal, asset: Asset) -> bool:
        return asset.is_public or principal.is_admin or asset.owner == principal.subject

    @staticmethod
    def _check_owner(principal: Principal, asset: Asset) -> None:
        if not principal.is_admin and asset.owner != principal.subject:
            raise forbidden("Only the owner of this asset (or an admin) may change it.")

    def _visible(self, principal: Principal, asset_id: str, detail: bool = False) -> Asset:
        canonical = parse_id(asset_id)
        asset = None
        if canonical:
            asset = self.catalog.assets.detail(canonical) if detail else self.catalog.assets.get(canonical)
        if asset is None or not self._may_see(principal, asset):
            raise asset_not_found(asset_id)
        return asset

    def _owned(self, principal: Principal, asset_id: str) -> Asset:
        asset = self._visible(principal, asset_id)
        self._check_owner(principal, asset)
        return asset

    @staticmethod
    def _event(kind: str, principal: Principal | None, asset: Asset, execution: Any = None) -> dict[str, Any]:
        return {
            "kind": kind,
            "asset_id": asset.id,
            "actor": principal.subject if principal else None,
            "content_type": asset.content_type,
            "size": asset.size,
            "skill_name": execution.skill_name if execution else None,
            "succeeded": execution.succeeded if execution else None,
        }


def _stored_content(storage: Storage, item: Asset | Derivative, stored_size: int) -> Content:
    return Content(
        storage=storage,
        storage_key=item.storage_key,
        content_type=item.content_type,
        size=stored_size,
        etag=item.checksum_sha256,
    )


def _profile_objects(body: dict[str, Any], required: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(configuration, secrets) of a profile request, both JSON objects (secrets may be null)."""
    configuration = body.get("configuration")
    if required and not isinstance(configuration, dict):
        raise ApiError(
            "storage_provider_profile_configuration_required",
            "Configuration is required and must be a JSON object.",
            400,
        )
    secrets = body.get("secretConfiguration")
    if secrets is not None and not isinstance(secrets, dict):
        raise ApiError(
            "storage_provider_profile_secret_configuration_invalid",
            "secretConfiguration must be a JSON object or null.",
            400,
        )
    return configuration or {}, secrets


def _optional_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise request_invalid(f"The field '{name}' must be true or false.")
    return value


def _display_name(raw: Any) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise request_invalid("The field 'displayName' must be a string.")
    return raw.strip() or None if raw else None

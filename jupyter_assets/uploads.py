"""Uploads and their durability protocol: an upload is acknowledged only when its bytes are durable and its row
committed, and a crash at any point leaves either nothing or a complete asset (see recover_incoming)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .auth import Principal
from .catalog import ExpectedWrite
from .errors import ApiError, request_invalid
from .images import EXTENSIONS, inspect_upload, sniff_format
from .library import Library, checked_file_name, checked_text, event_row
from .model import Asset, file_sha256, human_size, new_id, parse_id, utc_now
from .storage import Storage, copies_on_put, storage_key
from .storage.local import fsync_directory, fsync_file
from .storage.profiles import existing_profile

UNKNOWN_CONTENT_TYPE = "application/octet-stream"


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    """A form field's "true" or "false"."""
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise request_invalid(f"The field '{name}' must be true or false, not '{value}'.")
    return lowered == "true"


@dataclass
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
class UploadRules:
    max_upload_bytes: int
    allowed_content_types: tuple[str, ...]
    enrichment_skills: tuple[str, ...]
    max_image_pixels: int


class Uploads:
    def __init__(self, library: Library, rules: UploadRules, job_queued: Callable[[], None]) -> None:
        self.library = library
        self.catalog = library.catalog
        self.rules = rules
        self.job_queued = job_queued
        self.incoming_dir = library.root_dir / "incoming"
        self.incoming_dir.mkdir(parents=True, exist_ok=True)

    def new_incoming_file(self) -> tuple[int, Path]:
        """A file for an upload's bytes, named after the id the asset will get (see recover_incoming)."""
        path = self.incoming_dir / f"{new_id()}.upload"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path

    def drop(self, form: UploadForm) -> None:
        """Remove an upload's incoming file, whatever became of it."""
        if form.temp_path is not None:
            form.temp_path.unlink(missing_ok=True)

    def check_size(self, size: int) -> None:
        if size > self.rules.max_upload_bytes:
            raise ApiError(
                "asset_file_too_large",
                f"The file is larger than this server's limit of {human_size(self.rules.max_upload_bytes)}: "
                "an administrator can raise it with JUPYTER_ASSETS_MAX_UPLOAD_BYTES (c.AssetsApp.max_upload_bytes).",
            )

    def create(self, principal: Principal, form: UploadForm) -> Asset:
        """Validate, store and catalog an upload. The temporary file is consumed or removed, whatever happens."""
        try:
            return self._create(principal, form)
        finally:
            self.drop(form)

    def _create(self, principal: Principal, form: UploadForm) -> Asset:
        # Announced before the checks and fsyncs: a commit under way waits a moment for this row, so that
        # concurrent uploads share a commit.
        expected = self.catalog.expect_write()
        try:
            principal.require("assets:write")
            asset, storage = self._new_asset(principal, form)
            self._store(principal, asset, storage, form, expected)
            return asset
        finally:
            expected.done()

    def _new_asset(self, principal: Principal, form: UploadForm) -> tuple[Asset, Storage]:
        """The asset an upload describes, once every check passed, and the storage it goes to (nothing is stored
        yet)."""
        fields = form.fields
        if not form.file_received:
            raise ApiError("asset_file_required", "The 'file' field is required.")
        description = checked_text("description", fields.get("description"), "description" in form.oversized_fields)
        alt_text = checked_text("altText", fields.get("alttext"), "alttext" in form.oversized_fields)
        if form.size == 0:
            raise ApiError("asset_file_empty", "The uploaded file is empty.")
        self.check_size(form.size)
        content_type = self._content_type(form)
        file_name = checked_file_name(form.file_name or "")
        is_public = parse_bool("isPublic", fields.get("ispublic"), True)
        run_enrichment = parse_bool("runEnrichment", fields.get("runenrichment"), True)
        profile_id, storage = self._write_target(fields.get("storageproviderprofileid"))
        facts = inspect_upload(self._source(form), content_type, self.rules.max_image_pixels)
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
        return asset, storage

    @staticmethod
    def _source(form: UploadForm) -> Path | bytes:
        return form.temp_path if form.data is None else form.data

    def _content_type(self, form: UploadForm) -> str:
        """The declared type, when allowed; octet-stream (what curl sends for extensions it does not know, such as
        .webp) takes the sniffed image's type."""
        if not form.content_type:
            raise ApiError("asset_content_type_missing", "The file part has no Content-Type.")
        content_type = form.content_type.split(";", 1)[0].strip().lower()
        allowed = self.rules.allowed_content_types
        if content_type == UNKNOWN_CONTENT_TYPE:
            sniffed = sniff_format(self._source(form), self.rules.max_image_pixels)
            content_type = sniffed[0] if sniffed and sniffed[0] in allowed else content_type
        if content_type not in allowed:
            message = f"Content type '{content_type}' is not allowed; allowed: {', '.join(allowed)}."
            if content_type == UNKNOWN_CONTENT_TYPE:
                message += " Send the file's own type, e.g. with curl: -F 'file=@photo.webp;type=image/webp'."
            raise ApiError("asset_content_type_not_allowed", message)
        return content_type

    def create_batch(self, principal: Principal, forms: list[UploadForm]) -> list[Asset | Exception]:
        """Each file of a batch upload, checked as a single upload is; the accepted ones are cataloged in one commit,
        then stored. Returns, in order, each file's asset or what refused it: a refused file refuses only itself.
        The temporary files are consumed or removed, whatever happens."""
        try:
            principal.require("assets:write")
            outcomes: list[Asset | Exception] = []
            accepted = []
            for form in forms:
                try:
                    asset, storage = self._new_asset(principal, form)
                except ApiError as error:
                    outcomes.append(error)
                    continue
                outcomes.append(asset)
                accepted.append((asset, storage, form))
            failed = {}
            if accepted:
                expected = self.catalog.expect_write()
                try:
                    failed = self._store_all(principal, accepted, expected)
                finally:
                    expected.done()
            return [failed.get(outcome.id, outcome) if isinstance(outcome, Asset) else outcome for outcome in outcomes]
        finally:
            for form in forms:
                self.drop(form)

    def _store(
        self, principal: Principal, asset: Asset, storage: Storage, form: UploadForm, expected: ExpectedWrite
    ) -> None:
        failed = self._store_all(principal, [(asset, storage, form)], expected)
        if failed:
            raise failed[asset.id]

    def _store_all(
        self, principal: Principal, accepted: list[tuple[Asset, Storage, UploadForm]], expected: ExpectedWrite
    ) -> dict[str, Exception]:
        """Store and catalog checked uploads, their rows in one commit; returns the errors of those whose bytes
        could not be stored (their rows are undone), by asset id.

        incoming/<id>.upload is durable before the rows can commit: its name always, its bytes when the storage
        moves them (local, git) once the rows are committed. A storage that copies them (S3) stores them while the
        rows are being committed, and an upload is acknowledged only when both are done: the storage has the bytes
        by then, so they are not fsynced here. After a crash the next start stores the bytes of a committed row
        that its storage lacks, and removes what a storage that copies holds of an upload whose row never
        committed (recover_incoming)."""
        copied = [item for item in accepted if copies_on_put(item[1].name)]
        moved = [item for item in accepted if not copies_on_put(item[1].name)]
        for _, _, form in moved:
            fsync_file(form.temp_path)
        fsync_directory(self.incoming_dir)
        skills = list(self.rules.enrichment_skills)
        job_ids, committing = self.catalog.assets.insert_many(
            [(asset, skills if asset.status == "pending" else None, event_row("upload", principal, asset))
             for asset, _, _ in accepted]
        )  # fmt: skip
        expected.done()
        failed: dict[str, Exception] = {}
        try:
            for item in copied:
                self._put(item, failed)
            self.catalog.settle(committing).result()
            for item in moved:
                self._put(item, failed)
        except BaseException:
            committed = self.catalog.settle(committing).exception() is None
            for asset, _, _ in accepted:
                self._undo(asset, committed)
            raise
        for asset, _, _ in accepted:
            if asset.id in failed:
                self._undo(asset, committed=True)
        if any(job_id and asset.id not in failed for (asset, _, _), job_id in zip(accepted, job_ids, strict=True)):
            self.job_queued()
        return failed

    @staticmethod
    def _put(item: tuple[Asset, Storage, UploadForm], failed: dict[str, Exception]) -> None:
        asset, storage, form = item
        try:
            message = form.fields.get("commitmessage") or None
            storage.put(asset.storage_key, form.temp_path, message=message, sha256=form.sha256, data=form.data)
        except Exception as error:
            failed[asset.id] = error

    def _undo(self, asset: Asset, committed: bool) -> None:
        """Forget an upload that could not be completed: its row (if committed) and whatever was stored of it."""
        if committed:
            self.catalog.assets.undo_upload(asset.id)
        self.library.remove_file(asset.storage_key, asset.storage_profile_id)

    def _write_target(self, requested: str | None) -> tuple[str | None, Storage]:
        """Where an upload goes: the profile it names (existing and enabled), else the default profile (enabled),
        else the configuration's storage (no profile), which a team library does not have: each server's own
        root is private to it."""
        if requested is not None and requested.strip():
            if parse_id(requested.strip()) is None:
                raise request_invalid("The field 'storageProviderProfileId' must be a UUID.")
            profile = existing_profile(self.catalog, requested)
            if not profile.is_enabled:
                raise ApiError(
                    "storage_provider_profile_disabled", f"Storage provider profile '{profile.id}' is disabled."
                )
            return profile.id, self.library.storage_for(profile.id)
        default = self.catalog.profiles.default()
        if default is None and self.catalog.is_shared:
            raise ApiError(
                "storage_provider_default_write_profile_missing",
                "This team library has no default storage profile: set one (POST /api/v1/system/storage/providers/"
                "<id>/set-default), or name a profile with storageProviderProfileId.",
            )
        if default is None:
            return None, self.library.storage
        if not default.is_enabled:
            raise ApiError(
                "storage_provider_default_write_profile_disabled",
                f"The default storage provider profile '{default.name}' is disabled: enable it, set another "
                "default, or name a profile with storageProviderProfileId.",
            )
        return default.id, self.library.storage_for(default.id)

    # -- after a crash ------------------------------------------------------------------------------------

    def recover_incoming(self) -> None:
        """An incoming file is named after its asset: store it if its row was committed and the bytes are the
        ones the row describes; a row whose bytes never became durable is forgotten (it was never acknowledged).
        Without a row, the bytes may still have reached a storage that copies them while the commit is under
        way (see _store): what such a profile holds under the upload's key is removed. Which profile it went to
        is not recorded, so every one that copies is asked (a missing object is not an error)."""
        leftovers = list(self.incoming_dir.iterdir())
        if not leftovers:
            return
        listed = self.catalog.profiles.all()
        copying_profiles = [profile.id for profile in listed if copies_on_put(profile.provider_type)]
        for leftover in leftovers:
            asset_id = parse_id(leftover.stem) if leftover.suffix == ".upload" else None
            asset = self.catalog.assets.get(asset_id) if asset_id else None
            if asset is None:
                if asset_id:
                    self._remove_uncommitted(asset_id, leftover, copying_profiles)
            elif (storage := self.library.storage_for(asset.storage_profile_id)).size(asset.storage_key) is None:
                if file_sha256(leftover) == asset.checksum_sha256:
                    self.library.log.info("storing upload %s that was committed before a crash", asset.id)
                    storage.put(asset.storage_key, leftover, sha256=asset.checksum_sha256)
                else:
                    self.library.log.warning("dropping upload %s: its bytes were not durable before a crash", asset.id)
                    self.catalog.assets.undo_upload(asset.id)
            leftover.unlink(missing_ok=True)

    def _remove_uncommitted(self, asset_id: str, leftover: Path, profile_ids: list[str]) -> None:
        """Its key follows from its id and its format. The bytes of an upload to a storage that copies were not
        fsynced (see _store): when the crash lost them, the key of every format is removed."""
        if not profile_ids:
            return
        sniffed = sniff_format(leftover, self.rules.max_image_pixels)
        for extension in [sniffed[1]] if sniffed else EXTENSIONS:
            for profile_id in profile_ids:
                self.library.remove_file(storage_key(asset_id, extension), profile_id)

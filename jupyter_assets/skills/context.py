"""What a running skill may touch: its asset, the original bytes (decoded once), and the results it stages for the
run's recorder (processing.recorder), which writes them to the catalog."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..catalog import AssetGoneError, Changes
from ..images import ImageDecodeError, decode, displayed_size, open_bounded
from ..model import Asset, Derivative, SkillExecution, StructuredResult, new_id, utc_now
from ..storage import storage_key

if TYPE_CHECKING:
    import numpy

    from ..processing.recorder import RunRecorder
    from ..storage import Storage
    from .models import ModelHub


@dataclasses.dataclass(frozen=True)
class SkillEnvironment:
    """What the service lends every skill run."""

    recorder: RunRecorder
    storage_for: Callable[[str | None], Storage]  # the storage of a profile id (None: the configuration's)
    models: ModelHub
    max_pixels: int
    log: logging.Logger
    remove_file: Callable[[str, str | None], bool]  # deletes a stored file, or notes it for the retry sweep


class SkillContext:
    def __init__(self, asset: Asset, parameters: dict[str, Any], environment: SkillEnvironment) -> None:
        self.asset = asset
        self.parameters = parameters
        self.environment = environment
        self.recorder = environment.recorder
        self.storage = environment.storage_for(asset.storage_profile_id)  # derivatives live beside the original
        self.models = environment.models
        self.max_pixels = environment.max_pixels
        self.log = environment.log
        self.remove_file = lambda key: environment.remove_file(key, asset.storage_profile_id)
        # Work shared by the skills of one job (an embedding computed for a batch, reused by `tags`).
        self.scratch: dict[str, Any] = {}
        # What the skills write to the catalog, committed at the end of the run with its record (see commit).
        self.changes = Changes()
        self._stored: list[str] = []  # keys of the new files this run stored (derivatives)
        self._original: bytes | None = None  # read once per job: several steps look at the original
        self._image: Image.Image | None = None
        self._image_is_full = False
        self.decode_error: ImageDecodeError | None = None

    def original_bytes(self) -> bytes:
        if self._original is None:
            self._original = self.storage.read(self.asset.storage_key)
        return self._original

    def image(self, at_least: int | None = None) -> Image.Image:
        """The original decoded (bounded against bombs) and cached for every skill of the job. With ``at_least``,
        a reduced decode whose shorter side is at least that long is good enough (see images.decode)."""
        if self.decode_error is not None:
            raise self.decode_error
        cached = self._image
        if cached is not None and (self._image_is_full or (at_least and min(cached.size) >= at_least)):
            return cached
        try:
            self._image = decode(self.original_bytes(), self.max_pixels, at_least)
        except ImageDecodeError as error:
            self.decode_error = error
            raise
        # The catalog's size is the displayed one (turned by the EXIF orientation), the decoded one the stored.
        self._image_is_full = not at_least or sorted(self._image.size) == sorted((self.asset.width, self.asset.height))
        return self._image

    def decodable(self) -> bool:
        """Whether the original decodes, at any scale (a decode cached by a skill answers at once)."""
        try:
            self.image(at_least=1)
        except (ImageDecodeError, FileNotFoundError):
            return False
        return True

    def save_derivative(
        self, kind: str, data: bytes, content_type: str, extension: str, width: int, height: int
    ) -> Derivative:
        """Store a derivative's bytes now and record it at commit, replacing (and removing) an older one of the same
        kind."""
        key = self._store_new(data, extension, "derivative_in_flight")
        derivative = Derivative(
            asset_id=self.asset.id,
            kind=kind,
            content_type=content_type,
            extension=extension,
            size=len(data),
            width=width,
            height=height,
            checksum_sha256=hashlib.sha256(data).hexdigest(),
            storage_key=key,
            created_at=utc_now(),
        )
        self.changes.upsert_derivative(derivative)
        return derivative

    def save_result(self, kind: str, payload_json: str, model_id: str | None) -> None:
        self.changes.upsert_structured_result(StructuredResult(self.asset.id, kind, payload_json, model_id, utc_now()))

    def fill_empty_text(self, text: str) -> None:
        """Use ``text`` as the description and the alt text where they are empty (never overwrite a person's)."""
        self.changes.fill_empty_text(self.asset.id, text)

    def replace_original(
        self,
        data: bytes,
        content_type: str,
        extension: str,
        width: int,
        height: int,
        keep_old_file: bool = False,
        refresh: Callable[[SkillContext], None] | None = None,
    ) -> None:
        """Make ``data`` the asset's original and ``refresh`` its derivatives (they show the old picture), in one
        commit. The key is the asset's id with the format's extension: in its own format the bytes replace the old
        ones under the same key (atomically, in the storage), under a recovery note that settle_rewrite follows
        after a crash, so the catalog's facts always end up describing the stored bytes; in a new format they go
        under the new key and the old file is removed once committed (or kept, for format-convert's
        keepOriginal).

        Everything derived from the new bytes (the thumbnail) is made before they are stored: between storing them
        and the commit, the catalog still describes the old bytes (the content route looks such a file up again),
        and that window is only the commit's."""
        started = self.asset  # what the run read: the catalog must still describe it when the rewrite commits
        key = storage_key(started.id, extension)
        in_place = key == started.storage_key
        if in_place and keep_old_file:
            raise ValueError("keepOriginal needs another format: in its own format the new bytes take the old key.")
        if not in_place:
            self._refuse_to_overwrite(key)
        facts = _facts(data, width, height) | {"content_type": content_type, "extension": extension, "storage_key": key}
        old_key = None if in_place or keep_old_file else started.storage_key
        with self.recorder.rewrite_lock(started.storage_key):
            self.recorder.note_rewrite(started, key, in_place)
            earlier, state = self.changes, (self._original, self._image, self._image_is_full)
            rewrite, stored_before = Changes(), len(self._stored)
            self.changes = rewrite
            try:
                rewrite.replace_original(started.id, facts, old_key, started.checksum_sha256)
                self._adopt(data, facts)
                if refresh is not None:
                    refresh(self)  # stores the new derivatives under keys of their own, noted until committed
                self.storage.put_bytes(key, data)
            except BaseException:
                self._restore(started, earlier, state, self._stored[stored_before:])
                if in_place:  # nothing stored, or a storage that failed may hold either bytes (a timeout after
                    self._settle_at_once(key, refresh)  # the write, say): the catalog takes what is there
                raise
            self.changes = Changes().extend(earlier).extend(rewrite)
            try:
                committed = self.commit([])
            except BaseException:  # the guard (another server's rewrite committed) or a failing catalog
                self._restore(started, earlier, state, self._stored[stored_before:])
                if in_place:
                    self._settle_at_once(key, refresh)
                raise
            if not committed:  # deleted meanwhile: what was just stored is nobody's
                self.remove_file(key)
                self.recorder.drop_rewrite_note(key)
                raise AssetGoneError(started.id)

    def _refuse_to_overwrite(self, key: str) -> None:
        """A conversion's key is the asset's id with the new extension: a file there that no note marks as
        leftover is the original kept by an earlier conversion (keepOriginal), which this one would overwrite
        and, if it failed, leave to the sweep."""
        if self.storage.size(key) is not None and not self.recorder.is_leftover(key):
            raise ValueError(
                f"The file {key} is already stored: the original kept by an earlier conversion (keepOriginal). "
                "Converting back to its format would overwrite it, so this conversion is refused."
            )

    def _adopt(self, data: bytes, facts: dict[str, Any]) -> None:
        self.asset = dataclasses.replace(self.asset, **facts)
        self._original, self._image = data, None  # the next step decodes the new original

    def _restore(
        self, asset: Asset, changes: Changes, state: tuple[bytes | None, Image.Image | None, bool], stored: list[str]
    ) -> None:
        """Back to the original the run read and to the writes of the steps before a rewrite that failed; the
        derivatives it stored (of bytes that are not the original) are removed."""
        self.asset, self.changes = asset, changes
        self._original, self._image, self._image_is_full = state
        for key in stored:
            self.remove_file(key)

    def _settle_at_once(self, key: str, refresh: Callable[[SkillContext], None] | None) -> None:
        try:
            settle_rewrite(self.environment, key, self.asset.storage_profile_id, refresh)
        except Exception as error:  # the storage (or the catalog) is still failing: the sweep settles it later
            self.log.warning("rewrite of %s left for the sweep to settle: %s", key, error)

    def _store_new(self, data: bytes, extension: str, reason: str) -> str:
        """Store bytes under a new key, noted for the cleanup sweep first so that a run that never commits leaks
        nothing; the key."""
        key = storage_key(new_id(), extension)
        self.recorder.note_new_file(key, self.asset.storage_profile_id, reason)
        self._stored.append(key)
        self.storage.put_bytes(key, data)
        return key

    def save_image_hash(self, phash: int) -> None:
        self.changes.upsert_image_hash(self.asset.id, phash)

    def save_embedding(self, model: str, weights: str, vector: numpy.ndarray) -> None:
        self.changes.upsert_embedding(self.asset.id, model, weights, vector)

    def commit(
        self, executions: list[tuple[SkillExecution, dict[str, Any]]], finished_job: tuple[str, str] | None = None
    ) -> bool:
        """Hand what the skills wrote to the recorder, with their execution records (and, for a job, its end): one
        commit per run. False when the asset was deleted meanwhile."""
        changes, self.changes = self.changes, Changes()
        return self.recorder.commit(self.asset, changes, executions, finished_job)


def _facts(data: bytes, width: int | None, height: int | None) -> dict[str, Any]:
    return {"size": len(data), "width": width, "height": height, "checksum_sha256": hashlib.sha256(data).hexdigest()}


def settle_rewrites_with(
    environment: SkillEnvironment, refresh: Callable[[SkillContext], None], noted_before: datetime | None = None
) -> int:
    """Settle every rewrite in place that never committed (all of them at start; while running, those noted
    before ``noted_before``, older than any run can be), making the derivatives again with ``refresh``. Returns how
    many were settled; a failure leaves its note for the next sweep."""
    settled = 0
    recorder = environment.recorder
    for key, profile_id in recorder.rewrite_notes(noted_before):
        try:
            with recorder.rewrite_lock(key):
                settle_rewrite(environment, key, profile_id, refresh)
        except Exception:
            environment.log.exception("could not settle the rewrite of %s; it will be retried", key)
        else:
            settled += 1
    return settled


def settle_rewrite(
    environment: SkillEnvironment, key: str, profile_id: str | None, refresh: Callable[[SkillContext], None] | None
) -> None:
    """After a rewrite in place that did not commit, the storage holds either the old bytes (the catalog describes
    them: nothing to do) or the new ones: the catalog takes their facts, and the derivatives are made again from
    them, in one commit that ends the note. Derivatives that cannot be made again (new bytes that do not decode,
    a storage that fails) do not hold the facts back: the size and checksum must describe the stored bytes. The
    caller holds the asset's rewrite lock."""
    recorder = environment.recorder
    asset = recorder.asset_stored_at(key)
    if asset is None:  # the asset was deleted: its file is nobody's
        environment.remove_file(key, profile_id)
        recorder.drop_rewrite_note(key)
        return
    try:
        data = environment.storage_for(profile_id).read(key)
    except FileNotFoundError:
        environment.log.warning("the original %s of asset %s is missing; nothing to settle", key, asset.id)
        recorder.drop_rewrite_note(key)
        return
    facts = _facts(data, asset.width, asset.height)
    if facts["checksum_sha256"] == asset.checksum_sha256:
        recorder.drop_rewrite_note(key)
        return
    try:
        with open_bounded(data, environment.max_pixels) as image:
            facts["width"], facts["height"] = displayed_size(image)
    except ImageDecodeError:
        pass  # the size and the checksum still describe the bytes; the picture's size stays as it was
    environment.log.info("asset %s takes the facts of its rewritten original %s (a run did not commit)", asset.id, key)
    context = SkillContext(asset, {}, environment)
    settled = Changes()
    settled.replace_original(asset.id, facts | {"storage_key": key}, None, asset.checksum_sha256)
    context._adopt(data, facts)
    if refresh is not None:
        try:
            refresh(context)
        except Exception as error:
            environment.log.warning("asset %s keeps its old derivatives: %s", asset.id, error)
            context.changes = Changes()  # what the refresh stored before it failed is left to the sweep
    context.changes = settled.extend(context.changes)
    context.commit([])

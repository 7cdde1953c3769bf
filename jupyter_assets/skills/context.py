"""What a running skill may touch: its asset, the original bytes (decoded once), and the catalog writes it makes."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..catalog import AssetGoneError, Changes
from ..images import ImageDecodeError, decode
from ..model import Asset, Derivative, SkillExecution, StructuredResult, new_id, utc_now
from ..storage import storage_key

if TYPE_CHECKING:
    import numpy

    from ..catalog import Catalog
    from ..storage import Storage
    from .models import ModelHub


@dataclasses.dataclass(frozen=True)
class SkillEnvironment:
    """What the service lends every skill run."""

    catalog: Catalog
    storage_for: Callable[[str | None], Storage]  # the storage of a profile id (None: the configuration's)
    models: ModelHub
    max_pixels: int
    log: logging.Logger
    remove_file: Callable[[str, str | None], bool]  # deletes a stored file, or notes it for the retry sweep
    # Called after an embedding is committed, so search by meaning sees it at once.
    embedding_saved: Callable[[str, str, str, numpy.ndarray], None]


class SkillContext:
    def __init__(self, asset: Asset, parameters: dict[str, Any], environment: SkillEnvironment) -> None:
        self.asset = asset
        self.parameters = parameters
        self.environment = environment
        self.catalog = environment.catalog
        self.storage = environment.storage_for(asset.storage_profile_id)  # derivatives live beside the original
        self.models = environment.models
        self.max_pixels = environment.max_pixels
        self.log = environment.log
        self.remove_file = lambda key: environment.remove_file(key, asset.storage_profile_id)
        # Work shared by the skills of one job (an embedding computed for a batch, reused by `tags`).
        self.scratch: dict[str, Any] = {}
        # What the skills write to the catalog, committed at the end of the run with its record (see commit).
        self.changes = Changes()
        self._after_commit: list[Callable[[], None]] = []
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
        self._image_is_full = (self._image.width, self._image.height) == (self.asset.width, self.asset.height)
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
        self, data: bytes, content_type: str, extension: str, width: int, height: int, keep_old_file: bool = False
    ) -> None:
        """Make ``data`` the asset's original. It is stored under a new key and the catalog switched to it in one
        commit, so a crash leaves either the old original or the new one, never a half-written file; the old file
        is then removed (or kept, for format-convert's keepOriginal)."""
        key = self._store_new(data, extension, "original_in_flight")
        facts = {
            "content_type": content_type,
            "extension": extension,
            "size": len(data),
            "width": width,
            "height": height,
            "checksum_sha256": hashlib.sha256(data).hexdigest(),
            "storage_key": key,
        }
        try:
            old_key = self.catalog.replace_original(self.asset.id, facts, keep_old_file)
        except AssetGoneError:
            self.remove_file(key)
            raise
        if not keep_old_file:
            self.remove_file(old_key)
        self.asset = dataclasses.replace(self.asset, **facts)
        self._original, self._image = data, None  # the next step decodes the new original

    def _store_new(self, data: bytes, extension: str, reason: str) -> str:
        """Store bytes under a new key, noted for the cleanup sweep first so that a run that never commits leaks
        nothing; the key."""
        key = storage_key(new_id(), extension)
        self.catalog.add_cleanup(key, self.asset.storage_profile_id, reason)
        self.storage.put_bytes(key, data)
        return key

    def save_image_hash(self, phash: int) -> None:
        self.changes.upsert_image_hash(self.asset.id, phash)

    def save_embedding(self, model: str, weights: str, vector: numpy.ndarray) -> None:
        self.changes.upsert_embedding(self.asset.id, model, weights, vector.tolist())
        self._after_commit.append(lambda: self.environment.embedding_saved(model, weights, self.asset.id, vector))

    def commit(
        self, executions: list[tuple[SkillExecution, dict[str, Any]]], finished_job: tuple[str, str] | None = None
    ) -> bool:
        """Commit what the skills wrote with their execution records (and, for a job, its end): one commit per
        run. False when the asset was deleted meanwhile."""
        committed = self.catalog.commit_run(self.asset.id, self.changes, executions, finished_job)
        if committed:
            for key in self.changes.replaced_keys:
                self.remove_file(key)
            for callback in self._after_commit:
                callback()
        self.changes, self._after_commit = Changes(), []
        return committed

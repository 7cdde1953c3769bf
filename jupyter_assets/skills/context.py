"""What a running skill may touch: its asset, the original bytes (decoded once), and the catalog writes it makes."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..catalog import AssetGoneError
from ..images import ImageDecodeError, decode
from ..model import Asset, Derivative, StructuredResult, new_id, utc_now
from ..storage import storage_key

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..storage import Storage


class SkillContext:
    def __init__(
        self,
        asset: Asset,
        parameters: dict[str, Any],
        catalog: Catalog,
        storage: Storage,
        max_pixels: int,
        log: logging.Logger,
        remove_file: Callable[[str], bool],
    ) -> None:
        self.asset = asset
        self.parameters = parameters
        self.catalog = catalog
        self.storage = storage
        self.max_pixels = max_pixels
        self.log = log
        self.remove_file = remove_file  # deletes a stored file, or notes it for the retry sweep
        self._image: Image.Image | None = None
        self.decode_error: ImageDecodeError | None = None

    def original_bytes(self) -> bytes:
        return self.storage.read(self.asset.storage_key)

    def image(self) -> Image.Image:
        """The original, decoded once per job and shared by every skill in it (bounded against bombs)."""
        if self._image is None:
            if self.decode_error is not None:
                raise self.decode_error
            try:
                self._image = decode(self.original_bytes(), self.max_pixels)
            except ImageDecodeError as error:
                self.decode_error = error
                raise
        return self._image

    def save_derivative(
        self, kind: str, data: bytes, content_type: str, extension: str, width: int, height: int
    ) -> Derivative:
        """Store a derivative's bytes and record it, replacing (and cleaning up) an older one of the same kind."""
        key = storage_key(new_id(), extension, utc_now())
        self.catalog.add_cleanup(key, self.asset.storage_profile_id, "derivative_in_flight")
        self.storage.put_bytes(key, data)
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
        try:
            replaced = self.catalog.upsert_derivative(derivative)
        except AssetGoneError:
            self.remove_file(key)
            raise
        if replaced:
            self.remove_file(replaced)
        return derivative

    def save_result(self, kind: str, payload_json: str, model_id: str | None) -> None:
        self.catalog.upsert_structured_result(StructuredResult(self.asset.id, kind, payload_json, model_id, utc_now()))

"""Where the bytes live. One protocol, one module per provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ..errors import ApiError
from ..model import id_time


class Storage(Protocol):
    """A place that stores files under keys such as ``2026/11/28/<hex>.png``."""

    name: str  # the provider type: "local", "s3" or "github-repo"

    # ``message`` describes the change where a provider keeps history (the commit message of a git provider).

    def put(
        self, key: str, source: Path, message: str | None = None, sha256: str | None = None, data: bytes | None = None
    ) -> None:
        """Store the file at ``source`` under ``key`` (the source may be consumed). ``sha256``: the file's
        SHA-256 (hex) when the caller has it, for a provider that sends one (so it need not hash again); ``data``:
        the file's bytes when the caller holds them, for a provider that copies them (so it need not read them)."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, atomically."""

    def open(
        self, key: str, start: int = 0, end: int | None = None, expected_size: int | None = None
    ) -> Iterator[bytes]:
        """The stored bytes from ``start`` to ``end`` (exclusive), in chunks. With ``expected_size``, a file whose
        whole size is another (replaced since its size was looked up) raises StoredFileChanged before any chunk."""

    def read(self, key: str) -> bytes:
        """All the stored bytes."""

    def size(self, key: str) -> int | None:
        """The stored size in bytes, or None when there is no such file."""

    def delete(self, key: str, message: str | None = None) -> None:
        """Remove the file; a missing file is not an error."""

    def public_url(self, key: str) -> str | None:
        """Where anyone can read the file when its asset is public, or None."""

    def redirect_url(self, key: str) -> str | None:
        """Where a client may fetch the file of a public asset directly (possibly a short-lived URL), or None."""


class StoredFileChanged(Exception):
    """The file opened is not the size its lookup saw: a rewrite in place replaced it since (its catalog commit
    follows within milliseconds). ``current``: the content looked up again, where the reader did so."""

    def __init__(self, key: str, expected: int, found: int | None) -> None:
        super().__init__(f"The file {key} is {found} bytes, not the {expected} it was looked up with.")
        self.current: object | None = None


# Providers whose put copies the source and leaves it in place (rather than moving it): the bytes reach the
# storage before the upload's row commits, which recovery must know without building (or importing) the provider.
COPYING_PROVIDERS = frozenset({"s3"})


def copies_on_put(provider: str) -> bool:
    return provider in COPYING_PROVIDERS


def storage_key(file_id: str, extension: str) -> str:
    """``yyyy/MM/dd/<32 hex of the id><ext>``, dated by the id (a UUIDv7, UTC): unique because the id is, never
    from a file name, and known from the id and the file's format alone (see Uploads.recover_incoming)."""
    return f"{id_time(file_id):%Y/%m/%d}/{file_id.replace('-', '')}{extension}"


def check_key(key: str) -> str:
    """A storage key is relative, uses ``/``, and has no empty, ``.`` or ``..`` segment: it can never escape."""
    segments = key.split("/")
    if (
        not key
        or "\\" in key
        or "\x00" in key
        or key.startswith("/")
        or any(segment in ("", ".", "..") for segment in segments)
    ):
        raise ApiError("storage_provider_storage_key_invalid", f"Invalid storage key '{key}'.")
    return key

"""Files on the local disk under ``<root>/files/<storageKey>``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from . import StoredFileChanged, check_key

CHUNK_SIZE = 256 * 1024


class LocalStorage:
    name = "local"

    def __init__(self, root: Path, public_base_url: str | None) -> None:
        self.root = root.resolve()
        # Writes go to a temporary file in .partial first (same filesystem, so the final rename is atomic).
        # One cut short by a crash leaves only that file behind: start clean.
        self.partial_dir = self.root / ".partial"
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        self.partial_dir.mkdir(parents=True)
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    def path_for(self, key: str) -> Path:
        """The file of a key. check_key refuses absolute keys and ``..``, so the path stays under the root."""
        return self.root / check_key(key)

    def put(
        self, key: str, source: Path, message: str | None = None, sha256: str | None = None, data: bytes | None = None
    ) -> None:
        """Move a complete, fsynced file into place: an atomic rename on the same filesystem.

        The rename itself is not fsynced: until it is durable the file is found under its old name, and the
        service finishes such moves at start (see Uploads.recover_incoming)."""
        destination = self.path_for(key)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, destination)

    def put_bytes(self, key: str, data: bytes) -> None:
        destination = self.path_for(key)
        destination.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(dir=self.partial_dir)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, destination)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        fsync_directory(destination.parent)

    def open(
        self, key: str, start: int = 0, end: int | None = None, expected_size: int | None = None
    ) -> Iterator[bytes]:
        yield from read_range(self.path_for(key), start, end, expected_size)

    def read(self, key: str) -> bytes:
        return self.path_for(key).read_bytes()

    def size(self, key: str) -> int | None:
        try:
            return self.path_for(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str, message: str | None = None) -> None:
        self.path_for(key).unlink(missing_ok=True)

    def redirect_url(self, key: str) -> str | None:
        return self.public_url(key)

    def public_url(self, key: str) -> str | None:
        if not self.public_base_url:
            return None
        return f"{self.public_base_url}/{quote(key)}"


def read_range(path: Path, start: int = 0, end: int | None = None, expected_size: int | None = None) -> Iterator[bytes]:
    """The bytes of a file from ``start`` to ``end`` (exclusive), in chunks. With ``expected_size``, the file
    opened must have that size (else StoredFileChanged): a file replaced by a rename since its size was looked
    up is another file, and the one opened is read to the end whatever renames follow."""
    with open(path, "rb") as handle:
        if expected_size is not None:
            found = os.fstat(handle.fileno()).st_size
            if found != expected_size:
                raise StoredFileChanged(str(path), expected_size, found)
        handle.seek(start)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            chunk = handle.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def fsync_file(path: Path) -> None:
    """Make a file's bytes durable."""
    _fsync(path)


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    _fsync(directory)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

"""The body of an upload: multipart/form-data streamed from the file, and the image type sniffed from its first
bytes when the caller does not give it."""

from __future__ import annotations

import io
import mimetypes
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .transport import CHUNK


def sniff_content_type(head: bytes, file_name: str | None = None) -> str:
    """The image type from the first bytes' signature, else from the file name, else octet-stream."""
    signatures = (
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"BM", "image/bmp"),
        (b"II*\x00", "image/tiff"),
        (b"MM\x00*", "image/tiff"),
    )
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, content_type in signatures:
        if head.startswith(signature):
            return content_type
    guessed = mimetypes.guess_type(file_name)[0] if file_name else None
    return guessed or "application/octet-stream"


def _quote_header_value(value: str) -> str:
    # What browsers do in multipart headers: quotes and line breaks percent-encoded, the rest as UTF-8.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartBody:
    """A multipart/form-data body read in chunks: the text fields, then the file read from its stream, so a large
    file never sits in memory. Its length is known up front (requests sends it as Content-Length)."""

    def __init__(self, fields: dict[str, str], file_name: str, content_type: str, stream: IO[bytes], size: int) -> None:
        self.boundary = uuid.uuid4().hex
        head = bytearray()
        for name, value in fields.items():
            head += f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            head += value.encode() + b"\r\n"
        head += (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{_quote_header_value(file_name)}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        self._head = bytes(head)
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._stream = stream
        self._size = size
        self._length = len(self._head) + size + len(self._tail)
        self._segments: list[bytes | None] = [self._head, None, self._tail]  # None: the file
        self._sent_file = 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        # Deliberately no tell/seek/__iter__: requests would then guess the length or iterate lines.
        size = CHUNK if size is None or size < 0 else size
        while self._segments:
            segment = self._segments[0]
            if segment is None:
                chunk = (
                    self._stream.read(min(size, self._size - self._sent_file)) if self._sent_file < self._size else b""
                )
                if chunk:
                    self._sent_file += len(chunk)
                    return chunk
                if self._sent_file != self._size:  # the file changed while it was being sent
                    raise OSError(f"the file ended after {self._sent_file} of {self._size} bytes")
                self._segments.pop(0)
                continue
            if segment:
                self._segments[0] = segment[size:]
                return segment[:size]
            self._segments.pop(0)
        return b""


@contextmanager
def upload_body(
    source: str | Path | bytes, fields: dict[str, str], file_name: str | None, content_type: str | None
) -> Iterator[MultipartBody]:
    """The body that uploads ``source`` (a path, or its bytes) with the form ``fields``. Without a file name, the
    path's name (for bytes, ``image.<ext>``); without a type, the one sniffed from the first bytes. A path's file
    stays open while the body is sent."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        content_type = content_type or sniff_content_type(data[:16], file_name)
        if file_name is None:
            file_name = "image" + (mimetypes.guess_extension(content_type) or "")
        yield MultipartBody(fields, file_name, content_type, io.BytesIO(data), len(data))
        return
    path = Path(source).expanduser()
    with path.open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        head = stream.read(16)
        stream.seek(0)
        name = file_name or path.name
        yield MultipartBody(fields, name, content_type or sniff_content_type(head, name), stream, size)

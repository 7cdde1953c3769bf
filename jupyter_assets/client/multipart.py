"""The body of an upload: multipart/form-data streamed from the file, and the image type sniffed from its first
bytes when the caller does not give it."""

from __future__ import annotations

import io
import mimetypes
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
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


@dataclass
class FilePart:
    """A file of a multipart body, read from its stream as the body is sent; ``fields`` follow it (a batch's
    description and alt text of this file)."""

    file_name: str
    content_type: str
    stream: IO[bytes]
    size: int
    fields: dict[str, str] = field(default_factory=dict)


class MultipartBody:
    """A multipart/form-data body read in chunks: the text fields, then each file read from its stream (so a large
    file never sits in memory) followed by its own fields. Its length is known up front (requests sends it as
    Content-Length)."""

    def __init__(self, fields: dict[str, str], files: list[FilePart]) -> None:
        self.boundary = uuid.uuid4().hex
        self._segments: list[bytes | FilePart] = [self._fields(fields)]
        for file in files:
            self._segments += [
                (
                    f"--{self.boundary}\r\n"
                    f'Content-Disposition: form-data; name="file"; filename="{_quote_header_value(file.file_name)}"\r\n'
                    f"Content-Type: {file.content_type}\r\n\r\n"
                ).encode(),
                file,
                b"\r\n" + self._fields(file.fields),
            ]
        self._segments.append(f"--{self.boundary}--\r\n".encode())
        self._length = sum(part.size if isinstance(part, FilePart) else len(part) for part in self._segments)
        self._sent_file = 0  # of the file being sent

    def _fields(self, fields: dict[str, str]) -> bytes:
        return b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
            for name, value in fields.items()
        )

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
            if isinstance(segment, FilePart):
                left = segment.size - self._sent_file
                chunk = segment.stream.read(min(size, left)) if left > 0 else b""
                if chunk:
                    self._sent_file += len(chunk)
                    return chunk
                if left > 0:  # the file changed while it was being sent
                    raise OSError(f"the file ended after {self._sent_file} of {segment.size} bytes")
                self._segments.pop(0)
                self._sent_file = 0
                continue
            if segment:
                self._segments[0] = segment[size:]
                return segment[:size]
            self._segments.pop(0)
        return b""


def file_part(
    source: str | Path | bytes, file_name: str | None, content_type: str | None, stack: ExitStack
) -> FilePart:
    """The part that sends ``source`` (a path, or its bytes). Without a file name, the path's name (for bytes,
    ``image.<ext>``); without a type, the one sniffed from the first bytes. A path's file stays open until
    ``stack`` closes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        content_type = content_type or sniff_content_type(data[:16], file_name)
        if file_name is None:
            file_name = "image" + (mimetypes.guess_extension(content_type) or "")
        return FilePart(file_name, content_type, io.BytesIO(data), len(data))
    path = Path(source).expanduser()
    stream = stack.enter_context(path.open("rb"))
    size = os.fstat(stream.fileno()).st_size
    head = stream.read(16)
    stream.seek(0)
    name = file_name or path.name
    return FilePart(name, content_type or sniff_content_type(head, name), stream, size)


@contextmanager
def upload_body(
    source: str | Path | bytes, fields: dict[str, str], file_name: str | None, content_type: str | None
) -> Iterator[MultipartBody]:
    """The body that uploads ``source`` with the form ``fields`` (see file_part)."""
    with ExitStack() as stack:
        yield MultipartBody(fields, [file_part(source, file_name, content_type, stack)])

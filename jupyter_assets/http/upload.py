"""A streaming multipart/form-data reader: the file part goes to a temporary file while it is hashed and counted.

Tornado's own parser buffers the whole body, turns a missing part type into ``application/unknown`` and rejects
control characters in file names; python-multipart does none of that.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import ApiError, request_invalid
from ..uploads import UploadForm

FILE_FIELD = "file"
# A file part up to this size is also kept in memory (UploadForm.data): checking and storing it then reads no
# file, and every read is a system call that gives up the GIL, which costs a thread switch under load.
KEEP_IN_MEMORY = 1024 * 1024
MAX_FIELD_BYTES = 16 * 1024  # text fields are at most 1000 characters; this leaves room for UTF-8


class MultipartUpload:
    """Feed it body chunks (``write``), then ``finish`` it; it fills an UploadForm.

    Blocking (file writes, hashing): call it from an executor, not the event loop.
    """

    def __init__(
        self,
        content_type_header: str,
        new_file: Callable[[], tuple[int, Path]],
        drop: Callable[[UploadForm], None],
        check_size: Callable[[int], None],
    ) -> None:
        media_type, options = parse_options_header(content_type_header)
        boundary = options.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            raise request_invalid("The request must be multipart/form-data with a boundary.")
        self.form = UploadForm()
        self._new_file = new_file
        self._drop = drop
        self._check_size = check_size
        self._hash = hashlib.sha256()
        self._file_pieces: list[bytes] | None = []  # until the file is over KEEP_IN_MEMORY
        self._file_descriptor: int | None = None
        self._headers: dict[str, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._part_name: str | None = None
        self._part_is_file = False
        self._field_value = bytearray()
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    def write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except ApiError:
            raise
        except Exception as error:  # python-multipart raises several error types for malformed bodies
            raise request_invalid(f"The multipart body is malformed: {error}") from error

    def finish(self) -> UploadForm:
        """Close the temporary file and return the form; a body cut short is refused. (The service makes the
        file durable once it has accepted it.)"""
        self._close_file()
        if not self._ended:
            raise request_invalid("The multipart body ended before its closing boundary.")
        return self.form

    def abort(self) -> None:
        """Drop whatever was received (used when the request fails half-way)."""
        self._close_file()
        self._drop(self.form)

    # -- parser callbacks ---------------------------------------------------------------------------------

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._part_name = None
        self._part_is_file = False
        self._field_value = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        # Values stay bytes: browsers and curl send file names as raw UTF-8, which python-multipart's parser
        # would mangle if given text.
        self._headers[self._header_name.decode("latin-1").strip().lower()] = self._header_value.strip()
        self._header_name = b""
        self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        name = options.get(b"name")
        self._part_name = name.decode("utf-8", "replace").lower() if name is not None else None
        if self._part_name != FILE_FIELD:
            return
        if self.form.file_received:
            raise request_invalid("Only one 'file' part may be sent.")
        self._part_is_file = True
        self.form.file_received = True
        filename = options.get(b"filename")
        self.form.file_name = filename.decode("utf-8", "replace") if filename is not None else None
        self.form.content_type = self._headers.get("content-type", b"").decode("latin-1") or None
        self._file_descriptor, self.form.temp_path = self._new_file()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._part_is_file:
            self.form.size += len(piece)
            self._check_size(self.form.size)  # stop as soon as the limit is crossed, not after the whole body
            self._hash.update(piece)
            os.write(self._file_descriptor, piece)
            if self._file_pieces is not None:
                self._file_pieces.append(piece)
                if self.form.size > KEEP_IN_MEMORY:
                    self._file_pieces = None
        elif self._part_name is not None:
            if len(self._field_value) + len(piece) > MAX_FIELD_BYTES:
                self.form.oversized_fields.add(self._part_name)
            else:
                self._field_value += piece

    def _on_part_end(self) -> None:
        if self._part_is_file:
            self.form.sha256 = self._hash.hexdigest()
            if self._file_pieces is not None:
                self.form.data = b"".join(self._file_pieces)
                self._file_pieces = None
        elif self._part_name is not None and self._part_name not in self.form.oversized_fields:
            self.form.fields[self._part_name] = self._field_value.decode("utf-8", "replace")

    def _on_end(self) -> None:
        self._ended = True

    def _close_file(self) -> None:
        if self._file_descriptor is not None:
            os.close(self._file_descriptor)
            self._file_descriptor = None

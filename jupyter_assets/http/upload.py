"""A streaming multipart/form-data reader: each file part goes to a temporary file while it is hashed and counted.

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
KEEP_IN_MEMORY_PER_REQUEST = 8 * 1024 * 1024  # what a batch keeps: 100 files of 1 MiB would be 100 MiB
MAX_FIELD_BYTES = 16 * 1024  # text fields are at most 1000 characters; this leaves room for UTF-8
MAX_BATCH_FILES = 100  # file parts of one batch upload
# In a batch, these text parts describe the file part before them; the others are the request's.
PER_FILE_FIELDS = ("description", "alttext")
MAX_REQUEST_FIELDS = 16  # text parts besides the per-file ones: the form has a handful


class MultipartUpload:
    """Feed it body chunks (``write``), then ``finish`` it; it fills an UploadForm, or one per file part of a
    batch (``max_files`` > 1), where a file over the size limit is counted but not kept, and refuses only
    itself.

    Blocking (file writes, hashing): call it from an executor, not the event loop.
    """

    def __init__(
        self,
        content_type_header: str,
        new_file: Callable[[], tuple[int, Path]],
        drop: Callable[[UploadForm], None],
        check_size: Callable[[int], None],
        max_files: int = 1,
    ) -> None:
        media_type, options = parse_options_header(content_type_header)
        boundary = options.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            raise request_invalid("The request must be multipart/form-data with a boundary.")
        self.form = UploadForm()  # the request's fields, and its file unless it is a batch
        self.files: list[UploadForm] = []
        self._max_files = max_files
        self._file: UploadForm | None = None  # the file part being read
        self._field_form = self.form  # where the text part being read goes
        self._request_fields = 0
        self._kept_bytes = 0  # of the files kept in memory
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

    def finish_batch(self) -> list[UploadForm]:
        """As ``finish``, for a batch: a form per file part, in order, each with the request's fields too."""
        self.finish()
        for file in self.files:
            file.fields = {**self.form.fields, **file.fields}
            file.oversized_fields |= self.form.oversized_fields
        return self.files

    def abort(self) -> None:
        """Drop whatever was received (used when the request fails half-way)."""
        self._close_file()
        for form in [self.form, *self.files]:
            self._drop(form)

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
        if self._part_name == FILE_FIELD:
            self._begin_file(options)
        elif self._part_name is not None:
            self._field_form = self._form_of_field(self._part_name)

    def _begin_file(self, options: dict[bytes, bytes]) -> None:
        if self._max_files == 1:
            if self.form.file_received:
                raise request_invalid("Only one 'file' part may be sent.")
            file = self.form
        else:
            if len(self.files) == self._max_files:
                raise request_invalid(f"At most {self._max_files} 'file' parts may be sent in one request.")
            file = UploadForm()
            self.files.append(file)
        self._part_is_file = True
        self._file = file
        self._hash = hashlib.sha256()
        self._file_pieces = []
        file.file_received = True
        filename = options.get(b"filename")
        file.file_name = filename.decode("utf-8", "replace") if filename is not None else None
        file.content_type = self._headers.get("content-type", b"").decode("latin-1") or None
        self._file_descriptor, file.temp_path = self._new_file()

    def _form_of_field(self, name: str) -> UploadForm:
        """A batch's description or alt text belongs to the file part before it; other fields are the request's."""
        if self._max_files > 1 and name in PER_FILE_FIELDS:
            if not self.files:
                raise request_invalid(f"The '{name}' part must follow the 'file' part it describes.")
            return self.files[-1]
        self._request_fields += 1
        if self._max_files > 1 and self._request_fields > MAX_REQUEST_FIELDS:  # the body may be a gigabyte
            raise request_invalid(f"A batch upload takes at most {MAX_REQUEST_FIELDS} request-wide text parts.")
        return self.form

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._part_is_file:
            self._file_data(self._file, piece)
        elif self._part_name is not None:
            form = self._field_form
            if len(self._field_value) + len(piece) > MAX_FIELD_BYTES:
                form.oversized_fields.add(self._part_name)
            else:
                self._field_value += piece

    def _file_data(self, file: UploadForm, piece: bytes) -> None:
        file.size += len(piece)
        if file.temp_path is None:  # a batch's file over the limit: counted, not kept
            return
        try:
            self._check_size(file.size)  # stop as soon as the limit is crossed, not after the whole body
        except ApiError:
            if self._max_files == 1:
                raise
            self._close_file()
            self._drop(file)
            file.temp_path, self._file_pieces = None, None
            return
        self._hash.update(piece)
        os.write(self._file_descriptor, piece)
        if self._file_pieces is not None:
            self._file_pieces.append(piece)
            self._kept_bytes += len(piece)
            if file.size > KEEP_IN_MEMORY or self._kept_bytes > KEEP_IN_MEMORY_PER_REQUEST:
                self._kept_bytes -= file.size
                self._file_pieces = None

    def _on_part_end(self) -> None:
        if self._part_is_file:
            self._close_file()
            self._file.sha256 = self._hash.hexdigest()
            if self._file_pieces is not None:
                self._file.data = b"".join(self._file_pieces)
                self._file_pieces = None
        elif self._part_name is not None and self._part_name not in self._field_form.oversized_fields:
            self._field_form.fields[self._part_name] = self._field_value.decode("utf-8", "replace")

    def _on_end(self) -> None:
        self._ended = True

    def _close_file(self) -> None:
        if self._file_descriptor is not None:
            os.close(self._file_descriptor)
            self._file_descriptor = None

"""Uploads over HTTP: the streaming of a multipart body to disk as it arrives, shared by the single upload
(``POST /api/v1/assets``, in handlers.py) and the batch upload (``POST /api/v1/assets/batch``, here)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.web

from ..errors import ApiError
from ..model import Asset, human_size
from ..uploads import UploadForm
from .base import AssetsHandler
from .upload import MAX_BATCH_FILES, MultipartUpload

log = logging.getLogger("jupyter_assets")
T = TypeVar("T")

# Room for the form's text fields and multipart framing on top of each file.
MULTIPART_OVERHEAD = 256 * 1024
WRITE_BATCH = 256 * 1024
# How much of a refused body is read (and thrown away) so the client gets the error rather than a reset;
# past that the error is sent at once and the connection closed.
DRAIN_LIMIT = 16 * 1024 * 1024


def _refused_unread(error: ApiError) -> ApiError:
    """The contract: a body refused before it is read may get 413, with the code of a file too large."""
    if error.code == "asset_file_too_large":
        error.status = 413
    return error


def finish_upload(upload: MultipartUpload, rest: bytes, finish: Callable[[MultipartUpload], T]) -> T:
    """Blocking: write the last bytes and close the files; what was received is dropped if the body is bad."""
    try:
        upload.write(rest)
        return finish(upload)
    except Exception:
        upload.abort()
        raise


@tornado.web.stream_request_body
class StreamedUploadHandler(AssetsHandler):
    """A POST whose multipart body streams to disk as it arrives; an error found on the way is answered once
    the (bounded) body has been read. Subclasses say how many files a request may carry."""

    max_files = 1
    _upload: MultipartUpload | None = None

    async def prepare(self) -> None:
        self._pending = bytearray()
        self._discarded = 0
        self._answered = False
        if self.request.method != "POST":
            try:
                await super().prepare()
            except ApiError as error:
                # Answered from prepare, a streaming handler leaves the (empty) body unread and Tornado then drops
                # the connection; saying so keeps a kept-alive client from sending its next request into it.
                error.headers["Connection"] = "close"
                raise
            return
        per_file = self.service.config.max_upload_bytes
        limit = self.max_files * (per_file + MULTIPART_OVERHEAD)
        declared = self.request.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            # Refuse before reading a byte of a body that is far over the limit (the connection is then closed).
            files = f"{self.max_files} files of " if self.max_files > 1 else ""
            raise _refused_unread(
                ApiError(
                    "asset_file_too_large",
                    f"The request body ({human_size(int(declared))}) is larger than this server's upload limit of "
                    f"{files}{human_size(per_file)} (JUPYTER_ASSETS_MAX_UPLOAD_BYTES).",
                )
            )
        self.request.connection.set_max_body_size(limit + 2 * DRAIN_LIMIT)  # ours answers before Tornado's
        try:
            await super().prepare()
            self.principal.require("assets:write")
            self._upload = MultipartUpload(
                self.request.headers.get("Content-Type", ""),
                self.service.uploads.new_incoming_file,
                self.service.uploads.drop,
                self.service.uploads.check_size,
                self.max_files,
            )
        except ApiError as error:
            self.defer_error(error)

    def defer_error(self, error: ApiError) -> None:
        """Answer once the (bounded) body has been read: Tornado drops a connection whose body is unread,
        and the client would see a reset instead of the error."""
        self.deferred_error = error
        if self._upload is not None:
            self._upload.abort()
            self._upload = None

    async def data_received(self, chunk: bytes) -> None:
        if self._upload is None:  # discarding the rest of a refused body
            self._discarded += len(chunk)
            if self.deferred_error and self._discarded > DRAIN_LIMIT and not self._answered:
                await self._answer_while_reading(self.deferred_error)
            return
        # Chunks are gathered and handed to the I/O pool a few hundred KB at a time: one hand-off per chunk
        # cost more than the writing itself. Memory stays bounded by WRITE_BATCH per upload.
        self._pending += chunk
        if len(self._pending) >= WRITE_BATCH:
            data, self._pending = bytes(self._pending), bytearray()
            try:
                await self.run_blocking(self._upload.write, data)
            except ApiError as error:
                await self.run_blocking(self.defer_error, error)

    def take_upload(self) -> MultipartUpload | None:
        """In ``post``: the upload received, to finish (None when the error was already sent while reading)."""
        if self._answered:
            self.finish()
            return None
        if self.deferred_error:
            raise self.deferred_error
        upload, self._upload = self._upload, None  # from here on a closed connection must not abort it
        return upload

    async def _answer_while_reading(self, error: ApiError) -> None:
        """Send the error now, while still reading: closing with unread data would make the kernel reset the
        connection, and a client still sending would lose the answer. Tornado stops reading at its own limit
        (2 x DRAIN_LIMIT further); a client that watches for the answer, as curl does, stops sooner."""
        _refused_unread(error)
        self._answered = True
        self.set_header("Connection", "close")
        body = self.prepare_error_response(error)
        self.set_header("Content-Length", str(len(body)))
        self.write(body)
        await self.flush()

    def on_connection_close(self) -> None:
        if self._upload is not None:
            self._upload.abort()
            self._upload = None
        super().on_connection_close()  # ends the request: without it, its coroutine waits for the body for ever


class AssetBatchHandler(StreamedUploadHandler):
    """POST uploads up to MAX_BATCH_FILES files in one multipart request: 207, an item per file part, in order,
    each with the status and body a single upload of that file would have answered."""

    max_files = MAX_BATCH_FILES

    @tornado.web.authenticated
    async def post(self) -> None:
        upload = self.take_upload()
        if upload is None:
            return
        items = await self.run_blocking(self._store_batch, upload, bytes(self._pending))
        self.send_data({"items": items}, 207)

    def _store_batch(self, upload: MultipartUpload, rest: bytes) -> list[dict[str, Any]]:
        forms = finish_upload(upload, rest, MultipartUpload.finish_batch)
        if not forms:
            raise ApiError("asset_file_required", "A batch upload needs at least one 'file' part.")
        outcomes = self.service.uploads.create_batch(self.principal, forms)
        return [self._item(index, *pair) for index, pair in enumerate(zip(forms, outcomes, strict=True))]

    def _item(self, index: int, form: UploadForm, outcome: Asset | Exception) -> dict[str, Any]:
        item: dict[str, Any] = {"index": index, "fileName": form.file_name}
        if isinstance(outcome, Asset):
            data = outcome.detail_json(self.service.library.public_url(outcome), {})  # no derivatives yet
            return {**item, "status": 202, "data": data}
        if isinstance(outcome, ApiError):
            code, message, status = outcome.code, outcome.message, outcome.status
        else:  # the file's bytes could not be stored: its row was undone
            log.error("batch upload: file %d not stored (traceId %s)", index, self.trace_id, exc_info=outcome)
            code, message, status = "internal_server_error", "An unexpected error occurred.", 500
        error = {"code": code, "message": message, "traceId": self.trace_id, "status": status}
        return {**item, "status": status, "error": error}

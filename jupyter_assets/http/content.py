"""The routes that send stored bytes: an asset's content (its owner's, or a redirect for a public one) and the
anonymous /content route of public files."""

from __future__ import annotations

import re

import tornado.web
from jupyter_server.auth.decorator import allow_unauthenticated

from ..assets import Content
from ..errors import ApiError
from ..storage import StoredFileChanged
from .base import AssetsHandler


class ByteStreamHandler(AssetsHandler):
    """Sends stored bytes with Range, ETag and nosniff (for app.py: mixed with a non-JSON Jupyter handler)."""

    serves_bytes = True

    async def send_content(self, content: Content, include_body: bool) -> None:
        """Headers, then the bytes. A file replaced by a rewrite in place since it was looked up (its size is no
        longer the one announced) is answered from the content looked up again, once: the rewrite's commit follows
        its bytes within milliseconds, and a client is better served by the new bytes than by an error."""
        for attempt in (1, 2):
            self.set_header("Content-Type", content.content_type)
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Accept-Ranges", "bytes")
            self.set_header("ETag", f'"{content.etag}"')
            if self.check_etag_header():
                self.set_status(304)
                self.finish()
                return
            start, end = 0, content.size
            range_header = self.request.headers.get("Range")
            if range_header:
                parsed = _parse_range(range_header, content.size)
                if parsed is None:
                    raise ApiError(
                        "range_not_satisfiable",
                        "The requested range is not satisfiable.",
                        headers={"Content-Range": f"bytes */{content.size}"},
                    )
                start, end = parsed
                self.set_status(206)
                self.set_header("Content-Range", f"bytes {start}-{end - 1}/{content.size}")
            self.set_header("Content-Length", str(end - start))
            if include_body and end > start:
                try:  # S3 sends its GET when the read opens, local storage at the first chunk
                    chunks = await self.run_blocking(self.service.assets.read_content, content, start, end)
                    chunk = await self.run_blocking(next, chunks, b"")
                except FileNotFoundError:  # deleted since it was looked up; nothing has been sent yet
                    raise ApiError("asset_not_found", "The asset was deleted while it was being read.") from None
                except StoredFileChanged as changed:  # nothing has been sent yet either
                    if attempt == 2 or not isinstance(changed.current, Content):
                        raise ApiError(
                            "internal_server_error",
                            "The asset's file kept changing while it was being read; try again.",
                        ) from None
                    content = changed.current
                    continue
                while chunk:
                    self.write(chunk)
                    await self.flush()
                    chunk = await self.run_blocking(next, chunks, b"")
            self.finish()
            return

    def compute_etag(self) -> None:
        return None  # we set the checksum as ETag ourselves


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` range as [start, end), or None when unsatisfiable."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.groups()
    if not first:
        length = int(last)
        return (max(0, size - length), size) if length > 0 and size > 0 else None
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    return (start, end) if start < size and start < end else None


class AssetContentHandler(ByteStreamHandler):
    @tornado.web.authenticated
    async def get(self, asset_id: str) -> None:
        await self._answer(asset_id, include_body=True)

    @tornado.web.authenticated
    async def head(self, asset_id: str) -> None:
        await self._answer(asset_id, include_body=False)

    async def _answer(self, asset_id: str, include_body: bool) -> None:
        """Public assets redirect to their public URL; private ones are streamed to their owner."""
        content = await self.run_blocking(self.service.assets.open_content, self.principal, asset_id)
        if content.redirect_url:
            self.redirect(content.redirect_url, status=307)
        else:
            await self.send_content(content, include_body)


class PublicContentHandler(ByteStreamHandler):
    """The one anonymous route: public assets and their derivatives, never a private one."""

    @allow_unauthenticated
    async def get(self, storage_key: str) -> None:
        content = await self.run_blocking(self.service.assets.open_public_content, storage_key)
        await self.send_content(content, include_body=True)

    @allow_unauthenticated
    async def head(self, storage_key: str) -> None:
        content = await self.run_blocking(self.service.assets.open_public_content, storage_key)
        await self.send_content(content, include_body=False)

"""A Python client for the `/api/v1/assets` API, for notebooks and scripts.

Inside a notebook ``AssetsClient()`` finds the Jupyter server that runs the kernel; elsewhere pass the URL and a
token (an API key or a JWT). Imports of pyarrow, pandas, tqdm and jupyter_server happen where they are needed, so
importing this module stays cheap.
"""

from __future__ import annotations

import html
import io
import json
import mimetypes
import os
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .model import file_sha256, human_size

if TYPE_CHECKING:
    import pandas
    import pyarrow

API_PATH = "/api/v1/assets"
CHUNK = 1024 * 1024
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
_PATCH_FIELDS = {
    "description": "description",
    "alt_text": "altText",
    "is_public": "isPublic",
    "original_file_name": "originalFileName",
}


class AssetsApiError(Exception):
    """An error answer of the API: its envelope's code, message, HTTP status and trace id."""

    def __init__(self, code: str, message: str, status: int, trace_id: str | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.trace_id = trace_id
        super().__init__(str(self))

    def __str__(self) -> str:
        trace = f" [{self.trace_id}]" if self.trace_id else ""
        return f"{self.code} ({self.status}): {self.message}{trace}"

    @classmethod
    def from_response(cls, response: requests.Response) -> AssetsApiError:
        try:
            error = response.json()["error"]
            return cls(str(error["code"]), str(error["message"]), response.status_code, error.get("traceId"))
        except (ValueError, KeyError, TypeError):  # not our envelope: a proxy, Jupyter itself, a gateway
            message = f"{response.reason or 'HTTP error'}: {response.text[:500]}".strip()
            return cls("http_error", message, response.status_code)


# -- results --------------------------------------------------------------------------------------------------


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Asset:
    """One asset of the API. ``asset.original_file_name`` reads ``originalFileName``; ``asset.data`` is the raw
    JSON object. List items carry fewer keys than a full asset (no derivatives or results)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__.get("data")  # __dict__: no recursion while unpickling or copying
        if data is not None:
            for key in (_camel(name), name):
                if key in data:
                    return data[key]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {_snake(key) for key in self.data})

    def __repr__(self) -> str:
        return f"Asset(id={self.data.get('id')!r}, name={self.data.get('originalFileName')!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Asset) and other.data == self.data

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dict it wraps

    def _result(self, kind: str) -> Any:
        for result in self.data.get("structuredResults") or []:
            if result.get("kind") == kind:
                try:
                    return json.loads(result.get("payloadJson") or "null")
                except ValueError:
                    return None
        return None

    @property
    def tags(self) -> list[dict[str, Any]]:
        payload = self._result("tags")
        if isinstance(payload, dict):
            payload = payload.get("tags")
        return [tag for tag in payload if isinstance(tag, dict)] if isinstance(payload, list) else []

    @property
    def caption(self) -> str | None:
        payload = self._result("caption")
        if isinstance(payload, dict):
            payload = payload.get("caption")
        return payload if isinstance(payload, str) else None

    @property
    def thumbnail_url(self) -> str | None:
        """The public URL of the 256 px thumbnail: list items carry it as ``thumbnailUrl``, a full asset among its
        derivatives. None while the asset is private or before the thumbnail is made."""
        if "thumbnailUrl" in self.data:
            return self.data["thumbnailUrl"]
        for derivative in self.data.get("derivatives") or []:
            if derivative.get("kind") == "thumbnail_256" and derivative.get("publicUrl"):
                return derivative["publicUrl"]
        return None

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [
            '<div style="border:1px solid var(--jp-border-color2,#ddd);border-radius:6px;padding:6px;'
            'font-size:12px;overflow:hidden">'
        ]
        # The same height with or without a picture, so that a grid's rows line up.
        frame = (
            "height:180px;display:flex;align-items:center;justify-content:center;margin-bottom:4px;"
            "background:var(--jp-layout-color2,#eee);color:var(--jp-ui-font-color2,#666)"
        )
        if self.thumbnail_url:
            alt = self.data.get("altText") or self.data.get("originalFileName") or ""
            parts.append(
                f'<div style="{frame}"><img src="{esc(self.thumbnail_url)}" alt="{esc(alt)}" loading="lazy" '
                'style="max-width:100%;max-height:100%"></div>'
            )
        else:
            reason = "private" if self.data.get("isPublic") is False else "no thumbnail yet"
            parts.append(f'<div style="{frame}">{reason}</div>')
        parts.append(f"<div><b>{esc(str(self.data.get('originalFileName', '')))}</b></div>")
        size = human_size(self.data["size"]) if self.data.get("size") is not None else ""
        parts.append(f"<div>{esc(size)} &middot; {esc(str(self.data.get('status', '')))}</div>")
        if self.data.get("description"):
            parts.append(f"<div>{esc(str(self.data['description']))}</div>")
        if self.tags:
            labels = ", ".join(f"{tag.get('label')} ({float(tag.get('score') or 0):.2f})" for tag in self.tags)
            parts.append(f"<div style='color:var(--jp-ui-font-color2,#555)'>{esc(labels)}</div>")
        if self.caption:
            parts.append(f"<div><i>{esc(self.caption)}</i></div>")
        parts.append("</div>")
        return "".join(parts)


class AssetList(list):
    """A list of Asset that shows as a grid of cards in a notebook."""

    def _repr_html_(self) -> str:
        if not self:
            return "<em>No assets.</em>"
        cards = "".join(asset._repr_html_() for asset in self)
        return (
            f'<div style="display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:8px">{cards}</div>'
        )


@dataclass
class Page:
    """One page of a listing: iterate over it (or use ``items``) for its assets; ``total`` counts every match."""

    items: AssetList
    page: int
    page_size: int
    total: int

    def __iter__(self) -> Iterator[Asset]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def _repr_html_(self) -> str:
        first = (self.page - 1) * self.page_size + 1 if self.items else 0
        last = first + len(self.items) - 1 if self.items else 0
        return f"<div>Assets {first}-{last} of {self.total}</div>{self.items._repr_html_()}"


@dataclass
class UploadReport:
    uploaded: AssetList = field(default_factory=AssetList)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, Exception]] = field(default_factory=list)

    @staticmethod
    def _reason(error: Exception) -> str:
        """The code and HTTP status of an API error, else the exception's type."""
        return f"{error.code} ({error.status})" if isinstance(error, AssetsApiError) else type(error).__name__

    @staticmethod
    def _message(error: Exception) -> str:
        # The API's message alone: str() of an AssetsApiError repeats its code and adds the trace id.
        return error.message if isinstance(error, AssetsApiError) else str(error)

    def __str__(self) -> str:
        lines = [f"{len(self.uploaded)} uploaded, {len(self.skipped)} skipped, {len(self.failed)} failed"]
        lines += [f"  {path}: {self._reason(error)}: {self._message(error)}" for path, error in self.failed]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        summary = (
            f"<b>{len(self.uploaded)}</b> uploaded, <b>{len(self.skipped)}</b> skipped, "
            f"<b>{len(self.failed)}</b> failed"
        )
        if not self.failed:
            return f"<div>{summary}</div>"
        rows = "".join(
            f"<tr><td>{esc(str(path))}</td><td><code>{esc(self._reason(error))}</code></td>"
            f"<td>{esc(self._message(error))}</td></tr>"
            for path, error in self.failed
        )
        return f"<div>{summary}</div><table><tr><th>file</th><th>code</th><th>error</th></tr>{rows}</table>"


# -- uploads --------------------------------------------------------------------------------------------------


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


class _MultipartBody:
    """A multipart/form-data body read in chunks: the text fields, then the file read from its stream, so a large
    file never sits in memory. Its length is known up front (requests sends it as Content-Length)."""

    def __init__(self, fields: dict[str, str], file_name: str, content_type: str, stream: IO[bytes], size: int):
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


# -- discovery ------------------------------------------------------------------------------------------------


def _local_url(url: str) -> str:
    """A bind address such as 0.0.0.0 or [::] is not a place to connect to: use the loopback address instead."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in ("", "0.0.0.0", "::", "*"):
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _running_servers() -> list[dict[str, Any]]:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return []
    return list(list_running_servers())


def _contains(root: str | None, path: str) -> bool:
    if not root:
        return False
    try:
        return os.path.commonpath([os.path.realpath(root), os.path.realpath(path)]) == os.path.realpath(root)
    except ValueError:  # different drives on Windows
        return False


def _kernel_parent_pids() -> set[int]:
    """The process ids that may be the Jupyter server running this kernel: jupyter_client passes the server's pid as
    JPY_PARENT_PID (on POSIX; on Windows it is a handle, not a pid), and a kernel started directly is its child."""
    pids = {os.getppid()}
    parent = os.environ.get("JPY_PARENT_PID", "")
    if os.name != "nt" and parent.isdigit():
        pids.add(int(parent))
    return pids


def _root(server: dict[str, Any]) -> str:
    return server.get("root_dir") or server.get("notebook_dir") or ""


def _serving(servers: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    """The server whose root holds ``path`` most closely (a server for a subfolder, not one for a parent)."""
    inside = [server for server in servers if _contains(_root(server), path)]
    return max(inside, key=lambda server: len(os.path.realpath(_root(server))), default=None)


def _kernel_server(servers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The running server that started this kernel: the one whose pid is the kernel's parent, else the one whose
    root holds the notebook (JPY_SESSION_NAME, set by Jupyter Server) or the working directory. None when no
    server passes any of these: another user's or another project's server is never a guess."""
    parents = _kernel_parent_pids()
    by_pid = [server for server in servers if server.get("pid") in parents]
    if len(by_pid) == 1:
        return by_pid[0]
    # Several servers in one process (or none known by pid): the notebook's path, then the working directory.
    # JPY_SESSION_NAME is an absolute file path, or a path relative to the server's root that cannot place it.
    notebook = os.environ.get("JPY_SESSION_NAME", "")
    candidates = by_pid or servers
    for path in filter(None, (notebook if os.path.isabs(notebook) else "", os.getcwd())):
        found = _serving(candidates, path)
        if found is not None:
            return found
    return by_pid[0] if by_pid else None


def discover_server() -> tuple[str, str | None]:
    """The URL and token of the Jupyter server that runs this kernel (see AssetsClient)."""
    hub_token = os.environ.get("JUPYTERHUB_API_TOKEN")
    hub_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if hub_token and hub_url:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
        parts = urlsplit(_local_url(hub_url))
        path = parts.path if prefix.rstrip("/") in parts.path else prefix  # the bind URL carries the prefix
        return urlunsplit(parts._replace(path=path)), hub_token
    servers = _running_servers()
    chosen = _kernel_server(servers)
    if chosen is not None:
        return _local_url(chosen["url"]), chosen.get("token") or hub_token
    how = "pass the API's URL and a token, e.g. AssetsClient('http://localhost:5121', token='<api key>')"
    if not servers:
        raise ValueError(f"No running Jupyter server was found for this kernel: {how}.")
    others = ", ".join(f"{s.get('url')} (root {_root(s) or '?'}, pid {s.get('pid')})" for s in servers)
    raise ValueError(
        f"None of the {len(servers)} running Jupyter servers runs this kernel (none is its parent process or serves "
        f"{os.getcwd()}): {others}. To use one of them anyway, {how}."
    )


def _token_for(url: str) -> str | None:
    """The token of a running Jupyter server at this URL, so that AssetsClient(url) alone works in a notebook."""
    wanted = url.rstrip("/")
    for info in _running_servers():
        if _local_url(str(info.get("url", ""))).rstrip("/") == wanted or str(info.get("url", "")).rstrip("/") == wanted:
            return info.get("token") or None
    return None


# -- the client -----------------------------------------------------------------------------------------------


class AssetsClient:
    """A client of `/api/v1/assets`.

    ``url`` is the server's base URL (``http://localhost:5121``, or a Jupyter server's URL with its base path);
    without it, the Jupyter server that runs this kernel is found from its runtime files (or from JupyterHub's
    environment). ``token`` is an API key, a JWT or Jupyter's token, sent as ``Authorization: Bearer``.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 60) -> None:
        if url is None:
            url, discovered = discover_server()
            token = token or discovered
        elif token is None:
            token = _token_for(url.rstrip("/"))
        url = url.rstrip("/")
        if url.endswith(API_PATH):  # also accept the API's own URL
            url = url[: -len(API_PATH)]
        self.url = url
        self.api_url = url + API_PATH
        self.token = token
        self.timeout = timeout
        self.session = self._new_session()
        self._local = threading.local()
        self._sessions_lock = threading.Lock()
        self._worker_sessions: list[requests.Session] = []

    def __repr__(self) -> str:
        return f"AssetsClient({self.url!r})"

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # A kept-alive connection can be closed by the server just as the next request goes out on it (Tornado
        # closes one after answering an error before the request body was read): repeat idempotent requests.
        retry = Retry(total=2, connect=2, read=2, status=0, other=0, raise_on_status=False)
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        session.headers["User-Agent"] = "jupyter-assets-client"
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    def _session(self) -> requests.Session:
        """The main session, or in upload_many's workers one session per thread (a Session is not thread-safe)."""
        session = getattr(self._local, "session", None)
        return session if session is not None else self.session

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> AssetsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str = "", *, expect_json: bool = True, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        response = self._session().request(method, self.api_url + path, **kwargs)
        if not 200 <= response.status_code < 300:
            error = AssetsApiError.from_response(response)
            response.close()
            raise error
        if not expect_json:
            return response
        try:
            return response.json()["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AssetsApiError(
                "http_error", f"Expected a JSON data envelope: {response.text[:200]}", response.status_code
            ) from exc

    # -- upload -----------------------------------------------------------------------------------------------

    def upload(
        self,
        source: str | Path | bytes,
        *,
        file_name: str | None = None,
        content_type: str | None = None,
        description: str | None = None,
        alt_text: str | None = None,
        is_public: bool | None = None,
        run_enrichment: bool = True,
        storage_profile_id: str | None = None,
        commit_message: str | None = None,
    ) -> Asset:
        """Upload one image (a path, or its bytes) and return the new asset (enrichment runs in the background)."""
        fields = {"runEnrichment": "true" if run_enrichment else "false"}
        optional = {
            "description": description,
            "altText": alt_text,
            "isPublic": None if is_public is None else ("true" if is_public else "false"),
            "storageProviderProfileId": storage_profile_id,
            "commitMessage": commit_message,
        }
        fields.update({name: value for name, value in optional.items() if value is not None})
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            content_type = content_type or sniff_content_type(data[:16], file_name)
            if file_name is None:
                file_name = "image" + (mimetypes.guess_extension(content_type) or "")
            return self._send_upload(fields, file_name, content_type, io.BytesIO(data), len(data))
        path = Path(source).expanduser()
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            head = stream.read(16)
            stream.seek(0)
            name = file_name or path.name
            return self._send_upload(fields, name, content_type or sniff_content_type(head, name), stream, size)

    def _send_upload(self, fields: dict[str, str], file_name: str, content_type: str, stream: IO[bytes], size: int):
        body = _MultipartBody(fields, file_name, content_type, stream, size)
        headers = {"Content-Type": body.content_type, "Content-Length": str(len(body))}
        return Asset(self._request("POST", data=body, headers=headers))

    def upload_many(
        self,
        sources: str | Path | Iterable[str | Path],
        *,
        workers: int = 8,
        progress: bool = True,
        skip_existing: bool = True,
        stored: set[str] | None = None,
        **upload_fields: Any,
    ) -> UploadReport:
        """Upload a folder (recursively, image files only) or a list of paths, several at a time.

        With ``skip_existing``, files whose SHA-256 is already in the library are skipped, so running it again after
        an interruption resumes. ``stored``: the library's checksums from ``stored_checksums()``, for callers that
        upload in several calls (it is kept up to date with what goes up). One bad file never stops the rest: it is
        reported under ``failed``.
        """
        paths = collect_paths(sources)
        report = UploadReport()
        existing = stored if stored is not None else self.stored_checksums() if skip_existing else set()
        seen_lock = threading.Lock()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(paths), unit="file", desc="upload")

        def one(path: Path) -> tuple[str, Any]:
            if getattr(self._local, "session", None) is None:
                self._local.session = self._new_session()
                with self._sessions_lock:
                    self._worker_sessions.append(self._local.session)
            if not skip_existing:
                return "uploaded", self.upload(path, **upload_fields)
            checksum = file_sha256(path)
            with seen_lock:  # claimed before uploading, so copies within one batch go up once
                if checksum in existing:
                    return "skipped", None
                existing.add(checksum)
            try:
                return "uploaded", self.upload(path, **upload_fields)
            except BaseException:
                with seen_lock:
                    existing.discard(checksum)
                raise

        outcomes: dict[int, tuple[str, Any]] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            futures = {pool.submit(one, path): index for index, path in enumerate(paths)}
            for future in as_completed(futures):
                try:
                    outcomes[futures[future]] = future.result()
                except Exception as error:  # a bad file is reported, never raised
                    outcomes[futures[future]] = ("failed", error)
                if bar is not None:
                    bar.update(1)
        finally:
            # On an interrupt, files not yet started are dropped; a later run skips what did go up.
            pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()
            with self._sessions_lock:
                for session in self._worker_sessions:
                    session.close()
                self._worker_sessions.clear()
        for index in sorted(outcomes):  # in the order given, whatever order they finished in
            outcome, value = outcomes[index]
            if outcome == "uploaded":
                report.uploaded.append(value)
            elif outcome == "skipped":
                report.skipped.append(paths[index])
            else:
                report.failed.append((paths[index], value))
        return report

    def stored_checksums(self) -> set[str]:
        """The SHA-256 of every asset in the library. The export table has them all in one request; without it,
        list items lack checksumSha256, so each asset is read once in full."""
        try:
            table = self.export("assets")
        except AssetsApiError:
            table = None
        if table is not None and "checksum_sha256" in table.column_names:
            checksums = table.column("checksum_sha256").to_pylist()
        else:
            checksums = [
                item.data.get("checksumSha256") or self.get(item.id).data.get("checksumSha256")
                for item in self.iter_assets()
            ]
        return set(checksums) - {None}

    # -- reading ----------------------------------------------------------------------------------------------

    def list(
        self,
        *,
        page: int = 1,
        page_size: int = 20,
        q: str | None = None,
        content_type: str | None = None,
        status: str | None = None,
        order_by: str | None = None,
        descending: bool = True,
        text: str | None = None,
    ) -> Page:
        """One page of assets, newest first unless ordered otherwise; ``text`` ranks by meaning (needs CLIP)."""
        params = {
            "page": page,
            "pageSize": page_size,
            "q": q,
            "contentType": content_type,
            "status": status,
            "orderBy": order_by,
            "orderDirection": "desc" if descending else "asc",
            "text": text,
        }
        data = self._request("GET", params={k: v for k, v in params.items() if v is not None})
        items = AssetList(Asset(item) for item in data["items"])
        return Page(items=items, page=data["page"], page_size=data["pageSize"], total=data["total"])

    def iter_assets(self, **filters: Any) -> Iterator[Asset]:
        """Every asset that matches the filters of ``list``, a page of 100 at a time."""
        filters.pop("page", None)
        filters.pop("page_size", None)
        page = 1
        while True:
            result = self.list(page=page, page_size=100, **filters)
            yield from result.items
            if not result.items or page * result.page_size >= result.total:
                return
            page += 1

    def get(self, asset_id: str) -> Asset:
        return Asset(self._request("GET", f"/{asset_id}"))

    def content(self, asset_id: str) -> bytes:
        """The original file's bytes (a public asset's redirect to its public URL is followed)."""
        return self._request("GET", f"/{asset_id}/content", expect_json=False).content

    def download(self, asset_id: str, path: str | Path) -> Path:
        """Stream the original file to ``path``; a folder gets the asset's original file name."""
        target = Path(path).expanduser()
        if target.is_dir():
            target = target / Path(self.get(asset_id).original_file_name).name
        partial = target.with_name(target.name + ".part")
        response = self._request("GET", f"/{asset_id}/content", expect_json=False, stream=True)
        try:
            with partial.open("wb") as out:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
            partial.replace(target)  # never leave a half-written file under the real name
        finally:
            response.close()
            partial.unlink(missing_ok=True)
        return target

    def skills(self) -> list[dict]:
        return self._request("GET", "/skills")

    def usage_stats(self) -> dict:
        return self._request("GET", "/usage-stats")

    def search(self, text: str, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page:
        """Assets ranked by similarity to ``text`` (items carry ``score``); needs a CLIP model on the server."""
        return self.list(page=page, page_size=page_size, text=text, **filters)

    def similar(self, asset_id: str, *, limit: int = 20) -> AssetList:
        data = self._request("GET", f"/{asset_id}/similar", params={"limit": limit})
        return AssetList(Asset(item) for item in data["items"])

    def duplicates(self, *, threshold: float = 0.95) -> list[dict]:
        return self._request("GET", "/duplicates", params={"threshold": threshold})["groups"]

    def export(self, table: str = "assets") -> pyarrow.Table:
        """A catalog table (assets, derivatives, executions, events) as a pyarrow Table."""
        import pyarrow
        import pyarrow.parquet

        response = self._request("GET", "/export", expect_json=False, params={"table": table})
        return pyarrow.parquet.read_table(pyarrow.BufferReader(response.content))

    def to_pandas(self, table: str = "assets") -> pandas.DataFrame:
        return self.export(table).to_pandas()

    # -- changes ----------------------------------------------------------------------------------------------

    def update(self, asset_id: str, **fields: Any) -> Asset:
        """Change description, alt_text, is_public or original_file_name; ``None`` clears a text field."""
        unknown = set(fields) - set(_PATCH_FIELDS)
        if unknown:
            raise TypeError(f"update() got unknown fields {sorted(unknown)}; known: {sorted(_PATCH_FIELDS)}")
        body = {_PATCH_FIELDS[name]: value for name, value in fields.items()}
        return Asset(self._request("PATCH", f"/{asset_id}", json=body))

    def delete(self, asset_id: str, *, commit_message: str | None = None) -> dict:
        body = {"commitMessage": commit_message} if commit_message is not None else None
        return self._request("DELETE", f"/{asset_id}", json=body)

    def delete_many(self, asset_ids: Iterable[str]) -> dict:
        return self._request("POST", "/batch-delete", json={"ids": [str(i) for i in asset_ids]})

    def run_skill(self, asset_id: str, skill_name: str, **parameters: Any) -> dict:
        """Run a skill now; the answer's ``asset`` is the asset afterwards."""
        result = self._request("POST", f"/{asset_id}/skills/{skill_name}/run", json={"parameters": parameters})
        result["asset"] = Asset(result["asset"])
        return result


def collect_paths(sources: str | Path | Iterable[str | Path]) -> list[Path]:
    """The files to upload: a folder gives its image files (recursively, sorted), a file itself."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    paths: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            paths.append(path)  # a missing file is reported as failed, not dropped
    return paths

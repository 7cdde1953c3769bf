"""AssetsClient: the operations of the `/api/v1/assets` API as Python methods."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .batch_upload import BatchUpload, collect_paths
from .discovery import discover_server, token_for
from .multipart import MultipartBody, file_part, upload_body
from .results import Asset, AssetList, Page, UploadReport
from .transport import API_PATH, CHUNK, AssetsApiError, WorkerSessions, new_session, send

if TYPE_CHECKING:
    import pandas
    import pyarrow

_PATCH_FIELDS = {
    "description": "description",
    "alt_text": "altText",
    "is_public": "isPublic",
    "original_file_name": "originalFileName",
}


def _upload_fields(
    description: str | None, alt_text: str | None, is_public: bool | None, run_enrichment: bool,
    storage_profile_id: str | None, commit_message: str | None,
) -> dict[str, str]:  # fmt: skip
    fields = {"runEnrichment": "true" if run_enrichment else "false"}
    optional = {
        "description": description,
        "altText": alt_text,
        "isPublic": None if is_public is None else ("true" if is_public else "false"),
        "storageProviderProfileId": storage_profile_id,
        "commitMessage": commit_message,
    }
    fields.update({name: value for name, value in optional.items() if value is not None})
    return fields


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
            token = token_for(url.rstrip("/"))
        url = url.rstrip("/")
        if url.endswith(API_PATH):  # also accept the API's own URL
            url = url[: -len(API_PATH)]
        self.url = url
        self.api_url = url + API_PATH
        self.token = token
        self.timeout = timeout
        self.session = new_session(token)
        self._worker_sessions = WorkerSessions(lambda: new_session(self.token))

    def __repr__(self) -> str:
        return f"AssetsClient({self.url!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> AssetsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str = "", *, expect_json: bool = True, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        # In upload_many's worker threads, the thread's own session.
        session = self._worker_sessions.current() or self.session
        return send(session, method, self.api_url + path, expect_json=expect_json, **kwargs)

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
        fields = _upload_fields(description, alt_text, is_public, run_enrichment, storage_profile_id, commit_message)
        with upload_body(source, fields, file_name, content_type) as body:
            headers = {"Content-Type": body.content_type, "Content-Length": str(len(body))}
            return Asset(self._request("POST", data=body, headers=headers))

    def upload_batch(
        self,
        sources: Iterable[str | Path | bytes],
        *,
        description: str | None = None,
        alt_text: str | None = None,
        is_public: bool | None = None,
        run_enrichment: bool = True,
        storage_profile_id: str | None = None,
        commit_message: str | None = None,
    ) -> list[Asset | Exception]:
        """Upload up to 100 images (paths, or their bytes) in one request. Returns, in order, each one's new asset
        or what refused it (an AssetsApiError, or the OSError of a file that could not be read): one bad file
        refuses only itself. A request refused as a whole raises."""
        fields = _upload_fields(None, None, is_public, run_enrichment, storage_profile_id, commit_message)
        own = {name: value for name, value in (("description", description), ("altText", alt_text)) if value}
        outcomes: list[Asset | Exception | None] = []
        with ExitStack() as stack:
            parts = []
            for source in sources:
                try:
                    parts.append(file_part(source, None, None, stack))
                    outcomes.append(None)
                except OSError as error:
                    outcomes.append(error)
            for part in parts:
                part.fields = own
            answered = iter(self._send_batch(MultipartBody(fields, parts)) if parts else [])
        return [outcome if outcome is not None else next(answered) for outcome in outcomes]

    def _send_batch(self, body: MultipartBody) -> list[Asset | Exception]:
        headers = {"Content-Type": body.content_type, "Content-Length": str(len(body))}
        items = self._request("POST", "/batch", data=body, headers=headers)["items"]
        return [
            Asset(item["data"]) if "data" in item else AssetsApiError.from_envelope(item["error"], item["status"])
            for item in items
        ]

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
        """Upload a folder (recursively, image files only) or a list of paths, up to 100 files per request
        (``upload_batch``) and ``workers`` requests at a time.

        With ``skip_existing``, files whose SHA-256 is already in the library are skipped, so running it again after
        an interruption resumes. ``stored``: the library's checksums from ``stored_checksums()``, for callers that
        upload in several calls (it is kept up to date with what goes up). One bad file never stops the rest: it is
        reported under ``failed``.
        """
        paths = collect_paths(sources)
        existing = (stored if stored is not None else self.stored_checksums()) if skip_existing else None
        batch = BatchUpload(lambda group: self.upload_batch(group, **upload_fields), self._worker_sessions, existing)
        return batch.run(paths, workers=workers, progress=progress)

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

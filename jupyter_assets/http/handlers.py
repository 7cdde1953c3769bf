"""The /api/v1/assets routes. Handlers parse HTTP and call the service's use cases; no business logic, no SQL."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web

from ..errors import request_invalid
from ..library import Library
from ..model import ASSET_STATUSES, Asset, ListQuery
from .base import AssetsHandler
from .content import AssetContentHandler, PublicContentHandler
from .upload import MultipartUpload
from .upload_handlers import AssetBatchHandler, StreamedUploadHandler, finish_upload

OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.json").read_bytes()  # read once, not on every request
MAX_SEARCH_TEXT = 1000
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
DEFAULT_DUPLICATE_THRESHOLD = 0.95
MIN_DUPLICATE_THRESHOLD = 0.8  # below that, "duplicates" would be whole themes of a library


MAX_INT_ARGUMENT = 2**31 - 1  # far past any library's last page, and safe in the catalog's 64-bit offsets


def _int_argument(handler: tornado.web.RequestHandler, name: str) -> int | None:
    raw = handler.get_query_argument(name, None)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise request_invalid(f"The query parameter '{name}' must be an integer, not '{raw}'.") from None
    if abs(value) > MAX_INT_ARGUMENT:
        raise request_invalid(f"The query parameter '{name}' must be at most {MAX_INT_ARGUMENT}.")
    return value


def _object_body(handler: AssetsHandler) -> dict[str, Any]:
    body = handler.json_body({})
    if not isinstance(body, dict):
        raise request_invalid("The body must be a JSON object.")
    return body


def _first_argument(handler: tornado.web.RequestHandler, *names: str) -> str | None:
    for name in names:
        value = handler.get_query_argument(name, None)
        if value is not None and value.strip():
            return value.strip()
    return None


class AssetCollectionHandler(StreamedUploadHandler):
    """GET lists assets; POST uploads one, streaming the multipart body to disk as it arrives."""

    @tornado.web.authenticated
    async def get(self) -> None:
        page = _int_argument(self, "page")
        page_size = _int_argument(self, "pageSize")
        order_by = _first_argument(self, "orderBy", "sortBy") or "createdAtUtc"
        direction = (_first_argument(self, "orderDirection", "sortDirection") or "desc").lower()
        status = (_first_argument(self, "status") or "").lower() or None
        if status is not None and status not in ASSET_STATUSES:
            raise request_invalid(f"The query parameter 'status' must be one of {', '.join(ASSET_STATUSES)}.")
        query = ListQuery(
            page=page if page and page >= 1 else 1,
            page_size=min(page_size, MAX_PAGE_SIZE) if page_size and page_size >= 1 else DEFAULT_PAGE_SIZE,
            text=_first_argument(self, "q", "query", "keyword"),
            content_type=_first_argument(self, "contentType"),
            status=status,
            order_by="size" if order_by.lower() == "size" else "createdAtUtc",
            descending=direction != "asc",
            meaning=_first_argument(self, "text"),
        )
        if query.meaning and len(query.meaning) > MAX_SEARCH_TEXT:
            raise request_invalid(f"The query parameter 'text' is longer than {MAX_SEARCH_TEXT} characters.")

        def listing() -> dict[str, Any]:
            page_result = self.service.assets.list(self.principal, query)
            return {
                "items": _list_json(self.service.library, page_result.items),
                "page": page_result.page,
                "pageSize": page_result.page_size,
                "total": page_result.total,
            }

        self.send_data(await self.run_with_model("clip" if query.meaning else None, listing))

    @tornado.web.authenticated
    async def post(self) -> None:
        upload = self.take_upload()
        if upload is None:
            return
        created = await self.run_blocking(self._store_upload, upload, bytes(self._pending))
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{created['id']}")
        self.send_data(created, 202)

    def _store_upload(self, upload: MultipartUpload, rest: bytes) -> dict[str, Any]:
        """Blocking: write the last bytes, close the file, then validate, store and catalog the asset; its JSON."""
        form = finish_upload(upload, rest, MultipartUpload.finish)
        asset = self.service.uploads.create(self.principal, form)
        return asset.detail_json(self.service.library.public_url(asset), {})  # no derivatives yet


class AssetHandler(AssetsHandler):
    @tornado.web.authenticated
    async def get(self, asset_id: str) -> None:
        await self.send_asset(self.service.assets.get, self.principal, asset_id)

    @tornado.web.authenticated
    async def patch(self, asset_id: str) -> None:
        patch = self.json_body()
        if not isinstance(patch, dict):
            raise request_invalid("The body must be a JSON object.")
        await self.send_asset(self.service.assets.update, self.principal, asset_id, patch)

    @tornado.web.authenticated
    async def delete(self, asset_id: str) -> None:
        body = self.json_body({})
        if not isinstance(body, dict):
            raise request_invalid("The body must be a JSON object.")
        message = body.get("commitMessage")
        if message is not None and not isinstance(message, str):
            raise request_invalid("The field 'commitMessage' must be a string.")
        result = await self.run_blocking(self.service.assets.delete, self.principal, asset_id, message)
        self.send_data(result)

    async def send_asset(self, fetch: Callable[..., Any], *args: Any) -> None:
        """Send the asset a service call returns, in full; both run off the event loop."""
        self.send_data(await self.run_blocking(lambda: _detail_json(self.service.library, fetch(*args))))


class BatchDeleteHandler(AssetsHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.json_body([])
        ids = body.get("ids") if isinstance(body, dict) else body
        if not isinstance(ids, list):
            raise request_invalid('The body must be a JSON array of ids or an object {"ids": [...]}.')
        result = await self.run_blocking(self.service.assets.batch_delete, self.principal, ids)
        self.send_data(result)


class SkillListHandler(AssetsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.send_data(self.service.skill_runs.list(self.principal))


class SkillRunHandler(AssetsHandler):
    @tornado.web.authenticated
    async def post(self, asset_id: str, skill_name: str) -> None:
        body = self.json_body({})
        if not isinstance(body, dict):
            raise request_invalid('The body must be a JSON object such as {"parameters": {...}}.')

        def run() -> dict[str, Any]:
            result = self.service.skill_runs.run(self.principal, asset_id, skill_name, body.get("parameters"))
            return {**result, "asset": _detail_json(self.service.library, result["asset"])}

        self.send_data(await self.run_with_model(self.service.skill_runs.model_of(skill_name), run))


class SimilarAssetsHandler(AssetsHandler):
    @tornado.web.authenticated
    async def get(self, asset_id: str) -> None:
        limit = _int_argument(self, "limit")
        limit = DEFAULT_PAGE_SIZE if limit is None else limit
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise request_invalid(f"The query parameter 'limit' must be between 1 and {MAX_PAGE_SIZE}.")

        def similar() -> dict[str, Any]:
            result = self.service.search.similar(self.principal, asset_id, limit)
            return {"items": _list_json(self.service.library, result["items"]), "model": result["model"]}

        self.send_data(await self.run_blocking(similar))


class DuplicatesHandler(AssetsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        raw = self.get_query_argument("threshold", None)
        try:
            threshold = DEFAULT_DUPLICATE_THRESHOLD if raw is None or not raw.strip() else float(raw)
        except ValueError:
            threshold = -1.0
        if not MIN_DUPLICATE_THRESHOLD <= threshold <= 1.0:
            raise request_invalid(
                f"The query parameter 'threshold' must be a number from {MIN_DUPLICATE_THRESHOLD} to 1, not '{raw}'."
            )
        groups = await self.run_blocking(self.service.search.duplicates, self.principal, threshold)
        self.send_data({"groups": groups})


class UsageStatsHandler(AssetsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        stats = await self.run_blocking(self.service.assets.usage_stats, self.principal)
        self.send_data(stats.to_json())


class ExportHandler(AssetsHandler):
    """Streams one catalog table as Parquet, so analysts never need to open the live database."""

    @tornado.web.authenticated
    async def get(self) -> None:
        table = self.get_query_argument("table", "")
        with tempfile.TemporaryDirectory(prefix="jupyter-assets-export-") as folder:
            path = Path(folder) / f"{table or 'export'}.parquet"
            await self.run_blocking(self.service.assets.export, self.principal, table, path)
            self.set_header("Content-Type", "application/vnd.apache.parquet")
            self.set_header("Content-Disposition", f'attachment; filename="{table}.parquet"')
            with open(path, "rb") as handle:
                while chunk := await self.run_blocking(handle.read, 256 * 1024):
                    self.write(chunk)
                    await self.flush()
        self.finish()


class OpenApiHandler(AssetsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(OPENAPI_DOCUMENT)


class ApiKeysHandler(AssetsHandler):
    """Admin: list and create API keys while the server runs (the CLI cannot open a catalog in use)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.send_data(await self.run_blocking(self.service.api_keys.list_as, self.principal))

    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.json_body({})
        if not isinstance(body, dict):
            raise request_invalid('The body must be a JSON object {"name": ..., "scopes": [...]}.')
        created = await self.run_blocking(
            self.service.api_keys.create_as, self.principal, body.get("name"), body.get("scopes")
        )
        self.send_data(created, 201)


class ApiKeyHandler(AssetsHandler):
    @tornado.web.authenticated
    async def delete(self, key_id: str) -> None:
        await self.run_blocking(self.service.api_keys.revoke_as, self.principal, key_id)
        self.send_data({"id": key_id, "revoked": True})


class StorageProvidersHandler(AssetsHandler):
    """Admin: the storage provider profiles (overview and create)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.send_data(await self.run_blocking(self.service.profiles.overview, self.principal))

    @tornado.web.authenticated
    async def post(self) -> None:
        profile = await self.run_blocking(self.service.profiles.create, self.principal, _object_body(self))
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{profile['id']}")
        self.send_data(profile, 201)


class StorageProviderHandler(AssetsHandler):
    @tornado.web.authenticated
    async def patch(self, profile_id: str) -> None:
        body = _object_body(self)
        self.send_data(await self.run_blocking(self.service.profiles.update, self.principal, profile_id, body))

    @tornado.web.authenticated
    async def delete(self, profile_id: str) -> None:
        self.send_data(await self.run_blocking(self.service.profiles.delete, self.principal, profile_id))


class StorageProviderDefaultHandler(AssetsHandler):
    @tornado.web.authenticated
    async def post(self, profile_id: str) -> None:
        self.send_data(await self.run_blocking(self.service.profiles.set_default, self.principal, profile_id))


def _detail_json(library: Library, asset: Asset) -> dict[str, Any]:
    """An asset in full. Blocking: its URLs come from its storage, which is built (its profile read) on first use."""
    return asset.detail_json(library.public_url(asset), library.derivative_urls(asset))


def _list_json(library: Library, assets: list[Asset]) -> list[dict[str, Any]]:
    """List items, each with its thumbnail's URL. Blocking, as _detail_json."""
    thumbnails = library.thumbnail_urls(assets)
    return [asset.list_item_json(library.public_url(asset), thumbnails.get(asset.id)) for asset in assets]


def routes(base_url: str) -> list[tuple[str, type[AssetsHandler]]]:
    """URL patterns and handlers, relative to the server's base URL."""
    api = f"{base_url.rstrip('/')}/api/v1/assets"
    uuid_like = r"([^/]+)"
    providers = f"{base_url.rstrip('/')}/api/v1/system/storage/providers"
    return [
        (rf"{api}/?", AssetCollectionHandler),
        (rf"{api}/batch", AssetBatchHandler),
        (rf"{api}/batch-delete", BatchDeleteHandler),
        (rf"{api}/skills", SkillListHandler),
        (rf"{api}/usage-stats", UsageStatsHandler),
        (rf"{api}/duplicates", DuplicatesHandler),
        (rf"{api}/export", ExportHandler),
        (rf"{api}/openapi\.json", OpenApiHandler),
        (rf"{api}/{uuid_like}", AssetHandler),
        (rf"{api}/{uuid_like}/content", AssetContentHandler),
        (rf"{api}/{uuid_like}/similar", SimilarAssetsHandler),
        (rf"{api}/{uuid_like}/skills/([^/]+)/run", SkillRunHandler),
        (rf"{base_url.rstrip('/')}/api/v1/system/api-keys", ApiKeysHandler),
        (rf"{base_url.rstrip('/')}/api/v1/system/api-keys/([^/]+)", ApiKeyHandler),
        (rf"{providers}/?", StorageProvidersHandler),
        (rf"{providers}/([^/]+)", StorageProviderHandler),
        (rf"{providers}/([^/]+)/set-default", StorageProviderDefaultHandler),
        (rf"{base_url.rstrip('/')}/content/(.+)", PublicContentHandler),
    ]

"""The Jupyter server extension (``AssetsApp``) and the standalone server behind ``jupyter-assets serve``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_core.paths import jupyter_data_dir
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Int, List, Unicode, default

from .auth import Authenticator, JwtSettings
from .catalog import DEFAULT_POOL_SIZE
from .http.base import (
    MAX_JSON_BODY,
    MAX_URL_LENGTH,
    AssetsHandler,
    BodyTooLargeHandler,
    NotFoundHandler,
    UriTooLongHandler,
)
from .http.handlers import routes
from .service import AssetService, ServiceConfig
from .skills.models import ModelSettings

DEFAULT_STANDALONE_PORT = 5121
# Tornado closes the connection, unanswered, on a request head over its limit: ours is larger, so that a URL over
# MAX_URL_LENGTH still gets its 414.
MAX_REQUEST_HEAD = 1024 * 1024


@dataclass(frozen=True)
class EnvDefault:
    """Where a trait's default comes from: the environment ``variable`` when set (not empty), read by ``parse``;
    else ``fallback(app)``, computed when first asked for (it may read the app's other traits)."""

    variable: str
    parse: Callable[[str], Any] = str  # a bad value raises here, with the parser's own message (int's)
    fallback: Callable[[AssetsApp], Any] = lambda app: None


def _comma_list(value: str) -> list[str] | None:
    """Comma-separated items, stripped; None (so the fallback) when there are none, as with ",,"."""
    return [item.strip() for item in value.split(",") if item.strip()] or None


def _json_list(value: str) -> list[Any]:
    parsed = json.loads(value)
    if not isinstance(parsed, list):
        raise ValueError(f"expected a JSON list, got {type(parsed).__name__}")
    return parsed


def _default_skills(app: AssetsApp) -> list[str]:
    # Embeddings and tags need CLIP weights: without any, asking for them would only fail after every upload.
    return [*ServiceConfig.enrichment_skills, *(["embed", "tags"] if app.clip_pretrained else [])]


# Every AssetsApp trait that a JUPYTER_ASSETS_* variable can set. Fallbacks shared with ServiceConfig and
# ModelSettings come from them, so that each default is written once.
ENV_DEFAULTS: dict[str, EnvDefault] = {
    "root_dir": EnvDefault("JUPYTER_ASSETS_ROOT", fallback=lambda app: os.path.join(jupyter_data_dir(), "assets")),
    "catalog_url": EnvDefault("JUPYTER_ASSETS_CATALOG_URL"),
    "storage_profiles": EnvDefault("JUPYTER_ASSETS_STORAGE_PROFILES", _json_list, lambda app: []),
    "api_keys": EnvDefault("JUPYTER_ASSETS_API_KEYS", _comma_list, lambda app: []),
    "jwt_secret": EnvDefault("JUPYTER_ASSETS_JWT_SECRET"),
    "jwt_public_key": EnvDefault("JUPYTER_ASSETS_JWT_PUBLIC_KEY"),
    "jwt_issuer": EnvDefault("JUPYTER_ASSETS_JWT_ISSUER"),
    "jwt_audience": EnvDefault("JUPYTER_ASSETS_JWT_AUDIENCE"),
    "job_lease_seconds": EnvDefault(
        "JUPYTER_ASSETS_JOB_LEASE_SECONDS", float, lambda app: ServiceConfig.job_lease_seconds
    ),
    "max_upload_bytes": EnvDefault("JUPYTER_ASSETS_MAX_UPLOAD_BYTES", int, lambda app: ServiceConfig.max_upload_bytes),
    "allowed_content_types": EnvDefault(
        "JUPYTER_ASSETS_ALLOWED_CONTENT_TYPES", _comma_list, lambda app: list(ServiceConfig.allowed_content_types)
    ),
    "public_base_url": EnvDefault("JUPYTER_ASSETS_PUBLIC_BASE_URL"),
    "enrichment_skills": EnvDefault("JUPYTER_ASSETS_ENRICHMENT_SKILLS", _comma_list, _default_skills),
    "clip_model": EnvDefault("JUPYTER_ASSETS_CLIP_MODEL", fallback=lambda app: ModelSettings.clip_model),
    "clip_pretrained": EnvDefault("JUPYTER_ASSETS_CLIP_PRETRAINED", fallback=lambda app: ModelSettings.clip_pretrained),
    "caption_model": EnvDefault("JUPYTER_ASSETS_CAPTION_MODEL", fallback=lambda app: ModelSettings.caption_model),
    "caption_pretrained": EnvDefault(
        "JUPYTER_ASSETS_CAPTION_PRETRAINED", fallback=lambda app: ModelSettings.caption_pretrained
    ),
    "model_device": EnvDefault("JUPYTER_ASSETS_MODEL_DEVICE", fallback=lambda app: ModelSettings.device),
}


def _default_from_env(trait: str) -> Callable[[AssetsApp], Any]:
    """The default generator of ``trait`` (traitlets calls it with the app only, hence one per trait)."""
    setting = ENV_DEFAULTS[trait]

    def generate(app: AssetsApp) -> Any:
        raw = os.environ.get(setting.variable)
        parsed = setting.parse(raw) if raw else None
        return parsed if parsed is not None else setting.fallback(app)

    generate.__name__ = f"_{trait}_from_env"
    return generate


class AssetsApp(ExtensionApp):
    """jupyter-assets: an image asset library at {base_url}api/v1/assets. Every setting is also an env var."""

    name = "jupyter_assets"
    description = __doc__
    load_other_extensions = True

    root_dir = Unicode(help="Folder holding the catalog (catalog.duckdb) and the files. Env JUPYTER_ASSETS_ROOT.").tag(
        config=True
    )
    catalog_url = Unicode(
        None,
        allow_none=True,
        help="PostgreSQL URL of a team library's catalog, shared by every server that names it "
        "(postgresql://user@host:5432/db). Unset: the DuckDB file under root_dir. Env JUPYTER_ASSETS_CATALOG_URL.",
    ).tag(config=True)
    catalog_pool_size = Int(DEFAULT_POOL_SIZE, help="PostgreSQL catalog: connections kept for reads.").tag(config=True)
    admin_users = List(
        Unicode(),
        help="Team library: the Jupyter (JupyterHub) users who are admins of the library; every other Jupyter "
        "user is an ordinary owner. On a one-server library the Jupyter user is always admin.",
    ).tag(config=True)
    api_keys = List(Unicode(), help="API keys with every scope (comma-separated in env JUPYTER_ASSETS_API_KEYS).").tag(
        config=True
    )
    jwt_secret = Unicode(None, allow_none=True, help="HS256 secret for JWTs. Env JUPYTER_ASSETS_JWT_SECRET.").tag(
        config=True
    )
    jwt_public_key = Unicode(
        None,
        allow_none=True,
        help="PEM public key (or a path to one) for RS256/ES256 JWTs. Env JUPYTER_ASSETS_JWT_PUBLIC_KEY.",
    ).tag(config=True)
    jwt_issuer = Unicode(None, allow_none=True, help="Required 'iss' of JWTs. Env JUPYTER_ASSETS_JWT_ISSUER.").tag(
        config=True
    )
    jwt_audience = Unicode(None, allow_none=True, help="Required 'aud' of JWTs. Env JUPYTER_ASSETS_JWT_AUDIENCE.").tag(
        config=True
    )
    max_upload_bytes = Int(help="Largest accepted file. Env JUPYTER_ASSETS_MAX_UPLOAD_BYTES.").tag(config=True)
    allowed_content_types = List(
        Unicode(), help="Accepted image types (env JUPYTER_ASSETS_ALLOWED_CONTENT_TYPES, comma-separated)."
    ).tag(config=True)
    public_base_url = Unicode(
        None,
        allow_none=True,
        help="Base of public URLs (<base>/content/<key>); default: this server's own URL. "
        "Env JUPYTER_ASSETS_PUBLIC_BASE_URL.",
    ).tag(config=True)
    enrichment_skills = List(
        Unicode(), help="Skills run after an upload (env JUPYTER_ASSETS_ENRICHMENT_SKILLS, comma-separated)."
    ).tag(config=True)
    max_image_pixels = Int(
        ServiceConfig.max_image_pixels, help="Images declaring more pixels are refused (decompression bombs)."
    ).tag(config=True)
    workers = Int(ServiceConfig.workers, help="Enrichment worker threads.").tag(config=True)
    job_lease_seconds = Float(
        help="Team library: how long a server holds an enrichment job it claimed without renewing it; the jobs of a "
        "server that died are taken over by another after this. Env JUPYTER_ASSETS_JOB_LEASE_SECONDS."
    ).tag(config=True)
    clip_model = Unicode(
        help="open_clip model for embeddings, tags and search by meaning (a name, or the path of an open_clip JSON "
        "config). Env JUPYTER_ASSETS_CLIP_MODEL."
    ).tag(config=True)
    clip_pretrained = Unicode(
        help="Weights of the CLIP model: a pretrained tag such as laion2b_s34b_b79k (downloaded once) or the path "
        "of a checkpoint file. Empty: no CLIP model (the default; nothing downloads). "
        "Env JUPYTER_ASSETS_CLIP_PRETRAINED."
    ).tag(config=True)
    caption_model = Unicode(help="CoCa model for captions. Env JUPYTER_ASSETS_CAPTION_MODEL.").tag(config=True)
    caption_pretrained = Unicode(
        help="Weights of the caption model: a pretrained tag such as mscoco_finetuned_laion2b_s13b_b90k "
        "(downloaded once) or the path of a checkpoint file. Empty: no captions (the default; nothing downloads). "
        "Env JUPYTER_ASSETS_CAPTION_PRETRAINED."
    ).tag(config=True)
    model_device = Unicode(
        help="Where models run: auto (CUDA when present), cpu, cuda, cuda:1, ... Env JUPYTER_ASSETS_MODEL_DEVICE."
    ).tag(config=True)
    storage_profiles = List(
        Dict(),
        help="Storage provider profiles declared in configuration, each as the API's create body ({name, "
        "providerType, configuration, secretConfiguration, isEnabled, isDefault, displayName}). At start each is "
        "created, or updated when a profile of that name exists. On a team library the first server's default "
        "profile becomes the library's. Env JUPYTER_ASSETS_STORAGE_PROFILES (a JSON list).",
    ).tag(config=True)
    idle_timeout = Int(
        60,
        help="Standalone server: seconds a connection may wait for its next request (or send its request head) "
        "before it is closed, so stalled clients cannot hold the server's file descriptors.",
    ).tag(config=True)
    body_timeout = Int(
        600,
        help="Standalone server: seconds a request body (an upload) may take to arrive; raise it for uploads "
        "larger than max_upload_bytes' default over slow links.",
    ).tag(config=True)
    trust_jupyter_user = Bool(
        True,
        help="Accept the user Jupyter authenticated (inside Jupyter only): an admin of a one-server library, an "
        "ordinary owner of a team library unless named in admin_users.",
    ).tag(config=True)

    # One default handler per trait of ENV_DEFAULTS, all alike (see _default_from_env). A value from a config file
    # or the command line sets the trait itself, so it wins: the default is only asked for when nothing set it.
    for _trait in ENV_DEFAULTS:
        locals()[f"_{_trait}_from_env"] = default(_trait)(_default_from_env(_trait))
    del _trait

    # -- building the service -----------------------------------------------------------------------------

    def jwt_settings(self) -> JwtSettings:
        public_key = self.jwt_public_key
        if public_key and not public_key.lstrip().startswith("-----") and Path(public_key).is_file():
            public_key = Path(public_key).read_text()
        return JwtSettings(self.jwt_secret, public_key, self.jwt_issuer, self.jwt_audience)

    def service_config(self, public_base_url: str) -> ServiceConfig:
        return ServiceConfig(
            root_dir=Path(self.root_dir).expanduser().resolve(),
            catalog_url=self.catalog_url or None,
            catalog_pool_size=self.catalog_pool_size,
            admin_users=tuple(self.admin_users),
            public_base_url=self.public_base_url or public_base_url,
            max_upload_bytes=self.max_upload_bytes,
            allowed_content_types=tuple(t.lower() for t in self.allowed_content_types),
            enrichment_skills=tuple(self.enrichment_skills),
            max_image_pixels=self.max_image_pixels,
            workers=self.workers,
            job_lease_seconds=self.job_lease_seconds,
            storage_profiles=tuple(self.storage_profiles),
            models=ModelSettings(
                clip_model=self.clip_model,
                clip_pretrained=self.clip_pretrained,
                caption_model=self.caption_model,
                caption_pretrained=self.caption_pretrained,
                device=self.model_device,
            ),
        )

    def build(self, public_base_url: str) -> tuple[AssetService, Authenticator]:
        service = AssetService(self.service_config(public_base_url), self.log)
        authenticator = Authenticator(self.api_keys, self.jwt_settings(), service.api_keys)
        return service, authenticator

    # -- inside Jupyter -----------------------------------------------------------------------------------

    def initialize_settings(self) -> None:
        base = self.serverapp.connection_url.rstrip("/")
        self.service, authenticator = self.build(base)
        self.service.start()
        self.settings.update({"jupyter_assets_service": self.service, "jupyter_assets_authenticator": authenticator})
        self.log.info("jupyter-assets: library at %s (API at %s/api/v1/assets)", self.service.config.root_dir, base)

    def initialize_handlers(self) -> None:
        self.handlers.extend((pattern, jupyter_handler(cls, self.trust_jupyter_user)) for pattern, cls in routes(""))

    async def stop_extension(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            await asyncio.get_running_loop().run_in_executor(None, service.close)


def jupyter_handler(cls: type[AssetsHandler], trust_jupyter_user: bool) -> type:
    """The same handler, mixed with Jupyter's: JSON routes with APIHandler, byte streams with JupyterHandler."""
    jupyter_base = JupyterHandler if getattr(cls, "serves_bytes", False) else APIHandler
    return type(cls.__name__, (cls, jupyter_base), {"in_jupyter": True, "trust_jupyter_user": trust_jupyter_user})


# -- standalone -------------------------------------------------------------------------------------------


class StandaloneApplication(tornado.web.Application):
    """Requests that Tornado would refuse without our envelope (a JSON body over its limit) or that no handler
    should see (a URL over MAX_URL_LENGTH) go to handlers that answer with it."""

    def find_handler(self, request: Any, **kwargs: Any) -> Any:
        if len(request.uri or "") > MAX_URL_LENGTH:
            return self.get_handler_delegate(request, UriTooLongHandler)
        delegate = super().find_handler(request, **kwargs)
        declared = request.headers.get("Content-Length", "")
        streams = getattr(delegate.handler_class, "_stream_request_body", False)  # uploads set their own limit
        if declared.isdigit() and int(declared) > MAX_JSON_BODY and not streams:
            return self.get_handler_delegate(request, BodyTooLargeHandler)
        return delegate


def make_standalone_app(service: AssetService, authenticator: Authenticator) -> tornado.web.Application:
    return StandaloneApplication(
        routes("/"),
        default_handler_class=NotFoundHandler,
        jupyter_assets_service=service,
        jupyter_assets_authenticator=authenticator,
    )


def _allow_many_connections() -> None:
    """Raise the soft limit of open files to the hard one: every connection and upload in flight holds one or
    two, and the usual soft limit of 1024 would be reached by a few hundred slow clients."""
    import resource  # POSIX only: imported here so that the extension still loads elsewhere

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, 1 << 16) if hard == resource.RLIM_INFINITY else hard
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def serve(app: AssetsApp, ip: str, port: int, on_ready: Any = None) -> None:
    """Run the API without Jupyter until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="[jupyter-assets %(asctime)s %(levelname)s] %(message)s")
    _allow_many_connections()
    host = f"[{ip}]" if ":" in ip else ip
    service, authenticator = app.build(f"http://{host}:{port}")
    service.start()

    async def main() -> None:
        # JSON bodies are small; the upload handler raises this limit for its own (streamed) body.
        server = make_standalone_app(service, authenticator).listen(
            port,
            ip,
            max_body_size=MAX_JSON_BODY,
            max_header_size=MAX_REQUEST_HEAD,
            idle_connection_timeout=app.idle_timeout,
            body_timeout=app.body_timeout,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_ready:
            on_ready(service)
        print(
            f"jupyter-assets: serving {service.config.root_dir} at http://{host}:{port}/api/v1/assets",
            flush=True,
        )
        await stop.wait()
        server.stop()

    try:
        asyncio.run(main())
    finally:
        service.close()

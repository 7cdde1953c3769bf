"""The library's front door: AssetService builds the use cases, starts them (finishing what a crash left) and stops
them. Each use case lives in a module of its own: ``uploads``, ``assets``, ``search``, ``processing.enrichment``,
``processing.skill_runs``, ``processing.sweeper``, ``storage.profiles`` and ``auth.keys``."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .assets import Assets
from .auth.keys import ApiKeys
from .catalog import DEFAULT_POOL_SIZE, open_catalog
from .errors import ConfigurationError
from .library import Library
from .model import utc_now
from .processing.enrichment import DEFAULT_JOB_LEASE_SECONDS, Enrichment
from .processing.recorder import RunRecorder
from .processing.skill_runs import SkillRuns
from .processing.sweeper import IN_FLIGHT_GRACE, Sweeper
from .propagation import ChangeFeed
from .search import Search
from .skills import default_registry
from .skills.context import SkillEnvironment
from .skills.models import ModelHub, ModelSettings
from .storage.profiles import StorageProfiles
from .uploads import UploadRules, Uploads

IO_THREADS = 8
MODEL_THREADS = 2


@dataclass
class ServiceConfig:
    root_dir: Path
    public_base_url: str
    catalog_url: str | None = None  # PostgreSQL: a team library; None: the DuckDB file under root_dir
    catalog_pool_size: int = DEFAULT_POOL_SIZE
    admin_users: tuple[str, ...] = ()  # team library: the Jupyter users who are admins
    max_upload_bytes: int = 10 * 1024 * 1024
    allowed_content_types: tuple[str, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp")
    enrichment_skills: tuple[str, ...] = ("thumbnail",)
    max_image_pixels: int = 100_000_000
    workers: int = 2
    job_lease_seconds: float = DEFAULT_JOB_LEASE_SECONDS
    models: ModelSettings = field(default_factory=ModelSettings)
    storage_profiles: tuple[dict[str, Any], ...] = ()  # declared in configuration: created or updated at start


class AssetService:
    """The parts of one library, built from its configuration. Handlers, the CLI and the worker reach the use
    cases through its attributes (``service.uploads.create(...)``, ``service.assets.list(...)``)."""

    def __init__(self, config: ServiceConfig, log: logging.Logger | None = None) -> None:
        self.config = config
        self.log = log or logging.getLogger("jupyter_assets")
        config.root_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = open_catalog(config.root_dir, config.catalog_url, config.catalog_pool_size)
        self.library = Library(self.catalog, config.root_dir, config.public_base_url, self.log)
        self.models = ModelHub(config.models, self.log, config.root_dir / "cache", config.workers)
        self.search = Search(self.library, self.models)
        self.skills = skills = default_registry()
        environment = SkillEnvironment(
            RunRecorder(self.library, self.search.embedding_saved), self.library.storage_for, self.models,
            config.max_image_pixels, self.log, self.library.remove_file,
        )  # fmt: skip
        self.enrichment = Enrichment(self.library, environment, skills, config.workers, config.job_lease_seconds)
        self.skill_runs = SkillRuns(self.library, environment, skills)
        self.sweeper = Sweeper(self.library, environment)
        rules = UploadRules(
            config.max_upload_bytes, config.allowed_content_types, config.enrichment_skills, config.max_image_pixels
        )
        self.uploads = Uploads(self.library, rules, self.enrichment.job_queued)
        self.assets = Assets(self.library, self.search)
        self.profiles = StorageProfiles(self.library)
        self.api_keys = ApiKeys(self.catalog)
        self.changes = ChangeFeed(
            self.catalog, self.log,
            {
                "embedding": lambda subject: self.search.embedding_recorded(*json.loads(subject)),
                "asset_deleted": self.search.forget,
                "api_key_revoked": lambda _: self.api_keys.forget_principals(),
                "storage_profile": self._profile_changed,
            },
        )  # fmt: skip
        # Blocking work (file I/O, hashing, DuckDB, Pillow) runs here, never on the event loop.
        self.executor = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="jupyter-assets-io")
        # Requests that may load or run a model (skill runs, search by meaning) run on threads of that model
        # instead: a load can take a minute (or hang on a download), and eight such requests must leave neither
        # the reads nor the other model without a thread.
        self.model_executors = {
            model: ThreadPoolExecutor(max_workers=MODEL_THREADS, thread_name_prefix=f"jupyter-assets-{model}")
            for model in ("clip", "caption")
        }

    def start(self) -> None:
        """Finish what a previous run left: uploads committed but not yet stored, files to remove, jobs not done.
        On a team library other servers may be mid-upload: the start's sweep then leaves their files in flight
        alone, as the sweeps while running do."""
        with self.catalog.exclusive("declare-profiles"):  # servers starting together create each profile once
            self.profiles.declare(self.config.storage_profiles)
        if self.catalog.is_shared:
            self._require_shared_storage()
        with self.catalog.exclusive("recover-incoming"):
            self.uploads.recover_incoming()
        self.sweeper.sweep(in_flight_before=utc_now() - IN_FLIGHT_GRACE if self.catalog.is_shared else None)
        self.changes.start()  # before the search index loads: nothing committed meanwhile is missed
        self.search.load()
        self.enrichment.start()
        self.sweeper.start()

    def _require_shared_storage(self) -> None:
        """Every server of a team must write where the others read: never into its own private root."""
        default = self.catalog.profiles.default()
        if default is None:
            raise ConfigurationError(
                "A team library (catalog_url is set) keeps its files where every server reaches them, but it has "
                "no default storage profile. Declare one with c.AssetsApp.storage_profiles (or "
                "JUPYTER_ASSETS_STORAGE_PROFILES): an s3 profile, or a local one whose rootPath every server "
                'mounts, with "isDefault": true.'
            )

    def _profile_changed(self, profile_id: str) -> None:
        """Another server of the team changed a storage profile."""
        self.catalog.profiles.forget_cached()
        self.library.forget_storage(profile_id)

    def close(self) -> None:
        self.changes.stop()
        self.sweeper.stop()
        self.enrichment.stop()
        for executor in self.model_executors.values():
            executor.shutdown(wait=True)
        self.executor.shutdown(wait=True)
        self.catalog.close()

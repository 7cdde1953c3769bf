"""The catalog: metadata in one DuckDB file owned by one server process, or in a PostgreSQL database that a team's
servers share (engines.py). SQL lives in this package and nowhere else.

The core opens the engine, migrates it and owns the writer; each concern (``catalog.assets``, ``catalog.runs``,
...) is an attribute holding the queries of one part of the schema."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from pathlib import Path

from ..model import utc_now
from .analytics import EXPORTABLE_TABLES, Analytics
from .assets import Assets
from .changes import ChangeLog
from .cleanup import REWRITE_IN_FLIGHT, AssetGoneError, Cleanup
from .concern import T
from .cursor import Cursor
from .engines import CatalogLockedError, CatalogUnreachableError, DuckDBEngine, PostgresEngine
from .jobs import Jobs
from .keys import Keys
from .profiles import Profiles
from .runs import Changes, Runs
from .schema import migrations
from .tallies import Tallies
from .writer import ExpectedWrite, GroupCommitWriter, Insert

__all__ = [
    "EXPORTABLE_TABLES",
    "REWRITE_IN_FLIGHT",
    "AssetGoneError",
    "Catalog",
    "CatalogLockedError",
    "CatalogUnreachableError",
    "DEFAULT_POOL_SIZE",
    "Changes",
    "DuckDBEngine",
    "ExpectedWrite",
    "PostgresEngine",
    "open_catalog",
]

CATALOG_FILE = "catalog.duckdb"  # under the root folder
DEFAULT_POOL_SIZE = 10  # PostgreSQL connections for reads, besides the writer's


class Catalog:
    """All reads and writes of the library's metadata. Thread-safe: reads from any thread, writes serialised by
    this process's writer."""

    def __init__(self, engine: DuckDBEngine | PostgresEngine) -> None:
        self.engine = engine
        self._migrate()
        self._writer = GroupCommitWriter(engine.writer())
        self.assets = Assets(self)
        self.runs = Runs(self)
        self.cleanup = Cleanup(self)
        self.profiles = Profiles(self)
        self.jobs = Jobs(self)
        self.analytics = Analytics(self)
        self.keys = Keys(self)
        self.change_log = ChangeLog(self)
        self.tallies = Tallies(self)

    def close(self) -> None:
        self._writer.close()
        self.engine.close()

    def expect_write(self) -> ExpectedWrite:
        """Announce a write on its way, so that a commit under way waits a moment for it (see
        GroupCommitWriter)."""
        return self._writer.expect()

    def settle(self, committing: Future) -> Future:
        """Wait for the write assets.insert queued to be committed (or to fail); returns its future."""
        return self._writer.settle(committing)

    @property
    def is_shared(self) -> bool:
        """A team library: other servers read and write this catalog too."""
        return self.engine.dialect == "postgresql"

    def exclusive(self, task: str, wait: bool = True) -> AbstractContextManager[bool]:
        """Run ``task`` (a sweep, a recovery) on one server of the library at a time. Without ``wait`` the
        context yields False at once when another holds it: the caller skips its turn."""
        return self.engine.exclusive(task, wait)

    def schema_version(self) -> int:
        return self._cursor().execute("SELECT max(version) FROM schema_version").fetchone()[0]

    def _cursor(self) -> Cursor:
        return self.engine.reader()

    def _write(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` in a write transaction and return its result once committed."""
        return self._writer.submit(work)

    def _write_nowait(self, inserts: list[Insert]) -> Future:
        """Queue rows to insert; ``settle`` waits for their commit."""
        return self._writer.submit_nowait(inserts)

    def _migrate(self) -> None:
        with self.engine.migrating() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
            current = cursor.execute("SELECT COALESCE(max(version), 0) FROM schema_version").fetchone()[0]
            for version, ddl in migrations(self.engine.dialect):
                if version <= current:
                    continue
                cursor.execute("BEGIN TRANSACTION")
                try:
                    if ddl:
                        cursor.execute(ddl)
                    cursor.execute(
                        "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", [version, utc_now()]
                    )
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")


def open_catalog(root_dir: Path, catalog_url: str | None = None, pool_size: int = DEFAULT_POOL_SIZE) -> Catalog:
    """The catalog at ``catalog_url`` (a PostgreSQL URL), or else the DuckDB file of the library under
    ``root_dir``."""
    if catalog_url:
        return Catalog(PostgresEngine(catalog_url, pool_size))
    return Catalog(DuckDBEngine(root_dir / CATALOG_FILE))

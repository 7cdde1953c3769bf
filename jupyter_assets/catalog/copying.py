"""Copy a library's catalog into another (``jupyter-assets copy-catalog``): a one-server library moving into a
team library on PostgreSQL. Every row goes (assets and what hangs off them, jobs, events, keys, profiles,
embeddings) in one transaction of the target, so a copy that fails leaves the target as it was; the files stay
where their profiles say."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..model import StorageProfile, new_id, utc_now
from . import Catalog
from .cursor import Cursor
from .rows import PROFILE

COPIED_TABLES = (
    "assets", "derivatives", "structured_results", "skill_executions", "skill_steps", "jobs", "events", "api_keys",
    "storage_cleanup", "embeddings", "image_hashes", "storage_profiles",
)  # fmt: skip
ROWS_PER_INSERT = 1000
# The profile the copy gives the assets a one-server library kept in its own files folder (no profile).
LIBRARY_FILES_PROFILE = "library-files"


class TargetNotEmptyError(Exception):
    pass


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]  # copied, by table
    library_files_profile: bool  # assets without a profile were given LIBRARY_FILES_PROFILE


def copy_catalog(source: Catalog, target: Catalog, source_files: Path) -> CopyReport:
    """Copy every row of ``source`` into ``target``, which must hold no assets.

    Assets without a profile live in the source library's own files folder (``source_files``): they get a local
    profile there (the default of the target when it has none), which every server of the team must mount."""
    if target._cursor().execute("SELECT count(*) FROM assets").fetchone()[0]:
        raise TargetNotEmptyError("The target catalog already holds assets: copy-catalog only fills an empty one.")
    tables = {table: source._cursor().execute(f"SELECT * FROM {table}").fetch_arrow_table() for table in COPIED_TABLES}

    def work(tx: Cursor) -> CopyReport:
        existing = dict(tx.execute("SELECT id, is_default FROM storage_profiles").fetchall())
        has_default = any(existing.values())
        for table, rows in tables.items():
            for batch in rows.to_batches(max_chunksize=ROWS_PER_INSERT):
                records = batch.to_pylist()
                if table == "storage_profiles":  # the target's own (declared at its start) stay as they are,
                    records = [r for r in records if r["id"] not in existing]
                    for record in records:  # and so does its default
                        record["is_default"] = record["is_default"] and not has_default
                if records:
                    columns = list(records[0])
                    tx.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                        [[record[column] for column in columns] for record in records],
                    )
        given_profile = _give_profile_to_library_files(tx, source_files)
        # A job that was running belongs to no server of the target: queued, it is claimed again.
        tx.execute(
            "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL WHERE status = 'running'"
        )
        return CopyReport({table: rows.num_rows for table, rows in tables.items()}, given_profile)

    report = target._write(work)
    target.tallies.fold()  # a row per copied row so far: folded, the first list need not add them all up
    return report


def _give_profile_to_library_files(tx: Cursor, source_files: Path) -> bool:
    if tx.execute("SELECT 1 FROM assets WHERE storage_profile_id IS NULL LIMIT 1").fetchone() is None:
        return False
    has_default = tx.execute("SELECT 1 FROM storage_profiles WHERE is_default").fetchone() is not None
    now = utc_now()
    profile = StorageProfile(
        new_id(), LIBRARY_FILES_PROFILE, "Files of the copied library", "local", True, not has_default,
        {"rootPath": str(source_files.resolve())}, {}, now, now,
    )  # fmt: skip
    tx.execute(
        f"INSERT INTO storage_profiles ({PROFILE.select()}) VALUES ({', '.join('?' * len(PROFILE.columns))})",
        PROFILE.values(profile),
    )
    tx.execute("UPDATE assets SET storage_profile_id = ? WHERE storage_profile_id IS NULL", [profile.id])
    tx.execute("UPDATE storage_cleanup SET storage_profile_id = ? WHERE storage_profile_id IS NULL", [profile.id])
    return True

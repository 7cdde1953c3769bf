"""The durable enrichment queue: a row per asset waiting for (or in) processing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..model import utc_now
from .concern import Concern
from .cursor import Cursor
from .writer import Insert

JOB_COLUMNS = ("id", "asset_id", "skills", "status", "attempts", "created_at", "updated_at")


def queued_job(job_id: str, asset_id: str, skills: list[str], at: datetime) -> Insert:
    """The row of a new job, committed with its asset (see Assets.insert)."""
    row = {
        "id": job_id, "asset_id": asset_id, "skills": json.dumps(skills), "status": "queued", "attempts": 0,
        "created_at": at, "updated_at": at,
    }  # fmt: skip
    return Insert("jobs", ", ".join(JOB_COLUMNS), [row[column] for column in JOB_COLUMNS])


class Jobs(Concern):
    def recover(self, max_attempts: int) -> list[tuple[str, str, list[str]]]:
        """After a restart: requeue jobs that were running, reset their assets, return every queued job.

        A job that was running when the process died max_attempts times is given up (its asset is failed):
        an image that kills the server must not do so at every start."""

        def work(tx: Cursor) -> Any:
            now = utc_now()
            tx.execute(
                "UPDATE assets SET status = 'failed', updated_at = ? WHERE id IN "
                "(SELECT asset_id FROM jobs WHERE status = 'running' AND attempts >= ?)",
                [now, max_attempts],
            )
            tx.execute("DELETE FROM jobs WHERE status = 'running' AND attempts >= ?", [max_attempts])
            tx.execute("UPDATE jobs SET status = 'queued', updated_at = ? WHERE status = 'running'", [now])
            tx.execute(
                "UPDATE assets SET status = 'pending', updated_at = ? "
                "WHERE status = 'processing' AND id IN (SELECT asset_id FROM jobs)",
                [now],
            )
            rows = tx.execute("SELECT id, asset_id, skills FROM jobs ORDER BY created_at, id").fetchall()
            return [(job_id, asset_id, json.loads(skills)) for job_id, asset_id, skills in rows]

        return self._write(work)

    def start(self, jobs: list[tuple[str, str]]) -> set[str]:
        """Mark (job id, asset id) pairs running and their assets processing, in one commit; returns the ids of
        the jobs that still exist (a job goes with its asset when the asset is deleted)."""

        def work(tx: Cursor) -> Any:
            started = set()
            for job_id, asset_id in jobs:
                found = tx.execute(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ? "
                    "WHERE id = ? RETURNING id",
                    [utc_now(), job_id],
                ).fetchone()
                if found is not None:
                    tx.execute(
                        "UPDATE assets SET status = 'processing', updated_at = ? WHERE id = ?", [utc_now(), asset_id]
                    )
                    started.add(job_id)
            return started

        return self._write(work)

    def queued_count(self) -> int:
        return self._cursor().execute("SELECT count(*) FROM jobs").fetchone()[0]

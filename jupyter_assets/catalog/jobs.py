"""The durable enrichment queue: a row per asset waiting for (or in) processing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from ..model import utc_now
from .concern import Concern
from .cursor import Cursor
from .rows import IN_IDS
from .writer import Insert

JOB_COLUMNS = ("id", "asset_id", "skills", "status", "attempts", "created_at", "updated_at")


def queued_job(job_id: str, asset_id: str, skills: list[str], at: datetime) -> Insert:
    """The row of a new job, committed with its asset (see Assets.insert)."""
    row = {
        "id": job_id, "asset_id": asset_id, "skills": json.dumps(skills), "status": "queued", "attempts": 0,
        "created_at": at, "updated_at": at,
    }  # fmt: skip
    return Insert("jobs", ", ".join(JOB_COLUMNS), [row[column] for column in JOB_COLUMNS])


# A job a server may take: waiting, or claimed by a server that stopped renewing its lease (it died).
CLAIMABLE = "(status = 'queued' OR lease_expires_at < ?)"


class Jobs(Concern):
    def recover(self, max_attempts: int) -> int:
        """At the start of a one-server library: requeue the jobs that were running when the process stopped
        (none of their leases can be held any more), reset their assets; returns how many jobs are queued.

        A job that was running when the process died max_attempts times is given up (its asset is failed):
        an image that kills the server must not do so at every start."""

        def work(tx: Cursor) -> Any:
            now = utc_now()
            doomed = tx.execute(
                "SELECT id, asset_id FROM jobs WHERE status = 'running' AND attempts >= ?", [max_attempts]
            ).fetchall()
            _give_up(tx, doomed, now)
            tx.execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, updated_at = ? "
                "WHERE status = 'running'",
                [now],
            )
            tx.execute(
                "UPDATE assets SET status = 'pending', updated_at = ? "
                "WHERE status = 'processing' AND id IN (SELECT asset_id FROM jobs)",
                [now],
            )
            return tx.execute("SELECT count(*) FROM jobs").fetchone()[0]

        return self._write(work)

    def claim(
        self, owner: str, lease: timedelta, max_attempts: int, batch_size: int = 1, workers: int = 1
    ) -> list[tuple[str, str, list[str]]]:
        """Take jobs for ``owner`` until ``lease`` from now (see ``renew``), oldest first, and mark their assets
        processing: (job id, asset id, skills) each. Up to ``batch_size``, and no more than one worker's share of
        what is waiting, so that the other workers are not left idle. Servers claiming at once take different
        jobs (rows another transaction holds are skipped). A job claimed once more after max_attempts lost
        leases is given up instead (its asset is failed)."""

        def work(tx: Cursor) -> Any:
            now = utc_now()
            waiting = tx.execute(f"SELECT count(*) FROM jobs WHERE {CLAIMABLE}", [now]).fetchone()[0]
            share = min(batch_size, -(-waiting // max(workers, 1)))
            if share == 0:
                return []
            rows = tx.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = ?, lease_expires_at = ?, "
                f"updated_at = ? WHERE id IN (SELECT id FROM jobs WHERE {CLAIMABLE} ORDER BY created_at, id "
                f"LIMIT ?{self._core.engine.skip_locked}) RETURNING id, asset_id, skills, attempts",
                [owner, now + lease, now, now, share],
            ).fetchall()
            _give_up(tx, [(job_id, asset_id) for job_id, asset_id, _, n in rows if n > max_attempts], now)
            claimed = [(job, asset_id, json.loads(skills)) for job, asset_id, skills, n in rows if n <= max_attempts]
            if claimed:
                tx.execute(
                    f"UPDATE assets SET status = 'processing', updated_at = ? WHERE id {IN_IDS}",
                    [now, [asset_id for _, asset_id, _ in claimed]],
                )
            return sorted(claimed)

        return self._write(work)

    def renew(self, owner: str, lease: timedelta) -> None:
        """Extend the leases of the jobs ``owner`` is running: it is alive."""
        self._write(
            lambda tx: tx.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE lease_owner = ? AND status = 'running'",
                [utc_now() + lease, owner],
            )
        )

    def release(self, owner: str, job_ids: list[str]) -> None:
        """Put jobs ``owner`` claimed but could not run back in the queue (their assets stay processing until
        claimed again; each claim counts an attempt, so a job that always breaks its batch is given up)."""
        self._write(
            lambda tx: tx.execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL "
                f"WHERE lease_owner = ? AND id {IN_IDS}",
                [owner, job_ids],
            )
        )

    def queued_count(self) -> int:
        return self._cursor().execute("SELECT count(*) FROM jobs").fetchone()[0]


def _give_up(tx: Cursor, jobs: list[tuple[str, str]], now: datetime) -> None:
    """Fail the assets of these (job id, asset id) pairs and drop the jobs."""
    if jobs:
        failed = [asset_id for _, asset_id in jobs]
        tx.execute(f"UPDATE assets SET status = 'failed', updated_at = ? WHERE id {IN_IDS}", [now, failed])
        tx.execute(f"DELETE FROM jobs WHERE id {IN_IDS}", [[job_id for job_id, _ in jobs]])

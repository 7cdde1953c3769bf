"""Enrichment: the skills configured for uploads, run by the worker pool from the durable job queue."""

from __future__ import annotations

import os
import socket
import threading
from datetime import timedelta
from typing import Any

from ..library import Library, event_row
from ..model import Asset, SkillExecution, new_id
from ..skills import SkillRegistry, run_skill
from ..skills.context import SkillContext, SkillEnvironment
from . import Job, WorkerPool

MAX_JOB_ATTEMPTS = 5  # interrupted by a crash this many times: give up (an image that kills the server)
JOB_BATCH = 8  # queued jobs a worker takes at once: one forward pass of the model serves them all
CLAIM_POLL_SECONDS = 1.0  # on a team library: how often idle workers look for jobs queued by other servers
DEFAULT_JOB_LEASE_SECONDS = 60


class Enrichment:
    def __init__(
        self,
        library: Library,
        environment: SkillEnvironment,
        skills: SkillRegistry,
        workers: int,
        lease_seconds: float = DEFAULT_JOB_LEASE_SECONDS,
    ) -> None:
        self.environment = environment
        self.catalog = library.catalog
        self.skills = skills
        self.log = environment.log
        # Who holds a claimed job: this process, told apart from the other servers' (and from its own restarts).
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{new_id()[:8]}"
        self.lease = timedelta(seconds=lease_seconds)
        poll = CLAIM_POLL_SECONDS if self.catalog.is_shared else None  # alone, every job is queued here: wake
        self.workers = WorkerPool(self.claim, self.process, workers, self.log, poll)
        self._closing = threading.Event()
        self._renewal = threading.Thread(target=self._renew_leases, name="jupyter-assets-leases", daemon=True)

    def start(self) -> None:
        """Requeue the jobs a previous run of a one-server library left (on a team library they are claimed
        again when their lease runs out), and start the workers."""
        if not self.catalog.is_shared:
            queued = self.catalog.jobs.recover(MAX_JOB_ATTEMPTS)
            if queued:
                self.log.info("resuming %d enrichment job(s) left by the previous run", queued)
        if self.workers.size:
            self._renewal.start()
        self.workers.start()

    def job_queued(self) -> None:
        """A job was committed here: a worker claims it now rather than at its next look."""
        self.workers.wake()

    def stop(self) -> None:
        self._closing.set()
        self.workers.stop()
        if self._renewal.ident is not None:
            self._renewal.join()

    def claim(self) -> list[Job]:
        claimed = self.catalog.jobs.claim(self.owner, self.lease, MAX_JOB_ATTEMPTS, JOB_BATCH, self.workers.size)
        return [Job(job_id, asset_id, tuple(skills)) for job_id, asset_id, skills in claimed]

    def _renew_leases(self) -> None:
        """While this process lives its jobs stay its own, however long a model takes; once it dies, another
        server claims them when the lease runs out."""
        while not self._closing.wait(self.lease.total_seconds() / 3):
            try:
                self.catalog.jobs.renew(self.owner, self.lease)
            except Exception:  # the catalog is unreachable: the next renewal may still be in time
                self.log.exception("renewing the leases of running enrichment jobs failed")

    def process(self, jobs: list[Job]) -> None:
        try:
            self._run(jobs)
        except Exception:  # not one image's fault (those fail their asset): another worker tries the batch again
            self.catalog.jobs.release(self.owner, [job.id for job in jobs])
            raise

    def _run(self, jobs: list[Job]) -> None:
        """Run claimed jobs (their assets are processing): then ready, or failed when the image cannot be decoded.
        Work a skill can share across the batch (one forward pass of a model) is done first."""
        assets = {job.id: self.catalog.assets.get(job.asset_id) for job in jobs}
        started = [(job, self.context(assets[job.id], {})) for job in jobs if assets[job.id] is not None]
        self._prepare_batch(started)
        for job, context in started:
            executions: list[tuple[SkillExecution, dict[str, Any]]] = []
            try:
                status = self._enrich(job, context, executions)
            except Exception:  # a bug, not a bad image: the asset must not stay "processing" for ever
                self.log.exception("enrichment of asset %s failed unexpectedly", job.asset_id)
                status = "failed"
            context.commit(executions, (job.id, status))

    def context(self, asset: Asset, parameters: dict[str, Any]) -> SkillContext:
        return SkillContext(asset, parameters, self.environment)

    def _prepare_batch(self, started: list[tuple[Job, SkillContext]]) -> None:
        batches: dict[Any, list[SkillContext]] = {}
        for job, context in started:
            for name in job.skills:
                skill = self.skills.get(name)
                if skill is not None and skill.prepare_batch is not None:
                    batch = batches.setdefault(skill.prepare_batch, [])
                    if context not in batch:
                        batch.append(context)
        for prepare, contexts in batches.items():
            try:
                prepare(contexts)
            except Exception:  # the steps run one by one and report the failure themselves
                self.log.exception("batch preparation for %d asset(s) failed", len(contexts))

    def _enrich(self, job: Job, context: SkillContext, executions: list[tuple[SkillExecution, dict[str, Any]]]) -> str:
        """Run the job's skills, adding their execution records to ``executions``; the asset's new status."""
        for name in job.skills:
            skill = self.skills.get(name)
            if skill is None:
                self.log.warning("enrichment skill %r is not registered; skipped", name)
                continue
            context.parameters = skill.validate_parameters(None)  # its defaults
            execution = run_skill(skill, context, "upload", None)
            executions.append((execution, event_row("skill_run", None, context.asset, execution)))
        return "ready" if context.decodable() else "failed"

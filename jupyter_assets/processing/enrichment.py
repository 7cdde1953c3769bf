"""Enrichment: the skills configured for uploads, run by the worker pool from the durable job queue."""

from __future__ import annotations

from typing import Any

from ..library import Library, event_row
from ..model import Asset, SkillExecution
from ..skills import SkillRegistry, run_skill
from ..skills.context import SkillContext, SkillEnvironment
from . import Job, WorkerPool

MAX_JOB_ATTEMPTS = 5  # interrupted by a crash this many times: give up (an image that kills the server)
JOB_BATCH = 8  # queued jobs a worker takes at once: one forward pass of the model serves them all


class Enrichment:
    def __init__(self, library: Library, environment: SkillEnvironment, skills: SkillRegistry, workers: int) -> None:
        self.environment = environment
        self.catalog = library.catalog
        self.skills = skills
        self.log = environment.log
        self.workers = WorkerPool(self.process, workers, self.log, JOB_BATCH)

    def start(self) -> None:
        """Requeue the jobs a previous run left (queued, or interrupted) and start the workers."""
        recovered = self.catalog.jobs.recover(MAX_JOB_ATTEMPTS)
        jobs = [Job(job_id, asset_id, tuple(skills)) for job_id, asset_id, skills in recovered]
        if jobs:
            self.log.info("resuming %d enrichment job(s) left by the previous run", len(jobs))
        self.workers.start(jobs)

    def submit(self, job: Job) -> None:
        self.workers.submit(job)

    def stop(self) -> None:
        self.workers.stop()

    def process(self, jobs: list[Job]) -> None:
        """Run uploads' enrichment: pending -> processing -> ready, or failed when the image cannot be decoded.
        Work a skill can share across the batch (one forward pass of a model) is done first."""
        assets = {job.id: self.catalog.assets.get(job.asset_id) for job in jobs}
        runnable = [(job.id, job.asset_id) for job in jobs if assets[job.id] is not None]
        started_ids = self.catalog.jobs.start(runnable)
        started = [(job, self.context(assets[job.id], {})) for job in jobs if job.id in started_ids]
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

"""Skills run by hand on one asset (``POST .../{id}/skills/{name}/run``), and the list of skills."""

from __future__ import annotations

import json
from typing import Any

from ..auth import Principal
from ..errors import ApiError, asset_not_found
from ..library import Library, event_row
from ..skills import SkillRegistry, run_skill
from ..skills.context import SkillContext, SkillEnvironment


class SkillRuns:
    def __init__(self, library: Library, environment: SkillEnvironment, skills: SkillRegistry) -> None:
        self.library = library
        self.environment = environment
        self.skills = skills

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        principal.require("assets:read")
        return [skill.to_json() for skill in self.skills.all()]

    def model_of(self, skill_name: str) -> str | None:
        """The model a skill runs ("clip", "caption"), if any; None also for an unknown skill."""
        skill = self.skills.get(skill_name)
        return skill.model if skill else None

    def run(self, principal: Principal, asset_id: str, skill_name: str, parameters: Any) -> dict[str, Any]:
        principal.require("assets:write")
        asset = self.library.owned(principal, asset_id)
        skill = self.skills.get(skill_name)
        if skill is None:
            raise ApiError("skill_not_found", f"Skill '{skill_name}' was not found for asset '{asset_id}'.")
        normalised = skill.validate_parameters(parameters)
        context = SkillContext(asset, normalised, self.environment)
        execution = run_skill(skill, context, "manual", json.dumps(normalised) if normalised else None)
        if not context.commit([(execution, event_row("skill_run", principal, asset, execution))]):
            raise asset_not_found(asset_id)  # deleted while the skill ran
        return {
            "succeeded": execution.succeeded,
            "skillName": skill.name,
            "steps": [step.to_run_json() for step in execution.steps],
            "asset": self.library.catalog.assets.detail(asset.id),
        }

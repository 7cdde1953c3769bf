"""The skill registry and the generic runner. A skill family registers itself; the runner never changes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..model import SkillExecution, StepResult, new_id, utc_now

if TYPE_CHECKING:
    from .context import SkillContext

MAX_ERROR_MESSAGE = 2048
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[SkillContext], None]


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    steps: tuple[Step, ...]
    parameters: dict[str, Any] = field(default_factory=lambda: NO_PARAMETERS)
    aliases: tuple[str, ...] = ()
    # Work that is cheaper for many assets at once (one forward pass of a model), done by the worker for a batch
    # of queued jobs before their steps run. It may leave results in each context's scratch; failures are left
    # for the steps to report.
    prepare_batch: Callable[[list[SkillContext]], None] | None = None
    # The model it runs ("clip" or "caption"), which may first have to load: its runs get threads of their own.
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "skillName": self.name,
            "description": self.description,
            "steps": [step.name for step in self.steps],
            "parameters": self.parameters,
        }

    def validate_parameters(self, given: Any) -> dict[str, Any]:
        """Normalised parameters (camelCase names, defaults applied), or 400 skill_parameters_invalid."""
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise _invalid(self.name, "'parameters' must be a JSON object")
        properties: dict[str, Any] = self.parameters.get("properties", {})
        by_lower = {name.lower(): name for name in properties}
        result: dict[str, Any] = {}
        for raw_name, value in given.items():
            name = by_lower.get(raw_name.lower())  # the reference server's PascalCase names are accepted too
            if name is None:
                raise _invalid(self.name, f"unknown parameter '{raw_name}'")
            if value is not None:
                result[name] = _check_value(self.name, name, value, properties[name])
        for name, schema in properties.items():
            if name not in result and "default" in schema:
                result[name] = schema["default"]
        for name in self.parameters.get("required", []):
            if name not in result:
                raise _invalid(self.name, f"parameter '{name}' is required")
        return result


def _invalid(skill: str, problem: str) -> ApiError:
    return ApiError("skill_parameters_invalid", f"Invalid parameters for skill '{skill}': {problem}.")


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}


_LENGTH_RULES = {"string": ("minLength", "maxLength", "characters"), "array": ("minItems", "maxItems", "items")}


def _check_value(skill: str, name: str, value: Any, schema: dict[str, Any]) -> Any:
    """The subset of JSON Schema our skills use: type, enum (case-insensitive), minimum, maximum, items,
    minLength/maxLength and minItems/maxItems."""
    expected = schema.get("type", "string")
    if expected in ("integer", "number") and isinstance(value, str):
        try:
            value = int(value) if expected == "integer" else float(value)
        except ValueError:
            raise _invalid(skill, f"'{name}' must be a {expected}") from None
    if expected == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, _TYPES[expected]) or (expected != "boolean" and isinstance(value, bool)):
        raise _invalid(skill, f"'{name}' must be a {expected}")
    if "enum" in schema:
        matches = [option for option in schema["enum"] if str(option).lower() == str(value).lower()]
        if not matches:
            raise _invalid(skill, f"'{name}' must be one of {', '.join(map(str, schema['enum']))}")
        value = matches[0]
    if expected in _LENGTH_RULES:
        low_rule, high_rule, unit = _LENGTH_RULES[expected]
        low, high = schema.get(low_rule, 0), schema.get(high_rule, len(value))
        if not low <= len(value) <= high:
            raise _invalid(skill, f"'{name}' must have {low} to {high} {unit}")
    if "minimum" in schema and value < schema["minimum"]:
        raise _invalid(skill, f"'{name}' must be at least {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise _invalid(skill, f"'{name}' must be at most {schema['maximum']}")
    if expected == "array" and "items" in schema:
        value = [_check_value(skill, f"{name}[]", item, schema["items"]) for item in value]
    return value


class SkillRegistry:
    def __init__(self) -> None:
        self._skills: dict[str, Skill] = {}
        self._names: dict[str, str] = {}

    def register(self, skill: Skill) -> None:
        self._skills[skill.name] = skill
        for name in (skill.name, *skill.aliases):
            self._names[name.lower()] = skill.name

    def get(self, name: str) -> Skill | None:
        canonical = self._names.get(name.strip().lower())
        return self._skills[canonical] if canonical else None

    def all(self) -> list[Skill]:
        return list(self._skills.values())


def _clean_message(error: BaseException) -> str:
    """The step's error for clients: one line, credentials masked, bounded."""
    message = " ".join(str(error).split()) or f"{type(error).__name__} was raised."
    message = re.sub(r"(?i)bearer\s+\S+", "Bearer ***", message)
    return message[:MAX_ERROR_MESSAGE]


def run_skill(skill: Skill, context: SkillContext, trigger_source: str, parameters_json: str | None) -> SkillExecution:
    """Run every step in order, even after one fails, and return the execution record."""
    execution = SkillExecution(
        id=new_id(),
        asset_id=context.asset.id,
        skill_name=skill.name,
        trigger_source=trigger_source,
        started_at=utc_now(),
        completed_at=None,
        succeeded=False,
        parameters_json=parameters_json,
    )
    for step in skill.steps:
        started = utc_now()
        try:
            step.run(context)
            error = None
        except Exception as raised:  # a failing step is recorded, never propagated
            context.log.info("step %s of %s failed on %s: %s", step.name, skill.name, context.asset.id, raised)
            error = _clean_message(raised)
        execution.steps.append(StepResult(step.name, error is None, error, started, utc_now()))
    execution.completed_at = utc_now()
    execution.succeeded = all(step.succeeded for step in execution.steps)
    return execution


def default_registry() -> SkillRegistry:
    from . import clip, image

    registry = SkillRegistry()
    image.register(registry)
    clip.register(registry)
    return registry

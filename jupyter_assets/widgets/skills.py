"""SkillPanel: pick a skill, fill a form generated from its parameter JSON Schema, run it on assets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as w

from ..client import AssetsClient
from ._base import CLIENT_ERRORS, Panel, error_html, esc, table

FORM_STYLE = {"description_width": "120px"}


def field_for(name: str, schema: dict[str, Any], required: bool) -> w.ValueWidget:
    """The input widget for one JSON Schema property."""
    label = f"{name}{' *' if required else ''}"
    kind = schema.get("type")
    default = schema.get("default")
    common = {"description": label, "description_tooltip": schema.get("description"), "style": FORM_STYLE}
    if "enum" in schema:
        options = list(schema["enum"])
        return w.Dropdown(options=options, value=default if default in options else options[0], **common)
    if kind == "boolean":
        return w.Checkbox(value=bool(default), indent=False, **common)
    if kind == "integer":
        return w.IntText(value=default if default is not None else schema.get("minimum", 0), **common)
    if kind == "number":
        return w.FloatText(value=default if default is not None else schema.get("minimum", 0.0), **common)
    if kind == "array":
        return w.Textarea(value="\n".join(map(str, default or [])), placeholder="one per line", **common)
    return w.Text(value="" if default is None else str(default), **common)


class SkillForm:
    """The widgets for one skill's parameters and the parameters they currently say."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        required = set(parameters.get("required", []))
        self.schemas: dict[str, dict[str, Any]] = parameters.get("properties", {})
        self.required = required
        self.fields = {name: field_for(name, schema, name in required) for name, schema in self.schemas.items()}
        self.initial = {name: field.value for name, field in self.fields.items()}
        rows = [
            w.HBox([field, w.HTML(f'<span style="color:#666">{esc(self.schemas[name].get("description"))}</span>')])
            for name, field in self.fields.items()
        ]
        self.widget = w.VBox(rows or [w.Label("This skill takes no parameters.")])

    def values(self) -> dict[str, Any]:
        """Parameters to send: required ones, ones with a schema default, and ones the user changed."""
        values: dict[str, Any] = {}
        for name, field in self.fields.items():
            value = field.value
            if self.schemas[name].get("type") == "array":
                value = [line.strip() for line in value.splitlines() if line.strip()]
            elif isinstance(field, w.Text) and not value:
                value = None
            if value in (None, []) and name not in self.required:
                continue
            if name in self.required or "default" in self.schemas[name] or field.value != self.initial[name]:
                values[name] = value
        return values


class SkillPanel(Panel):
    def __init__(
        self, client: AssetsClient | None = None, selection: Callable[[], Iterable[str]] | None = None
    ) -> None:
        """`selection` supplies the asset ids the Run button acts on; without it, type them in the ids box."""
        super().__init__(client)
        self.selection = selection
        self.skills: dict[str, dict[str, Any]] = {}
        self.form: SkillForm | None = None
        self.skill = w.Dropdown(description="Skill", style=FORM_STYLE)
        self.skill_description = w.HTML()
        self.form_box = w.VBox()
        self.asset_ids = w.Textarea(description="Asset ids", placeholder="one id per line", style=FORM_STYLE)
        self.target = w.Label()
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="Progress")
        self.results = w.HTML()
        self.skill.observe(lambda _: self._build_form(), names="value")
        self.run_button.on_click(lambda _: self.run())
        targets = [self.target] if selection is not None else [self.asset_ids]
        self.widget = w.VBox(
            [
                self.skill,
                self.skill_description,
                self.form_box,
                *targets,
                w.HBox([self.run_button, self.progress]),
                self.results,
            ]
        )
        if selection is not None:
            self.update_target(selection())
        self.load_skills()

    def load_skills(self) -> None:
        try:
            skills = self.client.skills()
        except CLIENT_ERRORS as error:
            self.results.value = error_html(error)
            return
        self.skills = {skill["name"]: skill for skill in skills}
        self.skill.options = list(self.skills)
        # The server's first skill is chosen (its observer builds the form), so the tab opens on a form to fill
        # rather than on an empty dropdown.
        self.skill.value = next(iter(self.skills), None)

    def _build_form(self) -> None:
        skill = self.skills.get(self.skill.value)
        if skill is None:
            self.form, self.form_box.children, self.skill_description.value = None, [], ""
            return
        self.form = SkillForm(skill.get("parameters") or {})
        self.form_box.children = [self.form.widget]
        steps = " → ".join(skill.get("steps", []))
        self.skill_description.value = f"{esc(skill['description'])}<br><small>Steps: {esc(steps)}</small>"

    def _target_ids(self) -> list[str]:
        if self.selection is not None:
            return list(self.selection())
        return [line.strip() for line in self.asset_ids.value.replace(",", "\n").splitlines() if line.strip()]

    def run(self, asset_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Run the selected skill with the form's parameters on each asset; returns the run results."""
        ids = list(asset_ids) if asset_ids is not None else self._target_ids()
        if self.form is None or not ids:
            self.results.value = "Choose a skill and at least one asset."
            return []
        parameters = self.form.values()
        self.progress.max, self.progress.value = len(ids), 0
        self.run_button.disabled = True
        results: list[dict[str, Any]] = []
        rows: list[list[str]] = []
        try:
            for asset_id in ids:
                try:
                    result = self.client.run_skill(asset_id, self.skill.value, **parameters)
                except CLIENT_ERRORS as error:
                    rows.append([f"<code>{esc(asset_id)}</code>", error_html(error)])
                else:
                    results.append(result)
                    name = result["asset"].original_file_name
                    rows.append([f"{esc(name)}<br><code>{esc(asset_id)}</code>", self._steps_html(result)])
                self.progress.value += 1
                self.results.value = table(["Asset", "Steps"], rows)
        finally:
            self.run_button.disabled = False
        return results

    @staticmethod
    def _steps_html(result: dict[str, Any]) -> str:
        lines = []
        for step in result["steps"]:
            mark = "✓" if step["succeeded"] else "✗"
            error = f": {esc(step['errorMessage'])}" if step.get("errorMessage") else ""
            lines.append(f"{mark} {esc(step['name'])}{error}")
        return "<br>".join(lines)

    def update_target(self, ids: Iterable[str]) -> None:
        """Show how many assets the Run button will act on (the browser calls this on selection changes)."""
        count = len(list(ids))
        self.target.value = f"Runs on the {count} asset(s) selected in the browser."

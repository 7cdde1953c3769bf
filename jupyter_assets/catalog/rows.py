"""Rows and objects, by column name; the SQL fragments several concerns of the catalog share."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..model import (
    ApiKeyRecord,
    Asset,
    Derivative,
    SkillExecution,
    StepResult,
    StorageProfile,
    StructuredResult,
    new_id,
    utc_now,
)
from .cursor import Cursor
from .writer import Insert

R = TypeVar("R")

# A list of ids as one parameter.
IN_IDS = "IN (SELECT unnest(CAST(? AS VARCHAR[])))"

SEARCH_SEPARATOR = "\x1f"  # ASCII unit separator: a match never spans two fields
SEARCHED_COLUMNS = ("original_file_name", "description", "alt_text")  # what search_text is made of


@dataclass(frozen=True)
class RowType(Generic[R]):
    """One kind of row: its columns, named once, make both the SELECT list and the object (keyword arguments), so
    a column added in the wrong place cannot shift the others. ``decode`` turns the columns, by name, into the
    object's fields where they differ (JSON, renamed columns); ``encode`` does the reverse for writes."""

    make: Callable[..., R]
    columns: tuple[str, ...]
    decode: Callable[[dict[str, Any]], dict[str, Any]] = dict
    encode: Callable[[R], dict[str, Any]] = vars

    def select(self, alias: str = "") -> str:
        return ", ".join(alias + column for column in self.columns)

    def __call__(self, row: tuple) -> R:
        return self.make(**self.decode(dict(zip(self.columns, row, strict=True))))

    def values(self, obj: R) -> list[Any]:
        """The object's values for ``columns``, in their order."""
        encoded = self.encode(obj)
        return [encoded[column] for column in self.columns]


def _step(values: dict[str, Any]) -> dict[str, Any]:
    values["name"] = values.pop("step_name")
    return values


def _profile_fields(values: dict[str, Any]) -> dict[str, Any]:
    configuration, secrets = values.pop("configuration_json"), values.pop("secret_json")
    return {**values, "configuration": json.loads(configuration), "secrets": json.loads(secrets)}


def _profile_columns(profile: StorageProfile) -> dict[str, Any]:
    return {
        **vars(profile),
        "configuration_json": json.dumps(profile.configuration),
        "secret_json": json.dumps(profile.secrets),
    }


def _api_key(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "scopes": values["scopes"].split()}


# Each object's fields are its table's columns of the same name unless decode says otherwise.
ASSET = RowType(
    Asset,
    (
        "id", "owner", "status", "original_file_name", "content_type", "extension", "size", "width", "height",
        "checksum_sha256", "storage_provider", "storage_profile_id", "storage_key", "is_public", "description",
        "alt_text", "created_at", "updated_at",
    ),
)  # fmt: skip
DERIVATIVE = RowType(
    Derivative,
    (
        "asset_id", "kind", "content_type", "extension", "size", "width", "height", "checksum_sha256", "storage_key",
        "created_at",
    ),
)  # fmt: skip
STRUCTURED_RESULT = RowType(StructuredResult, ("asset_id", "kind", "payload_json", "model_id", "created_at"))
EXECUTION = RowType(
    SkillExecution,
    ("id", "asset_id", "skill_name", "trigger_source", "started_at", "completed_at", "succeeded"),
)
STEP = RowType(StepResult, ("step_name", "succeeded", "error_message", "started_at", "completed_at"), _step)
PROFILE = RowType(
    StorageProfile,
    (
        "id", "name", "display_name", "provider_type", "is_enabled", "is_default", "configuration_json",
        "secret_json", "created_at", "updated_at",
    ),
    _profile_fields,
    _profile_columns,
)  # fmt: skip
API_KEY = RowType(ApiKeyRecord, ("id", "name", "prefix", "scopes", "created_at", "revoked_at"), _api_key)
EVENT_COLUMNS = ("id", "occurred_at", "kind", "asset_id", "actor", "content_type", "size", "skill_name", "succeeded")


def visibility(visible_to: str | None, alias: str = "") -> tuple[str, list[Any]]:
    """SQL that keeps what a caller may see: public assets and their own (None means everything: admin)."""
    if visible_to is None:
        return "TRUE", []
    return f"({alias}is_public OR {alias}owner = ?)", [visible_to]


def event_insert(event: dict[str, Any]) -> Insert:
    """The usage log's row of ``event``: its kind, and what it knows of the other columns."""
    own = {"id": new_id(), "occurred_at": utc_now(), "kind": event["kind"]}
    row = [own[column] if column in own else event.get(column) for column in EVENT_COLUMNS]
    return Insert("events", ", ".join(EVENT_COLUMNS), row)


def search_text(name: str, description: str | None, alt_text: str | None) -> str:
    """What `q` matches: the three fields lower-cased, joined by a separator that a needle cannot contain."""
    return SEARCH_SEPARATOR.join(part.lower() for part in (name, description, alt_text) if part)


def search_needle(text: str) -> str:
    return text.lower().replace(SEARCH_SEPARATOR, "")


ASSET_ROW_COLUMNS = f"{ASSET.select()}, search_text"


def asset_row(asset: Asset) -> list[Any]:
    """A new asset's values for ASSET_ROW_COLUMNS."""
    return [*ASSET.values(asset), search_text(asset.original_file_name, asset.description, asset.alt_text)]


def update_asset_row(tx: Cursor, asset_id: str, changes: dict[str, Any], checksum: str | None = None) -> bool:
    """Set columns of one asset (catalog column names), search_text along with the columns it is made of: every
    change of those columns goes through here. With ``checksum``, only while the asset's original still has it.
    False when no row was updated."""
    assignments = ", ".join(f"{column} = ?" for column in changes)
    condition, params = "id = ?", [asset_id]
    if checksum is not None:
        condition, params = f"{condition} AND checksum_sha256 = ?", [asset_id, checksum]
    searched = tx.execute(
        f"UPDATE assets SET {assignments} WHERE {condition} RETURNING {', '.join(SEARCHED_COLUMNS)}",
        [*changes.values(), *params],
    ).fetchone()
    if searched is None:
        return False
    if set(SEARCHED_COLUMNS) & changes.keys():
        tx.execute("UPDATE assets SET search_text = ? WHERE id = ?", [search_text(*searched), asset_id])
    return True

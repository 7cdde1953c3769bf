"""The data that crosses boundaries: dataclasses and their camelCase JSON shape, ids and timestamps."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ASSET_STATUSES = ("pending", "processing", "ready", "failed")
THUMBNAIL_KIND = "thumbnail_256"  # the derivative list items and cards show


def new_id() -> str:
    """A UUIDv7 (RFC 9562): 48-bit millisecond timestamp, version, 74 random bits. Sorts by creation time."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def id_time(identifier: str) -> datetime:
    """When new_id minted a UUIDv7, in UTC (naive, as utc_now)."""
    millis = uuid.UUID(identifier).int >> 80
    return datetime.fromtimestamp(millis / 1000, timezone.utc).replace(tzinfo=None)


def parse_id(text: str) -> str | None:
    """The canonical lower-case form of a UUID given in any form the parser accepts, or None."""
    try:
        return str(uuid.UUID(text.strip()))
    except (ValueError, AttributeError):
        return None


def utc_now() -> datetime:
    """Now, in UTC, as the naive datetime the catalog stores."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def human_size(size: int) -> str:
    """Bytes for people, in binary units: 10485760 -> '10 MiB', 1536 -> '1.5 KiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 with an explicit +00:00 offset, as every *AtUtc field is rendered."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc).isoformat()


@dataclass
class Derivative:
    asset_id: str
    kind: str
    content_type: str
    extension: str
    size: int
    width: int | None
    height: int | None
    checksum_sha256: str
    storage_key: str
    created_at: datetime

    def to_json(self, public_url: str | None) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "contentType": self.content_type,
            "extension": self.extension,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "publicUrl": public_url,
            "createdAtUtc": iso(self.created_at),
        }


@dataclass
class StructuredResult:
    asset_id: str
    kind: str
    payload_json: str
    model_id: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "payloadJson": self.payload_json,
            "modelId": self.model_id,
            "createdAtUtc": iso(self.created_at),
        }


@dataclass
class StepResult:
    name: str
    succeeded: bool
    error_message: str | None
    started_at: datetime
    completed_at: datetime

    def to_summary_json(self) -> dict[str, Any]:
        return {
            "stepName": self.name,
            "succeeded": self.succeeded,
            "errorMessage": self.error_message,
            "startedAtUtc": iso(self.started_at),
            "completedAtUtc": iso(self.completed_at),
        }

    def to_run_json(self) -> dict[str, Any]:
        return {"name": self.name, "succeeded": self.succeeded, "errorMessage": self.error_message}


@dataclass
class SkillExecution:
    id: str
    asset_id: str
    skill_name: str
    trigger_source: str
    started_at: datetime
    completed_at: datetime | None
    succeeded: bool
    steps: list[StepResult] = field(default_factory=list)
    parameters_json: str | None = None

    def to_summary_json(self) -> dict[str, Any]:
        return {
            "executionId": self.id,
            "skillName": self.skill_name,
            "triggerSource": self.trigger_source,
            "startedAtUtc": iso(self.started_at),
            "completedAtUtc": iso(self.completed_at),
            "succeeded": self.succeeded,
            "steps": [step.to_summary_json() for step in self.steps],
        }


@dataclass
class Asset:
    id: str
    owner: str
    status: str
    original_file_name: str
    content_type: str
    extension: str
    size: int
    width: int | None
    height: int | None
    checksum_sha256: str
    storage_provider: str
    storage_profile_id: str | None
    storage_key: str
    is_public: bool
    description: str | None
    alt_text: str | None
    created_at: datetime
    updated_at: datetime
    type: str = "image"
    # Filled in by the detail query only.
    derivatives: list[Derivative] = field(default_factory=list)
    structured_results: list[StructuredResult] = field(default_factory=list)
    latest_execution: SkillExecution | None = None
    # Set by search by meaning only.
    score: float | None = None

    @property
    def stored_file_name(self) -> str:
        return self.storage_key.rsplit("/", 1)[-1]

    def list_item_json(self, public_url: str | None, thumbnail_url: str | None) -> dict[str, Any]:
        item = {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "originalFileName": self.original_file_name,
            "contentType": self.content_type,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "storageProvider": self.storage_provider,
            "storageProviderProfileId": self.storage_profile_id,
            "publicUrl": public_url if self.is_public else None,
            # Like the derivatives' URLs in the detail JSON: none while the asset is private.
            "thumbnailUrl": thumbnail_url if self.is_public else None,
            "isPublic": self.is_public,
            "description": self.description,
            "altText": self.alt_text,
            "owner": self.owner,
            "createdAtUtc": iso(self.created_at),
            "updatedAtUtc": iso(self.updated_at),
        }
        if self.score is not None:
            item["score"] = self.score
        return item

    def detail_json(self, public_url: str | None, derivative_urls: dict[str, str | None]) -> dict[str, Any]:
        visible_url = public_url if self.is_public else None
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "originalFileName": self.original_file_name,
            "storedFileName": self.stored_file_name,
            "contentType": self.content_type,
            "extension": self.extension,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "checksumSha256": self.checksum_sha256,
            "storageProvider": self.storage_provider,
            "storageProviderProfileId": self.storage_profile_id,
            "storageKey": self.storage_key,
            "publicUrl": visible_url,
            "isPublic": self.is_public,
            "description": self.description,
            "altText": self.alt_text,
            "owner": self.owner,
            "createdAtUtc": iso(self.created_at),
            "updatedAtUtc": iso(self.updated_at),
            "derivatives": [
                d.to_json(derivative_urls.get(d.kind) if self.is_public else None) for d in self.derivatives
            ],
            "structuredResults": [r.to_json() for r in self.structured_results],
            "latestExecutionSummary": (self.latest_execution.to_summary_json() if self.latest_execution else None),
        }


@dataclass
class ListQuery:
    """The list endpoint's filters after parsing and fallbacks."""

    page: int = 1
    page_size: int = 20
    text: str | None = None
    content_type: str | None = None
    status: str | None = None
    order_by: str = "createdAtUtc"
    descending: bool = True
    meaning: str | None = None  # `text=`: rank by similarity to this text instead of ordering


@dataclass
class Page:
    items: list[Asset]
    page: int
    page_size: int
    total: int


@dataclass
class ContentTypeUsage:
    content_type: str
    count: int
    total_bytes: int


@dataclass
class UsageStats:
    total_assets: int
    total_bytes: int
    total_derivatives: int
    content_type_breakdown: list[ContentTypeUsage]
    most_active_skill: tuple[str, int] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "totalAssets": self.total_assets,
            "totalBytes": self.total_bytes,
            "totalDerivatives": self.total_derivatives,
            "contentTypeBreakdown": [
                {"contentType": c.content_type, "count": c.count, "totalBytes": c.total_bytes}
                for c in self.content_type_breakdown
            ],
            "mostActiveSkill": (
                {"skillName": self.most_active_skill[0], "runCount": self.most_active_skill[1]}
                if self.most_active_skill
                else None
            ),
        }


@dataclass
class ApiKeyRecord:
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": self.scopes,
            "createdAtUtc": iso(self.created_at),
            "revokedAtUtc": iso(self.revoked_at),
        }


@dataclass
class StorageProfile:
    """A named storage provider (type, configuration and its secrets) that uploads can target."""

    id: str
    name: str
    display_name: str | None
    provider_type: str  # local, s3 or github-repo
    is_enabled: bool
    is_default: bool
    configuration: dict[str, Any]
    secrets: dict[str, Any]  # write-only: never returned, never logged
    created_at: datetime
    updated_at: datetime

"""Storage provider profiles: what each type accepts, how a profile is shown, and the storage it runs on."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ApiError
from ..model import StorageProfile, iso
from . import Storage
from .local import LocalStorage

# providerType as clients may send it -> as stored and shown (also the asset's storageProvider)
_MATCHES_DEFAULT = "runtime_matches_db_default_provider_type"
PROVIDER_TYPES = {"local": "local", "s3": "s3", "s3-compatible": "s3", "github-repo": "github-repo"}
_FLAGS = (
    "supportsPublicRead",
    "supportsPrivateRead",
    "supportsVisibilityToggle",
    "supportsDelete",
    "supportsDirectPublicUrl",
    "requiresAccessProxy",
    "recommendedForPrimaryStorage",
    "isPlatformBacked",
    "isExperimental",
    "requiresTokenForPrivateRead",
)
# The reference server's capability flags per type, in _FLAGS order.
CAPABILITIES = {
    "local": (True, True, True, True, False, True, True, False, False, False),
    "s3": (True, True, True, True, True, False, True, False, False, False),
    "github-repo": (True, True, False, True, True, True, False, True, True, True),
}
_SUMMARY_KEYS = {  # configurationSummary key -> configuration keys it is read from, first present wins
    "providerName": ("providerName",),
    "rootPath": ("rootPath",),
    "endpointHost": ("endpoint",),
    "bucketOrContainer": ("bucket", "container"),
    "region": ("region",),
    "publicBaseUrl": ("publicBaseUrl",),
    "forcePathStyle": ("forcePathStyle",),
    "owner": ("owner",),
    "repository": ("repo", "repository"),
    "reference": ("ref", "branch"),
    "releaseTagMode": ("releaseTagMode",),
    "fixedTag": ("fixedTag",),
    "pathPrefix": ("assetPathPrefix", "basePath", "prefix"),
    "visibilityPolicy": ("visibilityPolicy",),
    "basePath": ("basePath",),
    "assetPathPrefix": ("assetPathPrefix",),
    "apiBaseUrl": ("apiBaseUrl",),
    "rawBaseUrl": ("rawBaseUrl",),
}


def profile_json(profile: StorageProfile) -> dict[str, Any]:
    """The reference server's profile shape. Secrets are never part of it."""
    return {
        "id": profile.id,
        "name": profile.name,
        "displayName": profile.display_name,
        "providerType": profile.provider_type,
        "isEnabled": profile.is_enabled,
        "isDefault": profile.is_default,
        "capabilities": capabilities(profile.provider_type),
        "configurationSummary": _summary(profile.provider_type, profile.configuration),
        "createdAtUtc": iso(profile.created_at),
        "updatedAtUtc": iso(profile.updated_at),
    }


def overview(listed: list[StorageProfile], configured_type: str) -> dict[str, Any]:
    """The reference server's overview: the profiles, the default one, and where uploads without a profile go."""
    default = next((profile for profile in listed if profile.is_default), None)
    default_json = profile_json(default) if default else None
    if default is None:
        runtime_type, source, code = configured_type, "configuration", "db_default_profile_missing"
        message = "No default write profile is set in database. Runtime provider is selected from configuration."
    elif default.is_enabled:
        runtime_type, source, code = default.provider_type, "database-default-profile", _MATCHES_DEFAULT
        message = "Runtime write target is resolved from the database default write profile."
    else:
        runtime_type, source, code = default.provider_type, "database-default-profile", "db_default_profile_disabled"
        message = (
            "Database default write profile is disabled. Uploads without an explicit storage profile will be "
            "rejected until the default profile is enabled or replaced."
        )
    has_default = default is not None
    return {
        "profiles": [profile_json(profile) for profile in listed],
        "defaultProfile": default_json,
        "defaultWriteProfile": default_json,
        "runtime": {
            "providerType": runtime_type,
            "providerName": runtime_type,
            "capabilities": capabilities(runtime_type),
            "isConfigurationDriven": not has_default,
            "matchesDefaultProfileType": True if has_default else None,
        },
        "alignment": {
            "runtimeSelectionSource": source,
            "hasDefaultProfile": has_default,
            "isDefaultProfileEnabled": default.is_enabled if default else None,
            "providerTypeMatchesDefaultProfile": True if has_default else None,
            "code": code,
            "message": message,
        },
    }


def copies_on_put(provider_type: str) -> bool:
    """Whether the type's storage has put_copies (S3Storage), known without importing boto3."""
    return PROVIDER_TYPES.get(provider_type) == "s3"


def capabilities(provider_type: str) -> dict[str, bool]:
    return dict(zip(_FLAGS, CAPABILITIES[provider_type], strict=True))


def _summary(provider_type: str, configuration: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key, sources in _SUMMARY_KEYS.items():
        value = next((configuration[source] for source in sources if configuration.get(source) is not None), None)
        if key == "endpointHost" and isinstance(value, str):
            value = urlsplit(value).netloc or None
        summary[key] = value
    summary["providerName"] = summary["providerName"] or provider_type
    return summary


def check(provider_type: str, configuration: dict[str, Any], secrets: dict[str, Any], cache_dir: Path) -> None:
    """Validate a profile's configuration for its type: a 400 ApiError naming the field, never a secret's value."""
    if provider_type == "local":
        _check_local(configuration, secrets)
    else:
        build(provider_type, configuration, secrets, cache_dir, "")  # the providers validate as they are built


def build(
    provider_type: str, configuration: dict[str, Any], secrets: dict[str, Any], cache_dir: Path, content_url: str
) -> Storage:
    """The storage a profile runs on. ``cache_dir``: the profile's own folder for what a provider keeps locally
    (a git clone); ``content_url``: the server's public content route, for local profiles without a base URL."""
    if provider_type == "local":
        _check_local(configuration, secrets)
        root = Path(configuration["rootPath"]).expanduser()
        return LocalStorage(root, configuration.get("publicBaseUrl") or content_url)
    # Imported here: only S3 and git profiles need boto3 and the git driver.
    if provider_type == "s3":
        from .s3 import S3Storage

        return S3Storage.from_configuration(configuration, secrets)
    from .git import GitRepoStorage

    return GitRepoStorage.from_configuration(configuration, secrets, cache_dir)


def _check_local(configuration: dict[str, Any], secrets: dict[str, Any]) -> None:
    if secrets:
        raise ApiError(
            "storage_provider_profile_secret_not_supported", "Local storage profiles take no secret configuration.", 400
        )
    root = configuration.get("rootPath")
    if root is None or (isinstance(root, str) and not root.strip()):
        raise ApiError("storage_provider_profile_root_path_required", "rootPath is required.", 400)
    if not isinstance(root, str):
        raise ApiError("storage_provider_profile_configuration_invalid", "rootPath must be a string.", 400)
    base = configuration.get("publicBaseUrl")
    if base is not None and not (isinstance(base, str) and urlsplit(base).scheme in ("http", "https")):
        raise ApiError(
            "storage_provider_profile_public_base_url_invalid", "publicBaseUrl must be an absolute http(s) URL.", 400
        )

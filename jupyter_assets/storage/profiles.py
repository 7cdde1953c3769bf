"""Storage provider profiles: their administration (the admin routes and the profiles declared in configuration),
what each type accepts, how a profile is shown, and the storage it runs on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..auth import ALL_SCOPES, Principal
from ..errors import ApiError, ConfigurationError, request_invalid
from ..model import StorageProfile, iso, new_id, parse_id, utc_now
from . import Storage
from .local import LocalStorage

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..library import Library

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
            "storage_provider_profile_secret_not_supported", "Local storage profiles take no secret configuration."
        )
    root = configuration.get("rootPath")
    if root is None or (isinstance(root, str) and not root.strip()):
        raise ApiError("storage_provider_profile_root_path_required", "rootPath is required.")
    if not isinstance(root, str):
        raise ApiError("storage_provider_profile_configuration_invalid", "rootPath must be a string.")
    base = configuration.get("publicBaseUrl")
    if base is not None and not (isinstance(base, str) and urlsplit(base).scheme in ("http", "https")):
        raise ApiError(
            "storage_provider_profile_public_base_url_invalid", "publicBaseUrl must be an absolute http(s) URL."
        )


class StorageProfiles:
    """The admin routes of storage provider profiles, and the profiles declared in configuration."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.catalog = library.catalog

    def declare(self, declared_profiles: tuple[dict[str, Any], ...]) -> None:
        """Create or update (by name) the profiles declared in configuration; an invalid one stops the start."""
        configuration = Principal("configuration", ALL_SCOPES, "configuration")
        for declared in declared_profiles:
            name = str(declared.get("name", "")).strip().lower()
            existing = next((p for p in self.catalog.profiles.all() if p.name.lower() == name), None)
            try:
                if existing is None:
                    self.create(configuration, declared)
                else:
                    changes = {
                        key: value for key, value in declared.items() if key not in ("providerType", "isDefault")
                    }
                    self.update(configuration, existing.id, changes)
                    if declared.get("isDefault") and not existing.is_default:
                        self.set_default(configuration, existing.id)
            except ApiError as error:
                raise ConfigurationError(
                    f"Storage profile '{declared.get('name')}' in configuration: {error.message}"
                ) from None

    def overview(self, principal: Principal) -> dict[str, Any]:
        principal.require("assets:admin")
        return overview(self.catalog.profiles.all(), self.library.storage.name)

    def create(self, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        principal.require("assets:admin")
        raw_type = body.get("providerType")
        if not isinstance(raw_type, str) or not raw_type.strip():
            raise ApiError("storage_provider_profile_provider_type_required", "providerType is required.")
        name = self._unique_name(body.get("name"), None)
        provider_type = PROVIDER_TYPES.get(raw_type.strip().lower())
        if provider_type is None:
            raise ApiError(
                "storage_provider_profile_provider_type_unsupported",
                f"providerType '{raw_type.strip()}' is not supported: use local, s3 or github-repo.",
            )
        configuration, secrets = _profile_objects(body, required=True)
        is_enabled = _optional_bool(body, "isEnabled", True)
        is_default = _optional_bool(body, "isDefault", False)
        profile_id = new_id()
        check(provider_type, configuration, secrets or {}, self.library.profile_cache(profile_id))
        if is_default and not is_enabled:
            raise _default_must_be_enabled("A default storage provider profile must be enabled.")
        now = utc_now()
        profile = StorageProfile(
            profile_id, name, _display_name(body.get("displayName")), provider_type, is_enabled, is_default,
            configuration, secrets or {}, now, now,
        )  # fmt: skip
        self.catalog.profiles.save(profile)
        return profile_json(profile)

    def update(self, principal: Principal, profile_id: str, body: dict[str, Any]) -> dict[str, Any]:
        principal.require("assets:admin")
        if "isEnabled" in body and body["isEnabled"] is None:
            raise request_invalid("The field 'isEnabled' must be true or false.")
        profile = existing_profile(self.catalog, profile_id)
        if "name" in body:
            profile.name = self._unique_name(body["name"], profile.id)
        if "displayName" in body:
            profile.display_name = _display_name(body["displayName"])
        if "isEnabled" in body:
            profile.is_enabled = _optional_bool(body, "isEnabled", profile.is_enabled)
            if profile.is_default and not profile.is_enabled:
                raise _default_must_be_enabled("Default storage provider profiles must remain enabled.")
        if "configuration" in body or "secretConfiguration" in body:
            configuration, secrets = _profile_objects(body, required="configuration" in body)
            if "configuration" in body:
                profile.configuration = configuration
            if "secretConfiguration" in body:  # null clears the secret; omitted keeps it
                profile.secrets = secrets or {}
            cache = self.library.profile_cache(profile.id)
            check(profile.provider_type, profile.configuration, profile.secrets, cache)
        profile.updated_at = utc_now()
        self.catalog.profiles.save(profile)
        self.library.forget_storage(profile.id)
        return profile_json(profile)

    def set_default(self, principal: Principal, profile_id: str) -> dict[str, Any]:
        principal.require("assets:admin")
        profile = existing_profile(self.catalog, profile_id)
        if not profile.is_enabled:
            raise _default_must_be_enabled("Only enabled storage provider profiles can be set as default.")
        profile.is_default = True
        profile.updated_at = utc_now()
        self.catalog.profiles.save(profile)
        return profile_json(profile)

    def delete(self, principal: Principal, profile_id: str) -> dict[str, Any]:
        """Remove a profile; one that still holds assets is disabled instead, so they stay readable."""
        principal.require("assets:admin")
        profile = existing_profile(self.catalog, profile_id)
        status = self.catalog.profiles.delete(profile.id)
        if status == "deleted":
            self.library.forget_storage(profile.id)
        return {"id": profile.id, "wasDefault": profile.is_default, "status": status, "deletedAtUtc": utc_now()}

    def _unique_name(self, raw: Any, own_id: str | None) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise ApiError("storage_provider_profile_name_required", "name is required.")
        name = raw.strip()
        if any(p.name.lower() == name.lower() and p.id != own_id for p in self.catalog.profiles.all()):
            raise ApiError(
                "storage_provider_profile_name_conflict",
                f"A storage provider profile named '{name}' already exists.",
            )
        return name


def existing_profile(catalog: Catalog, profile_id: str) -> StorageProfile:
    """The profile of an id a client sent, or 404."""
    canonical = parse_id(profile_id.strip())
    profile = catalog.profiles.get(canonical) if canonical else None
    if profile is None:
        raise ApiError(
            "storage_provider_profile_not_found", f"Storage provider profile '{profile_id.strip()}' was not found."
        )
    return profile


def _default_must_be_enabled(message: str) -> ApiError:
    return ApiError("storage_provider_profile_default_requires_enabled", message)


def _profile_objects(body: dict[str, Any], required: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(configuration, secrets) of a profile request, both JSON objects (secrets may be null)."""
    configuration = body.get("configuration")
    if required and not isinstance(configuration, dict):
        raise ApiError(
            "storage_provider_profile_configuration_required",
            "Configuration is required and must be a JSON object.",
        )
    secrets = body.get("secretConfiguration")
    if secrets is not None and not isinstance(secrets, dict):
        raise ApiError(
            "storage_provider_profile_secret_configuration_invalid",
            "secretConfiguration must be a JSON object or null.",
        )
    return configuration or {}, secrets


def _optional_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise request_invalid(f"The field '{name}' must be true or false.")
    return value


def _display_name(raw: Any) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise request_invalid("The field 'displayName' must be a string.")
    return raw.strip() or None if raw else None

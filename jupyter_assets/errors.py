"""Errors are values with codes: raise ApiError anywhere, one place turns it into the envelope."""

from __future__ import annotations

# Every code the service can answer with, and its HTTP status: ApiError takes its status from here. A test checks
# that each code raised in the source is listed here and that each one listed is documented in the OpenAPI document.
ERROR_CODES: dict[str, int] = {
    "request_invalid": 400,
    "request_body_too_large": 413,
    "request_uri_too_long": 414,
    "internal_server_error": 500,
    "auth_required": 401,
    "api_key_invalid": 401,
    "token_invalid": 401,
    "token_expired": 401,
    "auth_forbidden": 403,
    "asset_not_found": 404,
    "asset_file_required": 400,
    "asset_description_too_long": 400,
    "asset_alt_text_too_long": 400,
    "asset_file_empty": 400,
    "asset_file_too_large": 400,
    "asset_content_type_missing": 400,
    "asset_content_type_not_allowed": 400,
    "asset_filename_invalid": 400,
    "asset_content_type_mismatch": 400,
    "asset_image_unreadable": 400,
    "asset_image_too_large": 400,
    "skill_not_found": 404,
    "storage_provider_profile_not_found": 404,
    "skill_parameters_invalid": 400,
    "export_table_invalid": 400,
    "api_key_not_found": 404,
    "range_not_satisfiable": 416,
    "storage_provider_storage_key_invalid": 400,
    "method_not_allowed": 405,
    "not_found": 404,
    "model_unavailable": 409,
    "asset_not_embedded": 409,
    "storage_provider_unavailable": 400,
    "storage_provider_bucket_not_found": 400,
    "storage_provider_access_denied": 400,
    "storage_provider_profile_endpoint_invalid": 400,
    "storage_provider_profile_bucket_required": 400,
    "storage_provider_profile_region_required": 400,
    "storage_provider_profile_public_base_url_invalid": 400,
    "storage_provider_profile_configuration_invalid": 400,
    "storage_provider_profile_github_owner_required": 400,
    "storage_provider_profile_github_owner_invalid": 400,
    "storage_provider_profile_github_repo_required": 400,
    "storage_provider_profile_github_repo_invalid": 400,
    "storage_provider_profile_github_repo_ref_required": 400,
    "storage_provider_profile_github_repo_ref_invalid": 400,
    "storage_provider_profile_github_path_prefix_invalid": 400,
    "storage_provider_profile_github_visibility_policy_invalid": 400,
    "storage_provider_profile_github_token_invalid": 400,
    "storage_provider_profile_github_repo_token_required_for_private": 400,
    "storage_provider_profile_github_repo_raw_base_url_invalid": 400,
    "storage_provider_upsert_failed": 400,
    "storage_provider_profile_provider_type_required": 400,
    "storage_provider_profile_provider_type_unsupported": 400,
    "storage_provider_profile_name_required": 400,
    "storage_provider_profile_name_conflict": 400,
    "storage_provider_profile_configuration_required": 400,
    "storage_provider_profile_secret_configuration_invalid": 400,
    "storage_provider_profile_default_requires_enabled": 400,
    "storage_provider_profile_root_path_required": 400,
    "storage_provider_profile_secret_not_supported": 400,
    "storage_provider_profile_access_key_required": 400,
    "storage_provider_profile_secret_key_required": 400,
    "storage_provider_profile_disabled": 400,
    "storage_provider_default_write_profile_disabled": 400,
    "storage_provider_default_write_profile_missing": 400,
    "asset_storage_provider_profile_not_found": 400,
}


class ApiError(Exception):
    """A failure the client can act on: a stable snake_case code, a human message and the code's HTTP status,
    taken from ``ERROR_CODES``."""

    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"Error code {code!r} is not in ERROR_CODES")
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = ERROR_CODES[code]
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"ApiError({self.code!r}, {self.message!r}, {self.status})"


def request_invalid(message: str) -> ApiError:
    return ApiError("request_invalid", message)


def asset_not_found(asset_id: str) -> ApiError:
    return ApiError("asset_not_found", f"Asset '{asset_id}' was not found.")


def forbidden(message: str = "You do not have permission to do this.") -> ApiError:
    return ApiError("auth_forbidden", message)


class ConfigurationError(Exception):
    """A setting the server cannot start with (the message says which and why)."""

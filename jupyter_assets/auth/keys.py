"""Stored API keys: created (the key shown once, only its hash kept), listed, revoked, and turned into the caller
of each request, with the principals of the keys already seen kept in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ApiError, request_invalid
from ..model import ApiKeyRecord, new_id, utc_now
from . import ALL_SCOPES, Principal, api_key_owner, generate_api_key, hash_api_key, parse_scopes

if TYPE_CHECKING:
    from ..catalog import Catalog


class ApiKeys:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._principals: dict[str, Principal] = {}  # by key hash; cleared whenever a key is revoked

    # -- for whoever holds the catalog (the CLI) and for the admin routes below ---------------------------

    def create(self, name: str, scopes: frozenset[str]) -> tuple[str, ApiKeyRecord]:
        """A new key and its record; the key itself is returned once and never stored."""
        key = generate_api_key()
        record = ApiKeyRecord(new_id(), name, key[:7], sorted(scopes), utc_now(), None)
        self.catalog.keys.insert(record, hash_api_key(key))
        return key, record

    def revoke(self, key_id_or_name: str) -> int:
        """Revoke the active key with this id, or every active key with this name; how many were revoked."""
        revoked = self.catalog.keys.revoke(key_id_or_name, utc_now())
        self.forget_principals()
        return revoked

    def forget_principals(self) -> None:
        """A key was revoked (here, or by another server of a team library): look every key up again."""
        self._principals.clear()

    def revoke_named(self, name: str) -> int:
        """Revoke the active keys of this name only (an id that happens to equal it is left alone)."""
        return sum(self.revoke(record.id) for record in self.records() if record.name == name and not record.revoked_at)

    def records(self) -> list[ApiKeyRecord]:
        return self.catalog.keys.all()

    # -- authentication -----------------------------------------------------------------------------------

    def principal_for(self, key: str) -> Principal | None:
        """The principal of a stored key (remembered once seen), None for an unknown one; a revoked key is
        refused with a clear code."""
        key_hash = hash_api_key(key)
        principal = self._principals.get(key_hash)
        if principal is not None:
            return principal
        record = self.catalog.keys.find(key_hash)
        if record is None:
            return None
        if record.revoked_at is not None:
            raise ApiError("api_key_invalid", "This API key has been revoked.")
        principal = Principal(api_key_owner(record.name), parse_scopes(record.scopes), "api_key")
        self._principals[key_hash] = principal
        return principal

    def is_cached(self, key: str) -> bool:
        """True when principal_for needs no catalog read (so it may run on the event loop)."""
        return hash_api_key(key) in self._principals

    # -- the admin routes (/api/v1/system/api-keys) -------------------------------------------------------

    def create_as(self, principal: Principal, name: Any, scopes: Any) -> dict[str, Any]:
        principal.require("assets:admin")
        if not isinstance(name, str) or not name.strip():
            raise request_invalid("The field 'name' is required.")
        try:
            parsed = parse_scopes(scopes) if scopes is not None else ALL_SCOPES
        except (ValueError, TypeError) as error:
            raise request_invalid(f"The field 'scopes' is invalid: {error}") from error
        key, record = self.create(name.strip(), parsed)
        return {**record.to_json(), "key": key}

    def list_as(self, principal: Principal) -> list[dict[str, Any]]:
        principal.require("assets:admin")
        return [record.to_json() for record in self.records()]

    def revoke_as(self, principal: Principal, key_id: str) -> None:
        principal.require("assets:admin")
        if self.revoke(key_id) == 0:
            raise ApiError("api_key_not_found", f"No active API key '{key_id}'.")

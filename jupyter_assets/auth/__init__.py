"""Who is calling: principals, scopes, API keys and JWTs."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import jwt

from ..errors import ApiError

if TYPE_CHECKING:
    from .keys import ApiKeys

SCOPES = ("assets:read", "assets:write", "assets:delete", "assets:admin")
ALL_SCOPES = frozenset(SCOPES)
API_KEY_PREFIX = "ja_"
JWT_LEEWAY_SECONDS = 30
# Owners of different kinds of credential never collide: each kind has its own prefix, so no JWT subject or
# Jupyter user name can spell an API key's owner, nor the configured keys' (migration 4 moved older rows).
CONFIG_KEY_OWNER = "config-key"


def jwt_owner(subject: str) -> str:
    return f"jwt:{subject}"


def api_key_owner(name: str) -> str:
    return f"key:{name}"


def jupyter_owner(user_name: str) -> str:
    return f"jupyter:{user_name}"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its subject (the owner of what it uploads) and what it may do."""

    subject: str
    scopes: frozenset[str]
    via: str  # "api_key", "jwt" or "jupyter"

    @property
    def is_admin(self) -> bool:
        return "assets:admin" in self.scopes

    @property
    def visible_owner(self) -> str | None:
        """The owner filter for queries: None (everything) for admins, else the caller's own subject."""
        return None if self.is_admin else self.subject

    def require(self, scope: str) -> None:
        if scope not in self.scopes and not self.is_admin:
            raise ApiError("auth_forbidden", f"This credential lacks the '{scope}' scope.")


def parse_scopes(text: str | list[str] | None) -> frozenset[str]:
    """Scopes from a space- or comma-separated string; unknown names are refused."""
    if text is None:
        return frozenset()
    names = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    unknown = [name for name in names if name not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    return frozenset(names)


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """Keys are 256 random bits, so a plain SHA-256 is a safe one-way store (no salt or slow hash needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_jwt(credential: str) -> bool:
    return credential.count(".") == 2


@dataclass(frozen=True)
class JwtSettings:
    secret: str | None = None
    public_key: str | None = None
    issuer: str | None = None
    audience: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.public_key)

    def algorithms(self) -> list[str]:
        """Exactly one family: an HMAC secret or an asymmetric public key, never both (no algorithm confusion)."""
        if self.public_key:
            return ["RS256", "ES256"]
        return ["HS256"]


def verify_jwt(token: str, settings: JwtSettings) -> Principal:
    if not settings.configured:
        raise ApiError("token_invalid", "JWT authentication is not configured on this server.")
    key = settings.public_key or settings.secret
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in settings.algorithms():
            raise ApiError("token_invalid", f"Token algorithm '{header.get('alg')}' is not accepted.")
        claims = jwt.decode(
            token,
            key,
            algorithms=settings.algorithms(),
            issuer=settings.issuer or None,
            audience=settings.audience or None,
            leeway=JWT_LEEWAY_SECONDS,
            options={"require": ["exp", "sub"], "verify_aud": bool(settings.audience)},
        )
    except jwt.ExpiredSignatureError as error:
        raise ApiError("token_expired", "The token has expired.") from error
    except jwt.PyJWTError as error:
        raise ApiError("token_invalid", f"The token is invalid: {error}") from error
    try:
        scopes = parse_scopes(claims.get("scope", ""))
    except ValueError as error:
        raise ApiError("token_invalid", f"The token is invalid: {error}") from error
    return Principal(jwt_owner(str(claims["sub"])), scopes, "jwt")


def mint_jwt(
    subject: str,
    scopes: frozenset[str],
    ttl: timedelta,
    *,
    secret: str | None = None,
    private_key: str | None = None,
    algorithm: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    now = datetime.now(timezone.utc)
    claims = {"sub": subject, "scope": " ".join(sorted(scopes)), "iat": now, "exp": now + ttl}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    if private_key:
        return jwt.encode(claims, private_key, algorithm=algorithm or "RS256")
    if not secret:
        raise ValueError("a JWT secret (JUPYTER_ASSETS_JWT_SECRET) or a private key is needed to mint a token")
    return jwt.encode(claims, secret, algorithm="HS256")


def match_config_key(credential: str, configured: list[str]) -> bool:
    """Constant-time comparison against every configured key."""
    found = False
    for key in configured:
        found |= hmac.compare_digest(credential.encode(), key.strip().encode())
    return found


class Authenticator:
    """Turns a bearer credential into a Principal: a JWT (three dot-separated parts) or an API key."""

    def __init__(self, config_keys: list[str], jwt_settings: JwtSettings, stored_keys: ApiKeys) -> None:
        self.config_keys = [key.strip() for key in config_keys if key.strip()]
        self.jwt_settings = jwt_settings
        self.stored_keys = stored_keys

    def answers_in_memory(self, credential: str) -> bool:
        """True when authenticate() needs no catalog read (so it may run on the event loop)."""
        return (
            is_jwt(credential)
            or match_config_key(credential, self.config_keys)
            or self.stored_keys.is_cached(credential)
        )

    def authenticate(self, credential: str) -> Principal | None:
        """A principal, None for an unknown API key, or ApiError for a bad JWT or a revoked key."""
        if is_jwt(credential):
            return verify_jwt(credential, self.jwt_settings)
        if match_config_key(credential, self.config_keys):
            return Principal(CONFIG_KEY_OWNER, ALL_SCOPES, "api_key")
        return self.stored_keys.principal_for(credential)

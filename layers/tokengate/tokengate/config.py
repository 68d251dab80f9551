"""Configuration: one frozen, validated object built once from the environment.

Every function reads the same variable names (documented in the README; template.yaml sets each
from a parameter). A bad value raises :class:`ConfigurationError` at start, never a per-request
500. The mapping is passed in, so the core never reads ``os.environ`` itself. Defaults and bounds
are the domain modules' own constants: each is written once, beside the rule it constrains.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .apitoken import DEFAULT_TTL, MAX_TTL, MIN_TTL
from .claims import DEFAULT_LEEWAY_SECONDS, MAX_LEEWAY_SECONDS
from .errors import ConfigurationError
from .exchange import DEFAULT_CLIENT_ID, DEFAULT_PASSTHROUGH_CLAIMS
from .jwks import (
    DEFAULT_PUBLISH_MAX_AGE,
    MAX_CACHE_SECONDS,
    MAX_PUBLISH_MAX_AGE,
    MIN_COOLDOWN_SECONDS,
)
from .scopes import DEFAULT_SCOPES_CLAIM
from .supabase import DEFAULT_MIN_AAL

SIGNING_MODES = ("kms", "secretsmanager")
SIGNING_ALGORITHMS = ("RS256", "ES256")


def _list(value: str) -> tuple[str, ...]:
    return tuple(item for item in value.replace(",", " ").split() if item)


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise ConfigurationError(f"{name} must be true or false")


def _int(name: str, value: str, default: int, low: int, high: int) -> int:
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise ConfigurationError(f"{name} must be within {low}-{high}")
    return number


def _json_object(name: str, value: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    try:
        document = json.loads(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a JSON object") from None
    if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
        raise ConfigurationError(f"{name} must be a JSON object of strings")
    return document


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query:
        raise ConfigurationError(f"{name} must be an http(s) URL")
    return value.rstrip("/")


@dataclass(frozen=True)
class Settings:
    """Every setting, read and checked once by :meth:`from_env` (the only constructor)."""

    supabase_url: str
    supabase_jwt_secret_arn: str
    supabase_jwks_enabled: bool
    signing_mode: str
    signing_alg: str
    signing_key_id: str
    published_key_ids: tuple[str, ...]
    issuer: str
    audiences: tuple[str, ...]
    default_audience: str
    resources: Mapping[str, str]
    token_ttl: int
    scopes_supported: tuple[str, ...]
    default_scopes: tuple[str, ...]
    scopes_claim: str
    default_client_id: str
    passthrough_claims: tuple[str, ...]
    allow_anonymous: bool
    allowed_client_ids: frozenset[str]
    min_aal: str
    leeway: int
    jwks_cache_seconds: int
    jwks_cooldown_seconds: int
    jwks_publish_max_age: int
    route_scopes: Mapping[str, str]
    api_jwks_url: str
    context_claims: tuple[str, ...]
    session_check: bool
    supabase_api_key: str = field(repr=False)
    region: str  # AWS_REGION, which Lambda sets: for the API's default URL

    @property
    def supabase_issuer(self) -> str:
        return f"{self.supabase_url}/auth/v1"

    @property
    def supabase_jwks_url(self) -> str:
        return f"{self.supabase_issuer}/.well-known/jwks.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        if not get("SUPABASE_URL"):
            raise ConfigurationError("SUPABASE_URL is required")
        mode = get("SIGNING_MODE", SIGNING_MODES[0]).lower()
        if mode not in SIGNING_MODES:
            raise ConfigurationError(f"SIGNING_MODE must be one of {SIGNING_MODES}")
        alg = get("SIGNING_ALG", SIGNING_ALGORITHMS[0]).upper()
        if alg not in SIGNING_ALGORITHMS:
            raise ConfigurationError(f"SIGNING_ALG must be one of {SIGNING_ALGORITHMS}")
        audiences = _list(get("AUDIENCES", "api"))
        if not audiences:
            raise ConfigurationError("AUDIENCES must name at least one audience")
        scopes_supported = _list(get("SCOPES_SUPPORTED", "read"))
        issuer = get("ISSUER")
        session_check = _bool("SESSION_CHECK", get("SESSION_CHECK", "false"))
        api_key = get("SUPABASE_API_KEY")
        if session_check and not api_key:
            raise ConfigurationError("SESSION_CHECK needs SUPABASE_API_KEY (the publishable key)")
        return cls(
            supabase_url=_url("SUPABASE_URL", get("SUPABASE_URL")),
            supabase_jwt_secret_arn=get("SUPABASE_JWT_SECRET_ARN"),
            supabase_jwks_enabled=_bool(
                "SUPABASE_JWKS_ENABLED", get("SUPABASE_JWKS_ENABLED", "true")
            ),
            signing_mode=mode,
            signing_alg=alg,
            signing_key_id=get("SIGNING_KEY_ID"),
            published_key_ids=_list(get("PUBLISHED_KEY_IDS")),
            issuer=_url("ISSUER", issuer) if issuer else "",
            audiences=audiences,
            default_audience=get("DEFAULT_AUDIENCE") or audiences[0],
            resources=MappingProxyType(_json_object("RESOURCES", get("RESOURCES"))),
            token_ttl=_int(
                "TOKEN_TTL_SECONDS", get("TOKEN_TTL_SECONDS"), DEFAULT_TTL, MIN_TTL, MAX_TTL
            ),
            scopes_supported=scopes_supported,
            default_scopes=_list(
                get("DEFAULT_SCOPES", scopes_supported[0] if scopes_supported else "")
            ),
            scopes_claim=get("SCOPES_CLAIM", DEFAULT_SCOPES_CLAIM),
            default_client_id=get("DEFAULT_CLIENT_ID", DEFAULT_CLIENT_ID),
            passthrough_claims=_list(
                get("PASSTHROUGH_CLAIMS", " ".join(DEFAULT_PASSTHROUGH_CLAIMS))
            ),
            allow_anonymous=_bool("ALLOW_ANONYMOUS", get("ALLOW_ANONYMOUS", "false")),
            allowed_client_ids=frozenset(_list(get("ALLOWED_CLIENT_IDS"))),
            min_aal=get("MIN_AAL", DEFAULT_MIN_AAL),
            leeway=_int(
                "LEEWAY_SECONDS",
                get("LEEWAY_SECONDS"),
                DEFAULT_LEEWAY_SECONDS,
                0,
                MAX_LEEWAY_SECONDS,
            ),
            jwks_cache_seconds=_int(
                "JWKS_CACHE_SECONDS",
                get("JWKS_CACHE_SECONDS"),
                int(MAX_CACHE_SECONDS),
                1,
                int(MAX_CACHE_SECONDS),
            ),
            jwks_cooldown_seconds=_int(
                "JWKS_COOLDOWN_SECONDS",
                get("JWKS_COOLDOWN_SECONDS"),
                int(MIN_COOLDOWN_SECONDS),
                int(MIN_COOLDOWN_SECONDS),
                3600,
            ),
            jwks_publish_max_age=_int(
                "JWKS_PUBLISH_MAX_AGE",
                get("JWKS_PUBLISH_MAX_AGE"),
                DEFAULT_PUBLISH_MAX_AGE,
                0,
                MAX_PUBLISH_MAX_AGE,
            ),
            route_scopes=MappingProxyType(_json_object("ROUTE_SCOPES", get("ROUTE_SCOPES"))),
            api_jwks_url=get("API_JWKS_URL"),
            context_claims=_list(get("CONTEXT_CLAIMS", "aal")),
            session_check=session_check,
            supabase_api_key=api_key,
            region=get("AWS_REGION"),
        )

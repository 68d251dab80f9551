"""Configuration: one frozen, validated object built once from the environment.

Every function reads the same variable names (documented in the README; template.yaml sets each
from a parameter). A bad value raises :class:`ConfigurationError` at start, never a per-request
500. The mapping is passed in, so the core never reads ``os.environ`` itself. Defaults and bounds
are written once: beside the rule they constrain, or in :mod:`tokengate.defaults` where that rule
lives in a module some functions never load (the exchange, the Supabase verifier, the scopes).
"""

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from .apitoken import DEFAULT_TTL, MAX_TTL, MIN_TTL
from .claims import (
    DEFAULT_AUTHORIZER_CACHE_TTL,
    DEFAULT_LEEWAY_SECONDS,
    MAX_AUTHORIZER_CACHE_TTL,
    MAX_LEEWAY_SECONDS,
    allow_grace,
)
from .defaults import (
    DEFAULT_CLIENT_ID,
    DEFAULT_MIN_AAL,
    DEFAULT_PASSTHROUGH_CLAIMS,
    DEFAULT_SCOPES_CLAIM,
)
from .errors import ConfigurationError
from .jwks import (
    DEFAULT_PUBLISH_MAX_AGE,
    MAX_CACHE_SECONDS,
    MAX_PUBLISH_MAX_AGE,
    MIN_COOLDOWN_SECONDS,
)
from .log import get_logger
from .net import split_url
from .routes import RouteTable, check_route_scope

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


def _client_scopes(
    value: str, supported: tuple[str, ...], clients: frozenset[str]
) -> Mapping[str, tuple[str, ...]]:
    """CLIENT_SCOPES: a JSON object of OAuth client id → the API scopes (a list, or a
    space-separated string) that client's tokens may ever carry; clients must be allow-listed."""
    if not value.strip():
        return MappingProxyType({})
    try:
        document = json.loads(value)
    except ValueError:
        raise ConfigurationError("CLIENT_SCOPES must be a JSON object") from None
    if not isinstance(document, dict):
        raise ConfigurationError("CLIENT_SCOPES must be a JSON object")
    table: dict[str, tuple[str, ...]] = {}
    for client, scopes in document.items():
        if isinstance(scopes, str):
            scopes = scopes.split()
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ConfigurationError(f"CLIENT_SCOPES[{client!r}] must list scopes")
        unknown = sorted(set(scopes) - set(supported))
        if unknown:
            raise ConfigurationError(
                f"CLIENT_SCOPES[{client!r}] names scopes the API does not support: {unknown}"
            )
        if client not in clients:
            raise ConfigurationError(
                f"CLIENT_SCOPES names {client!r}, which ALLOWED_CLIENT_IDS does not allow"
            )
        table[client] = tuple(dict.fromkeys(scopes))
    return MappingProxyType(table)


def _route_scopes(value: str, supported: tuple[str, ...]) -> Mapping[str, str]:
    """ROUTE_SCOPES: route keys checked here, so every function refuses a bad table at start.
    A route scope SCOPES_SUPPORTED does not list can never be held (the exchange issues, and the
    Supabase authorizer grants, supported scopes only): legal, and said at start."""
    table = _json_object("ROUTE_SCOPES", value)
    for route in RouteTable(table):
        check_route_scope(route.key, table[route.key])
    unreachable = sorted({scope for scope in table.values() if scope} - set(supported))
    if unreachable:
        get_logger("tokengate.config").warning(
            "ROUTE_SCOPES requires %s, which SCOPES_SUPPORTED (%s) does not list: no token can "
            "carry %s, so every caller is denied %s",
            " ".join(unreachable),
            " ".join(supported),
            "it" if len(unreachable) == 1 else "them",
            ", ".join(k for k in table if table[k] in unreachable),
        )
    return MappingProxyType(table)


def _check_http_url(name: str, value: str) -> None:
    """An http(s) URL of tokengate.net's grammar, with no query (not even an empty one)."""
    try:
        parts = split_url(value)
    except ValueError:
        parts = None
    if parts is None or parts.query or value.endswith("?"):
        raise ConfigurationError(f"{name} must be an http(s) URL")


def _url(name: str, value: str) -> str:
    _check_http_url(name, value)
    return value.rstrip("/")


def _supabase_issuer(value: str, supabase_url: str) -> str:
    """The Supabase tokens' ``iss``: by default ``<SUPABASE_URL>/auth/v1``. A project behind a
    Supabase custom domain may sign with an issuer on another host than the URL its clients use,
    so it can be set on its own. Compared exactly, so it is taken as given (no trailing slash
    trimmed: an issuer ending in ``/`` would then never match)."""
    if not value:
        return f"{supabase_url}/auth/v1"
    _check_http_url("SUPABASE_ISSUER", value)
    return value


class Settings(NamedTuple):
    """Every setting, read and checked once by :meth:`from_env` (the only constructor).

    An immutable named tuple rather than a frozen dataclass: every function builds one at its
    cold start, and ``dataclasses`` (with ``inspect``) costs milliseconds to import.
    """

    supabase_url: str
    supabase_issuer: str  # the Supabase tokens' exact iss
    supabase_jwks_url: str  # where the project's ES256/RS256 keys are read
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
    client_scopes: Mapping[str, tuple[str, ...]]  # OAuth client id → its API scopes, at most
    min_aal: str
    leeway: int
    jwks_cache_seconds: int
    jwks_cooldown_seconds: int
    jwks_publish_max_age: int
    route_scopes: Mapping[str, str]
    api_jwks_url: str
    context_claims: tuple[str, ...]
    session_check: bool
    discovery_supabase: bool  # discovery also names the Supabase project and its public key
    supabase_api_key: str  # never in repr()
    region: str  # AWS_REGION, which Lambda sets: for the API's default URL
    # How long API Gateway replays an authorizer's answer (the template's AuthorizerCacheTtl)
    authorizer_cache_ttl: int = DEFAULT_AUTHORIZER_CACHE_TTL
    # Revocation (docs/revocation.md): on when the table is named; the authorizers need only
    # the flag (they read the published status list, never the table).
    revocation_table: str = ""
    status_list_refresh: int = 15
    status_list_max_age: int = 300

    @property
    def revocation(self) -> bool:
        return bool(self.revocation_table)

    def __repr__(self) -> str:
        shown = (f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True))
        return f"Settings({', '.join(s for s in shown if not s.startswith('supabase_api_key='))})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
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
        allowed_client_ids = frozenset(_list(get("ALLOWED_CLIENT_IDS")))
        issuer = get("ISSUER")
        session_check = _bool("SESSION_CHECK", get("SESSION_CHECK", "false"))
        api_key = get("SUPABASE_API_KEY")
        if session_check and not api_key:
            raise ConfigurationError("SESSION_CHECK needs SUPABASE_API_KEY (the publishable key)")
        supabase_url = _url("SUPABASE_URL", get("SUPABASE_URL"))
        leeway = _int(
            "LEEWAY_SECONDS",
            get("LEEWAY_SECONDS"),
            DEFAULT_LEEWAY_SECONDS,
            0,
            MAX_LEEWAY_SECONDS,
        )
        authorizer_cache_ttl = _int(
            "AUTHORIZER_CACHE_TTL",
            get("AUTHORIZER_CACHE_TTL"),
            DEFAULT_AUTHORIZER_CACHE_TTL,
            0,
            MAX_AUTHORIZER_CACHE_TTL,
        )
        try:
            allow_grace(leeway, authorizer_cache_ttl)
        except ConfigurationError as error:
            raise ConfigurationError(
                f"AUTHORIZER_CACHE_TTL and LEEWAY_SECONDS: {error.detail}"
            ) from None
        supabase_issuer = _supabase_issuer(get("SUPABASE_ISSUER"), supabase_url)
        return cls(
            supabase_url=supabase_url,
            supabase_issuer=supabase_issuer,
            supabase_jwks_url=(
                _url("SUPABASE_JWKS_URL", get("SUPABASE_JWKS_URL"))
                if get("SUPABASE_JWKS_URL")
                else f"{supabase_issuer}/.well-known/jwks.json"
            ),
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
            allowed_client_ids=allowed_client_ids,
            client_scopes=_client_scopes(
                get("CLIENT_SCOPES"), scopes_supported, allowed_client_ids
            ),
            min_aal=get("MIN_AAL", DEFAULT_MIN_AAL),
            leeway=leeway,
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
            route_scopes=_route_scopes(get("ROUTE_SCOPES"), scopes_supported),
            api_jwks_url=get("API_JWKS_URL"),
            context_claims=_list(get("CONTEXT_CLAIMS", "aal")),
            session_check=session_check,
            discovery_supabase=_bool("DISCOVERY_SUPABASE", get("DISCOVERY_SUPABASE", "false")),
            supabase_api_key=api_key,
            region=get("AWS_REGION"),
            authorizer_cache_ttl=authorizer_cache_ttl,
            revocation_table=get("REVOCATION_TABLE"),
            status_list_refresh=_int(
                "STATUS_LIST_REFRESH_SECONDS", get("STATUS_LIST_REFRESH_SECONDS"), 15, 1, 60
            ),
            status_list_max_age=_int(
                "STATUS_LIST_MAX_AGE_SECONDS", get("STATUS_LIST_MAX_AGE_SECONDS"), 300, 30, 3600
            ),
        )

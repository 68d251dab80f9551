"""Wiring: build the core's collaborators from :class:`Settings` for the Lambda functions.

Not part of the pure core: it chooses the AWS adapters. Handlers build everything here once, at
module scope, and reuse it across invocations.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from . import aws
from .apitoken import ApiTokenIssuer, ApiTokenVerifier
from .authorizer import AuthRequest, Principal, api_base_url, api_url, flat_context
from .cache import CachedValue
from .claims import scalar_claims
from .config import Settings
from .errors import DependencyUnavailableError, InvalidTokenError, Reason
from .exchange import ExchangePolicy, TokenExchangeService
from .jwks import JwksCache, UrllibJwksFetcher
from .keys import HmacKey
from .session import SupabaseSessionCheck
from .signing import Signer
from .supabase import SupabasePolicy, SupabaseTokenVerifier

SECRET_CACHE_SECONDS = 3600.0


def hmac_key_source(settings: Settings) -> Callable[[], HmacKey | None] | None:
    """The legacy HS256 secret from Secrets Manager: read once, then cached.

    It is read eagerly so a secret under 32 bytes stops the function at start; if Secrets Manager
    is unreachable then, the first request retries (and answers 503 if it still fails).
    """
    arn = settings.supabase_jwt_secret_arn
    if not arn:
        return None
    secrets = aws.LazyClient("secretsmanager")
    cached = CachedValue(
        lambda: HmacKey(aws.secret_bytes(secrets, arn)),
        max_age=SECRET_CACHE_SECONDS,
    )
    with contextlib.suppress(DependencyUnavailableError):
        cached.get()
    return cached.get


def supabase_verifier(
    settings: Settings, clock: Callable[[], float] = time.time
) -> SupabaseTokenVerifier:
    jwks = (
        JwksCache(
            settings.supabase_jwks_url,
            UrllibJwksFetcher(),
            clock=clock,
            max_age=settings.jwks_cache_seconds,
            cooldown=settings.jwks_cooldown_seconds,
        )
        if settings.supabase_jwks_enabled
        else None
    )
    policy = SupabasePolicy(
        issuer=settings.supabase_issuer,
        leeway=settings.leeway,
        allow_anonymous=settings.allow_anonymous,
        allowed_client_ids=settings.allowed_client_ids,
        min_aal=settings.min_aal,
    )
    return SupabaseTokenVerifier(policy, hmac_key=hmac_key_source(settings), jwks=jwks, clock=clock)


class SecretsManagerSigner:
    """A :class:`LocalKeySigner` whose PEM comes from Secrets Manager on first use."""

    def __init__(self, secret_id: str, alg: str) -> None:
        self.alg = alg
        secrets = aws.LazyClient("secretsmanager")
        self._signer = CachedValue(
            lambda: aws.local_signer_from_secret(secret_id, alg, secrets),
            max_age=SECRET_CACHE_SECONDS,
        )

    @property
    def kid(self) -> str:
        return self._signer.get().kid

    def sign(self, signing_input: bytes) -> bytes:
        return self._signer.get().sign(signing_input)

    def public_jwk(self) -> dict[str, str]:
        return self._signer.get().public_jwk()


def signer_for(settings: Settings, key_id: str) -> Signer:
    if settings.signing_mode == "kms":
        return aws.KmsSigner(key_id, settings.signing_alg, aws.LazyClient("kms"))
    return SecretsManagerSigner(key_id, settings.signing_alg)


def exchange_policy(settings: Settings) -> ExchangePolicy:
    return ExchangePolicy(
        audiences=frozenset(settings.audiences),
        default_audience=settings.default_audience,
        resources=settings.resources,
        scopes_supported=settings.scopes_supported,
        default_scopes=settings.default_scopes,
        scopes_claim=settings.scopes_claim or None,
        default_client_id=settings.default_client_id,
        passthrough_claims=settings.passthrough_claims,
    )


def exchange_service(
    settings: Settings, clock: Callable[[], float] = time.time
) -> TokenExchangeService:
    policy = exchange_policy(settings)
    issuer = ApiTokenIssuer(
        signer_for(settings, settings.signing_key_id), settings.token_ttl, clock
    )
    session_check = (
        SupabaseSessionCheck(settings.supabase_url, settings.supabase_api_key)
        if settings.session_check
        else None
    )
    return TokenExchangeService(supabase_verifier(settings, clock), issuer, policy, session_check)


def published_signers(settings: Settings) -> list[Signer]:
    """Current key first, then previous and next keys (SPEC §3.2)."""
    key_ids = dict.fromkeys((settings.signing_key_id, *settings.published_key_ids))
    return [signer_for(settings, key_id) for key_id in key_ids if key_id]


class ApiTokenPrincipals:
    """Verifies API tokens for the API-token authorizer.

    Keys come from this service's own JWKS (API_JWKS_URL, else ISSUER's, else the API's default
    URL derived from the event), cached in memory: warm decisions make no network call and need
    no boto3 import.
    """

    MAX_ISSUERS = 4

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._fetcher = UrllibJwksFetcher()
        self._verifiers: dict[str, ApiTokenVerifier] = {}

    def _verifier(self, request: AuthRequest) -> ApiTokenVerifier:
        issuer = self._settings.issuer
        if not issuer:
            if request.arn_base is None:
                raise InvalidTokenError(Reason.ISSUER, "no issuer for this event")
            issuer = api_base_url(request.arn_base)
        verifier = self._verifiers.get(issuer)
        if verifier is None:
            if len(self._verifiers) >= self.MAX_ISSUERS:
                self._verifiers.clear()
            jwks_url = self._settings.api_jwks_url or f"{issuer}/.well-known/jwks.json"
            keys = JwksCache(jwks_url, self._fetcher, clock=self._clock)
            verifier = ApiTokenVerifier(
                keys,
                issuer,
                self._settings.default_audience,
                self._settings.leeway,
                clock=self._clock,
            )
            self._verifiers[issuer] = verifier
        return verifier

    def __call__(self, token: str, request: AuthRequest) -> Principal:
        verified = self._verifier(request).verify(token)
        context = flat_context(
            scalar_claims(verified.claims, self._settings.context_claims)
            | {
                "sub": verified.sub,
                "scope": " ".join(verified.scopes),
                "client_id": verified.client_id,
                "jti": verified.jti,
                "sid": verified.sid,
            }
        )
        return Principal(verified.sub, frozenset(verified.scopes), context)


class SupabasePrincipals:
    """Verifies Supabase tokens for the Supabase authorizer, with the exchange's own verifier and
    the exchange's scope policy (default scopes plus app_metadata extras)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._verifier = supabase_verifier(settings, clock)
        self._policy = exchange_policy(settings)

    def __call__(self, token: str, request: AuthRequest) -> Principal:
        identity = self._verifier.verify(token)
        scopes = frozenset(self._policy.user_scopes(identity))
        context = flat_context(
            scalar_claims(identity.claims, self._settings.context_claims)
            | {
                "sub": identity.sub,
                "scope": " ".join(sorted(scopes)),
                "client_id": identity.client_id,
                "sid": identity.session_id,
            }
        )
        return Principal(identity.sub, scopes, context)


def issuer_for(settings: Settings, event: dict[str, Any]) -> str:
    """The API tokens' ``iss``: ISSUER, else the API's default base URL (as the authorizer
    derives it from its method ARN)."""
    if settings.issuer:
        return settings.issuer
    context = event["requestContext"]
    return api_url(context["apiId"], settings.region, context["stage"])

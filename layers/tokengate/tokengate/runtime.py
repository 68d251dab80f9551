"""Wiring: build the core's collaborators from :class:`Settings` for the Lambda functions.

Not part of the pure core: it chooses the AWS adapters. Handlers build what they use here once, at
module scope, and reuse it across invocations; each builds only what it uses, and imports only
what it builds: every builder imports its own collaborators, so an authorizer's cold start never
loads the exchange, the AWS adapters or the Supabase side it does not use.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .budget import Budget
from .config import Settings
from .emf import EmfCounter
from .errors import ConfigurationError
from .fetch import DocumentFetcher
from .jwks import MAX_JWKS_BYTES, HttpJwksFetcher, JwksCache

if TYPE_CHECKING:
    from typing import Protocol

    class PublicKeyHolder(Protocol):
        def public_jwk(self) -> dict[str, str]: ...

    from .exchange import TokenExchangeService
    from .keys import HmacKey
    from .principals import ApiTokenPrincipals, StatusLists, SupabasePrincipals
    from .revocation import RevocationStore, StatusListPublisher
    from .revoke import RevocationService
    from .scopes import ScopePolicy
    from .signing import Signer
    from .supabase import SupabaseTokenVerifier

SECRET_CACHE_SECONDS = 3600.0
INIT_READ_SECONDS = 2.0  # what an eager read at a container's start may take


def hmac_key_source(
    settings: Settings, budget: Budget | None = None
) -> Callable[[], HmacKey | None] | None:
    """The legacy HS256 secret from Secrets Manager: read once, then cached.

    It is read eagerly so a secret under 32 bytes stops the function at start; if Secrets Manager
    is unreachable then, the first request retries (and answers 503 if it still fails).
    """
    arn = settings.supabase_jwt_secret_arn
    if not arn:
        return None
    from . import aws
    from .cache import CachedValue
    from .errors import DependencyUnavailableError
    from .keys import HmacKey

    budget = budget or Budget()
    secrets = aws.SecretsApi(budget)
    cached = CachedValue(
        lambda: HmacKey(aws.secret_bytes(secrets, arn)),
        max_age=SECRET_CACHE_SECONDS,
        budget=budget,
        reason="secretsmanager_unavailable",
    )
    with contextlib.suppress(DependencyUnavailableError), budget.within(INIT_READ_SECONDS):
        cached.get()
    return cached.get


def document_fetcher(budget: Budget) -> DocumentFetcher:
    """The one fetch path of a function's public documents (its key sets, and any other public
    document it reads the same way), bounded by the function's budget."""
    return DocumentFetcher(budget, max_bytes=MAX_JWKS_BYTES)


def jwks_fetcher(budget: Budget) -> HttpJwksFetcher:
    return HttpJwksFetcher(document_fetcher(budget))


def supabase_verifier(
    settings: Settings, clock: Callable[[], float] = time.time, budget: Budget | None = None
) -> SupabaseTokenVerifier:
    from .supabase import SupabasePolicy, SupabaseTokenVerifier

    budget = budget or Budget()
    jwks = (
        JwksCache(
            settings.supabase_jwks_url,
            jwks_fetcher(budget),
            clock=clock,
            max_age=settings.jwks_cache_seconds,
            cooldown=settings.jwks_cooldown_seconds,
            budget=budget,
            metrics=EmfCounter.from_env(os.environ),
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
    return SupabaseTokenVerifier(
        policy, hmac_key=hmac_key_source(settings, budget), jwks=jwks, clock=clock
    )


def signer_for(settings: Settings, key_id: str, budget: Budget | None = None) -> Signer:
    from . import aws

    if settings.signing_mode == "kms":
        return aws.KmsSigner(key_id, settings.signing_alg, aws.KmsApi(budget), budget)
    return aws.SecretsManagerSigner(
        key_id, settings.signing_alg, secrets=aws.SecretsApi(budget), budget=budget
    )


def scope_policy(settings: Settings) -> ScopePolicy:
    from .scopes import ScopePolicy

    return ScopePolicy(
        scopes_supported=settings.scopes_supported,
        default_scopes=settings.default_scopes,
        scopes_claim=settings.scopes_claim or None,
        client_scopes=settings.client_scopes,
    )


def exchange_service(
    settings: Settings, clock: Callable[[], float] = time.time, budget: Budget | None = None
) -> TokenExchangeService:
    from .apitoken import ApiTokenIssuer
    from .exchange import ExchangePolicy, TokenExchangeService
    from .http import HttpClient
    from .session import SupabaseSessionCheck

    budget = budget or Budget()
    policy = ExchangePolicy(
        audiences=frozenset(settings.audiences),
        default_audience=settings.default_audience,
        resources=settings.resources,
        default_client_id=settings.default_client_id,
        passthrough_claims=settings.passthrough_claims,
    )
    issuer = ApiTokenIssuer(
        signer_for(settings, settings.signing_key_id, budget),
        settings.token_ttl,
        clock,
        leeway=settings.leeway,
        cache_ttl=settings.authorizer_cache_ttl,
    )
    session_check = (
        SupabaseSessionCheck(settings.supabase_url, settings.supabase_api_key, HttpClient(budget))
        if settings.session_check
        else None
    )
    store = revocation_store(settings, clock, budget)
    return TokenExchangeService(
        supabase_verifier(settings, clock, budget),
        issuer,
        policy,
        scope_policy(settings),
        session_check,
        store,
        status_list_publisher(settings, store, clock, budget) if store is not None else None,
    )


def revocation_service(
    settings: Settings,
    service: TokenExchangeService,
    clock: Callable[[], float] = time.time,
    budget: Budget | None = None,
) -> RevocationService | None:
    """POST /revoke, sharing the exchange's verifier, store and publisher."""
    if service.revocations is None or service.publisher is None:
        return None
    from .revoke import RevocationService

    signers = published_signers(settings, budget)
    return RevocationService(
        service.revocations,
        service.publisher,
        service.verifier,
        lambda: [signer.public_jwk() for signer in signers],
    )


def revocation_store(
    settings: Settings, clock: Callable[[], float] = time.time, budget: Budget | None = None
) -> RevocationStore | None:
    """The revocation table (DynamoDB over the deadline-bounded transport), if configured."""
    if not settings.revocation:
        return None
    from . import aws
    from .revocation import RevocationStore

    return RevocationStore(aws.DynamoTable(aws.DynamoApi(budget), settings.revocation_table), clock)


def status_list_publisher(
    settings: Settings,
    store: RevocationStore,
    clock: Callable[[], float] = time.time,
    budget: Budget | None = None,
) -> StatusListPublisher:
    from .revocation import StatusListPublisher

    return StatusListPublisher(store, signer_for(settings, settings.signing_key_id, budget), clock)


def status_list_fetcher(budget: Budget) -> HttpJwksFetcher:
    """The JWKS fetcher, with room for a status list: the API-token authorizer reads both from
    the same host through it, so its first decision reuses one connection for the two."""
    from .statuslist import MAX_STATUS_LIST_BYTES

    return HttpJwksFetcher(DocumentFetcher(budget, max_bytes=MAX_STATUS_LIST_BYTES))


def status_lists(
    settings: Settings,
    clock: Callable[[], float],
    budget: Budget,
    fetcher: HttpJwksFetcher | None = None,
    read_bits: bool = True,
) -> StatusLists | None:
    """The authorizers' copy of the published status list (fetched like the JWKS); without
    ``read_bits``, its product claim only (for Supabase tokens, which carry no index)."""
    if not settings.revocation:
        return None
    from .principals import StatusLists

    return StatusLists(
        fetcher or status_list_fetcher(budget),
        jwks_url=settings.api_jwks_url,
        clock=clock,
        budget=budget,
        metrics=EmfCounter.from_env(os.environ),
        refresh=settings.status_list_refresh,
        max_age=settings.status_list_max_age,
        read_bits=read_bits,
    )


class _Unpublishable:
    """Stands for keys that cannot be published: each use raises the configuration error, which
    the JWKS function answers as a server error (logged for the operator)."""

    def __init__(self, error: ConfigurationError) -> None:
        self._error = error

    def public_jwk(self) -> dict[str, str]:
        raise self._error


def published_signers(settings: Settings, budget: Budget | None = None) -> list[PublicKeyHolder]:
    """Current key first, then previous and next keys (docs/contract.md §3.2).

    KMS keys are read from KMS (``GetPublicKey``, never a private key). In the Secrets Manager
    mode the public keys come from ``SIGNING_PUBLIC_KEYS`` (:mod:`tokengate.published`): the
    publishing function never reads a secret holding a private key."""
    if settings.signing_mode != "kms":
        from .published import VARIABLE, published_keys

        try:
            keys: list[PublicKeyHolder] = list(published_keys(os.environ, settings.signing_alg))
        except ConfigurationError as exc:
            return [_Unpublishable(exc)]
        if not keys:
            return [_Unpublishable(ConfigurationError(f"{VARIABLE} is empty: nothing to publish"))]
        return keys
    key_ids = dict.fromkeys((settings.signing_key_id, *settings.published_key_ids))
    return [signer_for(settings, key_id, budget) for key_id in key_ids if key_id]


def api_token_principals(
    settings: Settings, clock: Callable[[], float] = time.time, budget: Budget | None = None
) -> ApiTokenPrincipals:
    from .principals import ApiTokenPrincipals

    budget = budget or Budget()
    fetcher = status_list_fetcher(budget) if settings.revocation else jwks_fetcher(budget)
    return ApiTokenPrincipals(
        issuer=settings.issuer,
        audience=settings.default_audience,
        leeway=settings.leeway,
        context_claims=settings.context_claims,
        jwks_url=settings.api_jwks_url,
        clock=clock,
        fetcher=fetcher,
        budget=budget,
        metrics=EmfCounter.from_env(os.environ),
        cache_ttl=settings.authorizer_cache_ttl,
        status_lists=status_lists(settings, clock, budget, fetcher),
    )


def supabase_principals(
    settings: Settings, clock: Callable[[], float] = time.time, budget: Budget | None = None
) -> SupabasePrincipals:
    from .principals import SupabasePrincipals

    budget = budget or Budget()
    return SupabasePrincipals(
        supabase_verifier(settings, clock, budget),
        scope_policy(settings),
        settings.context_claims,
        cache_ttl=settings.authorizer_cache_ttl,
        clock=clock,
        status_lists=status_lists(settings, clock, budget, read_bits=False),
        issuer=settings.issuer,
    )

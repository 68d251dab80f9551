"""The RFC 8693 token exchange: request parsing, target and scope policy, and issuance."""

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import parse_qsl, urlsplit

from .apitoken import ApiTokenIssuer
from .claims import is_scope_value, scalar_claims, scope_tokens
from .defaults import DEFAULT_CLIENT_ID, DEFAULT_PASSTHROUGH_CLAIMS
from .errors import INVALID_SUBJECT as INVALID_SUBJECT  # /token's refusal, kept where it is used
from .errors import ConfigurationError, DependencyUnavailableError, RequestError
from .jws import strict_json_object
from .scopes import ScopePolicy
from .supabase import SupabaseTokenVerifier

if TYPE_CHECKING:
    from .revocation import RevocationStore, StatusListPublisher

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
SUBJECT_TOKEN_TYPES = frozenset({ACCESS_TOKEN, JWT})
MAX_BODY_BYTES = 16 * 1024
MULTI_VALUED = frozenset({"audience", "resource"})
logger = logging.getLogger("tokengate.exchange")


def _invalid(description: str) -> RequestError:
    return RequestError("invalid_request", description)


class SessionCheck(Protocol):
    def check(self, token: str) -> None: ...


class TokenRequest(NamedTuple):
    """A syntactically valid token-exchange request."""

    subject_token: str
    audiences: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    scopes: tuple[str, ...] | None = None

    def __repr__(self) -> str:  # never the token
        return f"TokenRequest(audiences={self.audiences!r}, scopes={self.scopes!r})"


def _form_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=32,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid("The request body is not valid form data.") from exc


def _json_pairs(body: bytes) -> list[tuple[str, str]]:
    # The tokens' strict JSON: a member given twice is a repeated parameter, not a silent
    # last-one-wins.
    try:
        document = strict_json_object(body)
    except ValueError as exc:
        raise _invalid("The request body must be a JSON object without repeated members.") from exc
    pairs: list[tuple[str, str]] = []
    for name, value in document.items():
        values = value if isinstance(value, list) and name in MULTI_VALUED else [value]
        for item in values:
            if not isinstance(item, str):
                raise _invalid(f"The parameter {name} must be a string.")
            pairs.append((name, item))
    return pairs


def parse_token_request(body: bytes, content_type: str | None) -> TokenRequest:
    """Parse and check a token-exchange body (RFC 8693 §2.1) before any token work."""
    if len(body) > MAX_BODY_BYTES:
        raise _invalid("The request body is too large.")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        pairs = _form_pairs(body)
    elif media_type == "application/json":
        pairs = _json_pairs(body)
    else:
        raise _invalid("Send application/x-www-form-urlencoded (or application/json).")
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    for name, values in params.items():
        if len(values) > 1 and name not in MULTI_VALUED:
            raise _invalid(f"The parameter {name} is repeated.")

    def single(name: str) -> str | None:
        return params[name][0] if name in params else None

    grant_type = single("grant_type")
    if not grant_type:
        raise _invalid("grant_type is required.")
    if grant_type != GRANT_TYPE:
        raise RequestError("unsupported_grant_type", "Only token exchange is supported.")
    subject_token = single("subject_token")
    if not subject_token:
        raise _invalid("subject_token is required.")
    if single("subject_token_type") not in SUBJECT_TOKEN_TYPES:
        raise _invalid("subject_token_type must be access_token or jwt.")
    requested = single("requested_token_type")
    if requested is not None and requested not in SUBJECT_TOKEN_TYPES:
        raise _invalid("requested_token_type must be access_token or jwt.")
    if "actor_token" in params or "actor_token_type" in params:
        raise _invalid("Delegation (actor_token) is not supported.")
    scope = single("scope")
    if scope is not None and not is_scope_value(scope):
        raise RequestError("invalid_scope", "The scope parameter is malformed.")
    return TokenRequest(
        subject_token=subject_token,
        audiences=tuple(params.get("audience", ())),
        resources=tuple(params.get("resource", ())),
        scopes=scope_tokens(scope) if scope is not None else None,
    )


class _ExchangePolicyFields(NamedTuple):
    audiences: frozenset[str]
    default_audience: str
    resources: Mapping[str, str]
    default_client_id: str
    passthrough_claims: tuple[str, ...]


class ExchangePolicy(_ExchangePolicyFields):
    """Which audiences and resources may be requested, and what an issued token carries besides
    its scopes (those come from :class:`~tokengate.scopes.ScopePolicy`). Immutable and checked
    when made."""

    __slots__ = ()

    def __new__(
        cls,
        audiences: frozenset[str],
        default_audience: str,
        resources: Mapping[str, str] | None = None,
        default_client_id: str = DEFAULT_CLIENT_ID,
        passthrough_claims: tuple[str, ...] = DEFAULT_PASSTHROUGH_CLAIMS,
    ) -> "ExchangePolicy":
        self = super().__new__(
            cls,
            audiences,
            default_audience,
            resources if resources is not None else {},
            default_client_id,
            passthrough_claims,
        )
        self._check()
        return self

    def _check(self) -> None:
        if self.default_audience not in self.audiences:
            raise ConfigurationError("the default audience must be in the audience allow-list")
        for resource, audience in self.resources.items():
            if not urlsplit(resource).scheme or audience not in self.audiences:
                raise ConfigurationError(f"resource {resource!r} must map to an allowed audience")
        if "user_metadata" in self.passthrough_claims:
            raise ConfigurationError("user_metadata is user-editable and is never passed through")

    def audiences_for(self, request: TokenRequest) -> list[str]:
        """RFC 8693 §2.1 ``audience`` and RFC 8707 ``resource``, each allow-listed."""
        targets: list[str] = []
        for audience in request.audiences:
            if audience not in self.audiences:
                raise RequestError("invalid_target", "The requested audience is not allowed.")
            targets.append(audience)
        for resource in request.resources:
            if resource not in self.resources:
                raise RequestError("invalid_target", "The requested resource is not allowed.")
            targets.append(self.resources[resource])
        return list(dict.fromkeys(targets)) or [self.default_audience]


# What the issuance log line records of each token (never the token or its signature): enough
# to tie a request in the access log to the token it obtained, and the token to its session.
AUDIT_CLAIMS = ("sub", "client_id", "sid", "jti", "exp", "aud", "scope")


class ExchangeResult(NamedTuple):
    body: dict[str, Any]
    claims: dict[str, Any]
    kid: str = ""

    def __repr__(self) -> str:  # never the token
        return f"ExchangeResult(jti={self.claims.get('jti')!r})"

    def audit_fields(self) -> dict[str, Any]:
        """The issuance log line's fields: the audit claims and the signing key's ``kid``."""
        return {k: self.claims.get(k) for k in AUDIT_CLAIMS} | {"kid": self.kid}


class TokenExchangeService:
    """Supabase access token in, API token out."""

    def __init__(
        self,
        verifier: SupabaseTokenVerifier,
        issuer: ApiTokenIssuer,
        policy: ExchangePolicy,
        scopes: ScopePolicy,
        session_check: SessionCheck | None = None,
        revocations: "RevocationStore | None" = None,
        publisher: "StatusListPublisher | None" = None,
    ) -> None:
        self._verifier = verifier
        self._issuer = issuer
        self._policy = policy
        self._scopes = scopes
        self._session_check = session_check
        self.revocations = revocations
        self.publisher = publisher
        self.verifier = verifier

    def exchange(self, request: TokenRequest, issuer_url: str) -> ExchangeResult:
        """Return the RFC 8693 §2.2.1 response body and the issued claims.

        Raises InvalidTokenError (answered as one generic ``invalid_request``), RequestError or
        DependencyUnavailableError."""
        audiences = self._policy.audiences_for(request)
        identity = self._verifier.verify(request.subject_token)
        scopes = self._scopes.scopes_for(request.scopes, identity)
        if self._session_check is not None:
            self._session_check.check(request.subject_token)
        extra = scalar_claims(identity.claims, self._policy.passthrough_claims)
        if self.revocations is not None:
            from .revocation import list_uri

            # Refuses a revoked session (or user) and gives the session its status list index.
            idx, stale = self.revocations.admit(
                identity.session_id, identity.sub, identity.claims["iat"]
            )
            extra["status"] = {"status_list": {"idx": idx, "uri": list_uri(issuer_url)}}
            if stale and self.publisher is not None:
                self._republish(issuer_url)
        issued = self._issuer.issue(
            issuer=issuer_url,
            subject=identity.sub,
            audiences=audiences,
            scopes=scopes,
            client_id=identity.client_id or self._policy.default_client_id,
            session_id=identity.session_id,
            not_after=identity.exp,
            extra_claims=extra,
        )
        body = {
            "access_token": issued.token,
            "issued_token_type": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": " ".join(scopes),
        }
        return ExchangeResult(body=body, claims=issued.claims, kid=issued.kid)

    def publish_scheduled(self, configured_issuer: str) -> bool:
        """The scheduled publication: the configured issuer, else the one the last publication
        was made for (a schedule has no request to derive it from). False if none is known yet
        or the store or the signer failed (logged; the next run tries again)."""
        if self.revocations is None or self.publisher is None:
            return False
        try:
            issuer = configured_issuer or self.revocations.stored_issuer()
            if not issuer:
                return False
            self.publisher.publish(issuer)
        except DependencyUnavailableError as exc:
            logger.warning("status list not published", extra={"reason": exc.reason})
            return False
        return True

    def _republish(self, issuer_url: str) -> None:
        """No list stored yet (a new stack) or none for a while (a stopped schedule): publish one
        now. A failure costs this exchange nothing; the schedule tries again."""
        assert self.publisher is not None
        try:
            self.publisher.publish(issuer_url)
        except DependencyUnavailableError as exc:
            logger.warning("status list not published", extra={"reason": exc.reason})

"""One error hierarchy for every surface.

::

    TokenGateError
    ├── CallerError                 the caller's fault: 4xx at /token, never Allow at an authorizer
    │   ├── InvalidTokenError       a token failed parsing, signature or policy (reason code inside)
    │   └── RequestError            a /token request broke RFC 6749 / RFC 8693 (OAuth error code)
    ├── DependencyUnavailableError  our fault: KMS, Secrets Manager or a JWKS could not answer
    │   │                           (503 temporarily_unavailable; never Allow)
    │   ├── ConditionFailedError    a conditional store write lost a race (handled by the store)
    │   └── DependencyMisconfiguredError  a dependency refused us for a deployment fault (a
    │                               disabled or missing key, access denied): 503 to the caller,
    │                               an error for the operator
    └── ConfigurationError          misconfigured deployment (raised at start, never per call)

Every class carries a stable machine ``reason``. One place per surface maps these to responses;
nothing matches on message text. Third-party exceptions are translated where they are caught with
``raise ... from exc``.
"""

from __future__ import annotations


class TokenGateError(Exception):
    """Base of every error the product raises on purpose."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CallerError(TokenGateError):
    """The request or the token is at fault."""


class InvalidTokenError(CallerError):
    """A token was malformed, wrongly signed or outside policy.

    ``reason`` is one of the ``Reason`` constants; it is logged and counted, and never sent to
    the caller (RFC 8693 §2.2.2 asks for one generic ``invalid_request``).
    """


class RequestError(CallerError):
    """A token-endpoint request is invalid; ``reason`` is the RFC 6749 §5.2 error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(error, description)
        self.error = error
        self.description = description


class DependencyUnavailableError(TokenGateError):
    """A dependency failed and no cached material could serve: fail closed."""


class DependencyMisconfiguredError(DependencyUnavailableError):
    """A dependency refused us because of how we are deployed; the caller still gets a 503."""


class ConditionFailedError(DependencyUnavailableError):
    """A conditional write found the item changed (DynamoDB's ConditionalCheckFailed): the
    store's callers handle it; one that escapes is a 503, never an Allow. For a transaction,
    ``failed`` holds the positions of the items whose condition failed."""

    def __init__(self, reason: str, detail: str = "", failed: tuple[int, ...] = ()) -> None:
        super().__init__(reason, detail)
        self.failed = failed


# The one error_description of every refused subject token at /token (invalid_request): the
# reason is in the logs only. Here, where the CLI can read it without importing the exchange.
INVALID_SUBJECT = "The subject token is invalid, expired or not acceptable."


class ConfigurationError(TokenGateError):
    """The configuration is invalid; raised once, when a function starts."""

    def __init__(self, detail: str) -> None:
        super().__init__("configuration", detail)


class Reason:
    """Stable reason codes for :class:`InvalidTokenError` (logs and metrics only)."""

    MALFORMED = "malformed"
    HEADER = "header_not_allowed"
    ALGORITHM = "algorithm_not_allowed"
    TYPE = "wrong_type"
    UNKNOWN_KEY = "unknown_key"
    SIGNATURE = "bad_signature"
    API_KEY = "api_key"
    ISSUER = "wrong_issuer"
    AUDIENCE = "wrong_audience"
    SUBJECT = "bad_subject"
    SESSION = "bad_session"
    SESSION_ENDED = "session_ended"
    ROLE = "wrong_role"
    EXPIRED = "expired"
    EXPIRES_WITHIN_CACHE_TTL = "expires_within_cache_ttl"  # valid, but not for a whole replay
    NOT_YET_VALID = "not_yet_valid"
    TIME_CLAIM = "bad_time_claim"
    LIFETIME = "lifetime_too_long"
    ANONYMOUS = "anonymous"
    CLIENT = "client_not_allowed"
    AAL = "aal_too_low"
    CLAIM = "bad_claim"
    REVOKED = "revoked"  # the token's session (or its user) was revoked
    STATUS = "bad_status"  # an API token without a usable status list reference

"""``tokengate explain``: what a token is, and whether the API would take it.

Nothing in the token is trusted. It is parsed with the product's own strict parser
(``tokengate.jws.parse_compact``), its claims are checked with the product's own rules
(``tokengate.claims``, ``tokengate.supabase.SupabasePolicy``) and its signature with keys the
client chose itself: the API's JWKS (from the configured API's discovery) for API tokens, the
configured Supabase project's JWKS for Supabase tokens. The verdict for an API token is the
API's own verifier (``tokengate.apitoken.ApiTokenVerifier``), the one the authorizer runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from tokengate.apitoken import ACCESS_TOKEN_TYPE, MAX_TTL, ApiTokenVerifier
from tokengate.claims import check_audience, check_issuer, check_times
from tokengate.errors import DependencyUnavailableError, InvalidTokenError, Reason, TokenGateError
from tokengate.jwks import HttpJwksFetcher, JwksCache
from tokengate.jws import UnverifiedToken, parse_compact
from tokengate.keys import AsymmetricKey
from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

from .http import check_url, request
from .source import remaining

DEFAULT_AUDIENCE = "api"
LEEWAY = 30  # the API's default clock-skew allowance

API_TOKEN = "API token"
SUPABASE_TOKEN = "Supabase access token"
SUPABASE_KEY = "Supabase API key"
OTHER_JWT = "JWT from another issuer"
NOT_A_JWT = "not a JWT"

KINDS = {
    API_TOKEN: "an access token (typ at+jwt) shaped like this product's API tokens",
    SUPABASE_TOKEN: "a user token from Supabase Auth, not an API token",
    SUPABASE_KEY: "a Supabase project key: it names the project, not a user",
    OTHER_JWT: "a JWT that neither this API nor Supabase Auth issued",
    NOT_A_JWT: "not a compact JWS (three base64url parts separated by dots)",
}

SIGN_IN_AND_CALL = (
    "sign in and let the CLI exchange the session: `tokengate login`, then "
    "`tokengate call GET /whoami`"
)
FIX_SUPABASE_SENT = (
    "exchange it for an API token: `tokengate call GET /whoami` does it for you, "
    "`tokengate token` prints one"
)


@dataclass
class Check:
    name: str
    ok: bool | None  # None: could not be checked
    detail: str
    remedy: str = ""


@dataclass
class Report:
    kind: str
    description: str
    claims: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok is not False for check in self.checks)

    @property
    def accepted(self) -> bool:
        """The API's own verifier ran and accepted it (not merely: nothing failed)."""
        return self.ok and any(c.name == "verdict" and c.ok for c in self.checks)

    @property
    def conclusion(self) -> str:
        if not self.ok:
            return "The API would not accept it as an API token."
        if self.accepted:
            return "The API would accept it."
        return "No check failed, but some could not be run (skip): no verdict."

    def add(self, name: str, ok: bool | None, detail: str, remedy: str = "") -> None:
        self.checks.append(Check(name, ok, detail, remedy if ok is not True else ""))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "ok": self.ok,
            "accepted": self.accepted,
            "conclusion": self.conclusion,
            "claims": self.claims,
            "checks": [asdict(check) for check in self.checks],
            "note": self.note,
        }


SHOWN_CLAIMS = (
    "iss", "sub", "aud", "exp", "iat", "scope", "client_id", "role", "ref", "session_id", "sid",
    "aal", "is_anonymous",
)  # fmt: skip


class Explainer:
    def __init__(
        self,
        api_url: str | None,
        supabase_url: str | None,
        audience: str | None = None,
        clock: Any = time.time,
    ) -> None:
        self.api_url = api_url
        self.supabase_url = supabase_url
        self.audience = audience or DEFAULT_AUDIENCE
        self.clock = clock
        self._fetcher = HttpJwksFetcher()
        self._jwks_url: str | None = None  # from the API's discovery document, once read
        self._keys: JwksCache | None = None  # the API's keys, read from that JWKS
        self._lists_published = False  # whether that document names status lists

    def explain(self, text: str) -> Report:
        token = text.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if token.startswith(("sb_publishable_", "sb_secret_")):
            report = Report(SUPABASE_KEY, KINDS[SUPABASE_KEY])
            secret = token.startswith("sb_secret_")
            report.add(
                "user token",
                False,
                f"a {'secret' if secret else 'publishable'} key is an opaque project key",
                SIGN_IN_AND_CALL + (" (and rotate a leaked secret key)" if secret else ""),
            )
            return report
        try:
            unverified = parse_compact(token)
        except InvalidTokenError as exc:
            report = Report(NOT_A_JWT, KINDS[NOT_A_JWT])
            report.add(
                "structure",
                False,
                f"{exc.reason}: {exc.detail}",
                "pass the token itself, e.g. `tokengate token | tokengate explain -`",
            )
            return report
        claims = unverified.unverified_claims
        kind = self._kind(unverified)
        report = Report(kind, self._headline(kind, claims))
        report.claims = {name: claims[name] for name in SHOWN_CLAIMS if name in claims}
        report.add("structure", True, f"a strict compact JWS ({_header_text(unverified)})")
        if kind == API_TOKEN:
            self._api_token(token, unverified, report)
        elif kind == SUPABASE_TOKEN:
            self._supabase_token(token, unverified, report)
        elif kind == SUPABASE_KEY:
            self._supabase_key(unverified, report)
        else:
            report.add(
                "issuer",
                False,
                f"issued by {claims.get('iss')!r}, which is neither the API"
                f"{f' ({self.api_url})' if self.api_url else ''} nor Supabase Auth",
                "get an API token from this API: `tokengate token`",
            )
        return report

    def _headline(self, kind: str, claims: dict[str, Any]) -> str:
        """What the token says it is, before any check: never "issued by this API" for a
        token whose issuer is another (nothing is verified yet)."""
        if kind != API_TOKEN:
            return KINDS[kind]
        issuer = claims.get("iss")
        named = repr(issuer) if isinstance(issuer, str) else "no issuer"
        if self.api_url and issuer == self.api_url:
            return f"an access token (typ at+jwt) naming this API ({self.api_url}) as its issuer"
        if self.api_url:
            return (
                f"an access token (typ at+jwt) from another issuer ({named}), "
                f"not this API ({self.api_url})"
            )
        return f"an access token (typ at+jwt) naming issuer {named} (no API configured)"

    def _kind(self, unverified: UnverifiedToken) -> str:
        claims = unverified.unverified_claims
        iss = claims.get("iss")
        if unverified.header.get("typ") == ACCESS_TOKEN_TYPE or (
            self.api_url and iss == self.api_url
        ):
            return API_TOKEN
        if claims.get("role") in ("anon", "service_role") and "sub" not in claims:
            return SUPABASE_KEY
        supabase_issuer = f"{self.supabase_url}/auth/v1" if self.supabase_url else None
        if (
            (isinstance(iss, str) and iss.endswith("/auth/v1"))
            or iss == supabase_issuer
            or ("session_id" in claims and claims.get("aud") == "authenticated")
        ):
            return SUPABASE_TOKEN
        return OTHER_JWT

    # -- API tokens -----------------------------------------------------------------------

    def _api_token(self, token: str, unverified: UnverifiedToken, report: Report) -> None:
        claims = unverified.unverified_claims
        now = self.clock()
        report.add(
            "type",
            unverified.header.get("typ") == ACCESS_TOKEN_TYPE,
            f"header typ is {unverified.header.get('typ')!r} (API tokens: {ACCESS_TOKEN_TYPE!r})",
            "this is not an API token of this product; get one with `tokengate token`",
        )
        issuer = self.api_url or str(claims.get("iss"))
        if self.api_url:
            report.add(
                "issuer",
                _passes(check_issuer, claims, self.api_url),
                f"iss is {claims.get('iss')!r}; this API is {self.api_url!r}",
                "the token is from another deployment: get one from this API: `tokengate token`",
            )
        else:
            report.note = (
                "no API configured (--api or TOKENGATE_API_URL): keys are looked up at the "
                "token's own (untrusted) iss"
            )
        key = self._api_key(issuer, unverified, report)
        if key is not None:
            report.add(
                "algorithm",
                key.alg == unverified.alg,
                f"header alg {unverified.alg}, the key's {key.alg}",
                "the token was altered or forged",
            )
            verified = key.alg == unverified.alg and key.verify(
                unverified.signing_input, unverified.signature
            )
            report.add(
                "signature",
                verified,
                f"{'verifies' if verified else 'does not verify'} with the API's published key",
                "the token was altered or forged: get a fresh one with `tokengate token`",
            )
        aud = claims.get("aud")
        report.add(
            "audience",
            _passes(check_audience, claims, self.audience),
            f"aud is {aud!r}; this API expects {self.audience!r}",
            f"get a token for this API: `tokengate token --audience {self.audience}`",
        )
        self._times(
            claims,
            now,
            MAX_TTL,
            report,
            "get a fresh one: `tokengate token` (the CLI re-exchanges by itself)",
        )
        missing = [
            n
            for n in ("sub", "scope", "client_id", "jti", "sid")
            if not isinstance(claims.get(n), str)
        ]
        report.add(
            "claims",
            not missing,
            "sub, scope, client_id, jti and sid present"
            if not missing
            else f"missing: {', '.join(missing)}",
            "the token was not issued by this product's exchange",
        )
        if key is not None and not self.api_url:
            report.add(
                "verdict",
                None,
                "no API to judge it for: the keys came from the token's own iss, which anyone "
                "can publish, so a signature that verifies proves nothing",
                "pass --api URL (or set TOKENGATE_API_URL) for a verdict",
            )
        elif key is not None:
            status = partial(self._status, claims, issuer, now, report)
            self._api_verdict(token, issuer, key, report, status)

    def _status(
        self, claims: dict[str, Any], issuer: str, now: float, report: Report
    ) -> bool | None:
        """The check the API-token authorizer makes after the signature (docs/revocation.md):
        the token's entry in the API's own status list, read and verified as any verifier reads
        it (draft-ietf-oauth-status-list). None: the list could not be read."""
        from tokengate.principals import check_status_entry, status_list_url
        from tokengate.revocation import list_uri
        from tokengate.statuslist import MEDIA_TYPE, verify_status_list

        if "status" not in claims and not self._lists_published:
            return True  # the API publishes no status list: nothing to check
        # As the authorizer: the URI tokens name (and the list's sub) is under the issuer; the
        # list is fetched beside the JWKS the API's discovery names.
        expected, fetched = list_uri(issuer), status_list_url(issuer, self._jwks_url or "")
        try:
            answer = request("GET", fetched, headers={"Accept": MEDIA_TYPE}, what="the API")
            if answer.status != 200:
                raise DependencyUnavailableError("status_list_unavailable", f"HTTP {answer.status}")
            assert self._keys is not None  # the token's key was found in them
            text = answer.body.decode("ascii", "replace")
            view = verify_status_list(text, self._keys, expected, now)
        except InvalidTokenError as exc:
            report.add(
                "status",
                None,
                f"the API's status list does not verify ({exc.reason})",
                "the API is misconfigured or the answer was altered: try again",
            )
            return None
        except Exception as exc:  # noqa: BLE001 - transport and the CLI's own errors: one line
            report.add(
                "status",
                None,
                f"the API's status list could not be read ({exc})",  # reason: detail
                "check the network and run `tokengate explain` again",
            )
            return None
        try:
            idx = check_status_entry(claims, expected, view)
        except InvalidTokenError as exc:
            if exc.reason == Reason.REVOKED:
                entry = claims["status"]["status_list"]["idx"]
                report.add(
                    "status",
                    False,
                    f"REVOKED: entry {entry} of {expected} says the token's session was revoked",
                    "sign in again: `tokengate login`",
                )
            elif "status" not in claims:
                report.add(
                    "status",
                    False,
                    "the token carries no status list entry, and the API checks every token's",
                    "get a fresh one with `tokengate token`",
                )
            else:
                report.add(
                    "status",
                    False,
                    f"status {claims['status']!r} is not an entry of {expected} "
                    f"({view.size} entries)",
                    "the token was not issued by this API: get one with `tokengate token`",
                )
            return False
        report.add("status", True, f"VALID: entry {idx} of {expected}")
        return True

    def _api_key(
        self, issuer: str, unverified: UnverifiedToken, report: Report
    ) -> AsymmetricKey | None:
        kid = unverified.kid
        if kid is None:
            report.add(
                "key", False, "the header names no kid", "the token was not issued by this product"
            )
            return None
        jwks_uri = self._jwks_uri(issuer, report)
        if jwks_uri is None:
            return None
        try:
            self._keys = JwksCache(jwks_uri, self._fetcher, clock=self.clock)
            key = self._keys.get(kid)
        except InvalidTokenError:
            report.add(
                "key",
                False,
                f"kid {kid!r} is not in the API's JWKS ({jwks_uri})",
                "the signing key was retired or the token is from another deployment: "
                "get a fresh one with `tokengate token`",
            )
            return None
        except (DependencyUnavailableError, TokenGateError) as exc:
            report.add(
                "key",
                None,
                f"the API's JWKS could not be read ({exc.reason})",
                "check --api and the network",
            )
            return None
        report.add("key", True, f"kid {kid!r} is published in the API's JWKS")
        return key

    def _jwks_uri(self, issuer: str, report: Report) -> str | None:
        try:
            url = check_url(issuer, "the issuer")
            answer = request("GET", f"{url}/.well-known/openid-configuration", what="the API")
        except TokenGateError as exc:
            report.add(
                "discovery", None, f"not fetched ({exc.reason})", "set --api to the API's base URL"
            )
            return None
        except Exception as exc:  # noqa: BLE001 - the CLI's UsageError/Unreachable: one line
            report.add(
                "discovery",
                None,
                f"not fetched: {exc}",
                "set --api to the API's base URL, check the network",
            )
            return None
        document = answer.json() if answer.status == 200 else None
        if document is None or not isinstance(document.get("jwks_uri"), str):
            report.add(
                "discovery", None, f"{issuer} serves no discovery document (HTTP {answer.status})"
            )
            return None
        self._jwks_url = str(document["jwks_uri"])
        self._lists_published = "status_list_aggregation_endpoint" in document
        return self._jwks_url

    def _api_verdict(
        self,
        token: str,
        issuer: str,
        key: AsymmetricKey,
        report: Report,
        status: Callable[[], bool | None],
    ) -> None:
        """The API's own verifier, then (for a token it accepts) the token's status, in the
        authorizer's order."""

        class Published:
            def get(self, kid: str) -> AsymmetricKey:
                if kid != key.kid:
                    raise InvalidTokenError(Reason.UNKNOWN_KEY, "kid is not published")
                return key

        verifier = ApiTokenVerifier(Published(), issuer, self.audience, LEEWAY, clock=self.clock)
        try:
            verified = verifier.verify(token)
        except InvalidTokenError as exc:
            report.add(
                "verdict",
                False,
                f"the API's verifier refuses it ({exc.reason})",
                "see the failed checks above",
            )
            return
        state = status()
        if state is None:
            report.add(
                "verdict",
                None,
                "the API's verifier accepts the token itself, but its status could not be read: "
                "no verdict",
                "check the network and run `tokengate explain` again",
            )
            return
        if state is False:
            report.add(
                "verdict",
                False,
                "the API's verifier accepts the token itself; its status entry refuses it",
                "see the status check above",
            )
            return
        report.add(
            "verdict",
            True,
            f"the API's verifier accepts it (scopes: {' '.join(verified.scopes) or 'none'})",
        )

    # -- Supabase tokens --------------------------------------------------------------------

    def _supabase_token(self, token: str, unverified: UnverifiedToken, report: Report) -> None:
        claims = unverified.unverified_claims
        now = self.clock()
        report.add(
            "accepted as an API token",
            False,
            "this is a Supabase access token sent where an API token is expected: an API that "
            'trusts this product\'s issuer refuses it ("signature key was not found": '
            f"kid {unverified.kid!r} is Supabase's, not the API's)",
            FIX_SUPABASE_SENT,
        )
        issuer = f"{self.supabase_url}/auth/v1" if self.supabase_url else None
        if issuer is None:
            report.note = (
                "no Supabase project configured (SUPABASE_URL): the signature was not checked"
            )
            self._times(claims, now, 7 * 24 * 3600, report, "sign in again: `tokengate login`")
            return
        policy = SupabasePolicy(issuer=issuer, leeway=LEEWAY)
        try:
            policy.check(claims, now)
            report.add(
                "Supabase policy",
                True,
                "issuer, audience, role, subject, session and times as the exchange requires",
            )
        except InvalidTokenError as exc:
            report.add(
                "Supabase policy",
                False,
                f"the exchange would refuse it ({exc.reason}: {exc.detail})",
                "sign in again: `tokengate login`"
                if exc.reason in (Reason.EXPIRED, Reason.ISSUER)
                else "",
            )
        if unverified.alg == "HS256":
            report.add(
                "signature",
                None,
                "HS256: signed with the project's shared secret, which only the server holds",
            )
            return
        jwks = JwksCache(f"{issuer}/.well-known/jwks.json", self._fetcher, clock=self.clock)
        verifier = SupabaseTokenVerifier(
            SupabasePolicy(issuer=issuer, leeway=LEEWAY), jwks=jwks, clock=self.clock
        )
        try:
            verifier.verify(token)
            report.add("signature", True, "verified with the Supabase project's published key")
        except DependencyUnavailableError as exc:
            report.add("signature", None, f"the project's JWKS could not be read ({exc.reason})")
        except InvalidTokenError as exc:
            if exc.reason in (Reason.SIGNATURE, Reason.UNKNOWN_KEY, Reason.ALGORITHM):
                report.add(
                    "signature",
                    False,
                    f"{exc.reason}: {exc.detail}",
                    "the token is not from this Supabase project",
                )

    def _supabase_key(self, unverified: UnverifiedToken, report: Report) -> None:
        claims = unverified.unverified_claims
        role = claims.get("role")
        issuer = f"{self.supabase_url}/auth/v1" if self.supabase_url else str(claims.get("iss"))
        try:
            SupabasePolicy(issuer=issuer).check(claims, self.clock())
            reason = ""
        except InvalidTokenError as exc:
            reason = exc.reason
        report.add(
            "user token",
            False,
            f"the project's {role} key (no sub, no session): the exchange refuses it "
            f"({reason or 'not a user'})",
            SIGN_IN_AND_CALL
            + (
                " (and keep the service_role key secret: rotate it if it leaked)"
                if role == "service_role"
                else ""
            ),
        )

    # -- shared -----------------------------------------------------------------------------

    def _times(
        self, claims: dict[str, Any], now: float, max_lifetime: int, report: Report, remedy: str
    ) -> None:
        exp = claims.get("exp")
        when = _when(exp, now)
        try:
            check_times(claims, now, LEEWAY, max_lifetime)
            report.add("expiry", True, f"expires {when}")
        except InvalidTokenError as exc:
            detail = f"{when}" if exc.reason == Reason.EXPIRED else f"{exc.reason}: {exc.detail}"
            report.add(
                "expiry",
                False,
                detail,
                remedy if exc.reason == Reason.EXPIRED else "check the clock",
            )


def _passes(check: Any, claims: dict[str, Any], expected: str) -> bool:
    try:
        check(claims, expected)
    except InvalidTokenError:
        return False
    return True


def _header_text(unverified: UnverifiedToken) -> str:
    parts = [f"alg {unverified.alg}"]
    if "typ" in unverified.header:
        parts.append(f"typ {unverified.header['typ']}")
    if unverified.kid:
        parts.append(f"kid {unverified.kid}")
    return ", ".join(parts)


def _when(exp: Any, now: float) -> str:
    """When a (claimed) expiry falls, for any JSON number: a token may claim 1e300 or NaN."""
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return "never"
    try:
        return remaining(float(exp), now)
    except (OverflowError, ValueError):
        return f"at {exp!r}, a time no clock can represent"


def _date(value: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))
    except (OverflowError, ValueError, OSError):
        return "not a representable date"


def render(report: Report) -> str:
    lines = [f"{report.kind}: {report.description}"]
    for name, value in report.claims.items():
        if name in ("exp", "iat") and isinstance(value, (int, float)):
            value = f"{value} ({_date(value)})"
        lines.append(f"  {name:<12} {value}")
    if report.note:
        lines.append(f"  note: {report.note}")
    lines.append("")
    for check in report.checks:
        mark = {True: "pass", False: "FAIL", None: "skip"}[check.ok]
        lines.append(f"  [{mark}] {check.name}: {check.detail}")
        if check.remedy:
            lines.append(f"         fix: {check.remedy}")
    lines.append("")
    lines.append(report.conclusion)
    return "\n".join(lines)

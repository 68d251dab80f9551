"""A development stand-in for Supabase Auth, on loopback only.

It is **not** Supabase: it serves the few ``/auth/v1`` endpoints the ``tokengate`` client and the
API use, shaped like the real server so that the official ``supabase-auth`` client talks to it
unchanged (a test drives it with that client):

* ``POST /token?grant_type=password``      ``{"email", "password"}`` → a session
* ``POST /token?grant_type=refresh_token`` ``{"refresh_token"}`` → a session. Refresh tokens are
  single-use: the parent of the active token is answered with the active one, a revoked token is
  tolerated within the reuse interval (10 s), and an older one ends the whole session
  (``refresh_token_already_used``).
* ``POST /token?grant_type=pkce``          ``{"auth_code", "code_verifier"}`` after ``GET
  /authorize?provider=dev&code_challenge=…&redirect_to=…`` (a development provider that signs the
  seeded user in at once and redirects back with ``?code=``). Checked as Supabase Auth's
  handlers check them (``internal/api/external.go``, ``pkce.go``, ``token.go``): the challenge
  43-128 characters of ``[A-Za-z0-9._~-]``, method ``s256`` or ``plain`` (any case), the code
  set into ``redirect_to``'s query, a flow state that lives 300 s, is destroyed only by a
  successful exchange, and answers ``validation_failed``, ``flow_state_not_found`` (404),
  ``flow_state_expired`` (422) or ``bad_code_verifier``. Unlike Supabase, the stand-in offers
  only the PKCE flow.
* ``POST /otp`` then ``POST /verify``       email one-time codes (the code is printed, not mailed)
* ``POST /logout?scope=local|global|others``, ``GET /user``
* ``GET /.well-known/jwks.json``           the ES256 public key user tokens are signed with

The seeded user's ``app_metadata`` carries the extra API scopes ``make run`` advertises
(``DEV_SCOPES`` under ``api_scopes``, or the configured ``ScopesClaim``), as an operator's
server-side code would set them, so a user signed in through the CLI holds them.

Access tokens are ES256-signed with a key generated at start and carry the claims Supabase's do
(``iss``, ``aud``, ``sub``, ``exp``, ``iat``, ``email``, ``phone``, ``app_metadata``,
``user_metadata``, ``role``, ``aal``, ``amr``, ``session_id``, ``is_anonymous``). The project's
anon and service_role keys are HS256 JWTs signed with the local JWT secret, as the Supabase CLI's
local stack issues them; every request must carry one in ``apikey`` (except a browser's
``GET /authorize`` and the JWKS). Errors are JSON with
``code``/``error_code``/``msg`` (or ``code``/``message`` when the client asks for API version
2024-01-01), with Supabase's error codes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import ec

from tokengate.jws import b64url_encode, encode_compact
from tokengate.signing import LocalKeySigner

from . import STOP_POLL_SECONDS
from .supabase_dev import DEV_USER_ID, LOCAL_JWT_SECRET, hs256_token, user_claims

DEV_EMAIL = "dev@example.com"
DEV_SCOPES = ("write",)  # the seeded user's extra API scopes (app_metadata), beyond the default
DEFAULT_SCOPES_CLAIM = "api_scopes"
FLOW_STATE_LIFETIME = 300.0  # Supabase Auth's default FlowStateExpiryDuration
MIN_CODE_CHALLENGE, MAX_CODE_CHALLENGE = 43, 128
INVALID_PKCE_PARAMS = "PKCE flow requires code_challenge_method and code_challenge"
DEV_PASSWORD = "tokengate-dev-password"  # loopback development only, printed by ``make run``
REUSE_INTERVAL = 10.0
API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION_2024 = "2024-01-01"
OTP_LIFETIME = 300.0
# The Supabase CLI's local keys carry this issuer and a fixed expiry, and no ref or iat.
LOCAL_KEY_EXPIRY = 1983812996


def local_api_key(role: str, secret: str = LOCAL_JWT_SECRET) -> str:
    """The local project's ``anon`` / ``service_role`` key, as the Supabase CLI issues them."""
    claims = {"iss": "supabase-demo", "role": role, "exp": LOCAL_KEY_EXPIRY}
    return hs256_token(claims, secret, kid=None)


class AuthError(Exception):
    """An error answer: HTTP status, Supabase error code, message."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


@dataclass
class RefreshToken:
    token: str
    session_id: str
    parent: str | None
    revoked_at: float | None = None


@dataclass
class AuthSession:
    id: str
    user_id: str
    amr: list[dict[str, Any]]
    active: str = ""  # the refresh token currently in force
    tokens: dict[str, RefreshToken] = field(default_factory=dict)


@dataclass
class User:
    id: str
    email: str
    password: str
    created_at: str
    app_metadata: dict[str, Any] = field(
        default_factory=lambda: {"provider": "email", "providers": ["email"]}
    )

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": self.email,
            "email_confirmed_at": self.created_at,
            "phone": "",
            "confirmed_at": self.created_at,
            "last_sign_in_at": self.created_at,
            "app_metadata": dict(self.app_metadata),
            "user_metadata": {"email_verified": True},
            "identities": [],
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "is_anonymous": False,
        }


class SupabaseAuthStandIn:
    """The stand-in's state and rules; ``serve()`` puts it on a loopback port."""

    def __init__(
        self,
        jwt_secret: str = LOCAL_JWT_SECRET,
        access_token_lifetime: int = 3600,
        reuse_interval: float = REUSE_INTERVAL,
        clock: Callable[[], float] = time.time,
        scopes: tuple[str, ...] = DEV_SCOPES,
        scopes_claim: str = DEFAULT_SCOPES_CLAIM,
    ) -> None:
        self.jwt_secret = jwt_secret
        self.access_token_lifetime = access_token_lifetime
        self.reuse_interval = reuse_interval
        self.clock = clock
        self.anon_key = local_api_key("anon", jwt_secret)
        self.service_role_key = local_api_key("service_role", jwt_secret)
        self._signer = LocalKeySigner(ec.generate_private_key(ec.SECP256R1()))
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.scopes = tuple(scopes)
        self.scopes_claim = scopes_claim
        app_metadata: dict[str, Any] = {"provider": "email", "providers": ["email"]}
        if self.scopes:
            app_metadata[scopes_claim] = list(self.scopes)
        self.users = {DEV_EMAIL: User(DEV_USER_ID, DEV_EMAIL, DEV_PASSWORD, created, app_metadata)}
        self.sessions: dict[str, AuthSession] = {}
        self._refresh_index: dict[str, RefreshToken] = {}
        # code → user, challenge, challenge method, until
        self._auth_codes: dict[str, tuple[str, str, str, float]] = {}
        self._otps: dict[str, tuple[str, float]] = {}  # email → code, until
        self.counts: Counter[str] = Counter()  # requests per operation (tests read it)
        self.last_otp: str | None = None
        self.url = ""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        return f"{self.url}/auth/v1"

    # -- tokens ---------------------------------------------------------------------------

    def _access_token(self, user: User, session: AuthSession) -> tuple[str, int, int]:
        now = int(self.clock())
        claims = user_claims(self.url, lifetime=self.access_token_lifetime)
        claims.update(
            sub=user.id,
            email=user.email,
            app_metadata=dict(user.app_metadata),
            iat=now,
            exp=now + self.access_token_lifetime,
            amr=session.amr,
            session_id=session.id,
        )
        header = {"alg": "ES256", "kid": self._signer.kid, "typ": "JWT"}
        signing_input = encode_compact(header, claims)
        token = (
            signing_input.decode("ascii") + "." + b64url_encode(self._signer.sign(signing_input))
        )
        return token, self.access_token_lifetime, claims["exp"]

    def _new_refresh_token(self, session: AuthSession, parent: str | None) -> str:
        token = secrets.token_urlsafe(9)  # Supabase's are 12 characters
        entry = RefreshToken(token, session.id, parent)
        session.tokens[token] = entry
        session.active = token
        self._refresh_index[token] = entry
        return token

    def _session_answer(self, session: AuthSession, refresh_token: str) -> dict[str, Any]:
        user = self._user_by_id(session.user_id)
        access_token, expires_in, expires_at = self._access_token(user, session)
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": expires_in,
            "expires_at": expires_at,
            "refresh_token": refresh_token,
            "user": user.document(),
        }

    def _user_by_id(self, user_id: str) -> User:
        for user in self.users.values():
            if user.id == user_id:
                return user
        raise AuthError(404, "user_not_found", "User not found")

    def _sign_in(self, user: User, method: str) -> dict[str, Any]:
        session = AuthSession(
            str(uuid.uuid4()), user.id, [{"method": method, "timestamp": int(self.clock())}]
        )
        self.sessions[session.id] = session
        return self._session_answer(session, self._new_refresh_token(session, None))

    def _end_session(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            for token in session.tokens:
                self._refresh_index.pop(token, None)

    def end_user_sessions(self, email: str = DEV_EMAIL) -> None:
        """What an administrator's "sign out everywhere" does (for tests and demos)."""
        with self._lock:
            user_id = self.users[email].id
            for session_id in [s.id for s in self.sessions.values() if s.user_id == user_id]:
                self._end_session(session_id)

    # -- grants ---------------------------------------------------------------------------

    def password_grant(self, body: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(body.get("email", "")).lower())
        password = body.get("password")
        if (
            user is None
            or not isinstance(password, str)
            or not secrets.compare_digest(password.encode(), user.password.encode())
        ):
            raise AuthError(400, "invalid_credentials", "Invalid login credentials")
        return self._sign_in(user, "password")

    def refresh_grant(self, body: dict[str, Any]) -> dict[str, Any]:
        presented = body.get("refresh_token")
        if not isinstance(presented, str) or not presented:
            raise AuthError(400, "validation_failed", "refresh_token required")
        entry = self._refresh_index.get(presented)
        if entry is None:
            raise AuthError(
                400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"
            )
        session = self.sessions.get(entry.session_id)
        if session is None:
            raise AuthError(
                400, "session_not_found", "Invalid Refresh Token: No Valid Session Found"
            )
        if entry.revoked_at is not None:
            active = session.tokens.get(session.active)
            if active is not None and active.parent == entry.token:
                # The client lost the answer to its refresh: hand back the active token.
                return self._session_answer(session, active.token)
            if self.clock() - entry.revoked_at > self.reuse_interval:
                self._end_session(session.id)
                raise AuthError(
                    400, "refresh_token_already_used", "Invalid Refresh Token: Already Used"
                )
        entry.revoked_at = entry.revoked_at or self.clock()
        return self._session_answer(session, self._new_refresh_token(session, entry.token))

    def pkce_grant(self, body: dict[str, Any]) -> dict[str, Any]:
        code, verifier = body.get("auth_code"), body.get("code_verifier")
        if not isinstance(code, str) or not code or not isinstance(verifier, str) or not verifier:
            raise AuthError(
                400,
                "validation_failed",
                "invalid request: both auth code and code verifier should be non-empty",
            )
        found = self._auth_codes.get(code)
        if found is None:
            raise AuthError(
                404, "flow_state_not_found", "invalid flow state, no valid flow state found"
            )
        user_id, challenge, method, until = found
        if until < self.clock():
            raise AuthError(422, "flow_state_expired", "invalid flow state, flow state has expired")
        computed = pkce_challenge(verifier) if method == "s256" else verifier
        if not secrets.compare_digest(computed.encode(), challenge.encode()):
            raise AuthError(
                400,
                "bad_code_verifier",
                "code challenge does not match previously saved code verifier",
            )
        del self._auth_codes[code]  # destroyed by the exchange that succeeds, as Supabase does
        return self._sign_in(self._user_by_id(user_id), "oauth")

    def authorize(self, query: dict[str, str]) -> str:
        """Any provider, played by the stand-in: sign the seeded user in, redirect with a code."""
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,30}", query.get("provider", "")):
            raise AuthError(
                400, "validation_failed", "Unsupported provider: provider is not enabled"
            )
        redirect_to = query.get("redirect_to", "")
        host = urlsplit(redirect_to).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AuthError(400, "validation_failed", "redirect_to must be a loopback URL")
        challenge = query.get("code_challenge", "")
        method = query.get("code_challenge_method", "")
        if bool(challenge) != bool(method):
            raise AuthError(400, "validation_failed", INVALID_PKCE_PARAMS)
        if not challenge:
            raise AuthError(
                400, "validation_failed", "this development stand-in offers the PKCE flow only"
            )
        if not MIN_CODE_CHALLENGE <= len(challenge) <= MAX_CODE_CHALLENGE:
            raise AuthError(
                400,
                "validation_failed",
                f"code challenge has to be between {MIN_CODE_CHALLENGE} and "
                f"{MAX_CODE_CHALLENGE} characters",
            )
        if not re.fullmatch(r"[a-zA-Z._~0-9-]+", challenge):
            raise AuthError(
                400,
                "validation_failed",
                "code challenge can only contain alphanumeric characters, hyphens, periods, "
                "underscores and tildes",
            )
        if method.lower() not in ("s256", "plain"):
            raise AuthError(400, "validation_failed", "Invalid code_challenge_method")
        code = str(uuid.uuid4())
        self._auth_codes[code] = (
            self.users[DEV_EMAIL].id,
            challenge,
            method.lower(),
            self.clock() + FLOW_STATE_LIFETIME,
        )
        return with_code(redirect_to, code)

    def send_otp(self, body: dict[str, Any]) -> dict[str, Any]:
        email = str(body.get("email", "")).lower()
        if email not in self.users:
            raise AuthError(422, "otp_disabled", "Signups not allowed for otp")
        code = f"{secrets.randbelow(10**6):06d}"
        self._otps[email] = (code, self.clock() + OTP_LIFETIME)
        self.last_otp = code
        print(f"[supabase stand-in] one-time code for {email}: {code}", flush=True)
        return {}

    def verify_otp(self, body: dict[str, Any]) -> dict[str, Any]:
        email = str(body.get("email", "")).lower()
        found = self._otps.get(email)
        token = body.get("token")
        if (
            found is None
            or found[1] < self.clock()
            or not isinstance(token, str)
            or not secrets.compare_digest(token.encode(), found[0].encode())
        ):
            raise AuthError(403, "otp_expired", "Token has expired or is invalid")
        del self._otps[email]
        return self._sign_in(self.users[email], "otp")

    # -- bearer endpoints -----------------------------------------------------------------

    def _bearer_session(self, headers: dict[str, str]) -> AuthSession:
        authorization = headers.get("authorization", "")
        if not authorization.lower().startswith("bearer "):
            raise AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token")
        claims = self._verified_claims(authorization[7:].strip())
        session = self.sessions.get(str(claims.get("session_id")))
        if session is None:
            raise AuthError(
                403, "session_not_found", "Session from session_id claim in JWT does not exist"
            )
        return session

    def _verified_claims(self, token: str) -> dict[str, Any]:
        from tokengate.errors import TokenGateError
        from tokengate.keys import key_from_jwk
        from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

        class OneKey:
            def __init__(self, jwk: dict[str, str]) -> None:
                self.key = key_from_jwk(jwk)

            def get(self, kid: str) -> Any:
                if kid != self.key.kid:
                    raise AuthError(
                        403, "bad_jwt", "invalid JWT: unable to parse or verify signature"
                    )
                return self.key

        verifier = SupabaseTokenVerifier(
            SupabasePolicy(self.issuer, leeway=0),
            jwks=OneKey(self._signer.public_jwk()),  # type: ignore[arg-type]
            clock=self.clock,
        )
        try:
            return verifier.verify(token).claims
        except TokenGateError as exc:
            raise AuthError(
                403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {exc.reason}"
            ) from exc

    def logout(self, headers: dict[str, str], scope: str) -> None:
        session = self._bearer_session(headers)
        if scope not in ("local", "global", "others"):
            raise AuthError(400, "validation_failed", "Unsupported logout scope")
        user_sessions = [s.id for s in self.sessions.values() if s.user_id == session.user_id]
        for session_id in user_sessions:
            if scope == "global" or (scope == "local") == (session_id == session.id):
                self._end_session(session_id)

    def user(self, headers: dict[str, str]) -> dict[str, Any]:
        return self._user_by_id(self._bearer_session(headers).user_id).document()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._signer.public_jwk() | {"key_ops": ["verify"]}]}

    # -- HTTP -----------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        path = parts.path.removeprefix("/auth/v1")
        query = dict(parse_qsl(parts.query))
        answer_headers = {"Content-Type": "application/json"}
        versioned = headers.get(API_VERSION_HEADER.lower()) == API_VERSION_2024
        if versioned:
            answer_headers[API_VERSION_HEADER] = API_VERSION_2024
        try:
            if path == "/.well-known/jwks.json" and method == "GET":
                self.counts["jwks"] += 1
                document: Any = self.jwks()
                answer_headers["Cache-Control"] = "public, max-age=600"
                return 200, answer_headers, json.dumps(document).encode()
            browser = method == "GET" and path == "/authorize"  # a browser sends no apikey
            if not browser and headers.get("apikey") not in (self.anon_key, self.service_role_key):
                return 401, answer_headers, b'{"message":"Invalid API key"}'
            with self._lock:
                status, document, extra = self._route(method, path, query, headers, body)
        except AuthError as error:
            document = (
                {"code": error.error_code, "message": error.message}
                if versioned
                else {"code": error.status, "error_code": error.error_code, "msg": error.message}
            )
            return error.status, answer_headers, json.dumps(document).encode()
        answer_headers.update(extra)
        return status, answer_headers, b"" if document is None else json.dumps(document).encode()

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        body: dict[str, Any] = {}
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                raise AuthError(400, "bad_json", "Could not parse request body as JSON") from None
            body = parsed if isinstance(parsed, dict) else {}
        if method == "POST" and path == "/token":
            grant = query.get("grant_type", "")
            grants = {
                "password": self.password_grant,
                "refresh_token": self.refresh_grant,
                "pkce": self.pkce_grant,
            }
            if grant not in grants:
                raise AuthError(400, "validation_failed", "unsupported_grant_type")
            self.counts[grant] += 1
            return 200, grants[grant](body), {}
        if method == "POST" and path == "/logout":
            self.counts["logout"] += 1
            self.logout(headers, query.get("scope", "global"))
            return 204, None, {}
        if method == "GET" and path == "/user":
            self.counts["user"] += 1
            return 200, self.user(headers), {}
        if method == "POST" and path == "/otp":
            self.counts["otp"] += 1
            return 200, self.send_otp(body), {}
        if method == "POST" and path == "/verify":
            self.counts["verify"] += 1
            return 200, self.verify_otp(body), {}
        if method == "GET" and path == "/authorize":
            self.counts["authorize"] += 1
            return 302, None, {"Location": self.authorize(query)}
        raise AuthError(404, "not_found", "Not found")

    def serve(self, port: int = 0) -> SupabaseAuthStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 20)) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer_headers, payload = stand_in.handle(
                    self.command, self.path, headers, body
                )
                self.send_response(status)
                for name, value in answer_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _dispatch

            def log_message(self, format: str, *args: Any) -> None:
                pass  # request lines would carry refresh tokens' neighbours; keep quiet

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(
            target=server.serve_forever, args=(STOP_POLL_SECONDS,), daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SupabaseAuthStandIn:
        return self if self._server is not None else self.serve()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def with_code(redirect_to: str, code: str) -> str:
    """``redirect_to`` with ``code`` set in its query (Supabase Auth's prepPKCERedirectURL:
    other parameters stay, an existing ``code`` is replaced)."""
    parts = urlsplit(redirect_to)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "code"]
    query.append(("code", code))
    return urlunsplit(parts._replace(query=urlencode(sorted(query, key=lambda pair: pair[0]))))


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(SHA-256(verifier)), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

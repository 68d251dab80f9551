"""Post-deploy smoke test: does the stack at a base URL work end to end?

    make smoke URL=https://auth.example.com SUPABASE_TOKEN=<a live Supabase access token>

Checks, in order, one line each, stopping at the first failure (exit status 1): both discovery
documents and their issuer, the JWKS, an exchange of the Supabase token, the issued token verified
through discovery by an independent library (pyjwt's PyJWKClient, not tokengate's code), /whoami
with it, and the refusals of a tampered token and of no token. No token is ever printed.
Works against the local stack (``make run``) and a deployed stage or custom domain alike.

Each check has a deadline (``--check-seconds``, 20 s by default): an endpoint that hangs, or
trickles its answer byte by byte, fails that check in bounded time instead of holding the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
CHECK_SECONDS = 20.0


class CheckFailed(Exception):
    pass


Response = tuple[int, dict[str, str], Any]


_timeout = threading.local()  # the socket timeout of the running check: its own deadline


def socket_timeout() -> float:
    return float(getattr(_timeout, "seconds", CHECK_SECONDS))


def request(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Response:
    if urlsplit(url).scheme not in ("https", "http"):
        raise CheckFailed(f"not an http(s) URL: {url}")
    call = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(call, timeout=socket_timeout()) as answer:  # noqa: S310
            status, head, raw = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        status, head, raw = error.code, error.headers, error.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise CheckFailed(f"{method} {url}: {error}") from error
    try:
        document = json.loads(raw) if raw else None
    except ValueError:
        raise CheckFailed(
            f"{method} {url}: answered {status} with a body that is not JSON"
        ) from None
    # Header names compared in lower case: proxies and HTTP/2 front ends may change their case.
    return status, {name.lower(): value for name, value in head.items()}, document


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def tampered(token: str) -> str:
    """The same token with one signature character changed (it must no longer verify)."""
    head, _, last = token.rpartition(".")
    flipped = "A" if last[0] != "A" else "B"
    return f"{head}.{flipped}{last[1:]}"


class Smoke:
    def __init__(self, base_url: str, supabase_token: str, audience: str) -> None:
        self.base = base_url.rstrip("/")
        self.supabase_token = supabase_token
        self.audience = audience
        self.metadata: dict[str, Any] = {}
        self.api_token = ""

    def discovery(self) -> str:
        status, _, oidc = request("GET", f"{self.base}/.well-known/openid-configuration")
        expect(status == 200 and isinstance(oidc, dict), f"openid-configuration answered {status}")
        issuer = oidc.get("issuer")
        expect(isinstance(issuer, str) and bool(issuer), "no issuer in openid-configuration")
        status, _, oauth = request("GET", f"{self.base}/.well-known/oauth-authorization-server")
        expect(status == 200 and oauth == oidc, "the two discovery documents differ")
        expect(
            oidc.get("jwks_uri") == f"{issuer}/.well-known/jwks.json", "jwks_uri not under issuer"
        )
        expect(oidc.get("token_endpoint") == f"{issuer}/token", "token_endpoint not under issuer")
        self.metadata = oidc
        parts = urlsplit(issuer)
        if parts.path in ("", "/"):
            # A path-less issuer: RFC 8414's path-inserted form is the root form; it must resolve.
            status, _, inserted = request(
                "GET", f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server"
            )
            expect(status == 200 and inserted == oidc, "RFC 8414 discovery at the issuer's root")
            return f"issuer {issuer}; OIDC and RFC 8414 (path-inserted) discovery agree"
        return f"issuer {issuer}; OIDC discovery only (the issuer has a path, see docs/deploy.md)"

    def jwks(self) -> str:
        status, _, document = request("GET", self.metadata["jwks_uri"])
        expect(status == 200 and isinstance(document, dict), f"jwks_uri answered {status}")
        keys = document.get("keys")
        expect(isinstance(keys, list) and bool(keys), "the JWKS has no keys")
        for key in keys:
            expect(
                {"kty", "kid", "alg"} <= key.keys() and key.get("use") == "sig",
                "a JWK lacks members",
            )
        return f"{len(keys)} key(s): " + ", ".join(f"{k['alg']} {k['kid'][:12]}…" for k in keys)

    def exchange(self) -> str:
        form = {
            "grant_type": GRANT_TYPE,
            "subject_token": self.supabase_token,
            "subject_token_type": ACCESS_TOKEN,
        }
        status, headers, body = request(
            "POST",
            self.metadata["token_endpoint"],
            urlencode(form).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 200:
            error = body.get("error") if isinstance(body, dict) else None
            raise CheckFailed(f"POST /token answered {status} {error or ''}".rstrip())
        expect(isinstance(body, dict) and body.get("token_type") == "Bearer", "not a Bearer token")
        expect(headers.get("cache-control") == "no-store", "the token answer may be cached")
        self.api_token = str(body["access_token"])
        return f"issued, expires_in {body.get('expires_in')}, scope {body.get('scope')!r}"

    def verify(self) -> str:
        # Only what any standard verifier knows: discovery's issuer and jwks_uri.
        try:
            key = jwt.PyJWKClient(
                self.metadata["jwks_uri"], cache_keys=False, timeout=socket_timeout()
            ).get_signing_key_from_jwt(self.api_token)
            claims = jwt.decode(
                self.api_token,
                key.key,
                algorithms=["RS256", "ES256"],
                audience=self.audience,
                issuer=self.metadata["issuer"],
            )
        except jwt.PyJWTError as error:
            raise CheckFailed(f"pyjwt refused the issued token: {type(error).__name__}") from None
        header = jwt.get_unverified_header(self.api_token)
        expect(header.get("typ") == "at+jwt", "the issued token's typ is not at+jwt")
        return f"pyjwt verified {header['alg']} kid {header['kid'][:12]}…, sub {claims['sub']}"

    def whoami(self) -> str:
        status, _, body = request("GET", f"{self.base}/whoami", headers=self.bearer(self.api_token))
        expect(status == 200, f"/whoami answered {status}")
        expect(
            jwt.decode(self.api_token, options={"verify_signature": False})["sub"]
            == body.get("sub"),
            "/whoami names another subject",
        )
        return f"200, sub {body.get('sub')}"

    def tampered_refused(self) -> str:
        status, headers, _ = request(
            "GET", f"{self.base}/whoami", headers=self.bearer(tampered(self.api_token))
        )
        expect(status == 401, f"a tampered token got {status}, not 401")
        expect(headers.get("www-authenticate", "").startswith("Bearer"), "no Bearer challenge")
        return "401"

    def missing_refused(self) -> str:
        status, headers, _ = request("GET", f"{self.base}/whoami")
        expect(status == 401, f"no token got {status}, not 401")
        expect(headers.get("www-authenticate", "").startswith("Bearer"), "no Bearer challenge")
        return "401"

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def checks(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("discovery", self.discovery),
            ("jwks", self.jwks),
            ("exchange", self.exchange),
            ("verify through discovery", self.verify),
            ("whoami", self.whoami),
            ("tampered token refused", self.tampered_refused),
            ("missing token refused", self.missing_refused),
        ]


def run_check(check: Callable[[], str], seconds: float) -> str:
    """The check's detail, or CheckFailed; after ``seconds`` without an answer, CheckFailed
    while the check is left behind (a daemon thread: the run stops at the first failure, and a
    socket timeout of the same length ends it soon after)."""
    outcome: list[str | BaseException] = []

    def run() -> None:
        _timeout.seconds = seconds
        try:
            outcome.append(check())
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread as it is
            outcome.append(error)

    worker = threading.Thread(target=run, name="smoke check", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise CheckFailed(f"no answer within {seconds:g} s")
    (result,) = outcome
    if isinstance(result, BaseException):
        raise result
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the API's base URL (Outputs.BaseUrl)")
    parser.add_argument("--audience", default="api", help="the audience issued tokens carry")
    parser.add_argument(
        "--check-seconds",
        type=float,
        default=CHECK_SECONDS,
        help=f"each check's deadline (default {CHECK_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    if not args.check_seconds > 0:
        parser.error("--check-seconds must be positive")
    token = os.environ.get("SUPABASE_TOKEN", "")
    if not token:
        print("SUPABASE_TOKEN is not set (a live Supabase access token)", file=sys.stderr)
        return 2
    smoke = Smoke(args.url, token, args.audience)
    for name, check in smoke.checks():
        try:
            detail = run_check(check, args.check_seconds)
        except CheckFailed as failure:
            print(f"FAIL {name}: {failure}", flush=True)
            return 1
        print(f"ok   {name}: {detail}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

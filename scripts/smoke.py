"""Post-deploy smoke test: does the stack at a base URL work end to end?

    make smoke URL=https://auth.example.com SUPABASE_TOKEN=<a live Supabase access token>

Checks, in order, one line each, stopping at the first failure (exit status 1): both discovery
documents and their issuer, the JWKS, an exchange of the Supabase token, the issued token verified
through discovery by an independent library (pyjwt's PyJWKClient, not tokengate's code), /whoami
with it, and the refusals of a tampered token and of no token. No token is ever printed.
Works against the local stack (``make run``) and a deployed stage or custom domain alike.

Each check has a deadline (``--check-seconds``, 20 s by default): an endpoint that hangs, or
trickles its answer byte by byte, fails that check in bounded time instead of holding the run.
Then what an operator needs to trust the stack (docs/deploy.md):

* CORS, when it is configured (``--origin``, else the stack's ``CorsAllowOrigins`` read from the
  local stack or, with ``--stack``, from CloudFormation): a preflight of ``/token`` and the CORS
  header on an error answer.
* The issuance audit line of the token just issued, with its fields and without the token: from
  the local stack's log, or with ``--stack`` and AWS credentials from the exchange's log group
  (CloudWatch Logs ``FilterLogEvents``).
* With ``--stack`` and AWS credentials: whether CloudTrail records the account's management
  events, without which the stack's EventBridge rules (key, function and role changes) never
  fire. A line that says so, never a failure; "cannot tell" when it cannot.
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
        if isinstance(getattr(error, "reason", error), TimeoutError):
            # The socket timeout is the check's deadline: the same failure, whichever timer
            # (this one or run_check's) notices it first.
            raise CheckFailed(f"no answer within {socket_timeout():g} s") from error
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


# The issuance line's fields (docs/operations.md): enough to tie a request to its token.
ISSUANCE_FIELDS = ("client_id", "sid", "kid", "exp", "jti", "request_id", "source_ip")
LOG_WAIT_SECONDS = 60.0  # CloudWatch Logs makes a line searchable within seconds, not at once
PROBE_ORIGIN = "https://smoke-test.invalid"  # what an allow-all (*) configuration is probed with


class Smoke:
    def __init__(
        self,
        base_url: str,
        supabase_token: str,
        audience: str,
        *,
        stack: str = "",
        origin: str = "",
        log_file: str = "",
    ) -> None:
        self.base = base_url.rstrip("/")
        self.supabase_token = supabase_token
        self.audience = audience
        self.metadata: dict[str, Any] = {}
        self.api_token = ""
        self.stack = stack
        self.origin = origin
        self.log_file = log_file
        self._local_state: dict[str, Any] | None = None

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

    # -- what an operator needs to trust the stack ------------------------------------------

    def local_state(self) -> dict[str, Any]:
        """``make run``'s record of the stack at this URL (its port), or {} for any other."""
        if self._local_state is None:
            self._local_state = read_local_state(self.base)
        return self._local_state

    def cors_origin(self) -> tuple[str, str]:
        """(the origin to probe with, where that came from), or ("", why not)."""
        if self.origin:
            return self.origin, "--origin"
        configured = ""
        source = ""
        environment = self.local_state().get("environment", {})
        if environment:
            exchange = environment.get("TokenExchangeFunction", {})
            configured, source = exchange.get("CORS_ALLOW_ORIGINS", ""), "the local stack"
        elif self.stack:
            try:
                configured = stack_parameters(self.stack).get("CorsAllowOrigins", "")
                source = f"stack {self.stack}"
            except Exception as error:  # noqa: BLE001 - any AWS failure: say so, do not guess
                return "", f"cannot read stack {self.stack}'s CorsAllowOrigins: {error}"
        else:
            return "", "no --origin, and the stack's CorsAllowOrigins is unknown (give --stack)"
        first = next((o.strip() for o in configured.split(",") if o.strip()), "")
        if not first:
            return "", f"CorsAllowOrigins is empty ({source}): no CORS"
        return (PROBE_ORIGIN if first == "*" else first), source

    def cors(self) -> str:
        origin, source = self.cors_origin()
        if not origin:
            return f"not checked: {source}"
        endpoint = self.metadata["token_endpoint"]
        preflight = {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        status, headers, _ = request("OPTIONS", endpoint, headers=preflight)
        expect(200 <= status < 300, f"preflight of /token from {origin} answered {status}")
        allowed = headers.get("access-control-allow-origin")
        expect(allowed in (origin, "*"), f"preflight allows origin {allowed!r}, not {origin}")
        methods = headers.get("access-control-allow-methods", "")
        expect("POST" in methods.upper(), f"preflight allows methods {methods!r}, not POST")
        status, headers, _ = request(
            "POST",
            endpoint,
            b"grant_type=smoke",
            {"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"},
        )
        expect(status == 400, f"a bad token request answered {status}, not 400")
        allowed = headers.get("access-control-allow-origin")
        expect(allowed in (origin, "*"), f"the 400 answer allows origin {allowed!r}")
        status, headers, _ = request("GET", f"{self.base}/whoami", headers={"Origin": origin})
        gateway = headers.get("access-control-allow-origin")
        expect(gateway in (None, origin, "*"), f"API Gateway's {status} allows {gateway!r}")
        note = (
            f"API Gateway's own {status} carries it too"
            if gateway
            else f"API Gateway's own {status} carries no CORS header (GatewayResponses)"
        )
        return f"{origin} ({source}): preflight and the 400 answer name it; {note}"

    def issuance_log(self) -> str:
        token = self.api_token
        claims = jwt.decode(token, options={"verify_signature": False})
        kid = jwt.get_unverified_header(token)["kid"]
        log_file = self.log_file or str(self.local_state().get("log_file") or "")
        if log_file:
            line, where = local_issuance_line(log_file, claims["jti"]), "the local stack's log"
        elif self.stack:
            try:
                line, where = cloudwatch_issuance_line(self.stack, claims["jti"])
            except Exception as error:  # noqa: BLE001 - no credentials, access denied, ...
                return f"not checked: cannot search stack {self.stack}'s log ({error})"
        else:
            return "not checked: give --stack (with AWS credentials) to search the stack's log"
        expect(line is not None, f"no 'token issued' line for jti {claims['jti']} in {where}")
        assert line is not None
        document = json.loads(line)
        missing = [f for f in ISSUANCE_FIELDS if document.get(f) in (None, "")]
        expect(not missing, f"the issuance line lacks {', '.join(missing)}")
        expect(document["kid"] == kid, "the issuance line names another kid")
        expect(document["exp"] == claims["exp"], "the issuance line names another exp")
        signature = token.rsplit(".", 1)[1]
        for secret in (token, signature, self.supabase_token):
            expect(secret not in line, "the issuance line holds a token or a signature")
        return f"{where}: jti, client_id, sid, kid, exp, request_id, source_ip; no token"

    def cloudtrail(self) -> str:
        if not self.stack:
            return "not checked: give --stack (with AWS credentials) to check the account"
        return cloudtrail_status(self.stack)

    def trust_checks(self) -> list[tuple[str, Callable[[], str]]]:
        """Run after the end-to-end checks (they need the issued token)."""
        return [
            ("cors", self.cors),
            ("issuance log", self.issuance_log),
            ("cloudtrail", self.cloudtrail),
        ]

    def checks(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("discovery", self.discovery),
            ("jwks", self.jwks),
            ("exchange", self.exchange),
            ("verify through discovery", self.verify),
            ("whoami", self.whoami),
            ("tampered token refused", self.tampered_refused),
            ("missing token refused", self.missing_refused),
            *self.trust_checks(),
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


def read_local_state(base_url: str) -> dict[str, Any]:
    """``make run`` writes ``.aws-sam/local/<port>.json``: its functions' environment and log."""
    parts = urlsplit(base_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
        return {}
    path = os.path.join(os.path.dirname(__file__), "..", ".aws-sam", "local", f"{parts.port}.json")
    try:
        with open(path, encoding="utf-8") as file:
            state: dict[str, Any] = json.load(file)
    except (OSError, ValueError):
        return {}
    return state if state.get("base_url") == base_url.rstrip("/") else {}


def local_issuance_line(path: str, jti: str, wait: float = 5.0) -> str | None:
    """The local log's ``token issued`` line for ``jti`` (written as the answer is sent)."""
    import time

    deadline = time.monotonic() + wait
    while True:
        with open(path, encoding="utf-8") as file:
            for line in file:
                if '"token issued"' in line and jti in line:
                    document = json.loads(line)
                    if document.get("message") == "token issued" and document.get("jti") == jti:
                        return line.strip()
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def stack_parameters(stack: str) -> dict[str, str]:
    import boto3

    description = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in description["Parameters"]}


def cloudwatch_issuance_line(
    stack: str, jti: str, wait: float = LOG_WAIT_SECONDS
) -> tuple[str | None, str]:
    """The exchange's log group (the stack's ``TokenExchangeLogGroup``), searched for ``jti``."""
    import time

    import boto3

    resource = boto3.client("cloudformation").describe_stack_resource(
        StackName=stack, LogicalResourceId="TokenExchangeLogGroup"
    )
    group = resource["StackResourceDetail"]["PhysicalResourceId"]
    logs = boto3.client("logs")
    since = int((time.time() - 900) * 1000)
    deadline = time.monotonic() + wait
    while True:
        events = logs.filter_log_events(
            logGroupName=group, startTime=since, filterPattern=f'{{ $.jti = "{jti}" }}'
        ).get("events", [])
        for event in events:
            if '"token issued"' in event["message"]:
                return event["message"].strip(), f"log group {group}"
        if time.monotonic() > deadline:
            return None, f"log group {group}"
        time.sleep(3)


def management_events_recorded(trails: list[dict[str, Any]], selectors: Any, region: str) -> str:
    """Which trail records this region's management write events, or "" (pure: the decision)."""
    for trail in trails:
        if not (trail.get("IsMultiRegionTrail") or trail.get("HomeRegion") == region):
            continue
        answer = selectors(trail)
        if answer is None:  # not logging
            continue
        for selector in answer.get("EventSelectors") or []:
            if selector.get("IncludeManagementEvents", True) and selector.get(
                "ReadWriteType", "All"
            ) in ("All", "WriteOnly"):
                return str(trail.get("Name"))
        for advanced in answer.get("AdvancedEventSelectors") or []:
            fields = {f["Field"]: f for f in advanced.get("FieldSelectors", [])}
            category = fields.get("eventCategory", {})
            read_only = fields.get("readOnly", {})
            if "Management" in category.get("Equals", []) and read_only.get("Equals") != ["true"]:
                return str(trail.get("Name"))
    return ""


def cloudtrail_status(stack: str) -> str:
    """Does CloudTrail record management events here? EventBridge receives "AWS API Call via
    CloudTrail" events only then (docs/deploy.md)."""
    try:
        import boto3

        session = boto3.session.Session()
        if session.get_credentials() is None:
            return "cannot tell: no AWS credentials"
        region = session.region_name or "us-east-1"
        cloudtrail = session.client("cloudtrail")
        trails = cloudtrail.describe_trails(includeShadowTrails=True).get("trailList", [])

        def selectors(trail: dict[str, Any]) -> Any:
            arn = trail["TrailARN"]
            if not cloudtrail.get_trail_status(Name=arn).get("IsLogging"):
                return None
            return cloudtrail.get_event_selectors(TrailName=arn)

        name = management_events_recorded(trails, selectors, region)
    except Exception as error:  # noqa: BLE001 - access denied, no endpoint: cannot tell
        return f"cannot tell: {type(error).__name__}: {error}"
    if name:
        return f"trail {name} records management events: the stack's EventBridge rules will fire"
    return (
        f"NO trail records management write events in {region}: the stack's EventBridge rules "
        "(key, function and role changes) will never fire; see docs/deploy.md"
    )


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
    parser.add_argument(
        "--stack", default=os.environ.get("STACK", ""), help="the CloudFormation stack (AWS)"
    )
    parser.add_argument("--origin", default="", help="a browser origin CORS should allow")
    parser.add_argument("--log-file", default="", help="the functions' JSON log (local stack)")
    args = parser.parse_args(argv)
    if not args.check_seconds > 0:
        parser.error("--check-seconds must be positive")
    token = os.environ.get("SUPABASE_TOKEN", "")
    if not token:
        print("SUPABASE_TOKEN is not set (a live Supabase access token)", file=sys.stderr)
        return 2
    smoke = Smoke(
        args.url,
        token,
        args.audience,
        stack=args.stack,
        origin=args.origin,
        log_file=args.log_file,
    )
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

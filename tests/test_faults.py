"""Failure and fault injection (docs/contract.md §12 G-27): AWS and the JWKS upstreams misbehaving.

Each handler is invoked with a Lambda-like context whose remaining time is short, and each
dependency is driven slow, trickling, hanging and refusing: the exchange answers 503
temporarily_unavailable with Retry-After, the JWKS function 503, the authorizers Unauthorized,
always before the context's deadline; never a timeout, never a token, never Allow.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devstack.events import authorizer_event, exchange_body, proxy_event
from devstack.moto_aws import LocalAws
from tests.conftest import ISSUER, InProcessApi
from tests.factories import KeyPair, ec_pair, hs_token, key_token, supabase_claims
from tests.jwks_server import JwksServer
from tests.slow_servers import MODES, ShortLivedContext, SlowServer, refused_url

pytestmark = pytest.mark.usefixtures("without_gc_pauses")  # timed against a context

MakeApi = Callable[..., InProcessApi]
ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/v1"
HOSTILE = [m for m in MODES if m != "redirect"] + ["refused"]
CONTEXT_MILLIS = 1500


@pytest.fixture(params=HOSTILE)
def upstream(request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of a misbehaving upstream: trickling, hanging, endless, or refusing."""
    if request.param == "refused":
        yield refused_url().removesuffix("/jwks.json")
        return
    with SlowServer(request.param, interval=0.2, lifetime=60).running() as slow:
        yield slow.url.removesuffix("/jwks.json")


def invoke(api: InProcessApi, function: str, event: dict[str, Any]) -> Any:
    """Run a handler with a short-lived context; its answer (or what it raised) must come before
    the context's deadline. A function not started yet starts first (its init phase, which
    Lambda does not count against an invocation's time)."""
    handler = api.gateway.handlers[function]
    context = ShortLivedContext(CONTEXT_MILLIS)
    try:
        answer: Any = handler(event, context)
    except Exception as exc:  # an authorizer's Unauthorized
        answer = exc
    assert context.answered_in_time(), f"{function} outlived its context"
    return answer


def token_request(token: str) -> dict[str, Any]:
    return proxy_event(
        "POST",
        "/token",
        exchange_body(token),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )


def assert_unavailable(answer: dict[str, Any]) -> None:
    assert answer["statusCode"] == 503
    body = json.loads(answer["body"])
    assert body == {"error": "temporarily_unavailable", "error_description": "Try again shortly."}
    assert "access_token" not in answer["body"]
    assert answer["headers"]["Retry-After"].isdigit()
    assert answer["headers"]["Cache-Control"] == "no-store"


def assert_unauthorized(answer: Any) -> None:
    assert isinstance(answer, Exception), answer  # never a policy, so never Allow
    assert str(answer) == "Unauthorized"


# -- AWS: KMS and Secrets Manager ----------------------------------------------------------------


def test_kms_misbehaving_at_the_exchange(make_api: MakeApi, upstream: str) -> None:
    api = make_api(on_first_call=True, AWS_ENDPOINT_URL_KMS=upstream)
    assert_unavailable(
        invoke(api, "TokenExchangeFunction", token_request(hs_token(supabase_claims())))
    )


def test_kms_misbehaving_at_the_jwks_function(make_api: MakeApi, upstream: str) -> None:
    api = make_api(on_first_call=True, AWS_ENDPOINT_URL_KMS=upstream)
    answer = invoke(api, "JwksFunction", proxy_event("GET", "/.well-known/jwks.json"))
    assert answer["statusCode"] == 503
    assert json.loads(answer["body"]) == {"error": "temporarily_unavailable"}


def test_secrets_manager_misbehaving_in_secrets_manager_key_mode(
    make_api: MakeApi, upstream: str
) -> None:
    api = make_api(
        {"SigningMode": "secretsmanager"},
        on_first_call=True,
        AWS_ENDPOINT_URL_SECRETS_MANAGER=upstream,
    )
    assert_unavailable(
        invoke(api, "TokenExchangeFunction", token_request(hs_token(supabase_claims())))
    )
    # The JWKS function publishes SigningPublicKeys and never reads a secret: it keeps serving.
    answer = invoke(api, "JwksFunction", proxy_event("GET", "/.well-known/jwks.json"))
    assert answer["statusCode"] == 200
    assert len(json.loads(answer["body"])["keys"]) == 1


def test_supabase_authorizer_without_its_secret_never_allows(
    make_api: MakeApi, upstream: str
) -> None:
    api = make_api(on_first_call=True, AWS_ENDPOINT_URL_SECRETS_MANAGER=upstream)
    event = authorizer_event("token", hs_token(supabase_claims()), arn_base=ARN)
    assert_unauthorized(invoke(api, "SupabaseAuthorizerFunction", event))


class ThrottlingProxy:
    """moto server behind a proxy that answers KMS ``Sign`` with the error KMS sends when a
    request quota is exceeded; every other call reaches moto unchanged."""

    THROTTLED = (400, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}))

    def __init__(
        self,
        moto: LocalAws,
        sign: tuple[int, str] = THROTTLED,
        public_key: tuple[int, str] | None = None,
    ) -> None:
        self.signs = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                target = self.headers.get("X-Amz-Target")
                if target == "TrentService.Sign":
                    outer.signs += 1
                    status, answer = sign[0], sign[1].encode()
                elif target == "TrentService.GetPublicKey" and public_key is not None:
                    status, answer = public_key[0], public_key[1].encode()
                else:
                    status, answer = outer.forward(self.path, dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._moto = moto
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self._moto.port, timeout=5)
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def __enter__(self) -> ThrottlingProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_kms_throttling_is_a_503_with_retry_after_and_a_metric(
    make_api: MakeApi, moto_server: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    with ThrottlingProxy(moto_server) as proxy:
        api = make_api(AWS_ENDPOINT_URL_KMS=proxy.url)
        capsys.readouterr()
        answer = invoke(api, "TokenExchangeFunction", token_request(hs_token(supabase_claims())))
    assert_unavailable(answer)
    assert 1 <= proxy.signs <= 3  # bounded retries, not a retry storm against a quota
    metrics = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    exchange = [m for m in metrics if "TokenExchange" in m]
    assert [(m["outcome"], m["reason"]) for m in exchange] == [("unavailable", "kms_throttled")]


GARBLED = [
    (200, "{}"),
    (200, "not json"),
    (200, json.dumps({"Signature": "!!not base64!!"})),
    (200, json.dumps({"Signature": 7})),
    (200, "[" * 100_000),
    (200, json.dumps({"__type": "ThrottlingException"}) + " trailing"),
]


NOT_SIGNATURES = [
    (200, json.dumps({"Signature": "AAAA"})),
    (200, json.dumps({"Signature": base64.b64encode(bytes(256)).decode()})),
]


@pytest.mark.parametrize("parameters", [{}, {"SigningAlgorithm": "ES256"}], ids=["RS256", "ES256"])
@pytest.mark.parametrize("sign", NOT_SIGNATURES)
def test_a_kms_answer_that_is_not_a_signature_by_the_key_issues_no_token(
    make_api: MakeApi, moto_server: LocalAws, sign: tuple[int, str], parameters: dict[str, str]
) -> None:
    """Well-formed bytes that are not a signature by the published key must not become a token
    that every verifier refuses."""
    with ThrottlingProxy(moto_server, sign=sign) as proxy:
        api = make_api(parameters, AWS_ENDPOINT_URL_KMS=proxy.url)
        answer = invoke(api, "TokenExchangeFunction", token_request(hs_token(supabase_claims())))
    assert_unavailable(answer)


@pytest.mark.parametrize("sign", GARBLED)
def test_a_garbled_kms_sign_answer_is_a_503(
    make_api: MakeApi, moto_server: LocalAws, sign: tuple[int, str]
) -> None:
    """A KMS endpoint (or something in its place) that answers 200 with what is not a Sign
    answer: never a traceback or a 502, never a token."""
    with ThrottlingProxy(moto_server, sign=sign) as proxy:
        api = make_api(AWS_ENDPOINT_URL_KMS=proxy.url)
        answer = invoke(api, "TokenExchangeFunction", token_request(hs_token(supabase_claims())))
    assert_unavailable(answer)


@pytest.mark.parametrize("public_key", [*GARBLED, (200, json.dumps({"PublicKey": "AAAA"}))])
def test_a_garbled_kms_public_key_answer_is_a_503(
    make_api: MakeApi, moto_server: LocalAws, public_key: tuple[int, str]
) -> None:
    with ThrottlingProxy(moto_server, public_key=public_key) as proxy:
        api = make_api(AWS_ENDPOINT_URL_KMS=proxy.url)
        answer = invoke(api, "TokenExchangeFunction", token_request(hs_token(supabase_claims())))
        assert_unavailable(answer)
        answer = invoke(api, "JwksFunction", proxy_event("GET", "/.well-known/jwks.json"))
    assert answer["statusCode"] == 503


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_missing_key_is_a_logged_configuration_error_and_a_503(make_api: MakeApi) -> None:
    """A deployment pointed at a key KMS does not have (deleted, another account's, a typo)."""
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    api = make_api(SIGNING_KEY_ID=missing)
    records = Records()
    service_logger = logging.getLogger("tokengate")  # the handlers' loggers are under it
    service_logger.addHandler(records)
    try:
        answer = invoke(api, "TokenExchangeFunction", token_request(hs_token(supabase_claims())))
    finally:
        service_logger.removeHandler(records)
    assert_unavailable(answer)
    errors = [r for r in records.records if r.levelno >= logging.ERROR]
    assert [(r.getMessage(), r.__dict__["reason"]) for r in errors] == [
        ("token exchange unavailable", "kms_misconfigured")
    ]
    assert not any(r.exc_info for r in records.records)  # no traceback


# -- HTTP upstreams: the Supabase JWKS, the session check, our own JWKS --------------------------


def test_supabase_jwks_misbehaving(make_api: MakeApi, upstream: str) -> None:
    api = make_api({"SupabaseUrl": upstream}, on_first_call=True)
    token = key_token(ec_pair(), supabase_claims(iss=f"{upstream}/auth/v1"))
    assert_unavailable(invoke(api, "TokenExchangeFunction", token_request(token)))
    event = authorizer_event("request", token, arn_base=ARN)
    assert_unauthorized(invoke(api, "SupabaseAuthorizerFunction", event))


def test_session_check_misbehaving(make_api: MakeApi, upstream: str) -> None:
    api = make_api(
        {"SupabaseUrl": upstream, "SessionCheck": "true", "SupabaseApiKey": "sb_publishable_x"},
        on_first_call=True,
    )
    token = hs_token(supabase_claims(iss=f"{upstream}/auth/v1"))
    assert_unavailable(invoke(api, "TokenExchangeFunction", token_request(token)))


def test_our_jwks_misbehaving_at_the_api_token_authorizer(make_api: MakeApi, upstream: str) -> None:
    api = make_api(on_first_call=True, API_JWKS_URL=f"{upstream}/jwks.json", ISSUER=ISSUER)
    status, _, body = api.exchange(hs_token(supabase_claims()))
    assert status == 200
    for kind in ("token", "request", "http"):
        event = authorizer_event(kind, body["access_token"], arn_base=ARN)
        answer = invoke(api, "ApiTokenAuthorizerFunction", event)
        if kind == "http":
            assert answer == {"isAuthorized": False}
        else:
            assert_unauthorized(answer)


def test_a_spent_budget_is_answered_without_calling_out(make_api: MakeApi) -> None:
    """Less time left than the safety margin: no outbound call starts; the answer is a 503."""
    api = make_api()
    context = ShortLivedContext(100)
    answer = api.gateway.handlers["TokenExchangeFunction"](
        token_request(hs_token(supabase_claims())), context
    )
    assert_unavailable(answer)
    assert context.answered_in_time()


# -- cached material keeps serving; refetch storms cost one fetch per window ----------------------


@pytest.fixture
def project(ec_key: KeyPair) -> Iterator[JwksServer]:
    with JwksServer({"keys": [ec_key.jwk()]}) as server:
        yield server


def claims_for(server: JwksServer) -> dict[str, object]:
    return supabase_claims(iss=f"{server.base_url}/auth/v1")


@pytest.mark.parametrize("mode", ["error", "redirect", "huge", "invalid"])
def test_supabase_jwks_failures_with_nothing_cached(
    make_api: MakeApi, project: JwksServer, ec_key: KeyPair, mode: str
) -> None:
    project.mode = mode  # failing from the container's start: the prefetch fails too
    api = make_api({"SupabaseUrl": project.base_url})
    token = key_token(ec_key, claims_for(project))
    assert_unavailable(invoke(api, "TokenExchangeFunction", token_request(token)))
    event = authorizer_event("request", token, arn_base=ARN)
    assert_unauthorized(invoke(api, "SupabaseAuthorizerFunction", event))
    # HS256 tokens do not depend on the JWKS and keep working.
    assert api.exchange(hs_token(claims_for(project)))[0] == 200


def test_a_jwks_blip_at_cold_start_does_not_refuse_the_next_caller(
    make_api: MakeApi, project: JwksServer, ec_key: KeyPair
) -> None:
    project.mode = "error"
    api = make_api({"SupabaseUrl": project.base_url})
    token = key_token(ec_key, claims_for(project))
    assert api.exchange(token)[0] == 503
    project.mode = "ok"
    assert api.exchange(token)[0] == 200  # no cooldown after a failed fetch


def test_supabase_jwks_failure_serves_the_last_good_keys(
    make_api: MakeApi, project: JwksServer, ec_key: KeyPair
) -> None:
    api = make_api({"SupabaseUrl": project.base_url})
    token = key_token(ec_key, claims_for(project))
    assert api.exchange(token)[0] == 200
    project.mode = "error"
    assert api.exchange(token)[0] == 200  # cached keys keep serving
    unknown = key_token(ec_pair("rotated-in"), claims_for(project))
    status, _, body = api.exchange(unknown)
    assert (status, body["error"]) == (400, "invalid_request")


def test_refetch_storm_through_the_handler(
    make_api: MakeApi, project: JwksServer, ec_key: KeyPair
) -> None:
    """docs/contract.md §12 B-9 at the exchange: 1,000 random kids, one JWKS fetch per window."""
    api = make_api({"SupabaseUrl": project.base_url})
    assert api.exchange(key_token(ec_key, claims_for(project)))[0] == 200
    before = project.requests
    for _ in range(1000):
        assert api.exchange(key_token(ec_pair(), claims_for(project)))[0] == 400
    assert project.requests - before <= 1


# -- the optional live-session check (docs/contract.md §5) ---------------------------------------


@pytest.fixture
def session_api(make_api: MakeApi, project: JwksServer) -> InProcessApi:
    return make_api(
        {
            "SupabaseUrl": project.base_url,
            "SessionCheck": "true",
            "SupabaseApiKey": "sb_publishable_local",
        }
    )


def test_session_check_passes_a_live_session(
    session_api: InProcessApi, project: JwksServer
) -> None:
    token = hs_token(claims_for(project))
    assert session_api.exchange(token)[0] == 200
    (sent,) = project.user_requests
    assert sent["apikey"] == "sb_publishable_local"
    assert sent["authorization"] == f"Bearer {token}"


@pytest.mark.parametrize("status", [401, 403, 404])
def test_session_check_refuses_an_ended_session(
    session_api: InProcessApi, project: JwksServer, status: int
) -> None:
    project.user_status = status
    answer = session_api.exchange(hs_token(claims_for(project)))
    assert (answer[0], answer[2]["error"]) == (400, "invalid_request")


@pytest.mark.parametrize("status", [500, 302])
def test_session_check_outage_is_503(
    session_api: InProcessApi, project: JwksServer, status: int
) -> None:
    project.user_status = status
    event = token_request(hs_token(claims_for(project)))
    assert_unavailable(invoke(session_api, "TokenExchangeFunction", event))


def test_session_check_is_off_by_default(make_api: MakeApi, project: JwksServer) -> None:
    api = make_api({"SupabaseUrl": project.base_url})
    assert api.exchange(hs_token(claims_for(project)))[0] == 200
    assert project.user_requests == []


def test_session_check_needs_the_api_key(make_api: MakeApi, project: JwksServer) -> None:
    from tokengate.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="SUPABASE_API_KEY"):
        make_api({"SupabaseUrl": project.base_url, "SessionCheck": "true"})

"""Cold rows: a fresh process from spawn to its first answer, as a Lambda user waits for it.

Each scenario is a child interpreter that imports a function's ``app`` module the way Lambda does
(the function's code directory first on ``sys.path``), calls its handler once and writes the answer
on stdout; the time is taken in the parent from spawn to that line. The authorizers fetch their
JWKS from a loopback server; the exchange talks to a moto server as KMS and Secrets Manager, as
``make run`` does. Every round spawns every scenario once, in a shuffled order, and a row is the
median over rounds of (scenario - bare interpreter) within the round.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import harness
from .warm import (
    HS_SECRET,
    ISSUER,
    ROOT,
    STATUS_LIST_PATH,
    Fixture,
    authorizer_environment,
    naive_authorizer_path,
    token_event,
)

ANSWER_TIMEOUT_SECONDS = 30.0

# The child: Lambda's part is importing the handler's module and calling it once.
CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import app

class Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self):
        return 3000

import json
answer = app.lambda_handler(json.loads(sys.argv[2]), Context())
sys.stdout.write("ANSWER " + json.dumps(answer) + "\\n")
sys.stdout.flush()
"""
BARE = "import sys; sys.stdout.write('ANSWER {}\\n'); sys.stdout.flush()"
FLOOR = (
    "import json, logging, re, sys\n"
    "from cryptography.hazmat.primitives import hashes\n"
    "from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa\n"
    "sys.stdout.write('ANSWER {}\\n'); sys.stdout.flush()"
)

NAIVE_EXCHANGE = """
import base64, json, os, time, uuid
from urllib.parse import parse_qs

import boto3
import jwt

secrets = boto3.client("secretsmanager")
kms = boto3.client("kms")
supabase_secret = secrets.get_secret_value(SecretId=os.environ["SUPABASE_JWT_SECRET_ARN"])
supabase_secret = supabase_secret["SecretString"]
signing_key = None
if os.environ["SIGNING_MODE"] == "secretsmanager":
    signing_key = secrets.get_secret_value(SecretId=os.environ["SIGNING_KEY_ID"])["SecretString"]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def lambda_handler(event, context):
    form = parse_qs(event["body"])
    subject = jwt.decode(
        form["subject_token"][0], supabase_secret, algorithms=["HS256"],
        audience="authenticated", issuer=os.environ["SUPABASE_URL"] + "/auth/v1",
    )
    now = int(time.time())
    claims = {
        "iss": os.environ["ISSUER"], "sub": subject["sub"], "aud": "api", "iat": now,
        "exp": min(now + 900, subject["exp"]), "jti": uuid.uuid4().hex, "client_id": "cli",
        "scope": "read", "sid": subject.get("session_id", ""),
    }
    header = {"alg": "RS256", "typ": "at+jwt", "kid": "k"}
    if signing_key is not None:
        token = jwt.encode(claims, signing_key, algorithm="RS256", headers=header)
    else:
        signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        signature = kms.sign(
            KeyId=os.environ["SIGNING_KEY_ID"], Message=signing_input.encode(),
            MessageType="RAW", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
        )["Signature"]
        token = signing_input + "." + b64(signature)
    body = {"access_token": token, "token_type": "Bearer", "expires_in": claims["exp"] - now}
    return {"statusCode": 200, "body": json.dumps(body)}
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    code_dir: Path | None  # None: an inline script (the bare interpreter, the import floor)
    env: dict[str, str]
    event: dict[str, Any]
    check: Callable[[dict[str, Any]], bool]
    peer: str | None = None  # the scenario a user would otherwise run: the "÷ peer's" column
    # Targets, each a ratio of this scenario's cost over the bare interpreter to another
    # scenario's in the same rounds: (that scenario's name, the ratio's upper bound).
    bounds: tuple[tuple[str, float], ...] = ()


# The cold targets, as ratios within one run (milliseconds move with the machine and its load).
AUTHORIZER_OVER_NAIVE = 0.7
AUTHORIZER_OVER_FLOOR = 2.5
EXCHANGE_OVER_NAIVE = 0.5


def _authorizer_bounds(naive: str) -> tuple[tuple[str, float], ...]:
    return ((naive, AUTHORIZER_OVER_NAIVE), ("floor", AUTHORIZER_OVER_FLOOR))


def _tls_files(directory: Path) -> tuple[Path, Path]:
    """The cold rows fetch their JWKS over TLS, as every deployment does (children trust the
    certificate through ``SSL_CERT_FILE``), so the import of ``ssl`` and the handshake are in
    every authorizer's row, ours and the naive one's alike."""
    from tests.tls import loopback_certificate

    return loopback_certificate(directory)


@contextmanager
def tls_jwks_server(document: dict[str, Any]) -> Iterator[tuple[str, Path, Any]]:
    """The loopback JWKS server over TLS: (its JWKS URL, the certificate to trust, the server)."""
    import ssl
    import tempfile

    from tests.jwks_server import JwksServer

    with tempfile.TemporaryDirectory() as directory:
        cert, key = _tls_files(Path(directory))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = JwksServer(document)
        server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
        # HTTP/1.1 with persistent connections, as the CDNs and API Gateway that serve key sets
        # and status lists do (a client that asks, as urllib does, gets its connection closed);
        # and, as they do, without Nagle's delay on the answer's second write.
        handler = server._server.RequestHandlerClass
        handler.protocol_version = "HTTP/1.1"
        handler.disable_nagle_algorithm = True
        with server:
            yield server.jwks_url.replace("http://", "https://", 1), cert, server


def _file(directory: str, source: str) -> Path:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "tokengate-bench" / directory / "app.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != source:
        path.write_text(source)
    return path.parent


def _allowed(answer: dict[str, Any]) -> bool:
    return bool(answer["policyDocument"]["Statement"][0]["Effect"] == "Allow")


def _issued(answer: dict[str, Any]) -> bool:
    return answer.get("statusCode") == 200 and "access_token" in json.loads(answer["body"])


def base_environment() -> dict[str, str]:
    keep = ("PATH", "HOME", "TMPDIR", "LANG", "PYTHONPATH")
    return {name: os.environ[name] for name in keep if name in os.environ}


@contextmanager
def cold_scenarios(fixture: Fixture, jwks_document: dict[str, Any]) -> Iterator[list[Scenario]]:
    """The scenarios, with their loopback JWKS and moto server running."""

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from devstack.events import exchange_body, proxy_event
    from devstack.moto_aws import FAKE_CREDENTIALS, LocalAws
    from devstack.stack import deploy, publish_status_list
    from tests.factories import KeyPair, hs_token, key_token, supabase_claims

    aws = LocalAws().start()
    saved = dict(os.environ)
    try:
        with tls_jwks_server(jwks_document) as (jwks_url, certificate, jwks):
            jwks.raw[STATUS_LIST_PATH] = fixture.status_list.encode()
            base = base_environment() | {"SSL_CERT_FILE": str(certificate)}
            supabase_url = jwks_url.split("/auth/v1/")[0]
            ec_key = KeyPair(load_pem_private_key(fixture.ec_pem.encode(), None))
            now = time.time()
            supabase_claims_here = supabase_claims(now, iss=f"{supabase_url}/auth/v1")
            es_subject = key_token(ec_key, supabase_claims_here)
            hs_subject = hs_token(supabase_claims_here)
            aws_env = FAKE_CREDENTIALS | {"AWS_ENDPOINT_URL": aws.endpoint}
            authorizer_env = base | authorizer_environment(jwks_url)
            rsa_event = token_event(fixture.rs256_tokens[0])
            ec_event = token_event(fixture.es256_tokens[0])
            supabase_env = base | {
                "SUPABASE_URL": supabase_url,
                "ROUTE_SCOPES": authorizer_env["ROUTE_SCOPES"],
                "AWS_REGION": "us-east-1",
                # Revocation on: our JWKS and status list are fetched too.
                "ISSUER": ISSUER,
                "API_JWKS_URL": jwks_url,
                "REVOCATION_TABLE": "revocation",
            }
            deployed = {}
            for mode in ("kms", "secretsmanager"):
                template, _ = deploy(
                    aws.client("kms"),
                    aws.client("secretsmanager"),
                    aws.client("dynamodb"),
                    supabase_url=supabase_url,
                    jwt_secret=HS_SECRET,
                    issuer=ISSUER,
                    parameters={"SigningMode": mode, "SigningAlgorithm": "RS256"},
                )
                # A deployed stack has a published list (its schedule): the first exchange
                # then reads and allocates, and does not publish.
                exchange_env = template.environment("TokenExchangeFunction")
                publish_status_list(exchange_env, aws.client, ISSUER)
                deployed[mode] = template
            secret_arn = deployed["kms"].environment("SupabaseAuthorizerFunction")[
                "SUPABASE_JWT_SECRET_ARN"
            ]
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            exchange_event = proxy_event("POST", "/token", exchange_body(hs_subject), form)
            functions = ROOT / "functions"
            naive_exchange = _file("naive-exchange", NAIVE_EXCHANGE)
            scenarios = [
                Scenario("bare", "bare interpreter", None, base, {}, lambda a: True),
                Scenario(
                    "floor",
                    "floor: import json, re, logging and cryptography's RSA/EC",
                    None,
                    base,
                    {},
                    lambda a: True,
                ),
                Scenario(
                    "api-authorizer",
                    "ours: API-token authorizer, first decision (RS256, JWKS and status list fetch)",
                    functions / "api_token_authorizer",
                    authorizer_env,
                    rsa_event,
                    _allowed,
                    "naive-authorizer",
                    _authorizer_bounds("naive-authorizer"),
                ),
                Scenario(
                    "naive-authorizer",
                    "naive: pyjwt PyJWKClient authorizer, first decision (RS256)",
                    naive_authorizer_path().parent,
                    authorizer_env,
                    rsa_event,
                    _allowed,
                ),
                Scenario(
                    "api-authorizer-es256",
                    "ours: API-token authorizer, first decision (ES256, JWKS and status list fetch)",
                    functions / "api_token_authorizer",
                    authorizer_env,
                    ec_event,
                    _allowed,
                    "naive-authorizer-es256",
                    _authorizer_bounds("naive-authorizer-es256"),
                ),
                Scenario(
                    "naive-authorizer-es256",
                    "naive: pyjwt PyJWKClient authorizer, first decision (ES256)",
                    naive_authorizer_path().parent,
                    authorizer_env,
                    ec_event,
                    _allowed,
                ),
                Scenario(
                    "supabase-authorizer",
                    "ours: Supabase authorizer, first decision (ES256, JWKS and status list fetch)",
                    functions / "supabase_authorizer",
                    supabase_env,
                    token_event(es_subject),
                    _allowed,
                    "naive-authorizer-es256",
                    _authorizer_bounds("naive-authorizer-es256"),
                ),
                Scenario(
                    "supabase-authorizer-hs256",
                    "ours: Supabase authorizer with HS256 on, first decision",
                    functions / "supabase_authorizer",
                    supabase_env
                    | aws_env
                    | {"SUPABASE_JWT_SECRET_ARN": secret_arn, "SUPABASE_JWKS_ENABLED": "false"},
                    token_event(hs_subject),
                    _allowed,
                    "naive-authorizer",  # no target: see docs/performance.md
                ),
            ]
            for mode, label in (("kms", "KMS"), ("secretsmanager", "Secrets Manager key")):
                env = base | deployed[mode].environment("TokenExchangeFunction") | aws_env
                scenarios += [
                    Scenario(
                        f"exchange-{mode}",
                        f"ours: first exchange, {label} mode",
                        functions / "token_exchange",
                        env,
                        exchange_event,
                        _issued,
                        f"naive-exchange-{mode}",
                        ((f"naive-exchange-{mode}", EXCHANGE_OVER_NAIVE),),
                    ),
                    Scenario(
                        f"naive-exchange-{mode}",
                        f"naive: boto3 + pyjwt exchange, {label} mode",
                        naive_exchange,
                        env,
                        exchange_event,
                        _issued,
                    ),
                ]
            yield scenarios
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws.stop()


def first_answer_seconds(scenario: Scenario) -> float:
    """Spawn → the child's first line; the answer is checked, the child reaped (bounded)."""
    if scenario.code_dir is None:
        command = [sys.executable, "-c", BARE if scenario.name == "bare" else FLOOR]
    else:
        command = [sys.executable, "-c", CHILD, str(scenario.code_dir), json.dumps(scenario.event)]
    start = time.perf_counter()
    child = subprocess.Popen(
        command, env=scenario.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = start + ANSWER_TIMEOUT_SECONDS
    line = b""
    try:
        assert child.stdout is not None
        while not line.startswith(b"ANSWER "):  # the functions' own log lines come first
            ready, _, _ = select.select([child.stdout], [], [], deadline - time.perf_counter())
            line = child.stdout.readline() if ready else b""
            if not line:
                break
        elapsed = time.perf_counter() - start
        _, errors = child.communicate(timeout=ANSWER_TIMEOUT_SECONDS)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=ANSWER_TIMEOUT_SECONDS)
    if not line.startswith(b"ANSWER "):
        raise RuntimeError(f"{scenario.name}: no answer; {errors.decode(errors='replace')[-2000:]}")
    answer = json.loads(line[len(b"ANSWER ") :])
    if not scenario.check(answer):
        raise RuntimeError(f"{scenario.name}: unexpected answer {str(answer)[:300]}")
    return elapsed


def measure(scenarios: list[Scenario], rounds: int, warm_up: bool = True) -> harness.Rounds:
    """``rounds`` interleaved spawns of each scenario, after one unmeasured spawn each (caches
    warm) unless ``warm_up`` is off (QUICK=1, whose figures mean nothing). Every spawn's answer is
    checked."""
    by_name = {scenario.name: scenario for scenario in scenarios}
    if warm_up:
        for scenario in scenarios:
            first_answer_seconds(scenario)
    return harness.interleaved(
        list(by_name), rounds, lambda name: first_answer_seconds(by_name[name])
    )

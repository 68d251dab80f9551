"""`make bench`: one table, every row measured in this run.

Method: each row times a batch of calls with ``time.perf_counter`` and repeats the batch 15
times; median, min and max are per call. Ratios compare with a baseline measured in the same
run, so the shared machine's noise touches both sides. Import times are medians over 21 fresh
interpreters, minus the median of a bare interpreter.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from itertools import cycle
from pathlib import Path
from typing import Any

import boto3
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from moto import mock_aws

from benchmarks import cli
from devstack.events import exchange_body, proxy_event
from devstack.gateway import LambdaContext
from devstack.moto_aws import FAKE_CREDENTIALS, LocalAws
from devstack.stack import deploy, load_handlers
from devstack.template import Handler
from tests.factories import (
    HS_SECRET,
    SUPABASE_ISSUER,
    SUPABASE_URL,
    KeyPair,
    ec_pair,
    hs_token,
    key_token,
    rsa_pair,
    supabase_claims,
)
from tests.jwks_server import JwksServer
from tokengate.jwks import JwksCache
from tokengate.keys import HmacKey
from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "https://api.example.com"
ARN = "arn:aws:execute-api:us-east-1:123456789012:a/v1/GET/whoami"
IMPORT_TARGETS = {
    "api_token_authorizer": 120,
    "supabase_authorizer": 120,
    "token_exchange": 300,
    "jwks": 300,
}


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float, float]] = []
        self.ratios: list[tuple[str, str, float]] = []

    def time(self, name: str, fn: Callable[[], Any], batch: int = 200, repeats: int = 15) -> float:
        for _ in range(max(1, batch // 10)):
            fn()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(batch):
                fn()
            samples.append((time.perf_counter() - start) / batch * 1e6)
        median = statistics.median(samples)
        self.rows.append((name, median, min(samples), max(samples)))
        return median

    def ratio(self, name: str, target: str, value: float) -> None:
        self.ratios.append((name, target, value))

    def print(self) -> None:
        print(
            f"{'per call, median of 15 batches (min / max)':64} {'median µs':>10} {'min':>8} {'max':>8}"
        )
        for name, median, low, high in self.rows:
            print(f"{name:64} {median:10.1f} {low:8.1f} {high:8.1f}")
        print(f"\n{'ratio (same run)':64} {'target':>8} {'value':>8}")
        for name, target, value in self.ratios:
            print(f"{name:64} {target:>8} {value:8.2f}")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exchange logs each token it issues; keep the table readable."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def crypto_floor(table: Table, rsa_key: KeyPair, ec_key: KeyPair) -> None:
    message = b"x" * 600
    rsa_public, ec_public = rsa_key.private.public_key(), ec_key.private.public_key()
    rsa_signature = rsa_key.private.sign(message, padding.PKCS1v15(), hashes.SHA256())
    ec_signature = ec_key.private.sign(message, ec.ECDSA(hashes.SHA256()))
    table.time(
        "floor: RSA-2048 verify (cryptography)",
        lambda: rsa_public.verify(rsa_signature, message, padding.PKCS1v15(), hashes.SHA256()),
    )
    table.time(
        "floor: RSA-2048 sign",
        lambda: rsa_key.private.sign(message, padding.PKCS1v15(), hashes.SHA256()),
        50,
    )
    table.time(
        "floor: P-256 verify",
        lambda: ec_public.verify(ec_signature, message, ec.ECDSA(hashes.SHA256())),
    )
    table.time("floor: P-256 sign", lambda: ec_key.private.sign(message, ec.ECDSA(hashes.SHA256())))
    table.time(
        "floor: HMAC-SHA256 of a token",
        lambda: hmac.digest(HS_SECRET.encode(), message, hashlib.sha256),
        2000,
    )


def supabase_verification(table: Table, rsa_key: KeyPair, ec_key: KeyPair) -> None:
    document = json.dumps({"keys": [ec_key.jwk(), rsa_key.jwk()]}).encode()

    class Fetcher:
        def fetch(self, url: str) -> bytes:
            return document

    secret = HmacKey(HS_SECRET.encode())
    verifier = SupabaseTokenVerifier(
        SupabasePolicy(issuer=SUPABASE_ISSUER),
        hmac_key=lambda: secret,
        jwks=JwksCache(f"{SUPABASE_ISSUER}/.well-known/jwks.json", Fetcher()),
    )
    options = {"require": ["exp", "iat", "sub", "iss", "aud"]}
    for alg, token, key in (
        ("HS256", hs_token(supabase_claims()), HS_SECRET),
        ("ES256", key_token(ec_key, supabase_claims()), ec_key.private.public_key()),
    ):
        base = table.time(
            f"pyjwt jwt.decode, Supabase {alg} (iss, aud, exp, iat)",
            lambda t=token, k=key, a=alg: jwt.decode(
                t,
                k,
                algorithms=[a],
                audience="authenticated",
                issuer=SUPABASE_ISSUER,
                options=options,
            ),
        )
        ours = table.time(
            f"ours: Supabase {alg} verify with the full policy", lambda t=token: verifier.verify(t)
        )
        table.ratio(
            f"Supabase {alg}: ours / jwt.decode", "<= 0.5" if alg == "HS256" else "-", ours / base
        )


def exchange_event(subject_token: str) -> dict[str, Any]:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    return proxy_event("POST", "/token", exchange_body(subject_token), form)


def deployment(
    own_jwks: JwksServer, aws: LocalAws, **parameters: str
) -> tuple[dict[str, Handler], str]:
    template, provisioned = deploy(
        supabase_url=SUPABASE_URL,
        jwt_secret=HS_SECRET,
        issuer=ISSUER,
        parameters=parameters,
        # The functions call KMS and Secrets Manager over HTTP: moto in server mode, sharing the
        # state mock_aws provisions.
        environment={"API_JWKS_URL": own_jwks.jwks_url, "AWS_ENDPOINT_URL": aws.endpoint},
    )
    return load_handlers(template), provisioned.signing_key_arn


@contextlib.contextmanager
def _stopping(aws: LocalAws) -> Iterator[None]:
    try:
        yield
    finally:
        aws.stop()


def handlers_and_authorizer(table: Table, rsa_key: KeyPair) -> None:
    context = LambdaContext()
    subject = hs_token(supabase_claims())
    aws = LocalAws().start()
    with mock_aws(), JwksServer({"keys": []}) as own_jwks, quiet(), _stopping(aws):
        exchange_times = {}
        kms_handlers: dict[str, dict[str, Handler]] = {}
        for mode in ("kms", "secretsmanager"):
            for alg in ("RS256", "ES256"):
                handlers, key_arn = deployment(
                    own_jwks, aws, SigningMode=mode, SigningAlgorithm=alg
                )
                exchange = handlers["TokenExchangeFunction"]
                event = exchange_event(subject)
                assert exchange(event, context)["statusCode"] == 200
                exchange_times[(mode, alg)] = table.time(
                    f"ours: warm exchange, whole handler ({mode}, {alg})",
                    lambda h=exchange, e=event: h(e, context),
                    30 if mode == "kms" else 100,
                )
                if (mode, alg) == ("kms", "RS256"):
                    kms = boto3.client("kms", region_name="us-east-1")
                    table.time(
                        "  of which: the KMS Sign call (boto3, moto server on loopback)",
                        lambda k=kms, a=key_arn: k.sign(
                            KeyId=a,
                            Message=b"x" * 600,
                            MessageType="RAW",
                            SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
                        ),
                        30,
                    )
                if mode == "kms":
                    kms_handlers[alg] = handlers
        claims = {
            "iss": ISSUER,
            "sub": "u",
            "aud": "api",
            "iat": 1,
            "exp": 2,
            "jti": "j",
            "client_id": "cli",
            "scope": "read",
            "sid": "s",
        }
        encode = table.time(
            "pyjwt jwt.encode of the same claims (RS256, local key)",
            lambda: jwt.encode(
                claims, rsa_key.private, algorithm="RS256", headers={"kid": "k", "typ": "at+jwt"}
            ),
            50,
        )
        table.ratio(
            "warm exchange (secretsmanager, RS256): ours / jwt.encode",
            "-",
            exchange_times[("secretsmanager", "RS256")] / encode,
        )

        for alg in ("RS256", "ES256"):
            authorizer_rows(table, kms_handlers[alg], own_jwks, alg)


def authorizer_rows(
    table: Table, handlers: dict[str, Handler], own_jwks: JwksServer, alg: str
) -> None:
    """The API-token authorizer's whole handler call against pyjwt's bare decode, for tokens the
    exchange issued with this deployment's KMS key."""
    context = LambdaContext()
    subject = hs_token(supabase_claims())
    own_jwks.document = json.loads(
        handlers["JwksFunction"]({"resource": "/.well-known/jwks.json"}, context)["body"]
    )
    tokens = [
        json.loads(handlers["TokenExchangeFunction"](exchange_event(subject), context)["body"])[
            "access_token"
        ]
        for _ in range(50)
    ]
    authorizer = handlers["ApiTokenAuthorizerFunction"]
    public = jwt.PyJWK(own_jwks.document["keys"][0]).key
    # Fresh tokens: 50 distinct tokens in turn, more than any header or key memo would hold.
    decode_tokens, fresh_tokens = cycle(tokens), cycle(tokens)

    def event(token: str) -> dict[str, Any]:
        return {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": ARN}

    assert authorizer(event(tokens[0]), context)["principalId"]
    base = table.time(
        f"pyjwt jwt.decode, API token {alg} (iss, aud, exp)",
        lambda: jwt.decode(
            next(decode_tokens), public, algorithms=[alg], audience="api", issuer=ISSUER
        ),
    )
    fresh = table.time(
        f"ours: authorizer, whole handler, fresh {alg} API token",
        lambda: authorizer(event(next(fresh_tokens)), context),
    )
    same = event(tokens[0])
    repeated = table.time(
        f"ours: authorizer, whole handler, repeated {alg} API token",
        lambda: authorizer(same, context),
    )
    target = "<= 0.8" if alg == "RS256" else "-"
    table.ratio(f"authorizer, fresh {alg}: ours / jwt.decode", target, fresh / base)
    table.ratio(f"authorizer, repeated {alg}: ours / jwt.decode", "-", repeated / base)


def import_times() -> tuple[float, dict[str, float]]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SUPABASE_URL": "https://x.supabase.co",
        "SIGNING_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/k",
        "AWS_REGION": "us-east-1",
        "PYTHONPATH": str(ROOT / "layers" / "tokengate"),
    }

    def median_ms(code: str) -> float:
        samples = []
        for _ in range(21):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
            samples.append((time.perf_counter() - start) * 1000)
        return statistics.median(samples)

    bare = median_ms("pass")
    loader = (
        "import importlib.util as u, sys; s = u.spec_from_file_location('app', {!r}); "
        "m = u.module_from_spec(s); s.loader.exec_module(m); assert 'boto3' not in sys.modules"
    )
    return bare, {
        name: median_ms(loader.format(str(ROOT / "functions" / name / "app.py"))) - bare
        for name in IMPORT_TARGETS
    }


def main() -> int:
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    table = Table()
    rsa_key, ec_key = rsa_pair(kid="bench-rsa"), ec_pair(kid="bench-ec")
    crypto_floor(table, rsa_key, ec_key)
    supabase_verification(table, rsa_key, ec_key)
    handlers_and_authorizer(table, rsa_key)
    bare, imports = import_times()
    print(f"tokengate benchmarks: Python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
    table.print()
    print(
        f"\nhandler import over a bare interpreter ({bare:.0f} ms), median of 21 fresh interpreters, no boto3:"
    )
    for name, ms in imports.items():
        print(f"  {name:58} {ms:6.0f} ms   target <= {IMPORT_TARGETS[name]} ms")
    print()
    cli.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Warm cases: ours, the peers a user would pick instead, naive baselines and floors, all on the
same tokens.

A :class:`Fixture` (keys, tokens, the loopback JWKS URL) is made once and can be written to JSON,
so the instruction-count mode rebuilds exactly the same cases in a child process under callgrind.
Each case builder imports only what its case needs and checks the case's answer once before it
is timed, so a row can never time a refusal.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "https://api.example.com"
AUDIENCE = "api"
SUPABASE_URL = "https://abcdefghijklmnopqrst.supabase.co"
SUPABASE_ISSUER = f"{SUPABASE_URL}/auth/v1"
HS_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/v1/GET/whoami"
ROUTE_SCOPES = {"GET /whoami": "read"}
TOKENS_PER_KIND = 50  # more distinct tokens than any memo holds: every call verifies afresh
# Revocation is on: tokens carry a status list reference, the authorizers check it against the
# list the loopback server publishes beside the JWKS (where they look for it).
STATUS_LIST_URI = f"{ISSUER}/statuslists/1"
STATUS_LIST_PATH = "/auth/v1/statuslists/1"


@dataclass
class Fixture:
    rsa_pem: str
    ec_pem: str
    jwks_url: str
    rs256_tokens: list[str]
    es256_tokens: list[str]
    hs256_tokens: list[str]
    status_list: str = ""  # the signed status list token the loopback server publishes

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Fixture:
        return cls(**json.loads(path.read_text()))


def api_tokens(pem: bytes, count: int) -> list[str]:
    """Tokens exactly as the exchange mints them (our issuer and signer code)."""
    from tokengate.apitoken import ApiTokenIssuer
    from tokengate.signing import LocalKeySigner

    issuer = ApiTokenIssuer(LocalKeySigner.from_pem(pem), ttl=3600)
    return [
        issuer.issue(
            issuer=ISSUER,
            subject="8b3b1c7e-2f1a-4c3d-9e8f-0a1b2c3d4e5f",
            audiences=[AUDIENCE],
            scopes=["read"],
            client_id="cli",
            session_id=f"session-{n}",
            not_after=time.time() + 3600,
            extra_claims={
                "aal": "aal1",
                "status": {"status_list": {"idx": n, "uri": STATUS_LIST_URI}},
            },
        ).token
        for n in range(count)
    ]


def make_fixture(jwks_url: str, count: int = TOKENS_PER_KIND) -> Fixture:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from tests.factories import hs_token, supabase_claims

    def pem(key: Any) -> bytes:
        return bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    rsa_pem = pem(rsa.generate_private_key(65537, 2048))
    ec_pem = pem(ec.generate_private_key(ec.SECP256R1()))
    return Fixture(
        rsa_pem=rsa_pem.decode(),
        ec_pem=ec_pem.decode(),
        jwks_url=jwks_url,
        rs256_tokens=api_tokens(rsa_pem, count),
        es256_tokens=api_tokens(ec_pem, count),
        hs256_tokens=[hs_token(supabase_claims()) for _ in range(count)],
        status_list=status_list(rsa_pem, count),
    )


def status_list(pem: bytes, count: int) -> str:
    """A published list in which one index past the tokens' is revoked."""
    from tokengate.signing import LocalKeySigner
    from tokengate.statuslist import sign_status_list, status_list_claims

    claims = status_list_claims(
        uri=STATUS_LIST_URI,
        iat=int(time.time()),
        lifetime=86400,
        ttl=15,
        revoked=[count + 1],
        sessions=[],
        users={},
    )
    return sign_status_list(LocalKeySigner.from_pem(pem), claims)


def publish(server: Any, fixture: Fixture) -> None:
    """Serve the fixture's JWKS and status list from a tests.jwks_server.JwksServer."""
    server.document = jwks_document(fixture)
    server.raw[STATUS_LIST_PATH] = fixture.status_list.encode()


def jwks_document(fixture: Fixture) -> dict[str, Any]:
    from tokengate.signing import LocalKeySigner

    return {
        "keys": [
            LocalKeySigner.from_pem(pem.encode()).public_jwk()
            for pem in (fixture.rsa_pem, fixture.ec_pem)
        ]
    }


def authorizer_environment(jwks_url: str) -> dict[str, str]:
    """The API-token authorizer's environment in a deployment whose JWKS is at ``jwks_url``."""
    return {
        "SUPABASE_URL": SUPABASE_URL,
        "ISSUER": ISSUER,
        "AUDIENCES": AUDIENCE,
        "API_JWKS_URL": jwks_url,
        "ROUTE_SCOPES": json.dumps(ROUTE_SCOPES),
        "AWS_REGION": "us-east-1",
        "REVOCATION_TABLE": "revocation",  # on: the authorizer reads only the flag
    }


def token_event(token: str) -> dict[str, Any]:
    return {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": METHOD_ARN}


class LambdaContext:
    """What Lambda passes a handler, as far as our handlers read it (the invocation's time budget
    comes from ``get_remaining_time_in_millis``)."""

    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


CONTEXT = LambdaContext()


def _load(path: Path, name: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cycle(tokens: list[str]) -> Callable[[], str]:
    return itertools.cycle(tokens).__next__


Case = Callable[[], object]


def ours_authorizer(fixture: Fixture, alg: str) -> Case:
    """The API-token authorizer's whole Lambda handler, loaded as Lambda loads it."""
    os.environ.update(authorizer_environment(fixture.jwks_url))
    handler = _load(ROOT / "functions" / "api_token_authorizer" / "app.py", "bench_authorizer")
    events = itertools.cycle(
        [token_event(t) for t in (fixture.rs256_tokens if alg == "RS256" else fixture.es256_tokens)]
    ).__next__
    answer: Any = None
    # The first decisions fetch the JWKS and the status list; under callgrind a fetch can outlast
    # its deadline (a refusal), so the case starts from the first Allow: the warm path is timed.
    for _ in range(10):
        try:
            answer = handler.lambda_handler(events(), CONTEXT)
            break
        except Exception:  # noqa: BLE001 - Unauthorized while the documents load
            continue
    assert answer is not None
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow", answer
    return lambda: handler.lambda_handler(events(), CONTEXT)


def _public_pem(fixture: Fixture, alg: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(
        (fixture.rsa_pem if alg == "RS256" else fixture.ec_pem).encode(), None
    )
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _tokens(fixture: Fixture, alg: str) -> list[str]:
    return {"RS256": fixture.rs256_tokens, "ES256": fixture.es256_tokens}.get(
        alg, fixture.hs256_tokens
    )


def _expected(alg: str) -> tuple[str, str]:
    return (SUPABASE_ISSUER, "authenticated") if alg == "HS256" else (ISSUER, AUDIENCE)


def pyjwt_decode(fixture: Fixture, alg: str) -> Case:
    """pyjwt's ``jwt.decode`` with a prepared key, checking iss, aud, exp and iat."""
    import jwt

    key: Any = HS_SECRET if alg == "HS256" else jwt.PyJWK(_jwk(fixture, alg)).key
    issuer, audience = _expected(alg)
    tokens = _cycle(_tokens(fixture, alg))
    options = {"require": ["exp", "iat", "iss", "aud", "sub"]}

    def decode() -> object:
        return jwt.decode(
            tokens(), key, algorithms=[alg], audience=audience, issuer=issuer, options=options
        )

    assert decode()["sub"]  # type: ignore[index]
    return decode


def _jwk(fixture: Fixture, alg: str) -> dict[str, Any]:
    return jwks_document(fixture)["keys"][0 if alg == "RS256" else 1]


def authlib_decode(fixture: Fixture, alg: str) -> Case:
    """authlib's ``authlib.jose.JsonWebToken``: decode, then validate iss, aud, exp and iat."""
    import contextlib
    import io

    # authlib.jose warns (forcing its own filter) that it points its users at joserfc: both are
    # peers here, so the warning is kept out of the table.
    with contextlib.redirect_stderr(io.StringIO()):
        from authlib.jose import JsonWebKey, JsonWebToken

    jwt = JsonWebToken([alg])
    key: Any = HS_SECRET.encode() if alg == "HS256" else JsonWebKey.import_key(_jwk(fixture, alg))
    issuer, audience = _expected(alg)
    options = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": audience},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "sub": {"essential": True},
    }
    tokens = _cycle(_tokens(fixture, alg))

    def decode() -> object:
        claims = jwt.decode(tokens(), key, claims_options=options)
        claims.validate()
        return claims

    assert decode()["sub"]  # type: ignore[index]
    return decode


def joserfc_decode(fixture: Fixture, alg: str) -> Case:
    """joserfc's ``jwt.decode``, then its claims registry for iss, aud, exp and iat."""
    from joserfc import jwt
    from joserfc.jwk import ECKey, OctKey, RSAKey

    key: Any
    if alg == "HS256":
        key = OctKey.import_key(HS_SECRET)
    else:
        key = (RSAKey if alg == "RS256" else ECKey).import_key(_jwk(fixture, alg))
    issuer, audience = _expected(alg)
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
    )
    tokens = _cycle(_tokens(fixture, alg))

    def decode() -> object:
        token = jwt.decode(tokens(), key, algorithms=[alg])
        registry.validate(token.claims)
        return token.claims

    assert decode()["sub"]  # type: ignore[index]
    return decode


NAIVE_AUTHORIZER = """
import os
import jwt

jwks = jwt.PyJWKClient(os.environ["API_JWKS_URL"])


def lambda_handler(event, context):
    token = event["authorizationToken"].split(" ", 1)[1]
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, key.key, algorithms=["RS256", "ES256"], audience=os.environ["AUDIENCES"],
        issuer=os.environ["ISSUER"],
    )
    effect = "Allow" if "read" in claims.get("scope", "").split() else "Deny"
    return {
        "principalId": claims["sub"],
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}
            ],
        },
        "context": {"sub": claims["sub"], "scope": claims["scope"]},
    }
"""


def naive_authorizer_path() -> Path:
    """The authorizer a user might write in ten minutes: pyjwt's ``PyJWKClient`` and
    ``jwt.decode`` (a module file, so the cold rows can spawn it as Lambda would)."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "tokengate-bench-naive" / "app.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != NAIVE_AUTHORIZER:
        path.write_text(NAIVE_AUTHORIZER)
    return path


def naive_authorizer(fixture: Fixture, alg: str) -> Case:
    os.environ.update(authorizer_environment(fixture.jwks_url))
    handler = _load(naive_authorizer_path(), "bench_naive_authorizer")
    events = itertools.cycle([token_event(t) for t in _tokens(fixture, alg)]).__next__
    answer: Any = None
    # As ours: the case starts from the first Allow (a first fetch can outlast its deadline).
    for _ in range(10):
        try:
            answer = handler.lambda_handler(events(), CONTEXT)
            break
        except Exception:  # noqa: BLE001 - Unauthorized while the documents load
            continue
    assert answer is not None
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow", answer
    return lambda: handler.lambda_handler(events(), CONTEXT)


def floor_verify(fixture: Fixture, alg: str) -> Case:
    """The signature check alone (``cryptography``, or the HMAC): what no JWT library can beat."""
    from tokengate.jws import b64url_decode

    token = _tokens(fixture, alg)[0]
    head, payload, signature_b64 = token.split(".")
    message, signature = f"{head}.{payload}".encode(), b64url_decode(signature_b64)
    if alg == "HS256":
        import hashlib
        import hmac

        secret = HS_SECRET.encode()
        return lambda: hmac.compare_digest(hmac.digest(secret, message, hashlib.sha256), signature)
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    public: Any = serialization.load_pem_public_key(_public_pem(fixture, alg))
    if alg == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda: public.verify(signature, message, pkcs1, sha256)
    der = encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))
    ecdsa = ec.ECDSA(hashes.SHA256())
    return lambda: public.verify(der, message, ecdsa)


def ours_supabase(fixture: Fixture, alg: str) -> Case:
    """The Supabase verifier with its full policy (the exchange's and the Supabase authorizer's
    own), the legacy HS256 secret in memory."""
    from tokengate.keys import HmacKey
    from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

    secret = HmacKey(HS_SECRET.encode())
    verifier = SupabaseTokenVerifier(
        SupabasePolicy(issuer=SUPABASE_ISSUER), hmac_key=lambda: secret, jwks=None
    )
    tokens = _cycle(fixture.hs256_tokens)
    assert verifier.verify(tokens()).sub
    return lambda: verifier.verify(tokens())


BUILDERS: dict[str, Callable[[Fixture, str], Case]] = {
    "ours": ours_authorizer,
    "pyjwt": pyjwt_decode,
    "authlib": authlib_decode,
    "joserfc": joserfc_decode,
    "naive": naive_authorizer,
    "floor": floor_verify,
    "ours-supabase": ours_supabase,
}


@dataclass(frozen=True)
class Group:
    """Cases timed in the same rounds; ratios are read within a group only."""

    title: str
    alg: str
    cases: tuple[tuple[str, str, str], ...]  # (case id, builder, label)
    # (numerator id, denominator id, target upper bound or None)
    ratios: tuple[tuple[str, str, float | None], ...]


GROUPS = (
    Group(
        "API-token authorizer, whole handler, RS256",
        "RS256",
        (
            ("ours", "ours", "ours: authorizer, whole Lambda handler"),
            ("pyjwt", "pyjwt", "pyjwt jwt.decode (prepared key)"),
            ("authlib", "authlib", "authlib.jose decode + validate"),
            ("joserfc", "joserfc", "joserfc jwt.decode + claims registry"),
            ("naive", "naive", "naive handler: pyjwt PyJWKClient + jwt.decode"),
            ("floor", "floor", "floor: RSA-2048 verify alone"),
        ),
        (
            ("ours", "authlib", 0.8),
            ("ours", "pyjwt", 0.5),
            ("ours", "joserfc", None),
            ("ours", "naive", None),
            ("ours", "floor", None),
        ),
    ),
    Group(
        "API-token authorizer, whole handler, ES256",
        "ES256",
        (
            ("ours", "ours", "ours: authorizer, whole Lambda handler"),
            ("pyjwt", "pyjwt", "pyjwt jwt.decode (prepared key)"),
            ("floor", "floor", "floor: P-256 verify alone"),
        ),
        (("ours", "pyjwt", None), ("ours", "floor", None)),
    ),
    Group(
        "Supabase HS256 verify (full policy)",
        "HS256",
        (
            ("ours", "ours-supabase", "ours: Supabase verifier"),
            ("pyjwt", "pyjwt", "pyjwt jwt.decode"),
            ("authlib", "authlib", "authlib.jose decode + validate"),
            ("joserfc", "joserfc", "joserfc jwt.decode + claims registry"),
            ("floor", "floor", "floor: HMAC-SHA256 + compare"),
        ),
        (
            ("ours", "pyjwt", 0.5),
            ("ours", "authlib", None),
            ("ours", "joserfc", None),
            ("ours", "floor", None),
        ),
    ),
)


def build(group: Group, case_id: str, fixture: Fixture) -> Case:
    builder = next(b for c, b, _ in group.cases if c == case_id)
    return BUILDERS[builder](fixture, group.alg)

"""Supabase access-token verification (docs/contract.md §5; §12 A, B, D, E)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import FakeClock, StaticJwksFetcher
from tests.factories import (
    DROP,
    HS_SECRET,
    SUPABASE_ISSUER,
    USER_ID,
    KeyPair,
    StaticKeySet,
    anon_key_claims,
    b64json,
    hs256,
    hs_token,
    jws,
    key_token,
    rsa_pair,
    supabase_claims,
)
from tokengate.apitoken import ApiTokenVerifier
from tokengate.errors import (
    ConfigurationError,
    DependencyUnavailableError,
    InvalidTokenError,
    Reason,
)
from tokengate.jwks import JwksCache
from tokengate.jws import b64url_encode
from tokengate.keys import HmacKey
from tokengate.supabase import SupabasePolicy, SupabaseTokenVerifier

Verifier = SupabaseTokenVerifier


@pytest.fixture
def fetcher(rsa_key: KeyPair, ec_key: KeyPair) -> StaticJwksFetcher:
    return StaticJwksFetcher(rsa_key, ec_key)


def make_verifier(
    clock: FakeClock,
    fetcher: StaticJwksFetcher | None,
    secret: str | None = HS_SECRET,
    **policy: Any,
) -> Verifier:
    jwks = (
        JwksCache(f"{SUPABASE_ISSUER}/.well-known/jwks.json", fetcher, clock=clock)
        if fetcher is not None
        else None
    )
    hmac_key = HmacKey(secret.encode()) if secret else None
    return SupabaseTokenVerifier(
        SupabasePolicy(issuer=SUPABASE_ISSUER, **policy),
        hmac_key=(lambda: hmac_key) if secret else None,
        jwks=jwks,
        clock=clock,
    )


@pytest.fixture
def verifier(clock: FakeClock, fetcher: StaticJwksFetcher) -> Verifier:
    return make_verifier(clock, fetcher)


def claims_at(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    return supabase_claims(now=clock.now, **overrides)


def refused(verifier: Verifier, token: object) -> str:
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)
    return caught.value.reason


# -- accepted ---------------------------------------------------------------------------------


def test_hs256_with_a_hosted_kid_is_accepted(verifier: Verifier, clock: FakeClock) -> None:
    identity = verifier.verify(hs_token(claims_at(clock), kid="IBZFPqpuE0oC+hnZ"))
    assert identity.sub == USER_ID
    assert identity.aal == "aal1"


def test_hs256_without_a_kid_is_accepted(verifier: Verifier, clock: FakeClock) -> None:
    assert verifier.verify(hs_token(claims_at(clock), kid=DROP)).sub == USER_ID


def test_hs256_minted_by_pyjwt_is_accepted(verifier: Verifier, clock: FakeClock) -> None:
    token = jwt.encode(claims_at(clock), HS_SECRET, algorithm="HS256", headers={"kid": "0TRL"})
    assert verifier.verify(token).sub == USER_ID


@pytest.mark.parametrize("which", ["rsa_key", "ec_key"])
def test_jwks_keys_are_accepted(
    verifier: Verifier, clock: FakeClock, which: str, request: pytest.FixtureRequest
) -> None:
    pair: KeyPair = request.getfixturevalue(which)
    assert verifier.verify(key_token(pair, claims_at(clock))).sub == USER_ID


def test_es256_minted_by_pyjwt_is_accepted(
    verifier: Verifier, clock: FakeClock, ec_key: KeyPair
) -> None:
    token = jwt.encode(
        claims_at(clock), ec_key.private, algorithm="ES256", headers={"kid": ec_key.kid}
    )
    assert verifier.verify(token).sub == USER_ID


def test_user_metadata_is_not_lifted_into_the_identity(
    verifier: Verifier, clock: FakeClock
) -> None:
    claims = claims_at(clock, user_metadata={"api_scopes": ["admin"], "role": "admin"})
    identity = verifier.verify(hs_token(claims))
    assert identity.app_metadata == {"provider": "email", "providers": ["email"]}
    assert not hasattr(identity, "user_metadata")


# -- algorithm and signature (A) --------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", [b"", b"\x00", b"sig"])
def test_alg_none_in_every_casing(
    verifier: Verifier, clock: FakeClock, alg: str, signature: bytes
) -> None:
    header = b64json({"alg": alg, "typ": "JWT"})
    body = b64json(claims_at(clock))
    token = f"{header}.{body}.{b64url_encode(signature)}" if signature else f"{header}.{body}."
    assert refused(verifier, token) in {Reason.ALGORITHM, Reason.MALFORMED}


def _public_key_texts(pair: KeyPair) -> dict[str, bytes]:
    public = pair.private.public_key()
    pem = pair.public_pem()
    import json

    return {
        "pem": pem,
        "pem crlf": pem.replace(b"\n", b"\r\n"),
        "pem no trailing newline": pem.rstrip(b"\n"),
        "pem with spaces": pem.replace(b"\n", b" \n"),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "pkcs1 pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        )
        if pair.alg == "RS256"
        else pem,
        "jwk json": json.dumps(pair.jwk()).encode(),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
        "raw modulus or point": (
            public.public_numbers().n.to_bytes(256, "big")
            if pair.alg == "RS256"
            else public.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        ),
    }


@pytest.mark.parametrize("which", ["rsa_key", "ec_key"])
def test_hmac_keyed_with_public_key_material_is_refused(
    clock: FakeClock, fetcher: StaticJwksFetcher, which: str, request: pytest.FixtureRequest
) -> None:
    pair: KeyPair = request.getfixturevalue(which)
    for secret_is_configured in (True, False):
        verifier = make_verifier(clock, fetcher, HS_SECRET if secret_is_configured else None)
        for name, material in _public_key_texts(pair).items():
            token = jws(
                {"alg": "HS256", "typ": "JWT", "kid": pair.kid},
                claims_at(clock),
                lambda m, k=material: hs256(m, k),
            )
            assert refused(verifier, token) in {Reason.SIGNATURE, Reason.ALGORITHM}, name


def test_es256_header_naming_an_rsa_kid_is_refused(
    verifier: Verifier, clock: FakeClock, rsa_key: KeyPair, ec_key: KeyPair
) -> None:
    token = jws({"alg": "ES256", "typ": "JWT", "kid": rsa_key.kid}, claims_at(clock), ec_key.sign)
    assert refused(verifier, token) == Reason.ALGORITHM
    token = jws({"alg": "RS256", "typ": "JWT", "kid": ec_key.kid}, claims_at(clock), rsa_key.sign)
    assert refused(verifier, token) == Reason.ALGORITHM


@pytest.mark.parametrize(
    "alg",
    [
        "HS384",
        "HS512",
        "RS384",
        "RS512",
        "PS256",
        "PS512",
        "ES384",
        "ES512",
        "EdDSA",
        "ES256K",
        "hs256",
        "Rs256",
        "",
    ],
)
def test_algorithms_outside_the_allow_list_are_refused(
    verifier: Verifier, clock: FakeClock, rsa_key: KeyPair, alg: str
) -> None:
    token = jws({"alg": alg, "typ": "JWT", "kid": rsa_key.kid}, claims_at(clock), rsa_key.sign)
    assert refused(verifier, token) == Reason.ALGORITHM


def test_hs256_is_refused_when_no_secret_is_configured(
    clock: FakeClock, fetcher: StaticJwksFetcher
) -> None:
    verifier = make_verifier(clock, fetcher, secret=None)
    assert refused(verifier, hs_token(claims_at(clock))) == Reason.ALGORITHM


def test_jwks_tokens_are_refused_when_the_jwks_is_off(clock: FakeClock, ec_key: KeyPair) -> None:
    verifier = make_verifier(clock, None)
    assert refused(verifier, key_token(ec_key, claims_at(clock))) == Reason.ALGORITHM


def test_tampering_is_detected(verifier: Verifier, clock: FakeClock, ec_key: KeyPair) -> None:
    for token in (hs_token(claims_at(clock)), key_token(ec_key, claims_at(clock))):
        header, payload, signature = token.split(".")
        other_payload = b64json(claims_at(clock, sub="00000000-0000-4000-8000-000000000000"))
        flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
        other_header = b64json({"alg": "HS256", "typ": "JWT", "kid": "other"})
        for bad in (
            f"{header}.{other_payload}.{signature}",
            f"{header}.{payload}.{flipped}",
            f"{other_header}.{payload}.{signature}",
        ):
            assert refused(verifier, bad) in {Reason.SIGNATURE, Reason.MALFORMED}


def test_wrong_secret_is_refused(verifier: Verifier, clock: FakeClock) -> None:
    assert refused(verifier, hs_token(claims_at(clock), secret="x" * 40)) == Reason.SIGNATURE


def test_api_token_type_is_refused(verifier: Verifier, clock: FakeClock) -> None:
    assert refused(verifier, hs_token(claims_at(clock), typ="at+jwt")) == Reason.TYPE


# -- header members (B) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kid", ["../../etc/passwd", "' OR 1=1 --", "$(rm -rf /)", "k" * 200, "missing"]
)
def test_odd_kids_are_only_looked_up(
    verifier: Verifier, clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair, kid: str
) -> None:
    assert refused(verifier, key_token(ec_key, claims_at(clock), kid=kid)) == Reason.UNKNOWN_KEY
    assert fetcher.calls <= 2  # the first load, then at most one cooldown refetch


def test_missing_kid_on_the_jwks_path_is_refused(
    verifier: Verifier, clock: FakeClock, ec_key: KeyPair
) -> None:
    assert refused(verifier, key_token(ec_key, claims_at(clock), kid=DROP)) == Reason.UNKNOWN_KEY


# -- claims (D, E) ----------------------------------------------------------------------------

NOW = 1_800_000_000
CLAIM_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "iss trailing slash": ({"iss": SUPABASE_ISSUER + "/"}, Reason.ISSUER),
    "iss case change": ({"iss": SUPABASE_ISSUER.upper()}, Reason.ISSUER),
    "iss http": ({"iss": SUPABASE_ISSUER.replace("https", "http")}, Reason.ISSUER),
    "iss other project": (
        {"iss": "https://zzzzzzzzzzzzzzzzzzzz.supabase.co/auth/v1"},
        Reason.ISSUER,
    ),
    "iss supabase": ({"iss": "supabase"}, Reason.ISSUER),
    "iss whitespace": ({"iss": SUPABASE_ISSUER + " "}, Reason.ISSUER),
    "iss look-alike": ({"iss": SUPABASE_ISSUER.replace("a", "а")}, Reason.ISSUER),
    "iss missing": ({"iss": DROP}, Reason.ISSUER),
    "iss list": ({"iss": [SUPABASE_ISSUER]}, Reason.ISSUER),
    "aud missing": ({"aud": DROP}, Reason.AUDIENCE),
    "aud empty": ({"aud": ""}, Reason.AUDIENCE),
    "aud []": ({"aud": []}, Reason.AUDIENCE),
    "aud other": ({"aud": "anon"}, Reason.AUDIENCE),
    "aud list other": ({"aud": ["api", "other"]}, Reason.AUDIENCE),
    "aud non-string member": ({"aud": ["authenticated", 1]}, Reason.AUDIENCE),
    "aud case": ({"aud": "Authenticated"}, Reason.AUDIENCE),
    "role anon": ({"role": "anon"}, Reason.ROLE),
    "role service_role": ({"role": "service_role"}, Reason.ROLE),
    "role supabase_admin": ({"role": "supabase_admin"}, Reason.ROLE),
    "role missing": ({"role": DROP}, Reason.ROLE),
    "sub missing": ({"sub": DROP}, Reason.SUBJECT),
    "sub empty": ({"sub": ""}, Reason.SUBJECT),
    "sub number": ({"sub": 42}, Reason.SUBJECT),
    "sub not uuid": ({"sub": "admin"}, Reason.SUBJECT),
    "sub uuid with braces": ({"sub": "{" + USER_ID + "}"}, Reason.SUBJECT),
    "session_id missing": ({"session_id": DROP}, Reason.SESSION),
    "session_id number": ({"session_id": 7}, Reason.SESSION),
    "exp missing": ({"exp": DROP}, Reason.TIME_CLAIM),
    "exp string": ({"exp": str(NOW + 3600)}, Reason.TIME_CLAIM),
    "exp boolean": ({"exp": True}, Reason.TIME_CLAIM),
    "exp null": ({"exp": None}, Reason.TIME_CLAIM),
    "exp huge": ({"exp": 10**30}, Reason.LIFETIME),
    "iat missing": ({"iat": DROP}, Reason.TIME_CLAIM),
    "iat string": ({"iat": str(NOW)}, Reason.TIME_CLAIM),
    "iat in the future": ({"iat": NOW + 31, "exp": NOW + 3631}, Reason.NOT_YET_VALID),
    "nbf in the future": ({"nbf": NOW + 31}, Reason.NOT_YET_VALID),
    "nbf string": ({"nbf": str(NOW)}, Reason.TIME_CLAIM),
    "lifetime over a week": ({"iat": NOW - 10, "exp": NOW + 7 * 86400}, Reason.LIFETIME),
    "anonymous": ({"is_anonymous": True}, Reason.ANONYMOUS),
    "anonymous string": ({"is_anonymous": "false"}, Reason.ANONYMOUS),
    "anonymous missing": ({"is_anonymous": DROP}, Reason.ANONYMOUS),
    "anonymous null": ({"is_anonymous": None}, Reason.ANONYMOUS),
    "third-party client": ({"client_id": "some-app"}, Reason.CLIENT),
    "client_id number": ({"client_id": 5}, Reason.CLAIM),
    "aal unknown": ({"aal": "aal9"}, Reason.AAL),
}


@pytest.mark.parametrize("overrides, reason", CLAIM_CASES.values(), ids=CLAIM_CASES.keys())
def test_claim_rules(
    clock: FakeClock, fetcher: StaticJwksFetcher, overrides: dict[str, Any], reason: str
) -> None:
    clock.now = NOW
    verifier = make_verifier(clock, fetcher)
    assert refused(verifier, hs_token(claims_at(clock, **overrides))) == reason


@pytest.mark.parametrize(
    "aud", ["authenticated", ["authenticated"], ["other", "authenticated"]], ids=str
)
def test_audience_string_and_array_forms(verifier: Verifier, clock: FakeClock, aud: object) -> None:
    assert verifier.verify(hs_token(claims_at(clock, aud=aud))).sub == USER_ID


@pytest.mark.parametrize(
    "offset, accepted",
    [(-31, False), (-30, False), (-29, True), (0, True), (1, True)],
    ids=["leeway+1 past", "exactly leeway past", "leeway-1 past", "exactly now", "in the future"],
)
def test_expiry_boundaries_with_a_30_second_leeway(
    verifier: Verifier, clock: FakeClock, offset: int, accepted: bool
) -> None:
    token = hs_token(claims_at(clock, iat=clock.now - 600, exp=clock.now + offset))
    if accepted:
        assert verifier.verify(token).sub == USER_ID
    else:
        assert refused(verifier, token) == Reason.EXPIRED


def test_expiry_exactly_now_without_leeway_is_refused(
    clock: FakeClock, fetcher: StaticJwksFetcher
) -> None:
    verifier = make_verifier(clock, fetcher, leeway=0)
    token = hs_token(claims_at(clock, iat=clock.now - 600, exp=clock.now))
    assert refused(verifier, token) == Reason.EXPIRED


@pytest.mark.parametrize("offset, accepted", [(30, True), (31, False)])
def test_issued_at_boundaries(
    verifier: Verifier, clock: FakeClock, offset: int, accepted: bool
) -> None:
    token = hs_token(claims_at(clock, iat=clock.now + offset, exp=clock.now + 3600))
    if accepted:
        verifier.verify(token)
    else:
        assert refused(verifier, token) == Reason.NOT_YET_VALID


@pytest.mark.parametrize("role", ["anon", "service_role"])
def test_project_api_keys_are_refused(verifier: Verifier, clock: FakeClock, role: str) -> None:
    token = hs_token(anon_key_claims(clock.now, role), kid=DROP)
    assert refused(verifier, token) == Reason.API_KEY


@pytest.mark.parametrize("key", ["sb_publishable_abc123def456", "sb_secret_abc123def456"])
def test_new_opaque_api_keys_are_refused(verifier: Verifier, key: str) -> None:
    assert refused(verifier, key) == Reason.MALFORMED


def test_policy_switches(clock: FakeClock, fetcher: StaticJwksFetcher) -> None:
    anonymous = hs_token(claims_at(clock, is_anonymous=True))
    client = hs_token(claims_at(clock, client_id="partner-app"))
    aal1 = hs_token(claims_at(clock, aal="aal1"))
    no_aal = hs_token(claims_at(clock, aal=DROP))
    aal2 = hs_token(claims_at(clock, aal="aal2"))
    assert make_verifier(clock, fetcher, allow_anonymous=True).verify(anonymous)
    assert make_verifier(clock, fetcher, allowed_client_ids=frozenset({"partner-app"})).verify(
        client
    )
    strict = make_verifier(clock, fetcher, min_aal="aal2")
    assert refused(strict, aal1) == Reason.AAL
    assert refused(strict, no_aal) == Reason.AAL
    assert strict.verify(aal2).aal == "aal2"


# -- dependency failures --------------------------------------------------------------------


def test_no_jwks_at_all_is_a_dependency_failure(
    clock: FakeClock, fetcher: StaticJwksFetcher, ec_key: KeyPair
) -> None:
    fetcher.fail = DependencyUnavailableError("jwks_unavailable")
    verifier = make_verifier(clock, fetcher)
    with pytest.raises(DependencyUnavailableError):
        verifier.verify(key_token(ec_key, claims_at(clock)))
    # HS256 does not depend on the JWKS and keeps working.
    assert verifier.verify(hs_token(claims_at(clock))).sub == USER_ID


def test_secret_source_failure_propagates(clock: FakeClock, fetcher: StaticJwksFetcher) -> None:
    def unavailable() -> HmacKey:
        raise DependencyUnavailableError("secretsmanager_unavailable")

    verifier = SupabaseTokenVerifier(
        SupabasePolicy(issuer=SUPABASE_ISSUER), hmac_key=unavailable, clock=clock
    )
    with pytest.raises(DependencyUnavailableError):
        verifier.verify(hs_token(claims_at(clock)))


def test_a_new_project_key_is_picked_up_after_rotation(
    clock: FakeClock, fetcher: StaticJwksFetcher, verifier: Verifier
) -> None:
    verifier.verify(hs_token(claims_at(clock)))
    new_key = rsa_pair(kid="rotated-in")
    token = key_token(new_key, claims_at(clock))
    assert refused(verifier, key_token(new_key, claims_at(clock))) == Reason.UNKNOWN_KEY
    fetcher.document["keys"].append(new_key.jwk())
    clock.advance(10)  # past the refetch cooldown
    assert verifier.verify(token).sub == USER_ID


@pytest.mark.parametrize("leeway", [-1, 61])
def test_a_leeway_outside_0_to_60_seconds_refuses_to_build_a_verifier(leeway: int) -> None:
    with pytest.raises(ConfigurationError, match="leeway"):
        SupabasePolicy(issuer=SUPABASE_ISSUER, leeway=leeway)
    with pytest.raises(ConfigurationError, match="leeway"):
        ApiTokenVerifier(StaticKeySet([]), "https://api.example.com", "api", leeway=leeway)

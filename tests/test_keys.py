"""JWK parsing, thumbprints and signature checks (RFC 7517/7518/7638; docs/contract.md §12 A-5,
A-7)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.factories import KeyPair, ec_pair, rsa_pair
from tokengate.errors import ConfigurationError
from tokengate.jws import b64url_encode
from tokengate.keys import (
    P256_ORDER,
    HmacKey,
    key_from_jwk,
    thumbprint,
    usable_keys,
)
from tokengate.signing import der_to_jose

RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPe"
    "bWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY3"
    "68QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM"
    "4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)


def test_thumbprint_matches_the_rfc_7638_example() -> None:
    key = key_from_jwk({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "kid": "x"})
    assert thumbprint(key.public_key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_is_stable_and_distinct_per_key() -> None:
    one, two = ec_pair(), ec_pair()
    assert thumbprint(one.private.public_key()) == thumbprint(one.private.public_key())
    assert thumbprint(one.private.public_key()) != thumbprint(two.private.public_key())


def test_rsa_and_ec_jwks_round_trip(rsa_key: KeyPair, ec_key: KeyPair) -> None:
    keys, _ = usable_keys({"keys": [rsa_key.jwk(), ec_key.jwk()]})
    assert keys[rsa_key.kid].alg == "RS256"
    assert keys[ec_key.kid].alg == "ES256"
    message = b"header.payload"
    assert keys[rsa_key.kid].verify(message, rsa_key.sign(message))
    assert keys[ec_key.kid].verify(message, ec_key.sign(message))
    assert not keys[ec_key.kid].verify(message + b"x", ec_key.sign(message))


def _unusable(rsa_key: KeyPair, ec_key: KeyPair) -> dict[str, dict[str, object]]:
    small = rsa_pair(1024, kid="small")
    p384 = ec.generate_private_key(ec.SECP384R1())
    numbers = p384.public_key().public_numbers()
    return {
        "oct key": {"kty": "oct", "k": b64url_encode(b"secret" * 8), "kid": "h"},
        "use enc": rsa_key.jwk() | {"use": "enc"},
        "key_ops without verify": ec_key.jwk() | {"key_ops": ["encrypt"]},
        "RSA under 2048 bits": small.jwk(),
        "P-384": {
            "kty": "EC",
            "crv": "P-384",
            "kid": "p384",
            "x": b64url_encode(numbers.x.to_bytes(48, "big")),
            "y": b64url_encode(numbers.y.to_bytes(48, "big")),
        },
        "point off the curve": ec_key.jwk() | {"y": ec_key.jwk()["x"]},
        "short x": ec_key.jwk() | {"x": b64url_encode(b"\x01" * 31)},
        "alg mismatch": rsa_key.jwk() | {"alg": "ES256"},
        "RSA declared PS256": rsa_key.jwk() | {"alg": "PS256"},
        "missing kid": {k: v for k, v in rsa_key.jwk().items() if k != "kid"},
        "padded n": rsa_key.jwk() | {"n": rsa_key.jwk()["n"] + "="},
        "OKP": {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "ed",
        },
    }


def test_unusable_jwks_entries_are_dropped(rsa_key: KeyPair, ec_key: KeyPair) -> None:
    cases = _unusable(rsa_key, ec_key)
    for name, jwk in cases.items():
        with pytest.raises((ValueError, TypeError)):
            key_from_jwk(jwk)
        assert usable_keys({"keys": [jwk]})[0] == {}, name


def test_a_kid_published_twice_is_ambiguous_and_dropped(rsa_key: KeyPair) -> None:
    other = rsa_pair(kid=rsa_key.kid)
    assert usable_keys({"keys": [rsa_key.jwk(), other.jwk()]})[0] == {}


@pytest.mark.parametrize("length", [0, 32, 63, 65, 70, 72, 96, 128])
def test_es256_refuses_signatures_that_are_not_64_bytes(ec_key: KeyPair, length: int) -> None:
    key = key_from_jwk(ec_key.jwk())
    message = b"m"
    der = ec_key.private.sign(message, ec.ECDSA(hashes.SHA256()))
    candidates = [
        der[:length].ljust(length, b"\x00"),
        der if len(der) == length else b"\x00" * length,
    ]
    for signature in candidates:
        assert not key.verify(message, signature)


def test_es256_refuses_zero_and_out_of_range_r_s(ec_key: KeyPair) -> None:
    key = key_from_jwk(ec_key.jwk())
    good = ec_key.sign(b"m")
    r, s = good[:32], good[32:]
    n = P256_ORDER.to_bytes(32, "big")
    for signature in (b"\x00" * 64, b"\x00" * 32 + s, r + b"\x00" * 32, n + s, r + n, b"\xff" * 64):
        assert not key.verify(b"m", signature)
    assert key.verify(b"m", good)


def test_der_to_jose_zero_pads_short_r_and_s() -> None:
    # Sign until r or s has a leading zero byte (about 1 in 128 signatures): the JOSE form must
    # still be 64 bytes and verify.
    pair = ec_pair()
    key = key_from_jwk(pair.jwk())
    for attempt in range(5000):
        message = str(attempt).encode()
        der = pair.private.sign(message, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        if r < 2**248 or s < 2**248:
            jose = der_to_jose(der)
            assert len(jose) == 64
            assert key.verify(message, jose)
            return
    pytest.fail("no short r or s in 5000 signatures")


def test_hmac_secret_under_32_bytes_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError):
        HmacKey(b"x" * 31)
    assert HmacKey(b"x" * 32).verify(b"a", b"") is False

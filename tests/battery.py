"""The rejection battery (docs/contract.md §12) as data: every family with its variants.

``supabase_attacks`` and ``api_token_attacks`` return ``{name: token}``; every token must be
refused (400 ``invalid_request`` at /token, 401 at an authorizer, InvalidTokenError in the core).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.factories import (
    DROP,
    KeyPair,
    anon_key_claims,
    b64json,
    ec_pair,
    hs256,
    jws,
    rsa_pair,
    supabase_claims,
)
from tokengate.jws import b64url_decode, b64url_encode
from tokengate.keys import P256_ORDER

Attacks = dict[str, str]


def public_key_materials(pair: KeyPair) -> dict[str, bytes]:
    """Public key material an attacker might use as an HMAC secret (docs/contract.md §12 A-2)."""
    public = pair.private.public_key()
    pem = pair.public_pem()
    materials = {
        "pem": pem,
        "pem crlf": pem.replace(b"\n", b"\r\n"),
        "pem stripped": pem.strip(),
        "pem extra newline": pem + b"\n",
        "pem spaces": pem.replace(b"\n", b" \n"),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk json": json.dumps(pair.jwk()).encode(),
        "jwk json compact": json.dumps(pair.jwk(), separators=(",", ":")).encode(),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }
    if isinstance(public, rsa.RSAPublicKey):
        materials["pkcs1 pem"] = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        )
        materials["raw modulus"] = public.public_numbers().n.to_bytes(256, "big")
    else:
        materials["raw point"] = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return materials


def _ecdsa_variants(pair: KeyPair, header: dict[str, Any], claims: dict[str, Any]) -> Attacks:
    signing_input = f"{b64json(header)}.{b64json(claims)}".encode()
    good = pair.sign(signing_input)
    r, s = good[:32], good[32:]
    n = P256_ORDER.to_bytes(32, "big")
    der = pair.private.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    high_s = (P256_ORDER - int.from_bytes(s, "big")).to_bytes(32, "big")
    variants = {
        "all-zero (CVE-2022-21449)": b"\x00" * 64,
        "r=0": b"\x00" * 32 + s,
        "s=0": r + b"\x00" * 32,
        "r=n": n + s,
        "s=n": r + n,
        "r=s=n": n + n,
        "DER form": der,
        "length 0": b"",
        "length 63": good[:63],
        "length 65": good + b"\x00",
        "length 96": good + b"\x00" * 32,
        "length 128": good + good,
        "r,s swapped": s + r,
    }
    attacks = {
        f"ES256 {k}": f"{signing_input.decode()}.{b64url_encode(v)}" for k, v in variants.items()
    }
    # (r, n - s) is a valid signature too: not an attack on the signature, but a different string
    # for the same token (docs/contract.md §12 G-30); it must verify like the original.
    del high_s
    return attacks


def supabase_attacks(
    issuer: str, secret: str, ec_key: KeyPair, rsa_key: KeyPair, attacker_url: str
) -> Attacks:
    now = int(time.time())
    claims = supabase_claims(iss=issuer)
    hs_header = {"alg": "HS256", "typ": "JWT", "kid": "0TRLgU4IVDYEpL98"}
    good_hs = jws(hs_header, claims, lambda m: hs256(m, secret))
    head, payload, signature = good_hs.split(".")
    attacks: Attacks = {}
    # Loop variables below take values of every JSON type.
    kid: Any
    value: Any
    overrides: Any

    def hs(
        header: dict[str, Any] | None = None, key: bytes | str = secret, **overrides: Any
    ) -> str:
        body = supabase_claims(**({"iss": issuer} | overrides))
        return jws(header or hs_header, body, lambda m: hs256(m, key))

    def with_ec(
        header: dict[str, Any] | None = None, pair: KeyPair = ec_key, **overrides: Any
    ) -> str:
        h = header or {"alg": "ES256", "typ": "JWT", "kid": pair.kid}
        return jws(h, supabase_claims(**({"iss": issuer} | overrides)), pair.sign)

    # A. algorithm and signature
    for alg in ("none", "None", "NONE", "nOnE"):
        unsigned = f"{b64json({'alg': alg, 'typ': 'JWT'})}.{payload}"
        attacks[f"A1 alg {alg} without signature"] = unsigned + "."
        attacks[f"A1 alg {alg} with signature"] = f"{unsigned}.{signature}"
    for pair_name, pair in (("ES256 key", ec_key), ("RS256 key", rsa_key)):
        for material_name, material in public_key_materials(pair).items():
            attacks[f"A2 HS256 keyed with the {pair_name} as {material_name}"] = hs(
                {"alg": "HS256", "typ": "JWT", "kid": pair.kid}, material
            )
    attacks["A3 ES256 header, RSA kid"] = jws(
        {"alg": "ES256", "typ": "JWT", "kid": rsa_key.kid}, claims, ec_key.sign
    )
    attacks["A3 RS256 header, EC kid"] = jws(
        {"alg": "RS256", "typ": "JWT", "kid": ec_key.kid}, claims, rsa_key.sign
    )
    attacks["A3 HS256 header, EC kid, signed with EC"] = jws(
        {"alg": "HS256", "typ": "JWT", "kid": ec_key.kid}, claims, ec_key.sign
    )
    for alg in (
        "HS384",
        "HS512",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "ES384",
        "ES512",
        "EdDSA",
        "ES256K",
        "hs256",
        "es256",
        "RS256 ",
        "",
    ):
        attacks[f"A4 alg {alg!r}"] = jws(
            {"alg": alg, "typ": "JWT", "kid": rsa_key.kid}, claims, rsa_key.sign
        )
    attacks["A4 PS256 with the RSA key"] = jws(
        {"alg": "PS256", "typ": "JWT", "kid": rsa_key.kid},
        claims,
        lambda m: rsa_key.private.sign(
            m, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
        ),
    )
    for name, token in _ecdsa_variants(
        ec_key, {"alg": "ES256", "typ": "JWT", "kid": ec_key.kid}, claims
    ).items():
        attacks[f"A5 {name}"] = token
    attacks["A6 empty signature HS256"] = f"{head}.{payload}."
    attacks["A6 empty signature ES256"] = with_ec().rsplit(".", 1)[0] + "."
    flipped = b64url_encode(bytes([b64url_decode(signature)[0] ^ 1]) + b64url_decode(signature)[1:])
    attacks["A6 modified signature"] = f"{head}.{payload}.{flipped}"
    attacks["A6 modified payload"] = (
        f"{head}.{b64json(supabase_claims(iss=issuer, sub='00000000-0000-4000-8000-000000000001'))}.{signature}"
    )
    attacks["A6 modified header"] = (
        f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': 'other'})}.{payload}.{signature}"
    )
    attacks["A6 truncated signature"] = f"{head}.{payload}.{signature[:20]}"
    # A7: keys the JWKS must not yield (the attacker's keys are not in it at all)
    attacks["A7 RSA-1024 key not in the JWKS"] = with_ec(
        {"alg": "RS256", "typ": "JWT", "kid": "small"}, rsa_pair(1024, "small")
    )
    attacks["A7 attacker's P-256 key, project kid"] = with_ec(
        pair=KeyPair(ec_pair().private, ec_key.kid)
    )
    attacks["A7 attacker's RSA key, project kid"] = jws(
        {"alg": "RS256", "typ": "JWT", "kid": rsa_key.kid}, claims, rsa_pair().sign
    )

    # B. header members
    for name, kid in (
        ("path traversal", "../../../../etc/passwd"),
        ("sql", "' OR '1'='1"),
        ("shell", "$(curl attacker)"),
        ("10 kB", "k" * 10_000),
        ("url", attacker_url),
    ):
        attacks[f"B8 kid {name}"] = with_ec({"alg": "ES256", "typ": "JWT", "kid": kid})
    for name, kid in (
        ("number", 1),
        ("null", None),
        ("list", [ec_key.kid]),
        ("object", {"k": 1}),
        ("empty", ""),
    ):
        attacks[f"B8 kid {name}"] = with_ec({"alg": "ES256", "typ": "JWT", "kid": kid})
    attacks["B8 missing kid on the JWKS path"] = with_ec({"alg": "ES256", "typ": "JWT"})
    attacker = ec_pair("attacker")
    for member, value in (
        ("jku", attacker_url + "/jwks.json"),
        ("x5u", attacker_url + "/cert.pem"),
        ("jwk", attacker.jwk()),
        ("x5c", ["MIIBIjANBgkq"]),
    ):
        attacks[f"B10 {member} with the attacker's key"] = jws(
            {"alg": "ES256", "typ": "JWT", "kid": "attacker", member: value}, claims, attacker.sign
        )
        attacks[f"B10 {member} with the project kid"] = with_ec(
            {"alg": "ES256", "typ": "JWT", "kid": ec_key.kid, member: value}
        )
    for member, value in (
        ("crit", ["exp"]),
        ("crit", []),
        ("b64", False),
        ("zip", "DEF"),
        ("enc", "A128GCM"),
        ("cty", "JWT"),
        ("x5t", "abc"),
        ("foo", "bar"),
    ):
        attacks[f"B11 {member}={value!r}"] = hs({**hs_header, member: value})

    # C. encoding and structure
    attacks.update(
        {
            "C12 empty": "",
            "C12 dots": "..",
            "C12 two segments": f"{head}.{payload}",
            "C12 four segments": f"{good_hs}.{signature}",
            "C12 five segments (JWE)": f"{good_hs}.{signature}.{signature}",
            "C12 missing header": f".{payload}.{signature}",
            "C13 leading space": " " + good_hs,
            "C13 trailing newline": good_hs + "\n",
            "C13 inner space": f"{head}. {payload}.{signature}",
            "C13 Bearer inside": "Bearer " + good_hs,
            "C13 tab": good_hs.replace(".", ".\t", 1),
            "C14 padding": f"{head}=.{payload}.{signature}",
            "C14 padded signature": f"{good_hs}=",
            "C14 standard alphabet": good_hs.replace("-", "+").replace("_", "/")
            if ("-" in good_hs or "_" in good_hs)
            else f"{head}.{payload}.{signature[:-1]}+",
            "C14 non-ascii": good_hs + "é",
            "C14 unused bits": f"{head}.{payload}.{signature[:-1]}{'B' if signature[-1] != 'B' else 'C'}",
        }
    )
    raw_payload = json.dumps(claims).encode()
    for name, body in (
        ("array", b"[]"),
        ("string", b'"x"'),
        ("invalid utf-8", raw_payload[:-1] + b"\xff}"),
        ("BOM", b"\xef\xbb\xbf" + raw_payload),
        ("duplicate sub", raw_payload[:-1] + b', "sub": "x"}'),
        ("NaN", raw_payload[:-1] + b', "n": NaN}'),
        ("Infinity", raw_payload[:-1] + b', "n": Infinity}'),
        ("1e400", raw_payload[:-1] + b', "n": 1e400}'),
        ("deep nesting", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ):
        attacks[f"C15 payload {name}"] = jws(
            hs_header, b64url_encode(body), lambda m: hs256(m, secret)
        )
    duplicate_alg = b64url_encode(b'{"alg":"HS256","alg":"none"}')
    attacks["C15 header duplicate alg"] = f"{duplicate_alg}.{payload}.{signature}"
    attacks["C15 one megabyte"] = jws(
        hs_header, b64json(claims | {"pad": "x" * 1_000_000}), lambda m: hs256(m, secret)
    )
    attacks["C16 JSON serialization"] = json.dumps(
        {"payload": payload, "protected": head, "signature": signature}
    )

    # D. time
    for name, overrides in {
        "exp past": {"iat": now - 7200, "exp": now - 3600},
        "exp now, leeway+1 ago": {"iat": now - 600, "exp": now - 31},
        "exp exactly leeway ago": {"iat": now - 600, "exp": now - 30},
        "exp missing": {"exp": DROP},
        "exp string": {"exp": str(now + 3600)},
        "exp true": {"exp": True},
        "exp null": {"exp": None},
        "exp 10**30": {"exp": 10**30},
        "exp float huge": {"exp": 1e300},
        "iat future": {"iat": now + 120, "exp": now + 3720},
        "nbf future": {"nbf": now + 120},
        "iat missing": {"iat": DROP},
        "iat string": {"iat": str(now)},
        "lifetime beyond a week": {"iat": now - 10, "exp": now + 8 * 86400},
    }.items():
        attacks[f"D17 {name}"] = hs(**overrides)

    # E. issuer, audience, subject, Supabase claims
    for name, value in {
        "trailing slash": issuer + "/",
        "upper case": issuer.upper(),
        "https/http": issuer.replace("http://", "https://"),
        "other project": "https://otherproject0000000.supabase.co/auth/v1",
        "supabase": "supabase",
        "whitespace": f" {issuer}",
        "look-alike": issuer.replace("a", "а", 1),
        "missing": DROP,
        "list": [issuer],
        "number": 1,
    }.items():
        attacks[f"E18 iss {name}"] = hs(iss=value)
    for name, value in {
        "missing": DROP,
        "empty": "",
        "[]": [],
        "other": "api",
        "anon": "anon",
        "list other": ["a", "b"],
        "non-string member": [1],
        "case": "Authenticated",
    }.items():
        attacks[f"E19 aud {name}"] = hs(aud=value)
    for name, value in {
        "missing": DROP,
        "empty": "",
        "number": 7,
        "not uuid": "admin",
        "list": ["x"],
    }.items():
        attacks[f"E20 sub {name}"] = hs(sub=value)
    attacks["E20 session_id missing"] = hs(session_id=DROP)
    for role in ("anon", "service_role", "supabase_admin", DROP):
        attacks[f"E21 role {role if role is not DROP else 'missing'}"] = hs(role=role)
    for role in ("anon", "service_role"):
        attacks[f"E22 project {role} key"] = jws(
            {"alg": "HS256", "typ": "JWT"}, anon_key_claims(now, role), lambda m: hs256(m, secret)
        )
    attacks["E22 sb_publishable key"] = "sb_publishable_Zk2bP1-9aQ_3x"
    attacks["E22 sb_secret key"] = "sb_secret_Zk2bP1-9aQ_3x"
    for name, value in {"true": True, "string": "false", "null": None, "missing": DROP}.items():
        attacks[f"E23 is_anonymous {name}"] = hs(is_anonymous=value)
    attacks["E23 third-party client_id"] = hs(client_id="third-party-app")
    attacks["E23 aal unknown"] = hs(aal="aal3")

    # F. token-type confusion
    attacks["F25 typ at+jwt"] = hs({**hs_header, "typ": "at+jwt"})
    attacks["F25 Google-style ID token"] = jws(
        {"alg": "RS256", "kid": "g1", "typ": "JWT"},
        {
            "iss": "https://accounts.google.com",
            "aud": "x",
            "sub": "1",
            "iat": now,
            "exp": now + 3600,
        },
        rsa_pair().sign,
    )
    attacks["F25 opaque refresh token"] = "v1.MRjVc3mXzA8s"
    return attacks


def api_token_attacks(
    issuer: str,
    audience: str,
    our_public_jwk: dict[str, Any],
    kid: str,
    mint: Callable[..., str],
    supabase_token: str,
) -> Attacks:
    """Tokens the API-token authorizer must refuse. ``mint(**claims)`` signs with our real key."""
    now = int(time.time())
    good = mint()
    head, payload, signature = good.split(".")
    stranger = rsa_pair(kid=kid)
    claims = json.loads(b64url_decode(payload))
    attacks: Attacks = {
        "alg none": f"{b64json({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{payload}.",
        "modified signature": f"{head}.{payload}.{signature[:-4]}{'AAAA' if not signature.endswith('AAAA') else 'BBBB'}",
        "modified payload": f"{head}.{b64json(claims | {'scope': 'read write admin'})}.{signature}",
        "empty signature": f"{head}.{payload}.",
        "other deployment, same kid": jws(
            {"alg": "RS256", "typ": "at+jwt", "kid": kid}, claims, stranger.sign
        ),
        "other deployment, own kid": jws(
            {"alg": "RS256", "typ": "at+jwt", "kid": "x"}, claims, rsa_pair().sign
        ),
        "ES256 header with our RSA kid": jws(
            {"alg": "ES256", "typ": "at+jwt", "kid": kid}, claims, ec_pair().sign
        ),
        "typ JWT": jws({"alg": "RS256", "typ": "JWT", "kid": kid}, claims, stranger.sign),
        "typ missing (resigned elsewhere)": jws(
            {"alg": "RS256", "kid": kid}, claims, stranger.sign
        ),
        "expired": mint(iat=now - 2000, exp=now - 1100),
        "wrong issuer": mint(iss=issuer + "/"),
        "wrong audience": mint(aud="other-api"),
        "not yet valid": mint(iat=now + 300, exp=now + 1200),
        "lifetime beyond the maximum": mint(iat=now, exp=now + 7200),
        "missing jti": mint(jti=DROP),
        "supabase token": supabase_token,
    }
    for name, material in {
        "pem": _jwk_pem(our_public_jwk),
        "jwk json": json.dumps(our_public_jwk).encode(),
    }.items():
        attacks[f"HS256 keyed with our public key as {name}"] = jws(
            {"alg": "HS256", "typ": "at+jwt", "kid": kid}, claims, lambda m, k=material: hs256(m, k)
        )
    return attacks


def _jwk_pem(jwk: dict[str, Any]) -> bytes:
    from tokengate.keys import key_from_jwk

    key = key_from_jwk(jwk)
    return key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

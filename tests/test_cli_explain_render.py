"""``explain`` renders any claims it is shown: times far outside what a clock can represent
(a 20-digit exp, 1e300, NaN or Infinity from JSON) are printed as given, never a crash."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.json_server import JsonServer
from tokengate.apitoken import ApiTokenIssuer
from tokengate.signing import LocalKeySigner
from tokengate_cli.cli import main
from tokengate_cli.explain import Explainer, render


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def token(claims: dict[str, Any], typ: str = "at+jwt") -> str:
    header = {"alg": "RS256", "typ": typ, "kid": "k"}
    return f"{_segment(header)}.{_segment(claims)}.{_segment('sig')}"


times = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**20, -(10**20), 10**400, 1e300, -1e300]),
)


@pytest.mark.parametrize("exp", [10**20, 1e300, float("inf"), float("nan"), 10**400, -(10**20)])
def test_an_absurd_expiry_is_reported_not_crashed_on(exp: float) -> None:
    report = Explainer(None, None).explain(token({"sub": "x", "aud": "api", "exp": exp}))
    text = render(report)
    assert "exp" in text and not report.ok
    json.dumps(report.to_json())


@settings(max_examples=200, deadline=None)
@given(exp=times, iat=times, typ=st.sampled_from(["at+jwt", "JWT"]))
def test_any_times_render(exp: float, iat: float, typ: str) -> None:
    claims = {"sub": "x", "aud": "authenticated", "role": "authenticated", "exp": exp, "iat": iat}
    report = Explainer(None, None).explain(token(claims, typ))
    assert render(report).count("\n") > 2
    json.dumps(report.to_json())
    assert not report.ok


def self_issuer(signer: LocalKeySigner) -> JsonServer:
    """Anyone's issuer: a discovery document and a JWKS for a key of their own, on loopback."""
    server = JsonServer()
    base = server.base_url
    server.documents["/.well-known/openid-configuration"] = {
        "issuer": base,
        "jwks_uri": f"{base}/jwks.json",
    }
    server.documents["/jwks.json"] = {"keys": [signer.public_jwk()]}
    return server


def test_without_a_configured_api_a_self_signed_token_gets_no_verdict() -> None:
    """With no --api, the keys come from the token's own iss: anyone can publish keys there,
    so a signature that verifies with them proves nothing and 'would accept' is never said."""
    signer = LocalKeySigner(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with self_issuer(signer) as server:
        issuer = server.base_url
        minted = ApiTokenIssuer(signer).issue(
            issuer=issuer,
            subject="attacker",
            audiences=["api"],
            scopes=["read"],
            client_id="cli",
            session_id="s",
            not_after=time.time() + 3600,
        )
        report = Explainer(None, None).explain(minted.token)
    signature = next(c for c in report.checks if c.name == "signature")
    assert signature.ok is True  # it does verify, with the keys its own iss names
    assert not report.accepted
    assert "would accept" not in report.conclusion
    assert "--api" in render(report)


class Endless(io.StringIO):
    """Standard input that never ends (``yes | tokengate explain -``, ``< /dev/zero``)."""

    def read(self, size: int | None = -1) -> str:
        if size is None or size < 0:
            raise AssertionError("an unbounded read of endless input never returns")
        return "A" * size

    def isatty(self) -> bool:
        return False


def test_endless_input_is_read_bounded_and_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    monkeypatch.setattr("sys.stdin", Endless())
    monkeypatch.setenv("TOKENGATE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TOKENGATE_API_URL", raising=False)
    assert main(["explain", "-"]) == 1
    out = capsys.readouterr().out
    assert "not a JWT" in out and "acceptable size" in out

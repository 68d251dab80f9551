"""``explain`` renders any claims it is shown: times far outside what a clock can represent
(a 20-digit exp, 1e300, NaN or Infinity from JSON) are printed as given, never a crash."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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

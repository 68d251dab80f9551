"""Any JSON value in any claim of a validly signed token ends in a reason-coded refusal or an
acceptance: at /token, at both authorizers, in every event format (never an exception, a 5xx).

Also the identity rules those claims feed: one principal per user (``sub`` in any letter case),
and OAuth-server tokens limited to what their client may receive and the user consented to.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from devstack.gateway import LambdaContext, authorizer_outcome
from devstack.moto_aws import LocalAws
from devstack.stack import deploy
from tests.conftest import ISSUER, InProcessApi
from tests.depth import examples
from tests.factories import (
    HS_SECRET,
    SUPABASE_URL,
    USER_ID,
    hs_token,
    jws,
    rsa_pair,
    supabase_claims,
)
from tests.jwks_server import JwksServer
from tokengate.authorizer import Unauthorized
from tokengate.signing import LocalKeySigner

ARN = "arn:aws:execute-api:us-east-1:123456789012:local/v1"
EXAMPLES = settings(
    max_examples=examples(2000, 500),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ODD_STRINGS = st.sampled_from(
    ["", "\x00", "aal1\x00", "\u202e", "\ud7ff", "İ", "𝔞𝔞𝔩𝟣", "aal2 ", " read", "read\nwrite"]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.sampled_from([10**308, -(10**308), 2**63, 2**53 + 1, 10**400])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | ODD_STRINGS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(max_size=6) | st.sampled_from(["api_scopes"]), children, max_size=3
        )
    ),
    max_leaves=6,
)
CLAIMS = [
    "aal",
    "exp",
    "iat",
    "nbf",
    "sub",
    "scope",
    "client_id",
    "session_id",
    "is_anonymous",
    "app_metadata",
    "user_metadata",
    "role",
    "aud",
    "iss",
    "email",
    "amr",
    "jti",
    "sid",
]
overrides = st.dictionaries(st.sampled_from(CLAIMS), json_values, min_size=1, max_size=3)
AUTHORIZERS = ("ApiTokenAuthorizerFunction", "SupabaseAuthorizerFunction")


@pytest.fixture(scope="module")
def api_key() -> Any:
    return rsa_pair()


@pytest.fixture(scope="module")
def api(api_key: Any, moto_server: LocalAws) -> Iterator[InProcessApi]:
    """The template's API in-process with moto; module-wide, so hypothesis reuses it. Our JWKS
    is served on loopback with a second, local signing key beside the KMS one, so odd API tokens
    can be signed quickly (they are real RS256 signatures over keys the authorizer trusts)."""
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
    )
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)
    try:
        with mock_aws(), JwksServer({"keys": []}) as jwks:
            template, provisioned = deploy(
                supabase_url=SUPABASE_URL,
                jwt_secret=HS_SECRET,
                issuer=ISSUER,
                parameters={
                    "Revocation": "false",  # claims, not revocation (tests/test_revocation.py)
                    "ScopesSupported": "read write admin",
                    "AllowedClientIds": "app-1 app-2 app-3",
                    "ClientScopes": '{"app-1": "read write", "app-2": "read"}',
                },
                environment={
                    "API_JWKS_URL": jwks.jwks_url,
                    "AWS_ENDPOINT_URL": moto_server.endpoint,
                },
            )
            built = InProcessApi(template, provisioned, [])
            published = built.call("GET", "/.well-known/jwks.json")[2]
            jwks.document = {
                "keys": [*published["keys"], LocalKeySigner(api_key.private).public_jwk()]
            }
            yield built
    finally:
        os.environ.clear()
        os.environ.update(saved)


def outcome(api: InProcessApi, function: str, payload: dict[str, Any]) -> str:
    try:
        answer = api.gateway.handlers[function](payload, LambdaContext(function))
    except Unauthorized:
        return "unauthorized"
    return authorizer_outcome(answer, payload)


def events(token: str) -> list[dict[str, Any]]:
    value = f"Bearer {token}"
    return [
        {"type": "TOKEN", "authorizationToken": value, "methodArn": f"{ARN}/GET/whoami"},
        {
            "type": "REQUEST",
            "methodArn": f"{ARN}/GET/supabase/whoami",
            "resource": "/supabase/whoami",
            "path": "/supabase/whoami",
            "httpMethod": "GET",
            "headers": {"Authorization": value},
            "requestContext": {"resourcePath": "/supabase/whoami", "httpMethod": "GET"},
        },
        {
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": f"{ARN}/GET/whoami",
            "routeKey": "GET /whoami",
            "identitySource": [value, "GET /whoami"],
            "headers": {"authorization": value},
        },
    ]


def api_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": USER_ID,
        "aud": "api",
        "iat": now,
        "exp": now + 600,
        "jti": "j-1",
        "client_id": "cli",
        "scope": "read",
        "sid": "s-1",
        "aal": "aal1",
    }
    return claims | overrides


def api_token(api_key: Any, claims: dict[str, Any]) -> str:
    header = {"alg": "RS256", "typ": "at+jwt", "kid": LocalKeySigner(api_key.private).kid}
    return jws(header, claims, api_key.sign)


@EXAMPLES
@given(changes=overrides)
def test_any_claim_value_of_a_signed_supabase_token_ends_in_a_decision(
    api: InProcessApi, changes: dict[str, Any]
) -> None:
    token = hs_token(supabase_claims(**changes))
    status, _, body = api.exchange(token, scope="read")
    assert status in (200, 400), (status, body)
    assert (status == 200) == ("access_token" in body)
    for function in AUTHORIZERS:
        for payload in events(token):
            assert outcome(api, function, payload) in ("allow", "deny", "unauthorized")


@EXAMPLES
@given(changes=overrides)
def test_any_claim_value_of_a_signed_api_token_ends_in_a_decision(
    api: InProcessApi, api_key: Any, changes: dict[str, Any]
) -> None:
    token = api_token(api_key, api_claims(**changes))
    for function in AUTHORIZERS:
        for payload in events(token):
            assert outcome(api, function, payload) in ("allow", "deny", "unauthorized")
    status, _, body = api.exchange(token)
    assert status == 400 and body["error"] == "invalid_request"


def test_the_api_token_signing_path_of_this_file_is_real(api: InProcessApi, api_key: Any) -> None:
    """The odd-claim API tokens above reach the claim checks: a plain one is allowed."""
    token = api_token(api_key, api_claims())
    assert outcome(api, "ApiTokenAuthorizerFunction", events(token)[0]) == "allow"
    assert outcome(api, "ApiTokenAuthorizerFunction", events(token[:-2] + "AA")[0]) != "allow"


@pytest.mark.parametrize(
    "changes",
    [
        {"aal": ["aal1"]},
        {"aal": {"level": "aal2"}},
        {"exp": 10**400},
        {"exp": -(10**400)},
        {"iat": -(10**400)},
        {"iat": 10**400},
        {"nbf": 10**400},
        {"exp": 2**1100, "iat": 2**1100 - 10},
    ],
    ids=repr,
)
def test_the_reported_claims_are_refused_not_a_5xx(
    api: InProcessApi, api_key: Any, changes: dict[str, Any]
) -> None:
    token = hs_token(supabase_claims(**changes))
    assert api.exchange(token)[0] == 400
    assert api.call("GET", "/supabase/whoami", Authorization=f"Bearer {token}")[0] == 401
    for function in AUTHORIZERS:
        for payload in events(token):
            assert outcome(api, function, payload) == "unauthorized"
    # API tokens have no aal rule; their time claims are checked as strictly.
    expected = {"unauthorized"} if "aal" not in changes else {"allow", "deny"}
    for payload in events(api_token(api_key, api_claims(**changes))):
        assert outcome(api, "ApiTokenAuthorizerFunction", payload) in expected


# -- one principal per user ---------------------------------------------------------------------
def test_a_subject_in_upper_case_is_the_same_principal(api: InProcessApi, api_key: Any) -> None:
    upper = hs_token(supabase_claims(sub=USER_ID.upper()))
    answer = api.gateway.handlers["SupabaseAuthorizerFunction"](
        events(upper)[0] | {"methodArn": f"{ARN}/GET/supabase/whoami"}, LambdaContext()
    )
    assert answer["principalId"] == USER_ID and answer["context"]["sub"] == USER_ID
    status, _, body = api.exchange(upper)
    assert status == 200
    issued = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    assert issued["sub"] == USER_ID
    odd = api_token(api_key, api_claims(sub=USER_ID.upper()))
    answer = api.gateway.handlers["ApiTokenAuthorizerFunction"](events(odd)[0], LambdaContext())
    assert answer["principalId"] == USER_ID


# -- OAuth-server tokens: the client's allow-list, the user's scopes, the consent ---------------
def client_token(client_id: str, consent: str, user_scopes: list[str]) -> str:
    metadata = {"provider": "email", "api_scopes": user_scopes}
    return hs_token(supabase_claims(client_id=client_id, scope=consent, app_metadata=metadata))


@pytest.mark.parametrize(
    ("consent", "user", "requested", "status", "granted"),
    [
        # The reported case: consent "email", the user holds read and write; the client may
        # receive read and write: it gets what the client may and the user has ...
        ("email", ["write"], "read write", 200, "read write"),
        # ... but never a scope the user lacks,
        ("email", [], "read write", 400, None),
        # ... nor one its consent leaves out when the consent names API scopes,
        ("openid read", ["write"], "read write", 400, None),
        ("openid read", ["write"], "read", 200, "read"),
        # ... nor one beyond the client's allow-list.
        ("email", ["write", "admin"], "admin", 400, None),
        ("email", ["write"], None, 200, "read"),
    ],
)
def test_an_oauth_client_token_gets_only_what_client_user_and_consent_all_allow(
    api: InProcessApi,
    consent: str,
    user: list[str],
    requested: str | None,
    status: int,
    granted: str | None,
) -> None:
    token = client_token("app-1", consent, user)
    params = {"scope": requested} if requested is not None else {}
    answer_status, _, body = api.exchange(token, **params)
    assert answer_status == status, body
    if granted is not None:
        assert body["scope"] == granted


def test_the_supabase_authorizer_context_carries_the_client_limited_scopes(
    api: InProcessApi,
) -> None:
    """The issue's case at the Supabase authorizer: consent ``email``, the user holds ``read
    write``, the client may receive ``read`` only: the context says ``read`` and a write route
    is denied."""
    token = client_token("app-2", "email", ["read", "write"])
    handler = api.gateway.handlers["SupabaseAuthorizerFunction"]
    answer = handler(events(token)[1], LambdaContext())
    assert answer["context"]["scope"] == "read"
    assert answer["context"]["client_id"] == "app-2"
    refund = f"Bearer {token}"
    assert api.call("GET", "/supabase/orders/8", Authorization=refund)[0] == 200
    assert api.call("POST", "/supabase/orders/8/refund", Authorization=refund)[0] == 403
    unlisted = client_token("app-3", "email", ["read", "write"])  # allowed, but no API scopes
    assert handler(events(unlisted)[1], LambdaContext())["context"]["scope"] == ""
    assert api.call("GET", "/supabase/orders/8", Authorization=f"Bearer {unlisted}")[0] == 403
    stranger = client_token("app-4", "email", ["read"])  # not allowed at all: as before
    assert api.call("GET", "/supabase/whoami", Authorization=f"Bearer {stranger}")[0] == 401
    assert api.exchange(stranger)[0] == 400

"""Signing-key rotation (docs/contract.md §12 G-28): the next key is published before it signs;
tokens of the previous key verify until they expire; a retired key's tokens stop verifying."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest

from tests.conftest import InProcessApi
from tests.factories import hs_token, supabase_claims
from tests.jwks_server import JwksServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from rotate_signing_key import create_key, rotation_overrides

MakeApi = Callable[..., InProcessApi]


@pytest.fixture
def own_jwks() -> Iterator[JwksServer]:
    with JwksServer({"keys": []}) as server:
        yield server


def stage(make_api: MakeApi, own_jwks: JwksServer, parameters: dict[str, str]) -> InProcessApi:
    """A deployment with these parameters (new containers: nothing cached from the last stage)."""
    own_jwks.document = {"keys": []}  # the authorizer's start-up prefetch sees no stale stage
    api = make_api(parameters, API_JWKS_URL=own_jwks.jwks_url)
    own_jwks.document = api.call("GET", "/.well-known/jwks.json")[2]
    return api


def kids(api: InProcessApi) -> list[str]:
    return [k["kid"] for k in api.call("GET", "/.well-known/jwks.json")[2]["keys"]]


def issue(api: InProcessApi) -> str:
    status, _, body = api.exchange(hs_token(supabase_claims()))
    assert status == 200
    return str(body["access_token"])


def whoami(api: InProcessApi, token: str) -> int:
    return api.call("GET", "/whoami", Authorization=f"Bearer {token}")[0]


def test_rotation_lifecycle(make_api: MakeApi, own_jwks: JwksServer) -> None:
    start = stage(make_api, own_jwks, {})
    key_a = start.provisioned.signing_key_arn
    params: dict[str, Any] = {"SigningKeyArn": key_a, "PublishedKeyIds": ""}
    api = stage(make_api, own_jwks, params)
    token_a = issue(api)
    (kid_a,) = kids(api)
    assert jwt.get_unverified_header(token_a)["kid"] == kid_a

    # 1-2. create the next key and publish it: in the JWKS, not signing yet
    key_b = create_key(boto3.client("kms", region_name="us-east-1"), "RS256", "tokengate")
    params = rotation_overrides("publish", params, key_a, key_b)
    api = stage(make_api, own_jwks, params)
    assert kids(api)[0] == kid_a and len(kids(api)) == 2
    kid_b = kids(api)[1]
    assert jwt.get_unverified_header(issue(api))["kid"] == kid_a
    assert whoami(api, token_a) == 200

    # 3. switch: B signs, A is still published, so A's tokens keep verifying until they expire
    params = rotation_overrides("switch", params, key_a, key_b)
    assert params == {"SigningKeyArn": key_b, "PublishedKeyIds": key_a}
    api = stage(make_api, own_jwks, params)
    token_b = issue(api)
    assert jwt.get_unverified_header(token_b)["kid"] == kid_b
    assert kids(api) == [kid_b, kid_a]
    assert whoami(api, token_a) == 200
    assert whoami(api, token_b) == 200

    # 4. retire: A is no longer published, and its tokens stop verifying
    params = rotation_overrides("retire", params, key_a)
    api = stage(make_api, own_jwks, params)
    assert kids(api) == [kid_b]
    assert whoami(api, token_a) == 401
    assert whoami(api, token_b) == 200


def test_switch_refuses_an_unpublished_key() -> None:
    with pytest.raises(ValueError, match="publish the next key first"):
        rotation_overrides("switch", {"SigningKeyArn": "", "PublishedKeyIds": ""}, "arn:a", "arn:b")
    with pytest.raises(ValueError, match="other than the one signing"):
        rotation_overrides("publish", {"SigningKeyArn": "arn:a"}, "arn:stack", "arn:a")

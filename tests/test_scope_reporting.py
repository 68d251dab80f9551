"""What a caller is told about scopes: the 403 body's ``scope`` (every route scope the token
lacks), success bodies without denial details, and a route scope no one can hold said at start."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import InProcessApi
from tests.factories import hs_token, supabase_claims
from tests.jwks_server import JwksServer
from tokengate.config import Settings

MakeApi = Callable[..., InProcessApi]
ROUTES = (
    '{"GET /whoami": "read", "POST /orders/{id}": "write", "POST /orders/{id}/refund": "admin"}'
)


def api_token(api: InProcessApi, scope: str, metadata_scopes: list[str]) -> str:
    claims = supabase_claims(app_metadata={"provider": "email", "api_scopes": metadata_scopes})
    status, _, body = api.exchange(hs_token(claims), scope=scope)
    assert status == 200, body
    return str(body["access_token"])


@pytest.fixture
def api(make_api: MakeApi) -> Iterator[InProcessApi]:
    """The template's demo configuration, its own JWKS on loopback as in AWS."""
    with JwksServer({"keys": []}) as own_jwks:
        built = make_api(API_JWKS_URL=own_jwks.jwks_url, ISSUER="https://api.example.com")
        own_jwks.document = built.call("GET", "/.well-known/jwks.json")[2]
        yield built


def test_a_success_body_carries_no_denial_details(api: InProcessApi) -> None:
    token = api_token(api, "read", [])
    status, _, who = api.call("GET", "/whoami", Authorization=f"Bearer {token}")
    assert status == 200
    assert who["scope"] == "read"
    assert "insufficient_scope" not in who
    # The same token's 403 names every route scope it lacks, the denied route's among them.
    status, _, denied = api.call("POST", "/orders/8", Authorization=f"Bearer {token}")
    assert (status, denied["error"], denied["scope"]) == (403, "insufficient_scope", "admin write")


def test_the_demos_admin_route_is_reachable_by_a_user_granted_admin(api: InProcessApi) -> None:
    token = api_token(api, "read write admin", ["write", "admin"])
    status, _, _ = api.call("POST", "/orders/8/refund", Authorization=f"Bearer {token}")
    assert status == 200


def test_a_route_scope_no_one_can_hold_is_said_once_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = {"SUPABASE_URL": "https://project.supabase.co", "ROUTE_SCOPES": ROUTES}
    with caplog.at_level(logging.WARNING, logger="tokengate.config"):
        Settings.from_env(environ | {"SCOPES_SUPPORTED": "read write"})
    (record,) = caplog.records
    assert record.getMessage() == (
        "ROUTE_SCOPES requires admin, which SCOPES_SUPPORTED (read write) does not list: no "
        "token can carry it, so every caller is denied POST /orders/{id}/refund"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tokengate.config"):
        Settings.from_env(environ | {"SCOPES_SUPPORTED": "read write admin"})
    assert caplog.records == []

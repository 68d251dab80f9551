"""`make run` honours every setting as the template parameter does in AWS: one mapping from
environment variable to parameter, read from template.yaml and checked by the template's rules,
and each variable's effect observed over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.__main__ import start
from devstack.client import Client, http
from devstack.moto_aws import free_port
from devstack.settings import LOCAL_ONLY, local_settings
from devstack.stack import LocalStack
from devstack.supabase_dev import LOCAL_SUPABASE_URL
from devstack.template import ParameterError, Template
from devstack.token import main as make_token
from tests.factories import HS_SECRET, USER_ID, KeyPair, hs_token, key_token, supabase_claims
from tests.jwks_server import JwksServer
from tokengate.apitoken import ApiTokenIssuer
from tokengate.aws import KmsSigner
from tokengate.config import Settings
from tokengate.emf import stack_from_env
from tokengate.errors import ConfigurationError
from tokengate.keys import thumbprint
from tokengate.published import encode_public_key
from tokengate.revocation import list_uri

pytestmark = pytest.mark.stack

RUNTIME_PROVIDED = {"AWS_REGION"}  # Lambda sets it; the template cannot
AWS_SDK = {"AWS_ENDPOINT_URL"}  # declared (absent in AWS) for sam local invoke; boto3 reads it


class Recording(dict[str, str]):
    """An environment that remembers every name read from it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def test_template_environment_and_settings_agree_both_ways() -> None:
    """Every variable the functions read is set by the template, and the template sets none that
    the functions do not read."""
    env = Recording({"SUPABASE_URL": "https://abcdefghijklmnopqrst.supabase.co"})
    Settings.from_env(env)
    stack_from_env(env)  # the metrics' Stack dimension (tokengate.emf), read beside Settings
    template = {
        name
        for name in Template.load().global_variables()
        if not name.startswith("POWERTOOLS_")  # read by Powertools, not by Settings
    }
    assert env.read - RUNTIME_PROVIDED == template - AWS_SDK


def test_every_setting_but_the_signing_key_is_one_parameter() -> None:
    """One mapping covers every setting: the only variables built from several parameters are the
    signing key (the stack's own key, or the rotation runbook's) and the revocation table (the
    stack's own, when Revocation is on)."""
    template = Template.load()
    variables = set(template.global_variables())
    mapped = template.parameter_variables()
    assert variables - set(mapped) == AWS_SDK | {
        "SIGNING_KEY_ID",
        "REVOCATION_TABLE",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "STACK_NAME",  # the stack's own name, not a setting
    }
    assert len(set(mapped.values())) == len(mapped)  # one variable per parameter


def number_bounds() -> list[tuple[str, str, int, int]]:
    template = Template.load()
    specs = template.document["Parameters"]
    return [
        (variable, parameter, int(specs[parameter]["MinValue"]), int(specs[parameter]["MaxValue"]))
        for variable, parameter in sorted(template.parameter_variables().items())
        if "MinValue" in specs[parameter]
    ]


@pytest.mark.parametrize(("variable", "parameter", "low", "high"), number_bounds())
def test_template_and_functions_take_the_same_numbers(
    variable: str, parameter: str, low: int, high: int
) -> None:
    """What the template accepts, the functions accept, and the values just outside are refused
    by both: a local value cannot pass one check and fail the other."""
    spec = Template.load().document["Parameters"][parameter]
    base = {"SUPABASE_URL": "https://abcdefghijklmnopqrst.supabase.co"}
    for value in (low, high):
        local_settings({variable: str(value)})
        Settings.from_env(base | {variable: str(value)})
    for value in (low - 1, high + 1):
        with pytest.raises(ParameterError, match=f"{variable}: {parameter}="):
            local_settings({variable: str(value)})
        with pytest.raises(ConfigurationError, match=variable):
            Settings.from_env(base | {variable: str(value)})
    assert low <= int(spec["Default"]) <= high


# -- each variable, set as make run gets it, observed over HTTP ---------------------------------


@dataclass
class Running:
    stack: LocalStack
    client: Client
    supabase: JwksServer
    ec_key: KeyPair

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return supabase_claims(iss=f"{self.supabase.base_url}/auth/v1", **overrides)

    def hs(self, secret: str = HS_SECRET, **overrides: Any) -> str:
        return hs_token(self.claims(**overrides), secret)

    def es(self, **overrides: Any) -> str:
        return key_token(self.ec_key, self.claims(**overrides))

    def exchange(self, token: str, **params: str) -> tuple[int, dict[str, Any]]:
        status, _, body = self.client.exchange(token, **params)
        return status, body

    def api_claims(self, token: str) -> dict[str, Any]:
        status, body = self.exchange(token)
        assert status == 200, body
        return jwt.decode(body["access_token"], options={"verify_signature": False})

    def jwks_fetches(self) -> int:
        return sum(path.endswith("/jwks.json") for path in self.supabase.paths)


@contextlib.contextmanager
def make_run(env: Mapping[str, str]) -> Iterator[LocalStack]:
    """The local stack as `make run` starts it from this environment (in this process)."""
    saved = dict(os.environ)
    stack = start(env)
    try:
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def check_port(run: Running) -> None:
    assert http("GET", f"{run.stack.base_url}/.well-known/jwks.json")[0] == 200


def check_supabase_url(run: Running) -> None:
    assert run.exchange(run.hs())[0] == 200
    local = hs_token(supabase_claims(iss=f"{LOCAL_SUPABASE_URL}/auth/v1"))
    assert run.exchange(local)[0] == 400


OTHER_SECRET = "another-local-jwt-secret-of-at-least-32-bytes"


def check_jwt_secret(run: Running) -> None:
    assert run.exchange(run.hs(OTHER_SECRET))[0] == 200
    assert run.exchange(run.hs(HS_SECRET))[0] == 400


def check_hs256_off(run: Running) -> None:
    assert run.exchange(run.hs())[0] == 400
    assert run.exchange(run.es())[0] == 200


def check_jwks_off(run: Running) -> None:
    assert run.exchange(run.es())[0] == 400
    assert run.exchange(run.hs())[0] == 200


def check_session_check(run: Running) -> None:
    before = len(run.supabase.user_requests)
    assert run.exchange(run.hs())[0] == 200
    assert len(run.supabase.user_requests) == before + 1
    assert run.supabase.user_requests[-1]["apikey"] == "sb_publishable_local"


def check_secretsmanager(run: Running) -> None:
    """The token is signed with the PEM key in the local Secrets Manager, not with KMS."""
    assert run.stack.aws is not None
    secrets = run.stack.aws.client("secretsmanager")
    arn = run.stack.provisioned.signing_key_secret_arn
    pem = secrets.get_secret_value(SecretId=arn)["SecretString"].encode()
    public = serialization.load_pem_private_key(pem, None).public_key()
    status, body = run.exchange(run.hs())
    assert status == 200, body
    jwt.decode(body["access_token"], public, algorithms=["RS256"], audience="api")  # type: ignore[arg-type]


def check_es256(run: Running) -> None:
    status, body = run.exchange(run.hs())
    assert status == 200, body
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "ES256"
    jwks = run.client.get("/.well-known/jwks.json")[2]
    assert [key["kty"] for key in jwks["keys"]] == ["EC"]


def check_published_keys(run: Running) -> None:
    """The JWKS function publishes every listed key: one that cannot be read fails closed."""
    status, _, body = run.client.get("/.well-known/jwks.json")
    assert (status, body["error"]) == (503, "temporarily_unavailable")


def check_issuer(run: Running) -> None:
    assert run.api_claims(run.hs())["iss"] == "https://api.example.com"
    assert run.client.get("/.well-known/openid-configuration")[2]["issuer"] == (
        "https://api.example.com"
    )


def check_audiences(run: Running) -> None:
    status, body = run.exchange(run.hs(), audience="other")
    assert status == 200, body
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == "other"


def check_default_audience(run: Running) -> None:
    status, body = run.exchange(run.hs())
    assert status == 200, body
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == "other"
    assert run.client.get("/whoami", body["access_token"])[0] == 200  # what the authorizer requires
    api_audience = run.exchange(run.hs(), audience="api")[1]["access_token"]
    assert run.client.get("/whoami", api_audience)[0] == 401


def check_resources(run: Running) -> None:
    status, body = run.exchange(run.hs(), resource="https://api.example.com/")
    assert status == 200, body


def check_ttl(run: Running) -> None:
    assert run.exchange(run.hs())[1]["expires_in"] == 120


def check_scopes_supported(run: Running) -> None:
    metadata = run.client.get("/.well-known/openid-configuration")[2]
    assert metadata["scopes_supported"] == ["read", "write", "admin", "audit"]
    auditor = run.hs(app_metadata={"provider": "email", "api_scopes": ["audit"]})
    assert run.exchange(auditor, scope="audit")[0] == 200


def check_default_scopes(run: Running) -> None:
    assert run.exchange(run.hs())[1]["scope"] == "read write"


def check_scopes_claim(run: Running) -> None:
    roles = run.hs(app_metadata={"provider": "email", "roles": ["write"]})
    assert run.exchange(roles, scope="write")[0] == 200
    usual = run.hs(app_metadata={"provider": "email", "api_scopes": ["write"]})
    assert run.exchange(usual, scope="write")[1]["error"] == "invalid_scope"


def check_passthrough(run: Running) -> None:
    assert run.api_claims(run.hs())["email"] == "user@example.com"


def check_anonymous(run: Running) -> None:
    assert run.exchange(run.hs(is_anonymous=True))[0] == 200


def check_client_ids(run: Running) -> None:
    assert run.api_claims(run.hs(client_id="app1"))["client_id"] == "app1"
    assert run.exchange(run.hs(client_id="app2"))[0] == 400


def check_client_scopes(run: Running) -> None:
    """The client's tokens carry at most its own scopes, though the user holds more."""
    user = {"provider": "email", "api_scopes": ["write"]}
    assert run.exchange(run.hs(client_id="app1", app_metadata=user), scope="write")[0] == 200
    refused = run.exchange(run.hs(client_id="app1", app_metadata=user), scope="read")
    assert refused[1]["error"] == "invalid_scope"


def check_supabase_issuer(run: Running) -> None:
    custom = hs_token(supabase_claims(iss="https://auth.example.com/auth/v1"))
    assert run.exchange(custom)[0] == 200
    assert run.exchange(run.hs())[0] == 400


def check_supabase_jwks_url(run: Running) -> None:
    before = len(run.supabase.paths)
    assert run.exchange(run.es())[0] == 200
    assert "/keys/project.json" in run.supabase.paths[before:]


def check_discovery_supabase(run: Running) -> None:
    metadata = run.client.get("/.well-known/openid-configuration")[2]
    assert metadata["tokengate_supabase_url"] == run.supabase.base_url


def check_min_aal(run: Running) -> None:
    assert run.exchange(run.hs(aal="aal1"))[0] == 400
    assert run.exchange(run.hs(aal="aal2"))[0] == 200


def check_leeway(run: Running) -> None:
    """A token issued 10 s "in the future" (a clock 10 s ahead): within the default 30 s."""
    now = int(time.time())
    assert run.exchange(run.hs(iat=now + 10, exp=now + 3600))[0] == 400


def check_route_scopes(run: Running) -> None:
    token = run.hs(app_metadata={"provider": "email", "api_scopes": ["write"]})
    read = run.exchange(token)[1]["access_token"]
    both = run.exchange(token, scope="read write")[1]["access_token"]
    assert run.client.get("/whoami", read)[0] == 403
    assert run.client.get("/whoami", both)[0] == 200


def check_jwks_cache(run: Running) -> None:
    before = run.jwks_fetches()
    assert run.exchange(run.es())[0] == 200
    time.sleep(2.0)  # past the 1 s cache; the default keeps the keys for 10 minutes
    assert run.exchange(run.es())[0] == 200
    assert run.jwks_fetches() == before + 2


def check_jwks_cooldown(run: Running) -> None:
    """An unknown kid refetches the keys at most once per cooldown: a second one 10.5 s later
    (past the default cooldown, its lower bound) does not within this one of an hour."""
    before = run.jwks_fetches()
    assert run.exchange(run.es())[0] == 200
    assert run.exchange(key_token(run.ec_key, run.claims(), kid="rotated-1"))[0] == 400
    time.sleep(10.5)
    assert run.exchange(key_token(run.ec_key, run.claims(), kid="rotated-2"))[0] == 400
    assert run.jwks_fetches() == before + 2


def check_publish_max_age(run: Running) -> None:
    assert run.client.get("/.well-known/jwks.json")[1]["Cache-Control"] == "public, max-age=60"


def check_api_jwks_url(run: Running) -> None:
    """The API-token authorizer reads its keys where told: the Supabase project's are not ours."""
    token = run.exchange(run.hs())[1]["access_token"]
    assert run.client.get("/whoami", token)[0] == 401


def check_context_claims(run: Running) -> None:
    token = run.exchange(run.hs())[1]["access_token"]
    status, _, body = run.client.get("/whoami", token)
    assert status == 200
    assert isinstance(body["exp"], int | str)


def check_default_client_id(run: Running) -> None:
    assert run.api_claims(run.hs())["client_id"] == "local-cli"


def check_authorizer_cache_ttl(run: Running) -> None:
    """No cache: the gateway asks the authorizer every time, and the authorizer allows a token
    until exp + leeway (the default 30 s cache ends its use at exp)."""
    stack = run.stack
    assert stack.aws is not None and stack.gateway is not None
    signer = KmsSigner(stack.provisioned.signing_key_arn, "RS256", kms=stack.aws.client("kms"))
    now = int(time.time())
    token = (
        ApiTokenIssuer(signer, clock=lambda: now - 65)
        .issue(
            issuer=stack.base_url,
            subject=USER_ID,
            audiences=["api"],
            scopes=["read"],
            client_id="cli",
            session_id="s",
            not_after=now - 5,  # expired 5 s ago: within the 30 s leeway
            # Revocation is on: a status list entry no session of this stack has been given.
            extra_claims={"status": {"status_list": {"idx": 0, "uri": list_uri(stack.base_url)}}},
        )
        .token
    )
    handlers = stack.gateway.handlers
    inner = handlers["ApiTokenAuthorizerFunction"]
    calls: list[int] = []

    def counting(event: dict[str, Any], context: Any) -> Any:
        calls.append(1)
        return inner(event, context)

    handlers["ApiTokenAuthorizerFunction"] = counting
    assert run.client.get("/whoami", token)[0] == 200
    assert run.client.get("/whoami", token)[0] == 200
    assert len(calls) == 2


APP_ORIGIN = "https://app.example.com"


def check_cors(run: Running) -> None:
    """A browser app at the allowed origin may call /token: preflight, and an error it can read."""
    preflight = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"}
    status, headers, _ = http("OPTIONS", f"{run.stack.base_url}/token", headers=preflight)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "POST" in headers["Access-Control-Allow-Methods"]
    status, headers, body = http(
        "POST",
        f"{run.stack.base_url}/token",
        b"grant_type=password",
        {"Origin": APP_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 400, body
    assert headers["Access-Control-Allow-Origin"] == APP_ORIGIN


PUBLISHED_ONLY = ec.generate_private_key(ec.SECP256R1()).public_key()


def check_signing_public_keys(run: Running) -> None:
    """The JWKS publishes the configured public keys (the Secrets Manager mode's source)."""
    jwks = run.client.get("/.well-known/jwks.json")[2]
    assert [key["kid"] for key in jwks["keys"]] == [thumbprint(PUBLISHED_ONLY)]


def check_status_list_refresh(run: Running) -> None:
    """A revoked session is refused at the Supabase authorizer (on a path its cache has not
    seen) once the authorizer's copy of the status list is older than the refresh period."""
    token = run.hs()
    assert run.client.get("/supabase/whoami", token)[0] == 200  # the list is fetched now
    assert run.client.revoke(token)[0] == 200
    time.sleep(2.0)  # past a 1 s refresh, well within the default 15 s
    assert run.client.get("/supabase/orders/1", token)[0] == 401


def check_status_list_max_age(run: Running) -> None:
    """With the list no longer served, the authorizers decide from the last good one for the
    max age, then refuse (30 s here; the default keeps it 300 s)."""
    token = run.hs()
    assert run.client.get("/supabase/whoami", token)[0] == 200
    assert run.stack.aws is not None
    table = run.stack.gateway.template.attributes["RevocationTable"]  # type: ignore[union-attr]
    run.stack.aws.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": "l#1"}})
    time.sleep(31.0)
    assert run.client.get("/supabase/orders/2", token)[0] == 401


Check = Callable[[Running], None]
CASES: dict[str, tuple[dict[str, str], Check]] = {
    "PORT": ({}, check_port),  # every case sets its own free port
    "SUPABASE_URL": ({}, check_supabase_url),  # every case points at the loopback project
    "SUPABASE_JWT_SECRET": ({"SUPABASE_JWT_SECRET": OTHER_SECRET}, check_jwt_secret),
    "SUPABASE_JWT_SECRET_ARN": ({"SUPABASE_JWT_SECRET_ARN": ""}, check_hs256_off),
    "SUPABASE_JWKS_ENABLED": ({"SUPABASE_JWKS_ENABLED": "false"}, check_jwks_off),
    "SESSION_CHECK": (
        {"SESSION_CHECK": "true", "SUPABASE_API_KEY": "sb_publishable_local"},
        check_session_check,
    ),
    "SIGNING_MODE": ({"SIGNING_MODE": "secretsmanager"}, check_secretsmanager),
    "SIGNING_ALG": ({"SIGNING_ALG": "ES256"}, check_es256),
    "PUBLISHED_KEY_IDS": (
        {"PUBLISHED_KEY_IDS": "arn:aws:kms:us-east-1:123456789012:key/0000-missing"},
        check_published_keys,
    ),
    "ISSUER": ({"ISSUER": "https://api.example.com"}, check_issuer),
    "AUDIENCES": ({"AUDIENCES": "api other"}, check_audiences),
    "DEFAULT_AUDIENCE": (
        {"AUDIENCES": "api other", "DEFAULT_AUDIENCE": "other"},
        check_default_audience,
    ),
    "RESOURCES": ({"RESOURCES": '{"https://api.example.com/": "api"}'}, check_resources),
    "TOKEN_TTL_SECONDS": ({"TOKEN_TTL_SECONDS": "120"}, check_ttl),
    "SCOPES_SUPPORTED": ({"SCOPES_SUPPORTED": "read write admin audit"}, check_scopes_supported),
    "DEFAULT_SCOPES": ({"DEFAULT_SCOPES": "read write"}, check_default_scopes),
    "SCOPES_CLAIM": ({"SCOPES_CLAIM": "roles"}, check_scopes_claim),
    "PASSTHROUGH_CLAIMS": ({"PASSTHROUGH_CLAIMS": "aal email"}, check_passthrough),
    "ALLOW_ANONYMOUS": ({"ALLOW_ANONYMOUS": "true"}, check_anonymous),
    "ALLOWED_CLIENT_IDS": (
        {"ALLOWED_CLIENT_IDS": "app1", "CLIENT_SCOPES": '{"app1": ["read"]}'},
        check_client_ids,
    ),
    "CLIENT_SCOPES": (
        {"ALLOWED_CLIENT_IDS": "app1", "CLIENT_SCOPES": '{"app1": ["write"]}'},
        check_client_scopes,
    ),
    "SUPABASE_ISSUER": (
        {"SUPABASE_ISSUER": "https://auth.example.com/auth/v1"},
        check_supabase_issuer,
    ),
    "SUPABASE_JWKS_URL": ({}, check_supabase_jwks_url),  # the project's server, another path
    "DISCOVERY_SUPABASE": ({"DISCOVERY_SUPABASE": "true"}, check_discovery_supabase),
    "MIN_AAL": ({"MIN_AAL": "aal2"}, check_min_aal),
    "LEEWAY_SECONDS": ({"LEEWAY_SECONDS": "0"}, check_leeway),
    "AUTHORIZER_CACHE_TTL": ({"AUTHORIZER_CACHE_TTL": "0"}, check_authorizer_cache_ttl),
    "ROUTE_SCOPES": (
        {"ROUTE_SCOPES": '{"GET /whoami": "write", "GET /supabase/whoami": ""}'},
        check_route_scopes,
    ),
    "JWKS_CACHE_SECONDS": ({"JWKS_CACHE_SECONDS": "1"}, check_jwks_cache),
    "JWKS_COOLDOWN_SECONDS": ({"JWKS_COOLDOWN_SECONDS": "3600"}, check_jwks_cooldown),
    "JWKS_PUBLISH_MAX_AGE": ({"JWKS_PUBLISH_MAX_AGE": "60"}, check_publish_max_age),
    "API_JWKS_URL": ({}, check_api_jwks_url),  # the project's JWKS URL, known once it runs
    "CONTEXT_CLAIMS": ({"CONTEXT_CLAIMS": "aal exp"}, check_context_claims),
    "DEFAULT_CLIENT_ID": ({"DEFAULT_CLIENT_ID": "local-cli"}, check_default_client_id),
    "CORS_ALLOW_ORIGINS": ({"CORS_ALLOW_ORIGINS": APP_ORIGIN}, check_cors),
    "SIGNING_PUBLIC_KEYS": (
        {
            "SIGNING_MODE": "secretsmanager",
            "SIGNING_ALG": "ES256",
            "SIGNING_PUBLIC_KEYS": encode_public_key(PUBLISHED_ONLY),
        },
        check_signing_public_keys,
    ),
    "STATUS_LIST_REFRESH_SECONDS": (
        {"STATUS_LIST_REFRESH_SECONDS": "1"},
        check_status_list_refresh,
    ),
    "STATUS_LIST_MAX_AGE_SECONDS": (
        {"STATUS_LIST_MAX_AGE_SECONDS": "30"},
        check_status_list_max_age,
    ),
}


def test_every_setting_has_a_case() -> None:
    """The table covers each variable make run takes: the template's and the local ones."""
    documented = set(Template.load().parameter_variables()) | set(LOCAL_ONLY)
    assert set(CASES) | {"SUPABASE_API_KEY"} == documented  # the session check's key


# Settings whose checks wait for a cache, a cooldown or a max age to pass (up to 31 s).
WAITING = {"JWKS_COOLDOWN_SECONDS", "STATUS_LIST_MAX_AGE_SECONDS"}


def variables(names: set[str]) -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.long) if name in WAITING else name
        for name in sorted(names)
    ]


@pytest.mark.parametrize("variable", variables(set(CASES)))
def test_make_run_honours_the_setting(
    variable: str, supabase_server: JwksServer, ec_key: KeyPair
) -> None:
    variables, check = CASES[variable]
    env = {"PORT": str(free_port()), "SUPABASE_URL": supabase_server.base_url} | variables
    if variable == "API_JWKS_URL":
        env["API_JWKS_URL"] = supabase_server.jwks_url
    if variable == "SUPABASE_JWKS_URL":
        env["SUPABASE_JWKS_URL"] = f"{supabase_server.base_url}/keys/project.json"
    with make_run(env) as stack:
        run = Running(stack, Client(stack.base_url), supabase_server, ec_key)
        check(run)


@pytest.mark.parametrize("variable", variables(set(CASES) - {"PORT", "SUPABASE_URL"}))
def test_the_check_fails_under_the_defaults(
    variable: str, supabase_server: JwksServer, ec_key: KeyPair
) -> None:
    """Each check observes what its setting changes: on a stack started without the setting it
    fails, so no check passes whatever make run does with the variable."""
    _, check = CASES[variable]
    env = {"PORT": str(free_port()), "SUPABASE_URL": supabase_server.base_url}
    with make_run(env) as stack:
        run = Running(stack, Client(stack.base_url), supabase_server, ec_key)
        with pytest.raises((AssertionError, KeyError, jwt.PyJWTError)):
            check(run)


# -- misspelt and local-only variables -----------------------------------------------------------


def test_a_variable_that_looks_like_ours_is_reported_with_a_guess() -> None:
    settings = local_settings(
        {
            "ROUTE_SCOPE": "{}",
            "TOKEN_TTL": "60",
            "JWKS_CACHE": "1",
            "SIGNING_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/x",
            "SUPABASE_ANON_KEY": "k",
            "SUPABASE_ACCESS_TOKEN": "a Supabase CLI variable",
            "HOME": "/home/dev",
            "MIN_AAL": "aal2",
        }
    )
    assert settings.parameters == {"MinAal": "aal2"}
    assert settings.ignored == (
        "JWKS_CACHE (did you mean JWKS_CACHE_SECONDS?)",
        "ROUTE_SCOPE (did you mean ROUTE_SCOPES?)",
        "SIGNING_KEY_ID (the template sets it from other parameters)",
        "SUPABASE_ANON_KEY (did you mean SUPABASE_API_KEY?)",
        "TOKEN_TTL (did you mean TOKEN_TTL_SECONDS?)",
    )


def test_a_secret_arn_cannot_be_honoured_locally() -> None:
    with pytest.raises(ParameterError, match="SUPABASE_JWT_SECRET_ARN: the local stack stores"):
        local_settings({"SUPABASE_JWT_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:x"})


# -- make token ----------------------------------------------------------------------------------


def minted(capsys: pytest.CaptureFixture[str], *args: str, **env: str) -> str:
    assert make_token(list(args), env) == 0
    token = capsys.readouterr().out.strip()
    assert token.count(".") == 2
    return token


def test_make_token_reaches_every_policy_branch(
    capsys: pytest.CaptureFixture[str], supabase_server: JwksServer
) -> None:
    """Tokens from make token, exchanged on a stack started from the same environment."""
    env = {
        "SUPABASE_URL": supabase_server.base_url,
        "MIN_AAL": "aal2",
        "ALLOW_ANONYMOUS": "true",
        "ALLOWED_CLIENT_IDS": "app1",
        "CLIENT_SCOPES": '{"app1": ["read"]}',
        "SCOPES_CLAIM": "roles",
    }
    tokens = {
        "aal1": minted(capsys, **env),
        "write": minted(capsys, "--aal", "aal2", "--scopes", "read,write", **env),
        "anonymous": minted(capsys, "--aal", "aal2", "--anonymous", **env),
        "client": minted(capsys, "--aal", "aal2", "--client-id", "app1", **env),
        "other client": minted(capsys, "--aal", "aal2", "--client-id", "app2", **env),
        "short": minted(capsys, "--aal", "aal2", "--lifetime", "90", **env),
        "expired": minted(capsys, "--aal", "aal2", "--lifetime", "-120", **env),
    }
    with make_run(env | {"PORT": str(free_port())}) as stack:
        client = Client(stack.base_url)

        def exchange(name: str, **params: str) -> tuple[int, Any]:
            status, _, body = client.exchange(tokens[name], **params)
            return status, body

        assert exchange("aal1")[0] == 400  # below MIN_AAL
        status, body = exchange("write", scope="read write")
        assert (status, body["scope"]) == (200, "read write")
        assert exchange("anonymous")[0] == 200
        status, body = exchange("client")
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["client_id"] == "app1"
        assert exchange("other client")[0] == 400
        status, body = exchange("short")
        assert status == 200 and body["expires_in"] <= 90
        assert exchange("expired")[0] == 400


def test_make_token_signs_with_the_local_secret(capsys: pytest.CaptureFixture[str]) -> None:
    token = minted(capsys, "--scopes", "write", SUPABASE_JWT_SECRET=OTHER_SECRET)
    claims = jwt.decode(token, OTHER_SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["iss"] == f"{LOCAL_SUPABASE_URL}/auth/v1"
    assert claims["app_metadata"]["api_scopes"] == ["write"]
    assert json.dumps(claims).count("user_metadata") == 1


def test_the_local_guide_lists_every_setting_with_its_parameter() -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "local.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| (`\w+`|— \(local only\)) \|", guide, re.M))
    expected = {var: f"`{param}`" for var, param in Template.load().parameter_variables().items()}
    assert rows == expected | dict.fromkeys(LOCAL_ONLY, "— (local only)")

"""Writes events/: one API Gateway event per function and scenario (<Function>-<scenario>.json).

Tokens are placeholders (``{{supabase_token}}``, ``{{api_token}}``, ...): a token valid today is
expired tomorrow, so ``make invoke`` mints fresh ones against a local deployment and fills them in.
Run it again after changing the shapes below: ``.venv/bin/python scripts/generate_events.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack.events import authorizer_event, request_context

EVENTS = Path(__file__).resolve().parent.parent / "events"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


def proxy(
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ctx = request_context(path, method) | ({"authorizer": authorizer} if authorizer else {})
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": ctx,
        "body": body,
        "isBase64Encoded": False,
    }


def exchange_body(token: str, **extra: str) -> str:
    params = {"grant_type": GRANT, "subject_token": token, "subject_token_type": ACCESS} | extra
    return "&".join(f"{k}={v}" for k, v in params.items())


def events() -> dict[str, dict[str, Any]]:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    out: dict[str, dict[str, Any]] = {
        "TokenExchangeFunction-valid": proxy(
            "POST", "/token", exchange_body("{{supabase_token}}"), form
        ),
        "TokenExchangeFunction-expired": proxy(
            "POST", "/token", exchange_body("{{expired_supabase_token}}"), form
        ),
        "TokenExchangeFunction-anon-key": proxy(
            "POST", "/token", exchange_body("{{anon_key}}"), form
        ),
        "TokenExchangeFunction-wrong-grant-type": proxy(
            "POST", "/token", exchange_body("{{supabase_token}}", grant_type="password"), form
        ),
        "TokenExchangeFunction-invalid-scope": proxy(
            "POST", "/token", exchange_body("{{supabase_token}}", scope="admin"), form
        ),
        "JwksFunction-jwks": proxy("GET", "/.well-known/jwks.json"),
        "JwksFunction-openid-configuration": proxy("GET", "/.well-known/openid-configuration"),
        "JwksFunction-oauth-authorization-server": proxy(
            "GET", "/.well-known/oauth-authorization-server"
        ),
        "WhoamiFunction-valid": proxy(
            "GET",
            "/whoami",
            authorizer={
                "principalId": "5f0d8a53-8d36-4d8a-9a7d-3a5b0b6c1e11",
                "sub": "5f0d8a53-8d36-4d8a-9a7d-3a5b0b6c1e11",
                "scope": "read",
                "client_id": "cli",
            },
        ),
    }
    for kind in ("token", "request", "http"):
        for function, valid, expired, narrow, path, other in (
            (
                "ApiTokenAuthorizerFunction",
                "{{api_token}}",
                "{{expired_api_token}}",
                "{{api_token_write_only}}",
                "/whoami",
                "/whoami",
            ),
            (
                "SupabaseAuthorizerFunction",
                "{{supabase_token}}",
                "{{expired_supabase_token}}",
                "{{supabase_token}}",
                "/supabase/whoami",
                "/admin",
            ),
        ):
            out[f"{function}-{kind}-valid"] = authorizer_event(kind, valid, "GET", path)
            out[f"{function}-{kind}-expired"] = authorizer_event(kind, expired, "GET", path)
            out[f"{function}-{kind}-missing"] = authorizer_event(kind, None, "GET", path)
            out[f"{function}-{kind}-wrong-scope"] = authorizer_event(kind, narrow, "GET", other)
    return out


def main() -> None:
    EVENTS.mkdir(exist_ok=True)
    for name, event in events().items():
        (EVENTS / f"{name}.json").write_text(json.dumps(event, indent=2) + "\n")
    env = {
        "Parameters": {
            "SUPABASE_URL": "http://host.docker.internal:54321",
            "ISSUER": "http://host.docker.internal:3000",
            "API_JWKS_URL": "http://host.docker.internal:3000/.well-known/jwks.json",
        }
    }
    (EVENTS / "env.json").write_text(json.dumps(env, indent=2) + "\n")


if __name__ == "__main__":
    main()

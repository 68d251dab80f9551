"""Writes events/: one API Gateway event per function and scenario (<Function>-<scenario>.json).

Tokens are placeholders (``{{supabase_token}}``, ``{{api_token}}``, ...): a token valid today is
expired tomorrow, so ``make invoke`` mints fresh ones against a local deployment and fills them in.
Run it again after changing the shapes below: ``.venv/bin/python scripts/generate_events.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack.events import authorizer_event, exchange_body, proxy_event

EVENTS = Path(__file__).resolve().parent.parent / "events"


def events() -> dict[str, dict[str, Any]]:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    out: dict[str, dict[str, Any]] = {
        "TokenExchangeFunction-valid": proxy_event(
            "POST", "/token", exchange_body("{{supabase_token}}"), form
        ),
        "TokenExchangeFunction-expired": proxy_event(
            "POST", "/token", exchange_body("{{expired_supabase_token}}"), form
        ),
        "TokenExchangeFunction-anon-key": proxy_event(
            "POST", "/token", exchange_body("{{anon_key}}"), form
        ),
        "TokenExchangeFunction-wrong-grant-type": proxy_event(
            "POST", "/token", exchange_body("{{supabase_token}}", grant_type="password"), form
        ),
        "TokenExchangeFunction-invalid-scope": proxy_event(
            "POST", "/token", exchange_body("{{supabase_token}}", scope="admin"), form
        ),
        "JwksFunction-jwks": proxy_event("GET", "/.well-known/jwks.json"),
        "JwksFunction-openid-configuration": proxy_event(
            "GET", "/.well-known/openid-configuration"
        ),
        "JwksFunction-oauth-authorization-server": proxy_event(
            "GET", "/.well-known/oauth-authorization-server"
        ),
        "WhoamiFunction-valid": proxy_event(
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
    # The stable part of a container's environment (sam local invoke --docker-network host);
    # make events writes the whole of it, AWS endpoint included, for the running make run.
    env = {
        "Parameters": {
            "SUPABASE_URL": "http://127.0.0.1:54321",
            "ISSUER": "http://127.0.0.1:3000",
            "API_JWKS_URL": "http://127.0.0.1:3000/.well-known/jwks.json",
        }
    }
    (EVENTS / "env.json").write_text(json.dumps(env, indent=2) + "\n")


if __name__ == "__main__":
    main()

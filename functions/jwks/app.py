"""GET /.well-known/{jwks.json, openid-configuration, oauth-authorization-server}.

Key publication and discovery (docs/contract.md §3.2)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from tokengate.apigw import json_response
from tokengate.budget import Budget
from tokengate.coldstart import count_cold_start
from tokengate.config import Settings
from tokengate.discovery import render_jwks, render_metadata
from tokengate.errors import (
    ConfigurationError,
    DependencyMisconfiguredError,
    DependencyUnavailableError,
)
from tokengate.issuer import issuer_for
from tokengate.runtime import published_signers, revocation_store
from tokengate.statusroute import serve_status_list

logger = Logger()
count_cold_start(os.environ)
settings = Settings.from_env(os.environ)
# Each signer reads its public key once and keeps it (KMS) or refreshes it hourly (Secrets
# Manager); rendering the set on each request costs microseconds. Reads share the invocation's
# time budget, so a slow KMS is a 503 before the function's timeout.
budget = Budget()
signers = published_signers(settings, budget)
store = revocation_store(settings, budget=budget)  # reads the stored, signed status list
PUBLIC = {"Cache-Control": f"public, max-age={settings.jwks_publish_max_age}"}
# Both values are public (the project URL and its publishable key); published only when asked.
PRODUCT_MEMBERS = (
    {
        "supabase_url": settings.supabase_url,
        "supabase_publishable_key": settings.supabase_api_key,
    }
    if settings.discovery_supabase
    else {}
)


def publish(event: dict[str, Any]) -> dict[str, Any]:
    path = str(event.get("resource") or event.get("path") or "")
    if path.endswith("/jwks.json"):
        try:
            document = render_jwks(signer.public_jwk() for signer in signers)
            return json_response(200, document, PUBLIC)
        except DependencyUnavailableError as exc:
            log = logger.error if isinstance(exc, DependencyMisconfiguredError) else logger.warning
            log("keys unavailable", extra={"reason": exc.reason})
            return json_response(503, {"error": "temporarily_unavailable"}, {"Retry-After": "5"})
        except ConfigurationError as exc:
            # Found on first use (a published key that cannot sign the configured algorithm):
            # the operator must fix the deployment, as at the token endpoint.
            logger.error("keys misconfigured", extra={"reason": exc.detail})
            return json_response(500, {"error": "server_error"})
    if path.endswith(("/openid-configuration", "/oauth-authorization-server")):
        issuer = issuer_for(settings.issuer, settings.region, event)
        metadata = render_metadata(
            issuer, settings.scopes_supported, revocation=store is not None, **PRODUCT_MEMBERS
        )
        return json_response(200, metadata, PUBLIC)
    if "/statuslists" in path:
        return serve_status_list(store, event, issuer_for(settings.issuer, settings.region, event))
    return json_response(404, {"error": "not_found"})


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with budget.invocation(context):
        return publish(event)

"""Lambda authorizer accepting Supabase access tokens directly (SPEC §5, §7).

Same verifier and policy as the token exchange; only the key source of the answer differs.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from tokengate.authorizer import Authorizer, Principal, RouteScopes
from tokengate.config import Settings
from tokengate.runtime import SupabasePrincipals

logger = Logger()
settings = Settings.from_env(os.environ)


def _log(decision: str, reason: str, principal: Principal | None) -> None:
    fields: dict[str, Any] = {"decision": decision, "reason": reason}
    if principal is not None:
        fields["sub"] = principal.sub
    logger.info("authorizer decision", extra=fields)


authorizer = Authorizer(SupabasePrincipals(settings), RouteScopes(settings.route_scopes), _log)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorizer.decide(event)

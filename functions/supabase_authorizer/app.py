"""Lambda authorizer accepting Supabase access tokens directly (docs/contract.md §5, §7).

The same verifier and scope policy as the token exchange; standard-library logging for the same
cold-start reason as the API-token authorizer.
"""

from __future__ import annotations

import os
from typing import Any

from tokengate.authorizer import Authorizer
from tokengate.coldstart import count_cold_start
from tokengate.config import Settings
from tokengate.policies import RouteScopes
from tokengate.runtime import supabase_principals

count_cold_start(os.environ)
settings = Settings.from_env(os.environ)
authorizer = Authorizer(supabase_principals(settings), RouteScopes(settings.route_scopes))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorizer.decide(event)

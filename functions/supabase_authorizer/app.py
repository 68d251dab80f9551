"""Lambda authorizer accepting Supabase access tokens directly (docs/contract.md §5, §7).

The same verifier and scope policy as the token exchange; standard-library logging and EMF
counts for the same cold-start reason as the API-token authorizer, and the same time budget.
"""

from __future__ import annotations

import os
from typing import Any

from tokengate.authorizer import Authorizer
from tokengate.budget import PREFETCH_SECONDS, Budget
from tokengate.coldstart import count_cold_start
from tokengate.config import Settings
from tokengate.policies import RouteScopes
from tokengate.runtime import supabase_principals

count_cold_start(os.environ)
settings = Settings.from_env(os.environ)
budget = Budget()
principals = supabase_principals(settings, budget=budget)
authorizer = Authorizer(principals, RouteScopes(settings.route_scopes))
with budget.within(PREFETCH_SECONDS):
    principals.prefetch()  # keys ready before the first caller; a failure is retried on use


decide = authorizer.decide  # bound once, not on every invocation


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return budget.run(context, decide, event)

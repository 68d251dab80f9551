"""Lambda authorizer for API tokens (docs/contract.md §6, §7). A thin adapter over tokengate.

It logs through the standard library (the function's LoggingConfig emits JSON) and counts with
EMF lines: Powertools would add ~40 ms to every cold start of a function that sits in front of
every API call. Each invocation's outbound calls share one time budget, so a slow JWKS ends in
``Unauthorized`` before the function's timeout, never in a 502.
"""

from __future__ import annotations

import os
from typing import Any

from tokengate.authorizer import Authorizer
from tokengate.budget import PREFETCH_SECONDS, Budget
from tokengate.coldstart import count_cold_start
from tokengate.config import Settings
from tokengate.policies import RouteScopes
from tokengate.runtime import api_token_principals

count_cold_start(os.environ)
settings = Settings.from_env(os.environ)
budget = Budget()
principals = api_token_principals(settings, budget=budget)
authorizer = Authorizer(principals, RouteScopes(settings.route_scopes))
with budget.within(PREFETCH_SECONDS):
    principals.prefetch()  # keys ready before the first caller; a failure is retried on use


decide = authorizer.decide  # bound once, not on every invocation


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return budget.run(context, decide, event)

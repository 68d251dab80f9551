"""Lambda authorizer for API tokens (docs/contract.md §6, §7). A thin adapter over tokengate.

It logs through the standard library (the function's LoggingConfig emits JSON): Powertools'
Logger would add ~40 ms to every cold start of a function that sits in front of every API call.
"""

from __future__ import annotations

import os
from typing import Any

from tokengate.authorizer import Authorizer
from tokengate.coldstart import count_cold_start
from tokengate.config import Settings
from tokengate.policies import RouteScopes
from tokengate.runtime import api_token_principals

count_cold_start(os.environ)
settings = Settings.from_env(os.environ)
authorizer = Authorizer(api_token_principals(settings), RouteScopes(settings.route_scopes))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorizer.decide(event)

"""Demo protected route: answers with the identity the authorizer passed in its context.

Only who the caller is: not ``integrationLatency`` (API Gateway's), nor ``insufficient_scope``,
which the authorizer puts in every answer for API Gateway's 403 body (a cached Allow may serve a
403 on another route) and which has no place in a success.
"""

from __future__ import annotations

import json
from typing import Any

NOT_IDENTITY = frozenset({"integrationLatency", "insufficient_scope"})


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    identity = {k: v for k, v in authorizer.items() if k not in NOT_IDENTITY}
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": json.dumps(identity, separators=(",", ":")),
    }

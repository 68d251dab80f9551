"""Demo protected route: answers with the identity the authorizer passed in its context."""

from __future__ import annotations

import json
from typing import Any


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    identity = {k: v for k, v in authorizer.items() if k not in ("integrationLatency",)}
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": json.dumps(identity, separators=(",", ":")),
    }

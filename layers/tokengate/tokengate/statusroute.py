"""GET /statuslists/{id} and GET /statuslists: the stored, signed status list token (served as
``application/statuslist+jwt``) and the aggregation of every list (draft-ietf-oauth-status-list
§9). The public function only reads what the exchange function signed and stored."""

from __future__ import annotations

import logging
from typing import Any

from .apigw import json_response
from .errors import DependencyUnavailableError
from .revocation import LIST_ID, LIST_TTL_SECONDS, RevocationStore, list_uri
from .statuslist import MEDIA_TYPE

logger = logging.getLogger("tokengate.statuslists")


def serve_status_list(
    store: RevocationStore | None, event: dict[str, Any], issuer: str
) -> dict[str, Any]:
    path = str(event.get("path") or event.get("resource") or "").rstrip("/")
    if store is None:
        return json_response(404, {"error": "not_found"})
    cache = {"Cache-Control": f"public, max-age={LIST_TTL_SECONDS}"}
    if path.endswith("/statuslists"):
        return json_response(200, {"status_lists": [list_uri(issuer)]}, cache)
    if path.rpartition("/")[2] != LIST_ID:
        return json_response(404, {"error": "not_found"})
    try:
        token = store.stored_list()
    except DependencyUnavailableError as exc:
        logger.warning("status list unavailable", extra={"reason": exc.reason})
        token = None
    if token is None:
        return json_response(503, {"error": "temporarily_unavailable"}, {"Retry-After": "5"})
    return {"statusCode": 200, "headers": {"Content-Type": MEDIA_TYPE, **cache}, "body": token}

"""POST /token (RFC 8693, docs/contract.md §3.1), POST /revoke (RFC 7009) and the scheduled status
list publication (docs/revocation.md): a thin adapter over tokengate. An invocation's outbound
calls share one time budget; it logs through the standard library and counts with EMF lines.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tokengate.apigw import NO_STORE, BodyError, body_bytes, header, json_response, request_fields
from tokengate.budget import Budget
from tokengate.coldstart import count_cold_start
from tokengate.config import Settings
from tokengate.cors import CorsPolicy, is_preflight
from tokengate.emf import EmfCounter
from tokengate.errors import (
    ConfigurationError,
    DependencyMisconfiguredError,
    DependencyUnavailableError,
    InvalidTokenError,
    RequestError,
)
from tokengate.exchange import INVALID_SUBJECT, MAX_BODY_BYTES, parse_token_request
from tokengate.issuer import issuer_for
from tokengate.revoke import revocation_response
from tokengate.runtime import exchange_service, revocation_service

logger = logging.getLogger("tokengate.token_exchange")
metrics = EmfCounter.from_env(os.environ)
count_cold_start(os.environ)
settings = Settings.from_env(os.environ)
budget = Budget()
service = exchange_service(settings, budget=budget)
cors = CorsPolicy.from_env(os.environ)
revocations = revocation_service(settings, service, budget=budget)


def exchange(event: dict[str, Any]) -> dict[str, Any]:
    """Event in, response out; the one place where errors become HTTP answers."""
    try:
        request = parse_token_request(
            body_bytes(event, MAX_BODY_BYTES), header(event, "content-type")
        )
        issuer = issuer_for(settings.issuer, settings.region, event)
        result = service.exchange(request, issuer)
    except InvalidTokenError as exc:
        return _refused(event, "invalid_request", INVALID_SUBJECT, exc.reason)
    except RequestError as exc:
        return _refused(event, exc.error, exc.description, exc.error)
    except BodyError as exc:
        return _refused(event, "invalid_request", str(exc), "invalid_request")
    except DependencyUnavailableError as exc:
        # A deployment fault (disabled key, access denied) is the operator's to fix: an error.
        log = logger.error if isinstance(exc, DependencyMisconfiguredError) else logger.warning
        log("token exchange unavailable", extra={"outcome": "unavailable", "reason": exc.reason})
        _count("unavailable", exc.reason)
        return json_response(
            503,
            {"error": "temporarily_unavailable", "error_description": "Try again shortly."},
            {**NO_STORE, "Retry-After": "5"},  # seconds
        )
    except ConfigurationError as exc:
        # Found on first use (e.g. a KMS key that cannot sign the configured algorithm): the
        # operator must fix the deployment; the caller learns nothing more than that.
        logger.error(
            "token exchange misconfigured", extra={"outcome": "error", "reason": exc.detail}
        )
        _count("error", exc.reason)
        return json_response(500, {"error": "server_error"}, NO_STORE)
    # One line per token: its audit fields and who asked for it, never the token itself.
    audit = result.audit_fields() | request_fields(event)
    logger.info("token issued", extra={"outcome": "issued", **audit})
    _count("issued", "ok")
    return json_response(200, result.body, NO_STORE)


def _refused(event: dict[str, Any], error: str, description: str, reason: str) -> dict[str, Any]:
    fields = {"outcome": "refused", "error": error, "reason": reason} | request_fields(event)
    logger.info("token exchange refused", extra=fields)
    _count("refused", reason)
    return json_response(400, {"error": error, "error_description": description}, NO_STORE)


def _count(outcome: str, reason: str) -> None:
    metrics.count("TokenExchange", outcome=outcome, reason=reason)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_preflight(event):
        return cors.preflight(event)
    with budget.invocation(context):
        if event.get("source") == "aws.events":  # the schedule: keep the status list fresh
            return {"published": service.publish_scheduled(settings.issuer)}
        if str(event.get("resource") or event.get("path") or "").endswith("/revoke"):
            issued_by = issuer_for(settings.issuer, settings.region, event)
            return cors.answer(event, revocation_response(revocations, event, issued_by))
        return cors.answer(event, exchange(event))

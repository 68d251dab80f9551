"""The API's own URL: the default issuer of API tokens and the default home of our JWKS.

One derivation for every function: the exchange (``iss`` of what it mints), the JWKS function
(discovery's ``issuer``) and the API-token authorizer (the issuer it expects and where it reads
keys) must agree exactly, or issued tokens would not verify.
"""

from __future__ import annotations

from typing import Any


def api_url(api_id: str, region: str, stage: str) -> str:
    """The API's default base URL: the issuer and JWKS host when none is configured."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{api_id}.execute-api.{region}.{suffix}/{stage}"


def api_base_url(arn_base: str) -> str:
    """``arn:aws:execute-api:<region>:<acct>:<api>/<stage>`` → the API's default base URL."""
    region, rest = arn_base.split(":")[3], arn_base.split(":", 5)[5]
    api_id, stage = rest.split("/", 1)
    return api_url(api_id, region, stage)


def issuer_for(configured: str, region: str, event: dict[str, Any]) -> str:
    """The API tokens' ``iss``: the configured issuer, else the API's default base URL taken
    from a proxy event's request context (as the authorizer derives it from its method ARN)."""
    if configured:
        return configured
    context = event["requestContext"]
    return api_url(context["apiId"], region, context["stage"])

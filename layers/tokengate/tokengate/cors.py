"""CORS for the public write routes (``POST /token`` and its siblings), from ``CORS_ALLOW_ORIGINS``.

The Fetch standard's CORS protocol, server side: a preflight (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) is answered with what a cross-origin ``POST`` may send; every
answer of the function (success and errors alike) carries ``Access-Control-Allow-Origin`` with the
request's own ``Origin`` when that origin is allowed, and ``Vary: Origin`` whenever CORS is on, so
a shared cache never replays one origin's answer to another.

No origin is allowed by default (an empty list: no CORS headers, and ``OPTIONS`` is "no such
route"). ``*`` allows any origin; the routes take no cookies, so no credentials are ever allowed.
Imported by the exchange only: the authorizers never load it.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

from .apigw import header, json_response
from .errors import ConfigurationError

ALLOW_METHODS = "POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, Authorization"
# What a browser script may read of an answer beyond the CORS-safelisted headers.
EXPOSE_HEADERS = "Retry-After, WWW-Authenticate"
MAX_AGE_SECONDS = 600  # Chromium caps a cached preflight at 2 hours, Firefox at 24


def _origin(value: str) -> str:
    """An origin as the Fetch standard serializes it: ``scheme://host[:port]``, no path, no
    trailing slash; compared byte for byte with the request's ``Origin``."""
    scheme, sep, rest = value.partition("://")
    if value == "*":
        return value
    if (
        not sep
        or scheme not in ("https", "http")
        or not rest
        or any(c in rest for c in "/?#@ \t")
        or value != value.strip()
    ):
        raise ConfigurationError(
            f"CORS_ALLOW_ORIGINS: {value!r} is not an origin (scheme://host[:port], or *)"
        )
    return f"{scheme}://{rest.lower()}"


class CorsPolicy(NamedTuple):
    origins: frozenset[str]
    max_age: int = MAX_AGE_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "CorsPolicy":
        """``CORS_ALLOW_ORIGINS``: origins separated by commas (the template's
        ``CorsAllowOrigins``); empty, the default, allows none."""
        raw = environ.get("CORS_ALLOW_ORIGINS", "")
        return cls(frozenset(_origin(v.strip()) for v in raw.split(",") if v.strip()))

    @property
    def enabled(self) -> bool:
        return bool(self.origins)

    def allowed(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, or None."""
        if not self.origins or not origin:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def headers(self, event: dict[str, Any]) -> dict[str, str]:
        """The CORS headers of an ordinary answer to ``event``."""
        if not self.origins:
            return {}
        allowed = self.allowed(header(event, "origin"))
        if allowed is None:
            return {"Vary": "Origin"}
        return {
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Expose-Headers": EXPOSE_HEADERS,
            "Vary": "Origin",
        }

    def answer(self, event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        """``response`` with the CORS headers of ``event`` added."""
        extra = self.headers(event)
        if extra:
            response["headers"] = {**(response.get("headers") or {}), **extra}
        return response

    def preflight(self, event: dict[str, Any]) -> dict[str, Any]:
        """The answer to an ``OPTIONS`` request on any route of the function.

        With CORS off, the route does not exist (404, as API Gateway answers a method no route
        declares). From an origin not allowed: 204 with no CORS headers, which the browser takes
        as a refusal. From an allowed origin: 204 with the methods, headers and max age."""
        if not self.origins:
            return json_response(
                404,
                {
                    "error": "not_found",
                    "error_description": "No such route: this API has no OPTIONS route here.",
                },
            )
        allowed = self.allowed(header(event, "origin"))
        headers = {"Vary": "Origin", "Cache-Control": "no-store"}
        if allowed is not None:
            headers |= {
                "Access-Control-Allow-Origin": allowed,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": str(self.max_age),
            }
        return {"statusCode": 204, "headers": headers, "body": ""}


def is_preflight(event: dict[str, Any]) -> bool:
    return str(event.get("httpMethod") or "").upper() == "OPTIONS"

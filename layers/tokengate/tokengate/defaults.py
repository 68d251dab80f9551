"""Defaults that :mod:`tokengate.config` reads and a domain module applies, written once here:
reading the configuration then loads no domain module the function does not use (the API-token
authorizer's cold start never imports the exchange or the Supabase verifier). Each domain module
imports its own from here."""

from __future__ import annotations

DEFAULT_CLIENT_ID = "cli"  # the client_id of tokens exchanged by first-party clients
DEFAULT_PASSTHROUGH_CLAIMS = ("aal",)
DEFAULT_SCOPES_CLAIM = "api_scopes"
DEFAULT_MIN_AAL = "aal1"

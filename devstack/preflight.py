"""What would stop ``make run``, found before anything starts.

A bad setting is reported in one line before the local AWS (moto, about a second to import and
start), the Supabase stand-in or any function is started: each function's settings are read as
the template renders them for this deployment, with stand-ins for what is not made yet (the
resources' names), and the port is checked. The same checks run again when the stack really
starts; this only makes their answer immediate.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

from tokengate.config import Settings
from tokengate.keys import HmacKey

from .settings import LocalSettings
from .supabase_dev import LOCAL_SUPABASE_URL
from .template import Template

# Stand-ins for the names of what a start makes: the settings check their presence, not their
# form (a real start checks again with the real ones).
NOT_YET_MADE = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tokengate/not-yet-made"


def deployment_values(
    *, supabase_url: str, jwt_secret_arn: str, issuer: str, parameters: Mapping[str, str]
) -> dict[str, str]:
    """The template's parameter values of a local deployment: what the stack provisions and
    where it serves, then the caller's own values (which win)."""
    values = {
        "SupabaseUrl": supabase_url.rstrip("/"),
        "SupabaseJwtSecretArn": jwt_secret_arn,
        "Issuer": issuer,
        # The authorizer reads the keys from this stack (the issuer may name another host).
        "ApiJwksUrl": f"{issuer}/.well-known/jwks.json",
    }
    values.update(parameters)
    return values


def preflight(port: int, settings: LocalSettings, parameters: Mapping[str, str]) -> None:
    """Raises what a start with these settings would raise at its first step: ParameterError,
    ConfigurationError, or OSError (EADDRINUSE) when ``port`` is taken."""
    values = deployment_values(
        supabase_url=settings.supabase_url or LOCAL_SUPABASE_URL,
        jwt_secret_arn=NOT_YET_MADE,
        issuer=f"http://127.0.0.1:{port}",
        parameters=parameters,
    )
    if values["SupabaseJwtSecretArn"]:  # HS256 on: the exchange refuses a short secret at start
        HmacKey(settings.jwt_secret.encode())
    if values.get("SigningMode") == "secretsmanager":
        values.setdefault("SigningKeySecretArn", NOT_YET_MADE)
    template = Template.load(values)
    for function in template.functions():
        Settings.from_env(template.environment(function))
    with socket.socket() as probe:
        # As the gateway's server binds (SO_REUSEADDR): a port whose last connections are in
        # TIME_WAIT is free, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))

"""What would stop ``make run``, found before anything starts.

The settings every function reads (``tokengate.config.Settings``, as the template renders each
function's environment for this deployment, with stand-ins for the names of the resources not
made yet), the HS256 secret's length, and whether the port is free are checked before the local
AWS (moto, about a second to import and start), the Supabase stand-in or any function starts: a
bad value is then one line in a fifth of a second. What only a function's own collaborators check
(a default scope or audience outside its list, a resource mapped to an unknown audience, a CORS
origin, neither the HS256 secret nor the JWKS) still stops the start a second later, in one line
all the same; the real start checks everything again.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping

from tokengate.config import Settings
from tokengate.errors import ConfigurationError
from tokengate.keys import HmacKey

from .settings import LocalSettings
from .supabase_dev import LOCAL_SUPABASE_URL
from .template import Template, deployment_values

# The Supabase secret's ARN before the secret exists: only its presence matters here (it keeps
# HS256 on, as the real ARN will).
NOT_YET_MADE = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tokengate/not-yet-made"


class _Warnings(logging.Handler):
    """The distinct warnings the settings give (each function reads the same ones)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.messages:
            self.messages.append(message)


def preflight(port: int, settings: LocalSettings, parameters: Mapping[str, str]) -> list[str]:
    """The warnings a start with these settings would log (each once); raises what the start
    would raise at its first step: ParameterError or ConfigurationError (a port that cannot be
    bound for want of permission included), or OSError (EADDRINUSE) when ``port`` is taken."""
    values = deployment_values(
        supabase_url=settings.supabase_url or LOCAL_SUPABASE_URL,
        jwt_secret_arn=NOT_YET_MADE,
        issuer=f"http://127.0.0.1:{port}",
        parameters=parameters,
        signing_key_secret_arn=NOT_YET_MADE,
    )
    template = Template.load(values)
    environments = {
        tuple(sorted(template.environment(function).items())) for function in template.functions()
    }
    logger = logging.getLogger("tokengate.config")
    warnings, propagate = _Warnings(), logger.propagate
    logger.addHandler(warnings)
    logger.propagate = False  # said once, by make run, instead of once per function
    try:
        read = [Settings.from_env(dict(environment)) for environment in sorted(environments)]
    finally:
        logger.removeHandler(warnings)
        logger.propagate = propagate
    if any(function.supabase_jwt_secret_arn for function in read):
        HmacKey(settings.jwt_secret.encode())  # a short secret stops the functions at start
    with socket.socket() as probe:
        # As the gateway's server binds (SO_REUSEADDR): a port whose last connections are in
        # TIME_WAIT is free, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except PermissionError as error:
            raise ConfigurationError(
                f"PORT={port} cannot be used ({error.strerror}): "
                "ports below 1024 need privileges; the default is 3000"
            ) from None
    return warnings.messages

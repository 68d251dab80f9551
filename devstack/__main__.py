"""``make run``: serve the template's API on http://127.0.0.1:$PORT with moto as AWS."""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tokengate.errors import ConfigurationError
from tokengate.exchange import ACCESS_TOKEN, GRANT_TYPE

from .preflight import preflight
from .settings import local_settings
from .state import remove_state, write_state
from .supabase_auth import DEV_EMAIL, DEV_PASSWORD, DEV_SCOPES, SupabaseAuthStandIn, local_api_key
from .supabase_dev import LOCAL_SUPABASE_URL, hs256_token
from .template import ParameterError, Template
from .token import development_claims

if TYPE_CHECKING:
    from .stack import LocalStack


def walkthrough(base_url: str, supabase_token: str) -> str:
    return f"""
Try it (copy-paste into a shell):

  export SUPABASE_TOKEN='{supabase_token}'

  curl -s {base_url}/token \\
    -d grant_type={GRANT_TYPE} \\
    -d subject_token_type={ACCESS_TOKEN} \\
    --data-urlencode "subject_token=$SUPABASE_TOKEN"; echo

  # The development user also holds "write" (app_metadata); other users: make -s token SCOPES=...
  curl -s {base_url}/token \\
    -d grant_type={GRANT_TYPE} \\
    -d subject_token_type={ACCESS_TOKEN} \\
    --data-urlencode "subject_token=$SUPABASE_TOKEN" \\
    --data-urlencode "scope=read write"; echo

  export API_TOKEN=$(curl -s {base_url}/token \\
    -d grant_type={GRANT_TYPE} \\
    -d subject_token_type={ACCESS_TOKEN} \\
    --data-urlencode "subject_token=$SUPABASE_TOKEN" \\
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

  curl -s {base_url}/whoami -H "Authorization: Bearer $API_TOKEN"; echo
  curl -s {base_url}/supabase/whoami -H "Authorization: Bearer $SUPABASE_TOKEN"; echo
  curl -s {base_url}/.well-known/jwks.json; echo
"""


# The stop signals are blocked in every thread and taken by the main thread with sigwait. A
# signal sent to the process goes to any thread that does not block it, and a Python handler
# runs only when the main thread next runs bytecode: a burst of signals taken by the server
# threads left the main thread asleep in pause() for ever, still serving.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def main() -> int:
    # Before any thread starts: threads inherit the mask. A stop signal that arrives while the
    # stack starts stays pending, and the stack stops as soon as it is up.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        stack = start()
    except (ConfigurationError, ParameterError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        port = port_from_env()
        print(f"make run: port {port} is in use; try PORT={port + 1} make run", file=sys.stderr)
        return 2
    serve_until_stopped(stack)
    return 0


def port_from_env(env: Mapping[str, str] = os.environ) -> int:
    value = env.get("PORT") or "3000"
    if not re.fullmatch(r"[0-9]{1,5}", value) or not 0 < int(value) < 65536:
        raise ConfigurationError(f"PORT={value!r} must be a TCP port number (1-65535)")
    return int(value)


def start(env: Mapping[str, str] = os.environ) -> LocalStack:
    port = port_from_env(env)
    settings = local_settings(env)
    if settings.ignored:
        print(f"make run: warning: {settings.warning()}", file=sys.stderr, flush=True)
    parameters = dict(settings.parameters)
    if not settings.supabase_url:
        # No SUPABASE_URL (e.g. `supabase start` or a hosted project): the development stand-in
        # serves. Discovery names it and its public anon key, so `tokengate login --api URL`
        # needs nothing else (a value the caller set wins).
        parameters.setdefault("DiscoverySupabase", "true")
        parameters.setdefault("SupabaseApiKey", local_api_key("anon", settings.jwt_secret))
    # A bad setting stops here, before anything starts; a warning is said once.
    for warning in preflight(port, settings, parameters):
        print(f"make run: warning: {warning}", file=sys.stderr, flush=True)
    from .stack import LocalStack  # the local AWS (moto): about a second to import

    scopes_claim = (
        settings.parameters.get("ScopesClaim") or Template.load().parameters["ScopesClaim"]
    )
    stand_in = (
        None
        if settings.supabase_url
        else serve_stand_in(settings.jwt_secret, scopes_claim, avoid=port)
    )
    supabase_url = settings.supabase_url or (stand_in.url if stand_in else "")
    stack = LocalStack(port, supabase_url, settings.jwt_secret, parameters)
    stack.stand_in = stand_in
    return stack.start()


def serve_stand_in(
    secret: str, scopes_claim: str = "api_scopes", avoid: int = 0
) -> SupabaseAuthStandIn:
    """On the Supabase CLI's local port when it is free (and is not ``avoid``, the API's own),
    else on any free port. The seeded user's app_metadata lists ``DEV_SCOPES`` under the API's
    scopes claim."""
    stand_in = SupabaseAuthStandIn(secret, scopes=DEV_SCOPES, scopes_claim=scopes_claim)
    port = urlsplit(LOCAL_SUPABASE_URL).port or 0
    try:
        return stand_in.serve(0 if port == avoid else port)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        return stand_in.serve(0)


def user_scopes(parameters: Mapping[str, str], extra: Sequence[str]) -> list[str]:
    """What the exchange grants a user whose app_metadata lists ``extra``: the default scopes
    plus the extras, limited to the supported ones (the rule of tokengate.scopes)."""
    supported = parameters["ScopesSupported"].replace(",", " ").split()
    granted = set(parameters["DefaultScopes"].replace(",", " ").split()) | set(extra)
    return [scope for scope in supported if scope in granted]


def cli_walkthrough(stack: LocalStack, stand_in: SupabaseAuthStandIn) -> str:
    assert stack.gateway is not None
    scopes = " ".join(user_scopes(stack.gateway.template.parameters, stand_in.scopes))
    held = f"app_metadata.{stand_in.scopes_claim}: {' '.join(stand_in.scopes)}"
    return f"""
Supabase Auth: a development stand-in on {stand_in.issuer} (set SUPABASE_URL to use a real project)
  user {DEV_EMAIL}   password {DEV_PASSWORD}
  API scopes this user can get: {scopes}  ({held})

Sign in with the CLI (in another shell; `source .venv/bin/activate`, or `pipx install ./client`):

  tokengate login --api {stack.base_url} --email {DEV_EMAIL}
  tokengate call GET /whoami
  tokengate token | tokengate explain -
  tokengate call POST /orders/42 --scope "{scopes}" -d '{{"note": "hi"}}'

  (the API's discovery names this Supabase project; elsewhere set SUPABASE_URL and
  SUPABASE_ANON_KEY={stand_in.anon_key})
"""


def serve_until_stopped(stack: LocalStack) -> None:
    assert stack.aws is not None
    assert stack.gateway is not None
    parameters = stack.gateway.template.parameters
    issuer = parameters["SupabaseIssuer"] or f"{stack.supabase_url}/auth/v1"
    claims = development_claims(
        stack.supabase_url,
        scopes=list(DEV_SCOPES),
        scopes_claim=parameters["ScopesClaim"],
        issuer=issuer,
    )
    token = hs256_token(claims, stack.jwt_secret)
    print(f"tokengate local stack on {stack.base_url}")
    print(f"  local KMS + Secrets Manager (moto)  {stack.aws.endpoint}")
    print(f"  Supabase issuer  {issuer}  (JWKS {issuer}/.well-known/jwks.json)")
    for route in stack.gateway.routes if stack.gateway else []:
        guard = f"  [{route.authorizer}]" if route.authorizer else ""
        print(f"  {route.method:5} {stack.base_url}{route.path}{guard}")
    if stack.stand_in is not None:
        print(cli_walkthrough(stack, stack.stand_in))
    print(walkthrough(stack.base_url, token))
    try:
        write_state(stack)  # for make events
        print("Ctrl-C stops everything.", flush=True)
        signal.sigwait(STOP_SIGNALS)
    finally:
        remove_state(stack)
        stack.stop()
    print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())

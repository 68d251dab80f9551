"""``make run``: serve the template's API on http://127.0.0.1:$PORT with moto as AWS."""

from __future__ import annotations

import errno
import os
import signal
import sys
from urllib.parse import urlsplit

from tokengate.errors import ConfigurationError
from tokengate.exchange import ACCESS_TOKEN, GRANT_TYPE

from .stack import LocalStack
from .supabase_auth import DEV_EMAIL, DEV_PASSWORD, SupabaseAuthStandIn
from .supabase_dev import LOCAL_JWT_SECRET, LOCAL_SUPABASE_URL, hs256_token, user_claims
from .template import ParameterError


def walkthrough(base_url: str, supabase_token: str) -> str:
    return f"""
Try it (copy-paste into a shell):

  export SUPABASE_TOKEN='{supabase_token}'

  curl -s {base_url}/token \\
    -d grant_type={GRANT_TYPE} \\
    -d subject_token_type={ACCESS_TOKEN} \\
    --data-urlencode "subject_token=$SUPABASE_TOKEN"; echo

  export API_TOKEN=$(curl -s {base_url}/token \\
    -d grant_type={GRANT_TYPE} \\
    -d subject_token_type={ACCESS_TOKEN} \\
    --data-urlencode "subject_token=$SUPABASE_TOKEN" \\
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

  curl -s {base_url}/whoami -H "Authorization: Bearer $API_TOKEN"; echo
  curl -s {base_url}/supabase/whoami -H "Authorization: Bearer $SUPABASE_TOKEN"; echo
  curl -s {base_url}/.well-known/jwks.json; echo
"""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Stopped(Exception):
    """Raised in the main thread by the first stop signal."""


def _stop(signum: int, frame: object) -> None:
    # The handler takes no lock: it runs between two bytecodes of the main thread, which may be
    # holding any lock at that moment (a threading.Event set here deadlocks when a second signal,
    # as make forwards one, lands inside Event.wait). Later signals are ignored while stopping.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise _Stopped


def main() -> int:
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


def port_from_env() -> int:
    value = os.environ.get("PORT") or "3000"
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigurationError(f"PORT={value!r} must be a TCP port number (1-65535)")
    return int(value)


def start() -> LocalStack:
    port = port_from_env()
    secret = os.environ.get("SUPABASE_JWT_SECRET") or LOCAL_JWT_SECRET
    # No SUPABASE_URL (e.g. `supabase start` or a hosted project): serve the development stand-in.
    stand_in = None if os.environ.get("SUPABASE_URL") else serve_stand_in(secret)
    supabase_url = os.environ.get("SUPABASE_URL") or (stand_in.url if stand_in else "")
    parameters = {
        name: os.environ[var]
        for var, name in (("SIGNING_MODE", "SigningMode"), ("SIGNING_ALG", "SigningAlgorithm"))
        if os.environ.get(var)
    }
    stack = LocalStack(port, supabase_url, secret, parameters)
    stack.stand_in = stand_in
    return stack.start()


def serve_stand_in(secret: str) -> SupabaseAuthStandIn:
    """On the Supabase CLI's local port when it is free, else on any free port."""
    stand_in = SupabaseAuthStandIn(secret)
    try:
        return stand_in.serve(urlsplit(LOCAL_SUPABASE_URL).port or 0)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        return stand_in.serve(0)


def cli_walkthrough(stack: LocalStack, stand_in: SupabaseAuthStandIn) -> str:
    return f"""
Supabase Auth: a development stand-in on {stand_in.issuer} (set SUPABASE_URL to use a real project)
  user {DEV_EMAIL}   password {DEV_PASSWORD}

Sign in with the CLI (in another shell; `pipx install ./client`, or use .venv/bin/tokengate):

  export TOKENGATE_API_URL={stack.base_url} SUPABASE_URL={stand_in.url} \\
    SUPABASE_ANON_KEY={stand_in.anon_key}
  tokengate login --email {DEV_EMAIL}
  tokengate call GET /whoami
  tokengate token | tokengate explain -
"""


def serve_until_stopped(stack: LocalStack) -> None:
    assert stack.aws is not None
    secret = stack.jwt_secret
    token = hs256_token(user_claims(stack.supabase_url), secret)
    issuer = f"{stack.supabase_url}/auth/v1"
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
        for sig in STOP_SIGNALS:
            signal.signal(sig, _stop)
        print("Ctrl-C stops everything.", flush=True)
        while True:
            signal.pause()
    except _Stopped:
        pass
    finally:
        stack.stop()
    print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""``make token``: a development Supabase access token for the local stack, with the scopes,
assurance level, anonymity, OAuth client and lifetime you choose, so every policy branch can be
tried with curl. Signed with the local stack's HS256 secret (``SUPABASE_JWT_SECRET``, else the
Supabase CLI's local one) for the project at ``SUPABASE_URL``; only the token goes to stdout.

    export SUPABASE_TOKEN=$(make -s token SCOPES="read write" AAL=aal2)
    python -m devstack.token --scopes write --anonymous --client-id my-app --lifetime 120
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .settings import local_settings
from .state import state_path
from .supabase_dev import LOCAL_SUPABASE_URL, hs256_token, user_claims
from .template import ParameterError, Template


def development_claims(
    supabase_url: str,
    *,
    scopes: Sequence[str] = (),
    scopes_claim: str = "api_scopes",
    aal: str = "aal1",
    anonymous: bool = False,
    client_id: str | None = None,
    lifetime: int = 3600,
    issuer: str = "",
) -> dict[str, Any]:
    """The claims Supabase Auth puts in a user's access token, with these choices. ``scopes``
    go where an operator's server-side code would put them: ``app_metadata[scopes_claim]``."""
    now = int(time.time())
    app_metadata: dict[str, Any] = {"provider": "email", "providers": ["email"]}
    if scopes:
        app_metadata[scopes_claim] = list(scopes)
    overrides: dict[str, Any] = {"app_metadata": app_metadata, "aal": aal}
    if aal == "aal2":
        overrides["amr"] = [
            {"method": "totp", "timestamp": now},
            {"method": "password", "timestamp": now},
        ]
    if anonymous:
        overrides |= {
            "is_anonymous": True,
            "email": "",
            "user_metadata": {},
            "app_metadata": {**app_metadata, "provider": "anonymous", "providers": []},
            "amr": [{"method": "anonymous", "timestamp": now}],
        }
    if client_id is not None:
        overrides["client_id"] = client_id
    if issuer:  # the project's own issuer (a custom domain), else <supabase_url>/auth/v1
        overrides["iss"] = issuer
    if lifetime <= 0:  # already expired: issued an hour before it expired
        overrides["iat"] = now + lifetime - 3600
    return user_claims(supabase_url, lifetime=lifetime, **overrides)


def running_supabase_url(env: Mapping[str, str]) -> str:
    """Without SUPABASE_URL: the project of the make run on $PORT (its Supabase Auth stand-in may
    have taken another port than the Supabase CLI's), else the Supabase CLI's local address."""
    try:
        port = int(env.get("PORT") or 3000)
        return str(json.loads(state_path(port).read_text())["supabase_url"])
    except (OSError, ValueError, KeyError):
        return LOCAL_SUPABASE_URL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make token",
        description="Mint a development Supabase access token for the local stack.",
    )
    parser.add_argument(
        "--scopes", default="", help="extra API scopes in app_metadata (space or comma separated)"
    )
    parser.add_argument("--aal", choices=("aal1", "aal2"), default="aal1")
    parser.add_argument("--anonymous", action="store_true", help="an anonymous sign-in")
    parser.add_argument("--client-id", help="the OAuth client the token was issued to")
    parser.add_argument(
        "--lifetime", type=int, default=3600, help="seconds until exp (negative: already expired)"
    )
    return parser


def main(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> int:
    args = _parser().parse_args(argv)
    template = Template.load()
    try:
        settings = local_settings(env, template)
    except ParameterError as error:
        print(f"make token: {error}", file=sys.stderr)
        return 2
    scopes_claim = settings.parameters.get("ScopesClaim") or template.parameters["ScopesClaim"]
    claims = development_claims(
        settings.supabase_url or running_supabase_url(env),
        scopes=args.scopes.replace(",", " ").split(),
        scopes_claim=scopes_claim,
        aal=args.aal,
        anonymous=args.anonymous,
        client_id=args.client_id,
        lifetime=args.lifetime,
        issuer=settings.parameters.get("SupabaseIssuer", ""),
    )
    print(hs256_token(claims, settings.jwt_secret))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

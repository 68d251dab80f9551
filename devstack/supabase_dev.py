"""Development Supabase access tokens, shaped as the Supabase CLI's are (docs/contract.md §5)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from tokengate.jws import b64url_encode

LOCAL_SUPABASE_URL = "http://127.0.0.1:54321"
# The Supabase CLI's documented local development secret (not a production secret).
LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
DEV_USER_ID = "5f0d8a53-8d36-4d8a-9a7d-3a5b0b6c1e11"


def user_claims(supabase_url: str, lifetime: int = 3600, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"{supabase_url.rstrip('/')}/auth/v1",
        "sub": DEV_USER_ID,
        "aud": "authenticated",
        "exp": now + lifetime,
        "iat": now,
        "email": "dev@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"email_verified": True},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    claims.update(overrides)
    return claims


def project_api_key_claims(
    role: str = "anon", ref: str = "local", now: float | None = None
) -> dict[str, Any]:
    """A project's legacy API keys (anon, service_role): HS256 JWTs signed with the project's
    secret, with iss "supabase", a ref and no sub, valid for ten years."""
    issued = int(now if now is not None else time.time())
    return {"iss": "supabase", "ref": ref, "role": role, "iat": issued, "exp": issued + 315360000}


def hs256_token(claims: dict[str, Any], secret: str, kid: str | None = "0TRLgU4IVDYEpL98") -> str:
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = (
        b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(signature)}"

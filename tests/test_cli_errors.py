"""How Supabase's answers become the CLI's errors: what ends a session (the local copy is then
deleted), what is an outage (exit 4, the session kept), what is a refusal."""

from __future__ import annotations

import pytest
from supabase_auth.errors import AuthApiError, AuthRetryableError

from tokengate_cli.errors import ClientError, NotSignedIn, SessionEnded, Unreachable
from tokengate_cli.supabase import SESSION_ENDED, translated

URL = "https://abc.supabase.co"


@pytest.mark.parametrize(
    ("error", "expected", "exit_code"),
    [
        *[(AuthApiError("gone", 400, code), SessionEnded, 3) for code in sorted(SESSION_ENDED)],
        (AuthApiError("Invalid login credentials", 400, "invalid_credentials"), NotSignedIn, 3),
        (AuthApiError("slow down", 429, "over_request_rate_limit"), Unreachable, 4),
        (AuthApiError("boom", 500, "unexpected_failure"), Unreachable, 4),
        (AuthRetryableError("connection refused", 0), Unreachable, 4),
        (ConnectionResetError("reset"), Unreachable, 4),
    ],
)
def test_supabase_errors_map_to_one_cause_each(
    error: Exception, expected: type[ClientError], exit_code: int
) -> None:
    with pytest.raises(ClientError) as caught, translated(URL, "the Supabase session has ended"):
        raise error
    assert type(caught.value) is expected
    assert caught.value.exit_code == exit_code
    assert "\n" not in caught.value.message
    if expected is Unreachable:
        assert "abc.supabase.co" in caught.value.message


def test_a_sign_in_refusal_never_reads_as_a_session_ending() -> None:
    with pytest.raises(NotSignedIn) as caught, translated(URL):
        raise AuthApiError("Session not found", 403, "session_not_found")
    assert type(caught.value) is NotSignedIn  # no `ending` given: a login, not a refresh

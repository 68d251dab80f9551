"""Damaged state files (edited, truncated, from another version): every command still answers
with one line and its exit code, and ``logout`` always deletes everything."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.moto_aws import free_port
from tokengate_cli.cli import main

CLOSED = f"http://127.0.0.1:{free_port()}"  # nothing listens: any network attempt fails fast
SESSION_KEYS = ("access_token", "refresh_token", "supabase_url", "supabase_key", "expires_at")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.just(CLOSED),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
sessions = (
    st.fixed_dictionaries({}, optional={k: json_values for k in (*SESSION_KEYS, "user")})
    | json_values
)
token_caches = (
    st.dictionaries(
        st.text(max_size=20),
        st.fixed_dictionaries({}, optional={"access_token": json_values, "expires_at": json_values})
        | json_values,
        max_size=3,
    )
    | json_values
)


def write(path: Path, value: Any) -> None:
    """A state file as the client leaves it (0600), with any content."""
    path.write_text(json.dumps(value, allow_nan=True))
    path.chmod(0o600)


def run(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setenv("TOKENGATE_HOME", str(home))
    monkeypatch.setenv("TOKENGATE_API_URL", CLOSED)
    monkeypatch.setenv("SUPABASE_URL", CLOSED)
    monkeypatch.setenv("SUPABASE_ANON_KEY", "anon")
    monkeypatch.delenv("TOKENGATE_DEBUG", raising=False)
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["token", "status", "logout", "call"])
@pytest.mark.parametrize(
    "session",
    [
        {"expires_at": "soon"},
        {"expires_at": 1},
        {"access_token": "a", "refresh_token": "r", "expires_at": 1e300, "user": "bob"},
    ],
)
def test_a_damaged_session_is_no_session(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    session: dict[str, Any],
) -> None:
    tmp_path.chmod(0o700)
    write(tmp_path / "session.json", session)
    args = [command, "/whoami"] if command == "call" else [command]
    code, err = run(tmp_path, monkeypatch, capsys, *args)
    assert "unexpected" not in err
    assert code == (0 if command == "logout" else 3), err
    if command == "logout":
        assert not (tmp_path / "session.json").exists()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    session=sessions, tokens=token_caches, command=st.sampled_from(["token", "status", "logout"])
)
def test_no_state_file_content_makes_a_command_crash(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    session: Any,
    tokens: Any,
    command: str,
) -> None:
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    write(home / "session.json", session)
    write(home / "tokens.json", tokens)
    code, err = run(home, monkeypatch, capsys, command)
    assert "unexpected" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 1, err
    assert code in (0, 3, 4, 5), err
    if command == "logout":
        assert code == 0, err
        assert not (home / "session.json").exists() and not (home / "tokens.json").exists()


ATTACKER_CONFIG = {
    "api_url": "https://api.attacker.example",
    "supabase_url": "https://attacker.example",
    "supabase_key": "anon",
}


@pytest.mark.parametrize("command", ["token", "status", "login", "logout"])
def test_a_state_directory_others_can_write_is_not_trusted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    """TOKENGATE_HOME=/tmp/shared that another user created (or could write to) could hold a
    config.json naming their Supabase project, where login would then send the password."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    write(shared / "config.json", ATTACKER_CONFIG)
    monkeypatch.setattr("sys.stdin", io.StringIO("victim@example.com\nsecret\n"))
    monkeypatch.setenv("TOKENGATE_HOME", str(shared))
    for name in ("TOKENGATE_API_URL", "SUPABASE_URL", "SUPABASE_ANON_KEY"):
        monkeypatch.delenv(name, raising=False)
    args = ["login", "--email", "victim@example.com", "--password-stdin"]
    args = args if command == "login" else [command]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "others can write" in err and "attacker" not in err
    assert (shared / "config.json").exists()  # not ours to delete either


def test_a_state_directory_owned_by_another_user_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    write(home / "config.json", ATTACKER_CONFIG)
    monkeypatch.setattr("os.geteuid", lambda: home.stat().st_uid + 1)
    monkeypatch.setenv("TOKENGATE_HOME", str(home))
    assert main(["status"]) == 2
    assert "belongs to another user" in capsys.readouterr().err


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
@pytest.mark.parametrize(
    ("args", "typed"),
    [
        (["--email", "dev@example.com", "--password-stdin"], b"hunter\xff\xfe42\n"),
        (["--otp"], b"dev\xff@example.com\n"),
        (["--email", "dev\udcff@example.com", "--password-stdin"], b"password\n"),
    ],
)
def test_login_input_that_is_not_utf8_is_a_usage_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    errors: str,
    args: list[str],
    typed: bytes,
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(typed), encoding="utf-8", errors=errors)
    monkeypatch.setattr("sys.stdin", stdin)
    code, err = run(tmp_path / "home", monkeypatch, capsys, "login", *args)
    assert code == 2, err
    assert "not valid UTF-8" in err and "hunter" not in err


class EndlessLine(io.StringIO):
    """Standard input with no line end in sight (``login --password-stdin < /dev/zero``)."""

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        if size is None or size < 0:
            raise AssertionError("an unbounded readline of endless input never returns")
        return "A" * size

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("args", [["--email", "dev@example.com", "--password-stdin"], ["--otp"]])
def test_login_reads_answers_bounded(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    monkeypatch.setattr("sys.stdin", EndlessLine())
    code, err = run(tmp_path / "home", monkeypatch, capsys, "login", *args)
    assert code == 2, err
    assert "longer than" in err

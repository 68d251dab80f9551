"""Defects found by using the CLI as a new user would, then abusing it. Each test sets state up
as a user of the first release has it (files at the top of ``TOKENGATE_HOME``) and runs the
command line in process; none of them needs a network."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devstack.moto_aws import free_port
from tokengate_cli.cli import main
from tokengate_cli.explain import Explainer, render

CLOSED = f"http://127.0.0.1:{free_port()}"  # nothing listens: any network attempt fails fast
API = "https://api.example.com"


def run(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setenv("TOKENGATE_HOME", str(home))
    monkeypatch.setenv("TOKENGATE_API_URL", CLOSED)
    monkeypatch.setenv("SUPABASE_URL", CLOSED)
    monkeypatch.setenv("SUPABASE_ANON_KEY", "anon")
    for name in ("TOKENGATE_DEBUG", "TOKENGATE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    code = main(list(args))
    return code, capsys.readouterr().err


def session() -> dict[str, Any]:
    return {
        "access_token": "a", "refresh_token": "r", "expires_at": time.time() + 3600,
        "user": {"id": "u", "email": "dev@example.com"},
        "supabase_url": CLOSED, "supabase_key": "anon",
    }  # fmt: skip


@pytest.mark.parametrize("damage", ["not UTF-8", "a directory"])
@pytest.mark.parametrize("command", ["token", "status", "call", "logout"])
def test_a_session_file_that_is_not_utf8_or_a_directory_is_no_session(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    damage: str,
    command: str,
) -> None:
    tmp_path.chmod(0o700)
    path = tmp_path / "session.json"
    if damage == "a directory":
        path.mkdir(mode=0o700)
    else:
        path.write_bytes(b'{"access_token": "\xff\xfe", "refresh_token": "r"}')
        path.chmod(0o600)
    args = [command, "/whoami"] if command == "call" else [command]
    code, err = run(tmp_path, monkeypatch, capsys, *args)
    assert "unexpected" not in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 1, err
    assert code == (0 if command == "logout" else 3), err


def test_password_stdin_without_email_is_a_usage_error_naming_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("the-password\n"))
    code, err = run(tmp_path / "home", monkeypatch, capsys, "login", "--password-stdin")
    assert code == 2, err
    assert "--email" in err and "--password-stdin" in err
    assert "the-password" not in err and "empty password" not in err


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def access_token(claims: dict[str, Any]) -> str:
    header = {"alg": "ES256", "typ": "at+jwt", "kid": "k"}
    return f"{_segment(header)}.{_segment(claims)}.{_segment('sig')}"


def test_explain_heads_a_foreign_token_with_what_it_is_not_this_products() -> None:
    foreign = access_token({"iss": "https://other.example", "aud": "api", "exp": 2**31})
    headline = render(Explainer(API, None, None).explain(foreign)).splitlines()[0]
    assert "issued by this product" not in headline
    assert "another issuer" in headline and "https://other.example" in headline
    own = Explainer(API, None, None).explain(access_token({"iss": API, "aud": "api"}))
    assert f"naming this API ({API})" in render(own).splitlines()[0]


def test_a_widened_session_file_is_tightened_and_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path.chmod(0o700)
    (tmp_path / "session.json").write_text(json.dumps(session()))
    (tmp_path / "session.json").chmod(0o644)
    code, err = run(tmp_path, monkeypatch, capsys, "status")
    assert code == 0, err
    files = list(tmp_path.rglob("session.json"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert "readable by others" in err and "0644" in err


def test_under_umask_000_the_parents_created_for_the_state_are_private(tmp_path: Path) -> None:
    home = tmp_path / "a" / "b" / "home"
    probe = (
        "import os\n"
        "os.umask(0)\n"
        "from tokengate_cli.source import TokenSource\n"
        "source = TokenSource(api_url='https://api.example.com')\n"
        "with source.locked():\n"
        "    source.save_config(api_url='https://api.example.com')\n"
    )
    subprocess.run(
        [sys.executable, "-c", probe], check=True, timeout=60,
        env={"PATH": os.environ["PATH"], "TOKENGATE_HOME": str(home)},
    )  # fmt: skip
    created = [p for p in tmp_path.rglob("*") if p.is_dir()]
    assert len(created) >= 3
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

"""``tokengate call`` refuses a request it cannot send as written (exit 2, one line), before it
reads any state or fetches a token: a method that is not an HTTP token, a path with spaces or
non-ASCII, a header name that is not a token or a value with a line break (header injection)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.moto_aws import free_port
from tokengate_cli.cli import main

CLOSED = f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    "args",
    [
        ["GE T", "/whoami"],
        ["GET\r\nX-Evil: 1", "/whoami"],
        ["GET", "/who ami"],
        ["GET", "/whoamié"],
        ["GET", "/whoami\r\nX-Evil: 1"],
        ["GET", "/whoami", "-H", "X-Note: a\r\nX-Evil: 1"],
        ["GET", "/whoami", "-H", "X-Note: a\nb"],
        ["GET", "/whoami", "-H", "Bad Name: v"],
        ["GET", "/whoami", "-H", "X-Note: caf\u00e9\u0000"],
    ],
)
def test_a_request_that_cannot_be_sent_as_written_is_a_usage_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TOKENGATE_HOME", str(home))
    monkeypatch.setenv("TOKENGATE_API_URL", CLOSED)
    code = main(["call", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "unexpected" not in err
    assert not home.exists()  # refused before any state was touched


@pytest.mark.parametrize(
    "args",
    [
        ["GET", "/whoami"],
        ["get", "/orders/1?x=%20y&z=1"],
        ["POST", "/orders/1", "-H", "X-Note: caf\u00e9 ok", "-d", "{}"],
    ],
)
def test_a_well_formed_request_gets_past_the_checks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    monkeypatch.setenv("TOKENGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TOKENGATE_API_URL", CLOSED)
    assert main(["call", *args]) == 3  # it went on to look for a session
    assert "not signed in" in capsys.readouterr().err

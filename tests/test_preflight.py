"""make run's checks before anything starts (devstack/preflight.py): what they say, and what they
leave to the real start."""

from __future__ import annotations

import errno
import logging
import socket
import types
from typing import Any

import pytest

import devstack.preflight as preflight_module
from devstack.__main__ import serve_stand_in
from devstack.moto_aws import free_port
from devstack.preflight import preflight
from devstack.settings import local_settings
from devstack.supabase_dev import LOCAL_JWT_SECRET, LOCAL_SUPABASE_URL
from tokengate.errors import ConfigurationError

UNREACHABLE = {"ROUTE_SCOPES": '{"GET /whoami": "superuser", "GET /orders/{id}": "read"}'}


def test_a_settings_warning_is_said_once_by_make_run_not_once_per_function(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Every function reads the same settings; the warning is make run's to say, once."""
    settings = local_settings(UNREACHABLE)
    with caplog.at_level(logging.WARNING):
        warnings = preflight(free_port(), settings, settings.parameters)
    assert len(warnings) == 1
    assert warnings[0].startswith("ROUTE_SCOPES requires superuser")
    assert "GET /whoami" in warnings[0]
    assert not caplog.records  # nothing reached the functions' own loggers
    assert capsys.readouterr().err == ""
    # The logger is as it was: the functions' warnings reach their log again.
    assert logging.getLogger("tokengate.config").propagate
    assert not logging.getLogger("tokengate.config").handlers


def test_a_healthy_start_has_no_warning() -> None:
    settings = local_settings({})
    assert preflight(free_port(), settings, settings.parameters) == []


def test_a_port_that_needs_privileges_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Refused(socket.socket):
        def bind(self, address: Any) -> None:
            raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(
        preflight_module,
        "socket",
        types.SimpleNamespace(
            socket=Refused, SOL_SOCKET=socket.SOL_SOCKET, SO_REUSEADDR=socket.SO_REUSEADDR
        ),
    )
    settings = local_settings({"PORT": "80"})
    with pytest.raises(ConfigurationError, match=r"PORT=80 cannot be used \(Permission denied\)"):
        preflight(80, settings, settings.parameters)


def test_a_taken_port_is_found_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = local_settings({})
        with pytest.raises(OSError, match="Address already in use") as raised:
            preflight(port, settings, settings.parameters)
    assert raised.value.errno == errno.EADDRINUSE


def test_the_stand_in_leaves_the_api_its_port() -> None:
    """PORT set to the Supabase CLI's local port: the stand-in takes another, not the API's."""
    local_port = int(LOCAL_SUPABASE_URL.rsplit(":", 1)[1])
    stand_in = serve_stand_in(LOCAL_JWT_SECRET, avoid=local_port)
    try:
        assert not stand_in.url.endswith(f":{local_port}")
    finally:
        stand_in.stop()

"""The user journey `make run` prints works as printed: the development Supabase stand-in starts
with the stack, and the CLI lines (login --api, call, explain) run verbatim in a shell (login only
adds --password-stdin, as there is no terminal to type the password into); the API's discovery
names the Supabase project, so nothing is exported first."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.supabase_dev import DEV_USER_ID
from tests.test_local_stack import ROOT, output_after_stop, served

pytestmark = pytest.mark.stack


def test_the_cli_journey_make_run_prints_works(tmp_path: Path) -> None:
    with served([sys.executable, "-m", "devstack"]) as (process, _, output):
        block = output.split("Sign in with the CLI", 1)[1].split("Try it", 1)[0]
        password = re.search(r"password (\S+)", output)
        assert password is not None
        lines = [
            line.strip() for line in block.splitlines()[1:] if line.strip().startswith("tokengate")
        ]
        assert len(lines) == 4, lines  # login, call, explain, a write: nothing to export first
        assert re.search(r"API scopes this user can get: read write\b", output)
        script = "\n".join(lines).replace(
            "--email dev@example.com",
            '--email dev@example.com --password-stdin <<< "$DEV_PASSWORD"',
        )
        assert "--password-stdin" in script and "tokengate call GET /whoami" in script
        bin_dir = Path(sys.executable).parent
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={
                "PATH": f"{bin_dir}:/usr/bin:/bin",
                "HOME": str(tmp_path),
                "TOKENGATE_HOME": str(tmp_path / "tokengate"),
                "DEV_PASSWORD": password.group(1),
            },
        )
        assert result.returncode == 0, result.stderr
        signed_in, whoami, *report, order = result.stdout.splitlines()
        assert "Signed in" in signed_in
        assert json.loads(whoami)["sub"] == json.loads(whoami)["principalId"] == DEV_USER_ID
        assert "The API would accept it." in report
        assert "write" in json.loads(order)["scope"].split()  # the write the banner promises
        process.send_signal(signal.SIGTERM)
        assert output_after_stop(process).rstrip().endswith("stopped.")

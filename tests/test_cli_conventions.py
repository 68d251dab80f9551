"""What a ``gh`` / ``gcloud`` user expects of a command line, and state that never surprises:
help and version, completion generated from the parser, profiles and the migration of the
single-profile layout, ``--json``, the cached-token fast path (same answer as the full path),
damaged or widened state files, umask, and usage errors that name the flag."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyring.backend import KeyringBackend

from devstack.moto_aws import free_port
from tokengate_cli import TokenSource, __version__
from tokengate_cli.cli import main
from tokengate_cli.commands import build_parser
from tokengate_cli.completion import model
from tokengate_cli.fast import cache_key, cached_token
from tokengate_cli.state import read_state

CLOSED = f"http://127.0.0.1:{free_port()}"  # nothing listens: any network attempt fails fast
API = "https://api.example.com"


def run(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("TOKENGATE_HOME", str(home))
    monkeypatch.setenv("SUPABASE_URL", CLOSED)
    monkeypatch.setenv("SUPABASE_ANON_KEY", "anon")
    for name in ("TOKENGATE_DEBUG", "TOKENGATE_PROFILE", "TOKENGATE_API_URL"):
        monkeypatch.delenv(name, raising=False)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def fake_token(claims: dict[str, Any], typ: str = "at+jwt") -> str:
    header = {"alg": "ES256", "typ": typ, "kid": "k"}
    return f"{_segment(header)}.{_segment(claims)}.{_segment('sig')}"


def signed_in_state(
    home: Path, profile: str = "default", api: str = API, scope: str = "read"
) -> dict[str, Any]:
    """A profile as `login` + `token` leave it: config, a live session, one cached token."""
    directory = home / "profiles" / profile
    directory.mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    (home / "profiles").chmod(0o700)
    now = int(time.time())
    entry = {
        "access_token": fake_token({"iss": api, "aud": "api", "scope": scope}),
        "expires_at": now + 900,
        "scope": scope,
        "audience": "",
        "resource": "",
        "api_url": api,
    }
    session = {
        "access_token": "supabase-access",
        "refresh_token": "refresh",
        "expires_at": now + 3600,
        "user": {"id": "u1", "email": "dev@example.com"},
        "supabase_url": CLOSED,
        "supabase_key": "anon",
    }
    files = {
        "config.json": {"api_url": api, "supabase_url": CLOSED, "supabase_key": "anon"},
        "session.json": session,
        "tokens.json": {cache_key(api, None, None, None): entry},  # asked with no --scope
    }
    for name, document in files.items():
        (directory / name).write_text(json.dumps(document))
        (directory / name).chmod(0o600)
    return entry


# -- help and version -------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["help"], ["--help"]])
def test_bare_help_and_dash_help_print_help_on_stdout_and_exit_0(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    try:
        code, out, err = run(tmp_path, monkeypatch, capsys, *args)
    except SystemExit as exit:  # argparse's --help
        code, (out, err) = int(exit.code or 0), capsys.readouterr()
    assert code == 0 and err == ""
    assert out.startswith("usage: tokengate") and "examples:" in out


def test_each_commands_help_ends_with_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, commands = model(build_parser())
    assert {c.name for c in commands} >= {"login", "token", "call", "status", "logout", "explain"}
    for command in commands:
        code, out, err = run(tmp_path, monkeypatch, capsys, "help", command.name)
        assert code == 0 and err == "", command.name
        tail = out.rstrip().split("\n\n")[-1].splitlines()
        assert tail[0] == "examples:", (command.name, out)
        assert all(line.startswith("  ") and "tokengate" in line for line in tail[1:])


@pytest.mark.parametrize("args", [["--version"], ["version"], ["-V"]])
def test_version(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    try:
        code, out, _ = run(tmp_path, monkeypatch, capsys, *args)
    except SystemExit as exit:
        code, out = int(exit.code or 0), capsys.readouterr().out
    assert code == 0
    assert out == f"tokengate {importlib.metadata.version('tokengate-cli')}\n"
    assert __version__ == importlib.metadata.version("tokengate-cli")


# -- completion ---------------------------------------------------------------------------------


def bash_completes(words: list[str]) -> set[str]:
    """What the generated bash completion offers for the words typed so far (last: current)."""
    script = subprocess.run(
        [sys.executable, "-m", "tokengate_cli", "completion", "bash"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    quoted = " ".join(f"'{w}'" for w in words)
    probe = f'{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _tokengate\nprintf "%s\\n" "${{COMPREPLY[@]}}"'
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return set(done.stdout.split())


def test_the_bash_completion_script_loads() -> None:
    done = subprocess.run(
        ["bash", "-c", f"source <({sys.executable} -m tokengate_cli completion bash); complete -p tokengate"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "complete -F _tokengate tokengate"


def test_bash_completes_every_command_and_every_option_the_parser_has() -> None:
    """The oracle is the parser itself: a command or option added to it completes at once."""
    _top, commands = model(build_parser())
    assert bash_completes(["tokengate", ""]) >= {c.name for c in commands}
    assert bash_completes(["tokengate", "lo"]) == {"login", "logout"}
    assert bash_completes(["tokengate", "--profile", "work", "sta"]) == {"status"}
    for command in commands:
        offered = bash_completes(["tokengate", command.name, "-"])
        assert offered == {f for o in command.options for f in o.flags}, command.name
    assert bash_completes(["tokengate", "completion", ""]) >= {"bash", "zsh", "fish"}
    assert bash_completes(["tokengate", "token", "--scope", ""]) == set()  # a value, not a flag


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_every_command_and_option(shell: str) -> None:
    script = subprocess.run(
        [sys.executable, "-m", "tokengate_cli", "completion", shell],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    _top, commands = model(build_parser())
    for command in commands:
        assert command.name in script
        for option in command.options:
            for flag in option.flags:
                spelled = (
                    flag
                    if shell == "zsh"
                    else (f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
                )
                assert spelled in script, (command.name, flag)
    shell_path = shutil.which(shell)
    if shell_path:  # where the shell is installed, the script also parses and loads
        loaded = {
            "zsh": "autoload -U compinit; compinit -u; source /dev/stdin; print $_comps[tokengate]",
            "fish": "source; complete -C 'tokengate lo'",
        }[shell]
        done = subprocess.run(
            [shell_path, "-c", loaded], input=script, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        if shell == "zsh":
            assert done.stdout.strip() == "_tokengate"
        if shell == "fish":
            assert {line.split("\t")[0] for line in done.stdout.splitlines()} == {"login", "logout"}


# -- usage errors that name the flag ------------------------------------------------------------


# -- profiles -----------------------------------------------------------------------------------


def test_profiles_are_independent_and_status_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    entry = signed_in_state(home, "work", api="https://work.example.com")
    for args in (["--profile", "work", "status"], ["status", "--profile", "work"]):
        code, out, err = run(home, monkeypatch, capsys, *args)
        assert code == 0, err
        assert "Profile work" in out and "https://work.example.com" in out
    monkeypatch.setenv("TOKENGATE_PROFILE", "work")
    code, out, _ = (main(["token"]), *capsys.readouterr())
    assert (code, out) == (0, entry["access_token"] + "\n")
    monkeypatch.delenv("TOKENGATE_PROFILE")
    code, out, err = run(home, monkeypatch, capsys, "status")
    assert code == 3 and "profile default" in err
    code, out, err = run(home, monkeypatch, capsys, "--profile", "work", "logout")
    assert code == 0 and not (home / "profiles" / "work" / "session.json").exists()


@pytest.mark.parametrize("name", ["../x", ".hidden", "a/b", "x" * 65, "é"])
def test_a_profile_name_is_a_plain_directory_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, _, err = run(tmp_path / "home", monkeypatch, capsys, "--profile", name, "status")
    assert code == 2 and "not a profile name" in err
    assert not (tmp_path / "x").exists()


def test_the_single_profile_layout_moves_into_default_with_its_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Today's layout: config.json, session.json, tokens.json and lock at the top of the state
    directory. The first command moves them into profiles/default; nobody signs in again."""
    home = tmp_path / "home"
    entry = signed_in_state(home)
    for name in ("config.json", "session.json", "tokens.json"):
        os.replace(home / "profiles" / "default" / name, home / name)
    (home / "lock").touch(mode=0o600)
    (home / "profiles" / "default").rmdir()
    (home / "profiles").rmdir()
    code, out, err = run(home, monkeypatch, capsys, "status", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["signed_in"] and document["api"] == API and document["profile"] == "default"
    assert not (home / "session.json").exists() and not (home / "config.json").exists()
    assert (home / "profiles" / "default" / "session.json").exists()
    assert stat.S_IMODE((home / "profiles" / "default").stat().st_mode) == 0o700
    assert (main(["token"]), capsys.readouterr().out) == (0, entry["access_token"] + "\n")


class MemoryKeyring(KeyringBackend):
    priority = 5

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    monkeypatch.delenv("TOKENGATE_HOME", raising=False)
    monkeypatch.delenv("TOKENGATE_PROFILE", raising=False)
    saved = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(saved)


def test_a_session_in_the_keyring_moves_with_the_layout(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    session = {
        "access_token": "a", "refresh_token": "r", "expires_at": time.time() + 3600,
        "user": {"id": "u"}, "supabase_url": CLOSED, "supabase_key": "anon",
    }  # fmt: skip
    (home / "config.json").write_text(json.dumps({"api_url": API, "store": "keyring"}))
    memory_keyring.set_password("tokengate", f"{home.resolve()}:session", json.dumps(session))
    memory_keyring.set_password("tokengate", f"{home.resolve()}:tokens", "{}")
    source = TokenSource(home=home)
    assert source.session() == session and source.store.kind == "keyring"
    default = (home / "profiles" / "default").resolve()
    assert set(memory_keyring.entries) == {("tokengate", f"{default}:session")}


# -- --json -------------------------------------------------------------------------------------


def test_status_json_has_the_documented_shape_and_never_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    code, out, _ = run(home, monkeypatch, capsys, "status", "--json")
    assert code == 3
    assert json.loads(out) == {
        "profile": "default", "api": None, "signed_in": False, "user": None,
        "session_expires_at": None, "tokens": [],
    }  # fmt: skip
    entry = signed_in_state(home)
    code, out, _ = run(home, monkeypatch, capsys, "status", "--json")
    document = json.loads(out)
    assert code == 0
    assert set(document) == {"profile", "api", "signed_in", "user", "session_expires_at", "tokens"}
    assert document["user"] == {"id": "u1", "email": "dev@example.com"}
    assert isinstance(document["session_expires_at"], int)
    assert document["tokens"] == [
        {"audience": None, "scope": "read", "expires_at": entry["expires_at"]}
    ]
    assert (
        entry["access_token"] not in out and "supabase-access" not in out and "refresh" not in out
    )


def test_token_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = signed_in_state(tmp_path / "home")
    code, out, _ = run(tmp_path / "home", monkeypatch, capsys, "token", "--json")
    assert code == 0
    assert json.loads(out) == {
        "access_token": entry["access_token"], "token_type": "Bearer",
        "expires_at": entry["expires_at"], "scope": "read", "audience": "api",
    }  # fmt: skip


# -- the cached-token fast path -----------------------------------------------------------------

arguments = st.lists(
    st.sampled_from(
        ["token", "status", "--json", "--scope", "read", "write", "--audience", "api",
         "--resource", "--min-ttl", "60", "5000", "-1", "--profile", "default", "other",
         "--api", API, API + "/", "--scope=read", "--min-ttl=0", "--verbose", "--help", "x"]
    ),
    max_size=7,
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=arguments)
def test_the_fast_path_answers_as_the_full_command_line_would_or_steps_aside(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    """The oracle is the full command line (argparse and TokenSource) on the same state."""
    home = tmp_path_factory.mktemp("fast") / "home"
    signed_in_state(home)
    monkeypatch.setenv("TOKENGATE_HOME", str(home))
    for name in ("TOKENGATE_DEBUG", "TOKENGATE_PROFILE", "TOKENGATE_API_URL"):
        monkeypatch.delenv(name, raising=False)
    fast = cached_token(argv)
    fast_out = capsys.readouterr().out
    if fast is None:
        return
    from tokengate_cli.commands import main as full

    assert (fast, fast_out) == (full(argv), capsys.readouterr().out)


def test_a_cached_token_imports_neither_argparse_nor_any_http_library(tmp_path: Path) -> None:
    signed_in_state(tmp_path / "home")
    probe = (
        "import sys\n"
        "from tokengate_cli.cli import main\n"
        "code = main(['token'])\n"
        "heavy = ('argparse', 'httpx', 'supabase_auth', 'keyring', 'filelock', 'urllib.request',"
        " 'tokengate_cli.source', 'platformdirs')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "TOKENGATE_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]"


# -- damaged, foreign and widened state ---------------------------------------------------------

DAMAGED: dict[str, bytes | None] = {
    "not UTF-8": b'{"access_token": "\xff\xfe"}',
    "truncated": b'{"access_token": "a", "refresh',
    "not JSON": b"\x00\x01 nonsense",
    "wrong shape": b'["a", "list"]',
    "UTF-16": '{"a": 1}'.encode("utf-16"),
    "a directory": None,
}


@pytest.mark.parametrize("damage", DAMAGED)
@pytest.mark.parametrize("name", ["session.json", "tokens.json", "config.json"])
@pytest.mark.parametrize("command", ["token", "status", "call", "logout"])
def test_any_damaged_state_file_is_absent_state(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    damage: str,
    name: str,
    command: str,
) -> None:
    home = tmp_path / "home"
    signed_in_state(home, api=CLOSED)
    path = home / "profiles" / "default" / name
    path.unlink()
    content = DAMAGED[damage]
    if content is None:
        path.mkdir(mode=0o700)
    else:
        path.write_bytes(content)
        path.chmod(0o600)
    if name == "session.json":  # so that the command needs the session
        (home / "profiles" / "default" / "tokens.json").unlink()
    monkeypatch.setenv("TOKENGATE_API_URL", CLOSED)
    args = [command, "/whoami"] if command == "call" else [command]
    monkeypatch.setenv("TOKENGATE_HOME", str(home))
    code = main(args)
    err = capsys.readouterr().err
    assert "unexpected" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 1, err
    if command == "logout":
        assert code == 0, err
    elif name == "session.json":
        assert code == 3, err
    else:
        assert code in (0, 3, 4), err  # a damaged cache or config: exchange again (unreachable)


def test_a_state_file_of_another_user_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "session.json"
    path.write_text('{"a": 1}')
    assert read_state(path) == {"a": 1}
    monkeypatch.setattr("os.geteuid", lambda: path.stat().st_uid + 1)
    assert read_state(path) is None


def test_a_widened_session_file_is_tightened_and_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    signed_in_state(home)
    session = home / "profiles" / "default" / "session.json"
    session.chmod(0o644)
    code, _out, err = run(home, monkeypatch, capsys, "status")
    assert code == 0
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert "readable by others" in err and "0644" in err and str(session) in err


def test_a_lock_that_is_a_directory_is_a_clear_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    signed_in_state(home, api=CLOSED)
    (home / "profiles" / "default" / "tokens.json").unlink()  # so that token takes the lock
    (home / "profiles" / "default" / "lock").mkdir()
    monkeypatch.setenv("TOKENGATE_API_URL", CLOSED)
    for command in ("token", "logout"):
        code, _, err = run(home, monkeypatch, capsys, command)
        assert code == 2, err
        assert "lock" in err and "directory" in err and len(err.strip().splitlines()) == 1


def test_under_umask_000_nothing_created_is_wider_than_0700_or_0600(tmp_path: Path) -> None:
    home = tmp_path / "a" / "b" / "home"
    probe = (
        "import os, sys\n"
        "os.umask(0)\n"
        "from tokengate_cli import TokenSource\n"
        "source = TokenSource(api_url='https://api.example.com')\n"
        "with source.locked():\n"
        "    source.store.put('session', {'x': 1})\n"
        "    source.token_store.put('tokens', {})\n"
        "    source.save_config(api_url='https://api.example.com')\n"
    )
    subprocess.run(
        [sys.executable, "-c", probe], check=True, timeout=60,
        env={"PATH": os.environ["PATH"], "TOKENGATE_HOME": str(home)},
    )  # fmt: skip
    created = [tmp_path / "a", tmp_path / "a" / "b", home, home / "profiles"]
    created.append(home / "profiles" / "default")
    for directory in created:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for path in (home / "profiles" / "default").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


# -- the pasted answer of a headless sign-in ----------------------------------------------------


def test_a_pasted_answer_must_be_this_sign_ins_url_or_a_bare_code() -> None:
    from tokengate_cli.errors import UsageError
    from tokengate_cli.loopback import LoopbackRedirect

    redirect = LoopbackRedirect()
    try:
        good = f"{redirect.url}&code=0b7c6e9e-6a4e-4a57-9d0e-0d8a1e2f3a4b"
        assert redirect.pasted(good)["code"] == "0b7c6e9e-6a4e-4a57-9d0e-0d8a1e2f3a4b"
        assert redirect.pasted(" abc-DEF_123.x~ \n") == {"code": "abc-DEF_123.x~"}
        refused = {
            good.replace(redirect.state, "other"): "another sign-in",
            good.replace("127.0.0.1", "localhost"): "paste the whole address",
            good.replace("/callback", "/elsewhere"): "paste the whole address",
            good.replace("http://", "https://"): "paste the whole address",
            f"{redirect.url}&code=a%20b%0d": "malformed code",
            "short": "paste the whole address",
            "javascript:alert(1)": "paste the whole address",
        }
        for text, message in refused.items():
            with pytest.raises(UsageError, match=message):
                redirect.pasted(text)
        failed = redirect.pasted(f"{redirect.url}&error=access_denied")
        assert "code" not in failed and failed["error"] == "access_denied"
    finally:
        redirect._server.server_close()

"""The ``tokengate`` commands: login, token, call, status, logout, explain, completion, version.

Exit codes: 0 success; 1 the API answered an error (``call``) or a check failed (``explain``);
2 usage; 3 not signed in or the session ended; 4 the API or Supabase could not be reached;
5 the exchange was refused. Errors are one line on stderr. ``token`` is the only command that
prints a token.

Modules are imported inside the commands that need them; ``tokengate token`` with a valid cached
token does not even get here (:mod:`tokengate_cli.fast`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__, trace
from .errors import ApiError, ClientError, NotSignedIn, Unreachable, UsageError
from .source import DEFAULT_MIN_TTL, TokenSource, remaining

PROG = "tokengate"
SHELLS = ("bash", "zsh", "fish")
# What HTTP/1.1 can carry as written (RFC 9110 token, field-value; a URL path in ASCII).
HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
URL_PATH = re.compile(r"/[\x21-\x7e]*")
HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
LOGIN_TIMEOUT_SECONDS = 300.0
MAX_EXPLAIN_INPUT = 1024 * 1024
MAX_ANSWER = 4096  # an email, a password, a one-time code


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _everywhere_flags(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--profile`` and ``--verbose`` anywhere on the line: the top level sets the defaults,
    each command only what was given after it."""
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--profile",
        metavar="NAME",
        default=default,
        help="the profile: its own API, session and tokens (TOKENGATE_PROFILE; default: default)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="trace HTTP requests on stderr: method, URL, status, time; never a token "
        "(TOKENGATE_DEBUG=1)",
    )


def _project_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where (a flag beats the environment beats what login saved)")
    group.add_argument("--api", metavar="URL", help="the API's base URL (TOKENGATE_API_URL)")
    group.add_argument("--supabase-url", metavar="URL", help="the Supabase project (SUPABASE_URL)")
    group.add_argument(
        "--supabase-key",
        metavar="KEY",
        help="the project's anon / publishable key (SUPABASE_ANON_KEY, SUPABASE_PUBLISHABLE_KEY)",
    )


def _token_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scope", help='space-separated scopes, e.g. "read write"')
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--audience", help="the audience to ask for (default: the API's)")
    target.add_argument("--resource", metavar="URI", help="the resource to ask for (RFC 8707)")
    parser.add_argument(
        "--min-ttl",
        type=int,
        default=DEFAULT_MIN_TTL,
        metavar="S",
        help=f"re-exchange when less than S seconds are left (default {DEFAULT_MIN_TTL})",
    )


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Sign in with Supabase, get API tokens, call the API, explain any token.",
        epilog="exit codes: 0 ok, 1 API error / failed check, 2 usage, 3 not signed in "
        "(sign in again), 4 unreachable, 5 exchange refused\n\n"
        + _examples(
            "tokengate login --api https://api.example.com --email me@example.com",
            "tokengate call GET /whoami",
            'curl -H "Authorization: Bearer $(tokengate token)" https://api.example.com/whoami',
            "tokengate --profile staging status --json",
            "tokengate help call",
        ),
    )
    parser.add_argument("-V", "--version", action="version", version=f"{PROG} {__version__}")
    _everywhere_flags(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, help: str, examples: tuple[str, ...], **kwargs: Any) -> Parser:
        sub: Parser = commands.add_parser(
            name, help=help, description=help, epilog=_examples(*examples), **kwargs
        )
        _everywhere_flags(sub)
        return sub

    login = command(
        "login",
        "sign in with Supabase and store the session",
        (
            "tokengate login --api https://api.example.com --email me@example.com",
            "tokengate login                      # again, to the API this profile used",
            'echo "$PASSWORD" | tokengate login --email me@example.com --password-stdin',
            "tokengate login --email me@example.com --otp",
            "tokengate login --provider github",
            "tokengate login --provider github --no-browser   # over SSH: paste the URL back",
        ),
    )
    login.add_argument("--email", help="the account's email (asked for when not given)")
    how = login.add_mutually_exclusive_group()
    how.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    how.add_argument("--otp", action="store_true", help="sign in with an email one-time code")
    how.add_argument("--provider", metavar="P", help="sign in with an OAuth provider (PKCE)")
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="with --provider: print the URL to open on any machine, then paste back the URL "
        "the browser was sent to (or the code)",
    )
    _project_flags(login)

    token = command(
        "token",
        "print a currently valid API token",
        (
            "tokengate token",
            'tokengate token --scope "read write"',
            "tokengate token --json               # with expires_at, scope, audience",
            'curl -H "Authorization: Bearer $(tokengate token)" https://api.example.com/whoami',
        ),
    )
    _token_flags(token)
    token.add_argument(
        "--json", action="store_true", help="the token with token_type, expires_at, scope, audience"
    )
    _project_flags(token)

    call = command(
        "call",
        "call the API with a token (re-exchanges on a 401)",
        (
            "tokengate call GET /whoami",
            "tokengate call whoami                # the leading / is optional",
            'tokengate call POST /orders/42 --scope "read write" -d \'{"note": "hi"}\'',
            "tokengate call -i GET /orders/42     # with status and headers",
        ),
        usage='%(prog)s [METHOD] PATH [-d DATA] [-H "K: V"]... [-i] [options]',
    )
    call.add_argument("request", nargs="+", metavar="[METHOD] PATH", help="GET unless -d is given")
    call.add_argument("-d", "--data", help="request body; @FILE reads a file, @- standard input")
    call.add_argument(
        "-H", "--header", action="append", default=[], metavar='"K: V"', help="extra header"
    )
    call.add_argument("-i", "--include", action="store_true", help="print status and headers")
    _token_flags(call)
    _project_flags(call)

    status = command(
        "status",
        "session and cached tokens (never a token); exit 3 when not signed in",
        ("tokengate status", "tokengate status --json", "tokengate --profile staging status"),
    )
    status.add_argument("--json", action="store_true", help="machine-readable (never a token)")
    _project_flags(status)

    logout = command(
        "logout",
        "revoke the session at the API, sign out at Supabase, delete the secrets",
        ("tokengate logout", "tokengate --profile staging logout"),
    )
    _project_flags(logout)

    explain = command(
        "explain",
        "diagnose any token",
        (
            "tokengate token | tokengate explain -",
            'tokengate explain "$SUPABASE_TOKEN"',
            "tokengate explain --json < token.txt",
        ),
    )
    explain.add_argument("token", nargs="?", default="-", metavar="TOKEN|-")
    explain.add_argument("--json", action="store_true", help="machine-readable report")
    explain.add_argument("--audience", help="the audience the API expects (default: api)")
    _project_flags(explain)

    completion = command(
        "completion",
        "print the shell completion script",
        (
            "source <(tokengate completion bash)        # in ~/.bashrc",
            "source <(tokengate completion zsh)         # in ~/.zshrc",
            "tokengate completion fish > ~/.config/fish/completions/tokengate.fish",
        ),
    )
    completion.add_argument("shell", choices=SHELLS)

    command("version", "print the version", ("tokengate version", "tokengate --version"))

    help_command = command("help", "help on a command", ("tokengate help", "tokengate help call"))
    help_command.add_argument("topic", nargs="?", metavar="COMMAND")
    return parser


def source_for(args: argparse.Namespace, **extra: Any) -> TokenSource:
    return TokenSource(
        api_url=args.api,
        supabase_url=args.supabase_url,
        supabase_key=args.supabase_key,
        profile=args.profile,
        **extra,
    )


# -- commands ---------------------------------------------------------------------------------


def cmd_token(args: argparse.Namespace) -> int:
    from .fast import token_json

    source = source_for(args)
    entry = source.token_entry(
        args.scope, audience=args.audience, resource=args.resource, min_ttl=args.min_ttl
    )
    sys.stdout.write((token_json(entry) if args.json else str(entry["access_token"])) + "\n")
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    from .http import request

    if len(args.request) > 2:
        raise UsageError("call takes [METHOD] PATH")
    method = args.request[0].upper() if len(args.request) == 2 else ("POST" if args.data else "GET")
    path = args.request[-1]
    if not HTTP_TOKEN.fullmatch(method):
        raise UsageError(f"not an HTTP method: {method!r}")
    if not path.startswith("/") and "://" in path:
        raise UsageError(f"PATH is a path on the API, not a URL: {path}")
    path = path if path.startswith("/") else "/" + path
    if not URL_PATH.fullmatch(path):
        raise UsageError(f"PATH must be URL-encoded (no spaces, no non-ASCII): {path!r}")
    headers = {"Accept": "application/json"}
    for line in args.header:
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not HTTP_TOKEN.fullmatch(name):
            raise UsageError(f'a header is "Name: value", not {line!r}')
        if not HEADER_VALUE.fullmatch(value):
            raise UsageError(f"the value of header {name} has a line break or control character")
        headers[name] = value
    body = _body(args.data)
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = _content_type(body)
    source = source_for(args)
    url = source.require_api() + path

    def send(token: str) -> Any:
        return request(
            method, url, headers={**headers, "Authorization": f"Bearer {token}"}, body=body
        )

    options = {"audience": args.audience, "resource": args.resource, "min_ttl": args.min_ttl}
    token = source.token(args.scope, **options)
    answer = send(token)
    if answer.status == 401:
        answer = send(source.token(args.scope, replacing=token, **options))
    out = sys.stdout.buffer
    if args.include:
        out.write(f"HTTP/1.1 {answer.status} {answer.reason}\r\n".encode())
        for name, value in answer.headers:
            out.write(f"{name}: {value}\r\n".encode())
        out.write(b"\r\n")
    out.write(answer.body)
    content_type = next((v for k, v in answer.headers if k.lower() == "content-type"), "")
    textual = "json" in content_type or content_type.startswith("text/")
    if answer.body and not answer.body.endswith(b"\n") and textual:
        out.write(b"\n")  # a JSON document ends its line, so the shell prompt does not follow it
    out.flush()
    if answer.status >= 400:
        raise ApiError(f"the API answered {answer.status} {answer.reason}".rstrip())
    return 0


def _body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data == "@-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        try:
            with open(data[1:], "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise UsageError(f"cannot read {data[1:]}: {exc.strerror}") from exc
    return data.encode()


def _content_type(body: bytes) -> str:
    import json

    try:
        json.loads(body)
    except ValueError:
        return "application/x-www-form-urlencoded"
    return "application/json"


def cmd_login(args: argparse.Namespace) -> int:
    from . import supabase
    from .store import choose_store_kind

    if args.password_stdin and not args.email:
        raise UsageError("--password-stdin needs --email: standard input carries the password only")
    if args.no_browser and not args.provider:
        raise UsageError("--no-browser goes with --provider P")
    source = source_for(args)
    url, key = source.require_supabase()
    api = source.require_api() if source.api_url else None
    email = _utf8(lambda: args.email, "the email") if args.email else ""
    email = email or ("" if args.provider else _ask("Email: "))
    if args.provider:
        session = _provider_sign_in(url, key, args.provider, args.no_browser)
    elif args.otp:
        supabase.send_otp(url, key, email)
        code = _ask(f"A one-time code was sent to {email}. Code: ").strip()
        session = supabase.verify_otp(url, key, email, code)
    else:
        password = _password(args.password_stdin)
        session = supabase.sign_in_with_password(url, key, email, password)
    source.store_kind = choose_store_kind()
    with source.locked():
        source.store.put("session", session)
        source.store.delete("tokens")
        source.save_config(api_url=api, supabase_url=url, supabase_key=key, store=source.store_kind)
    who = session["user"].get("email") or session["user"].get("id")
    profile = "" if source.profile == "default" else f" (profile {source.profile})"
    print(f"Signed in to {url} as {who}{profile}.")
    return 0


def _ask(prompt: str) -> str:
    if sys.stdin.isatty():
        sys.stderr.write(prompt)
        sys.stderr.flush()
    line = _utf8(_read_line, "the answer")
    if not line:
        raise UsageError(f"no answer to {prompt.strip()!r} (standard input is closed)")
    return line.strip()


def _read_line() -> str:
    """One line of standard input, bounded: `< /dev/zero` must end too."""
    line = sys.stdin.readline(MAX_ANSWER + 1)
    if len(line) > MAX_ANSWER:
        raise UsageError(f"an answer longer than {MAX_ANSWER} characters")
    return line


def _utf8(read: Any, what: str) -> str:
    """What ``read()`` returns, which must be UTF-8 text (Supabase takes JSON): undecodable
    bytes are a usage error that never repeats them."""
    try:
        text = str(read())
        text.encode("utf-8")
    except UnicodeError:
        raise UsageError(f"{what} is not valid UTF-8 text") from None
    return text


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = _utf8(_read_line, "the password").rstrip("\r\n")
    elif sys.stdin.isatty():
        import getpass

        password = _utf8(lambda: getpass.getpass("Password: "), "the password")
    else:
        raise UsageError("no terminal to ask for the password: use --password-stdin")
    if not password:
        raise UsageError("an empty password")
    return password


def _provider_sign_in(url: str, key: str, provider: str, no_browser: bool) -> dict[str, Any]:
    """PKCE through the browser. The provider sends the browser back to a one-shot listener on
    127.0.0.1 (RFC 8252 §7.3). With ``--no-browser`` the user may also open the URL on another
    machine (over SSH, say) and paste back the URL the browser was sent to, or just its code:
    the ``state`` in it must be this sign-in's, and the code is useless without the verifier
    this process holds."""
    from .loopback import LoopbackRedirect, PastedAnswer
    from .supabase import ProviderSignIn

    with LoopbackRedirect() as redirect:
        flow = ProviderSignIn(url, key, provider, redirect.url)
        if no_browser:
            print(
                f"Open this URL in a browser, on this machine or any other:\n{flow.url}\n"
                f"After signing in, the browser is sent to {redirect.base_url}?… (on another "
                "machine that page will not load): copy its whole address from the address "
                "bar and paste it here, or just the code. URL or code: ",
                end="",
                file=sys.stderr,
                flush=True,
            )
            code = redirect.wait(LOGIN_TIMEOUT_SECONDS, PastedAnswer(sys.stdin, MAX_ANSWER))
        else:
            print(f"Open this URL in a browser to sign in:\n{flow.url}", file=sys.stderr)
            import webbrowser

            webbrowser.open(flow.url)
            code = redirect.wait(LOGIN_TIMEOUT_SECONDS)
    return flow.finish(code)


def status_document(source: TokenSource) -> dict[str, Any]:
    """``status --json``: never a token."""
    session = source.session()
    user = (session or {}).get("user") or {}
    return {
        "profile": source.profile,
        "api": source.api_url,
        "signed_in": session is not None,
        "user": {"id": user.get("id") or None, "email": user.get("email") or None}
        if session
        else None,
        "session_expires_at": int(session["expires_at"]) if session else None,
        "tokens": [
            {
                "audience": entry.get("resource") or entry.get("audience") or None,
                "scope": entry.get("scope") or "",
                "expires_at": int(entry["expires_at"]),
            }
            for entry in source.cached_tokens().values()
        ],
    }


def cmd_status(args: argparse.Namespace) -> int:
    source = source_for(args)
    if args.json:
        import json

        document = status_document(source)
        print(json.dumps(document, indent=2))
        return 0 if document["signed_in"] else NotSignedIn.exit_code
    session = source.session()
    if not session:
        raise NotSignedIn(f"not signed in (profile {source.profile}); run: tokengate login")
    import time

    now = time.time()
    user = session.get("user") or {}
    print(f"Profile {source.profile}")
    print(f"Signed in to {session.get('supabase_url')} as {user.get('email') or user.get('id')}")
    print(
        f"  Supabase access token expires {remaining(float(session.get('expires_at', 0)), now)}"
        " (refreshed when needed)"
    )
    print(f"  API: {source.api_url or '(not set)'}")
    print(
        f"  session: {'OS keyring' if source.store.kind == 'keyring' else 'a file'}; "
        f"state in {source.dir}"
    )
    tokens = source.cached_tokens()
    if not tokens:
        print("  no cached API tokens")
    for entry in tokens.values():
        target = entry.get("resource") or entry.get("audience") or "(default audience)"
        print(
            f"  API token for {target}, scope {entry.get('scope') or '(default)'}: "
            f"expires {remaining(float(entry.get('expires_at', 0)), now)}"
        )
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    """Revoke the session at the API (its ``revocation_endpoint``: the API tokens cached here
    stop working), then end it at Supabase, then delete the secrets. Whatever fails on the way,
    the secrets are deleted; what could not be done is one warning line."""
    source = source_for(args)
    missed: list[str] = []
    with source.locked():
        session = None
        try:
            session = source.session()
            session = _live_for_logout(session, missed)
            if source.api_url and (session or source.cached_tokens()):
                try:
                    source.revoke(session)
                except ClientError as exc:
                    missed.append(
                        f"the API did not revoke the session ({exc.message}): its API tokens "
                        "stay valid until they expire"
                    )
            if session:
                from . import supabase

                try:
                    supabase.sign_out(session)
                except NotSignedIn:
                    pass  # the session had already ended at Supabase
                except Unreachable as exc:
                    missed.append(
                        f"{exc.message}: the session stays valid at Supabase until it expires"
                    )
        finally:
            source.forget()  # whatever happened elsewhere, no secret stays behind here
    if missed:
        print(f"{PROG}: warning: signed out here, but " + "; ".join(missed), file=sys.stderr)
    else:
        print("Signed out." if session else "Not signed in; local state deleted.")
    return 0


def _live_for_logout(session: dict[str, Any] | None, missed: list[str]) -> dict[str, Any] | None:
    """The session, refreshed when its access token is about to expire (Supabase signs out and
    the API revokes by a live access token)."""
    import time

    if not session or float(session["expires_at"]) - time.time() >= 10:
        return session
    from . import supabase

    try:
        return supabase.refresh(session)
    except NotSignedIn:
        return None  # it had already ended at Supabase
    except Unreachable as exc:
        missed.append(f"{exc.message}: the session stays valid at Supabase until it expires")
        return None


def cmd_explain(args: argparse.Namespace) -> int:
    import json

    from .explain import Explainer, render

    # Bounded: `yes | tokengate explain -` must end. Anything this long is no token anyway.
    text = sys.stdin.read(MAX_EXPLAIN_INPUT + 1) if args.token == "-" else args.token
    if not text.strip():
        raise UsageError("no token given: tokengate explain TOKEN, or pipe one into explain -")
    source = source_for(args)
    report = Explainer(source.api_url, source.supabase_url, args.audience).explain(text)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render(report))
    if not report.ok:
        return 1
    return 0 if report.accepted else 4  # nothing failed, but the keys could not be had


def cmd_completion(args: argparse.Namespace) -> int:
    from .completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"{PROG} {__version__}")
    return 0


def cmd_help(args: argparse.Namespace) -> int:
    parser = build_parser()
    if not args.topic:
        parser.print_help()
        return 0
    commands = _subcommands(parser)
    if args.topic not in commands:
        raise UsageError(f"no command {args.topic!r}; commands: {', '.join(commands)}")
    commands[args.topic].print_help()
    return 0


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


COMMANDS = {
    "login": cmd_login,
    "token": cmd_token,
    "call": cmd_call,
    "status": cmd_status,
    "logout": cmd_logout,
    "explain": cmd_explain,
    "completion": cmd_completion,
    "version": cmd_version,
    "help": cmd_help,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.verbose:
            trace.enable()
        if args.command is None:
            parser.print_help()
            return 0
        return COMMANDS[args.command](args)
    except ClientError as error:
        print(f"{PROG}: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # the state directory: permissions, a full disk
        where = f" ({error.filename})" if error.filename else ""
        print(f"{PROG}: {error.strerror or type(error).__name__}{where}", file=sys.stderr)
        return 1
    except Exception as error:
        if os.environ.get("TOKENGATE_DEBUG"):
            raise
        print(
            f"{PROG}: unexpected {type(error).__name__}; TOKENGATE_DEBUG=1 shows more",
            file=sys.stderr,
        )
        return 1

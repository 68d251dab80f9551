"""The ``tokengate`` command line: login, token, call, status, logout, explain.

Exit codes: 0 success; 1 the API answered an error (``call``) or a check failed (``explain``);
2 usage; 3 not signed in or the session ended; 4 the API or Supabase could not be reached;
5 the exchange was refused. Errors are one line on stderr. ``token`` is the only command that
prints a token.

Modules are imported inside the commands that need them: ``tokengate token`` with a valid cached
token loads only the standard library and :mod:`tokengate_cli.source`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import ApiError, ClientError, NotSignedIn, UsageError
from .source import DEFAULT_MIN_TTL, TokenSource, remaining

PROG = "tokengate"
# What HTTP/1.1 can carry as written (RFC 9110 token, field-value; a URL path in ASCII).
HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
URL_PATH = re.compile(r"/[\x21-\x7e]*")
HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
LOGIN_TIMEOUT_SECONDS = 300.0
MAX_EXPLAIN_INPUT = 1024 * 1024
MAX_ANSWER = 4096  # an email, a password, a one-time code


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


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
        "(sign in again), 4 unreachable, 5 exchange refused",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    login = commands.add_parser("login", help="sign in with Supabase and store the session")
    login.add_argument("--email", help="the account's email (asked for when not given)")
    how = login.add_mutually_exclusive_group()
    how.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    how.add_argument("--otp", action="store_true", help="sign in with an email one-time code")
    how.add_argument("--provider", metavar="P", help="sign in with an OAuth provider (PKCE)")
    login.add_argument(
        "--no-browser", action="store_true", help="print the provider URL instead of opening it"
    )
    _project_flags(login)

    token = commands.add_parser("token", help="print a currently valid API token")
    _token_flags(token)
    _project_flags(token)

    call = commands.add_parser(
        "call",
        help="call the API with a token (re-exchanges on a 401)",
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

    status = commands.add_parser("status", help="session and cached tokens (never a token)")
    _project_flags(status)

    logout = commands.add_parser("logout", help="sign out at Supabase and delete local state")
    _project_flags(logout)

    explain = commands.add_parser("explain", help="diagnose any token")
    explain.add_argument("token", nargs="?", default="-", metavar="TOKEN|-")
    explain.add_argument("--json", action="store_true", help="machine-readable report")
    explain.add_argument("--audience", help="the audience the API expects (default: api)")
    _project_flags(explain)
    return parser


def source_for(args: argparse.Namespace, **extra: Any) -> TokenSource:
    return TokenSource(
        api_url=args.api,
        supabase_url=args.supabase_url,
        supabase_key=args.supabase_key,
        **extra,
    )


# -- commands ---------------------------------------------------------------------------------


def cmd_token(args: argparse.Namespace) -> int:
    source = source_for(args)
    token = source.token(
        args.scope, audience=args.audience, resource=args.resource, min_ttl=args.min_ttl
    )
    sys.stdout.write(token + "\n")
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    from .http import request

    if len(args.request) > 2:
        raise UsageError("call takes [METHOD] PATH")
    method = args.request[0].upper() if len(args.request) == 2 else ("POST" if args.data else "GET")
    path = args.request[-1]
    if not HTTP_TOKEN.fullmatch(method):
        raise UsageError(f"not an HTTP method: {method!r}")
    if not path.startswith("/"):
        raise UsageError(f"PATH must start with / (it is sent to the API only): {path}")
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
    print(f"Signed in to {url} as {who}.")
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
    from .loopback import LoopbackRedirect
    from .supabase import ProviderSignIn

    with LoopbackRedirect() as redirect:
        flow = ProviderSignIn(url, key, provider, redirect.url)
        print(f"Open this URL in a browser to sign in:\n{flow.url}", file=sys.stderr, flush=True)
        if not no_browser:
            import webbrowser

            webbrowser.open(flow.url)
        code = redirect.wait(LOGIN_TIMEOUT_SECONDS)
    return flow.finish(code)


def cmd_status(args: argparse.Namespace) -> int:
    source = source_for(args)
    session = source.session()
    if not session:
        raise NotSignedIn("not signed in; run: tokengate login")
    import time

    now = time.time()
    user = session.get("user") or {}
    print(f"Signed in to {session.get('supabase_url')} as {user.get('email') or user.get('id')}")
    print(
        f"  Supabase access token expires {remaining(float(session.get('expires_at', 0)), now)}"
        " (refreshed when needed)"
    )
    print(f"  API: {source.api_url or '(not set)'}")
    print(
        f"  secrets: {'OS keyring' if source.store.kind == 'keyring' else 'files'} in {source.home}"
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
    from .errors import Unreachable

    source = source_for(args)
    warning = ""
    with source.locked():
        try:
            session = source.session()
            if session:
                from . import supabase

                try:
                    import time

                    if float(session["expires_at"]) - time.time() < 10:
                        session = supabase.refresh(session)
                    supabase.sign_out(session)
                except NotSignedIn:
                    pass  # the session had already ended at Supabase
                except Unreachable as exc:
                    warning = (
                        f"signed out here, but {exc.message}: the session stays valid at "
                        "Supabase until it expires"
                    )
        finally:
            source.forget()  # whatever happened at Supabase, nothing stays behind here
    if warning:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    else:
        print("Signed out." if session else "Not signed in; local state deleted.")
    return 0


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


COMMANDS = {
    "login": cmd_login,
    "token": cmd_token,
    "call": cmd_call,
    "status": cmd_status,
    "logout": cmd_logout,
    "explain": cmd_explain,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
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


def main_exit() -> None:
    """The console script's entry point."""
    sys.exit(main())

"""``make invoke FN=<LogicalId> EVENT=events/<file>.json``: the Docker-free twin of
``sam local invoke``.

It starts the local stack on a free loopback port (moto as KMS and Secrets Manager), mints the
tokens an event's placeholders name (``{{supabase_token}}``, ``{{api_token}}``, ...), runs the
function's real handler on the event in-process and prints what Lambda would return.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokengate.apitoken import ApiTokenIssuer
from tokengate.aws import KmsSigner

from .client import Client
from .lambda_runtime import LambdaContext
from .moto_aws import free_port
from .stack import LocalStack
from .supabase_dev import DEV_USER_ID, hs256_token, project_api_key_claims, user_claims
from .template import Template
from .token import development_claims


@dataclass(frozen=True)
class Target:
    """A running local stack, as far as minting tokens for it goes."""

    base_url: str
    supabase_url: str
    jwt_secret: str
    kms: Any
    signing_key_arn: str
    scopes_claim: str = "api_scopes"

    @classmethod
    def of(cls, stack: LocalStack) -> Target:
        assert stack.aws is not None
        assert stack.gateway is not None
        return cls(
            stack.base_url,
            stack.supabase_url,
            stack.jwt_secret,
            stack.aws.client("kms"),
            stack.provisioned.signing_key_arn,
            stack.gateway.template.parameters["ScopesClaim"],
        )


def _exchange(target: Target, subject_token: str, scope: str) -> str:
    status, _, body = Client(target.base_url).exchange(subject_token, scope=scope)
    if status != 200:
        raise EventError(f"the local stack refused the exchange: {body}")
    return str(body["access_token"])


def expired_api_token(kms: Any, key_arn: str, issuer: str, subject: str = DEV_USER_ID) -> str:
    """An API token signed by a deployment's KMS key that expired about 17 minutes ago."""
    signer = KmsSigner(key_arn, "RS256", kms=kms)
    now = int(time.time())
    return (
        ApiTokenIssuer(signer, clock=lambda: now - 2000)
        .issue(
            issuer=issuer,
            subject=subject,
            audiences=["api"],
            scopes=["read"],
            client_id="cli",
            session_id="s",
            not_after=now + 3600,
        )
        .token
    )


def placeholders(target: Target | LocalStack) -> dict[str, str]:
    """Fresh tokens for every placeholder the events use."""
    if isinstance(target, LocalStack):
        target = Target.of(target)
    now = int(time.time())
    url, secret = target.supabase_url, target.jwt_secret
    supabase = hs256_token(
        development_claims(url, scopes=["write"], scopes_claim=target.scopes_claim), secret
    )
    return {
        "supabase_token": supabase,
        "expired_supabase_token": hs256_token(
            user_claims(url, iat=now - 7200, exp=now - 3600), secret
        ),
        "anon_key": hs256_token(project_api_key_claims("anon", now=now), secret, kid=None),
        "api_token": _exchange(target, supabase, "read"),
        "api_token_write_only": _exchange(target, supabase, "write"),
        "expired_api_token": expired_api_token(target.kms, target.signing_key_arn, target.base_url),
    }


class EventError(ValueError):
    """An event file that cannot be run, said in one line."""


PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")


def read_event(path: str | Path) -> str:
    """An event file's text, checked to be JSON (placeholders sit inside JSON strings)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EventError(f"{path}: no such event file (the samples are in events/)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EventError(f"{path}: cannot be read ({error})") from None
    try:
        json.loads(text)
    except ValueError as error:
        raise EventError(f"{path} is not JSON: {error}") from None
    return text


def render(event_text: str, values: dict[str, str]) -> dict[str, Any]:
    """The event with each ``{{name}}`` replaced by its value; an unknown name is an error."""
    unknown = sorted(set(PLACEHOLDER.findall(event_text)) - set(values))
    if unknown:
        raise EventError(
            f"unknown placeholder {{{{{unknown[0]}}}}}; known: {', '.join(sorted(values))}"
        )
    rendered = PLACEHOLDER.sub(lambda m: values[m[1]], event_text)
    document: dict[str, Any] = json.loads(rendered)
    return document


def invoke(stack: LocalStack, function: str, event: dict[str, Any]) -> dict[str, Any]:
    """Run a handler as Lambda would; an exception becomes Lambda's error shape."""
    assert stack.gateway is not None
    try:
        result = stack.gateway.handlers[function](event, LambdaContext(function))
    except Exception as exc:  # noqa: BLE001 - reported as Lambda reports a function error
        return {"errorMessage": str(exc), "errorType": type(exc).__name__}
    return dict(result)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: make invoke FN=<LogicalId> EVENT=events/<file>.json", file=sys.stderr)
        return 2
    function, path = argv
    functions = Template.load().functions()
    if function not in functions:
        choices = ", ".join(sorted(functions))
        print(
            f"make invoke: no function {function!r} in template.yaml ({choices})", file=sys.stderr
        )
        return 2
    try:
        text = read_event(path)
    except EventError as error:
        print(f"make invoke: {error}", file=sys.stderr)
        return 2
    saved = dict(os.environ)
    stack = LocalStack(free_port()).start()
    try:
        event = render(text, placeholders(stack))
        print(json.dumps(invoke(stack, function, event), indent=2))
    except EventError as error:
        print(f"make invoke: {path}: {error}", file=sys.stderr)
        return 2
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

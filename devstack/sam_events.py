"""``make events``: the sample events rendered with fresh tokens, and an ``env.json``, for
``sam local invoke`` against the running ``make run`` stack.

``make run`` records where it runs (``.aws-sam/local/<port>.json``: its URL, its moto endpoint
and the functions' environment, no secret); this reads that record, mints the placeholders' tokens
from the running stack (the HS256 secret is read back from its Secrets Manager, API tokens come
from its ``/token``) and writes ``.aws-sam/events/``:

* every ``events/<LogicalId>-<scenario>.json`` with its placeholders filled;
* ``env.json``: the functions' environment as the local stack deployed it, with
  ``AWS_ENDPOINT_URL`` pointing at its moto server. Loopback URLs suit a container on the host's
  network (``sam local invoke --docker-network host``); ``--container-host host.docker.internal``
  rewrites them for Docker Desktop's default network.

    make run                       # one terminal
    make events                    # another
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \\
      sam local invoke TokenExchangeFunction --docker-network host \\
      -e .aws-sam/events/TokenExchangeFunction-valid.json -n .aws-sam/events/env.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3

from tokengate.http import is_loopback_host

from .invoke import EventError, Target, placeholders, read_event, render
from .moto_aws import REGION
from .stack import LocalStack
from .template import ROOT

STATE_DIR = ROOT / ".aws-sam" / "local"
EVENTS = ROOT / "events"
OUT = ROOT / ".aws-sam" / "events"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def state_path(port: int) -> Path:
    return STATE_DIR / f"{port}.json"


def state_of(stack: LocalStack) -> dict[str, Any]:
    """What make events needs to find the running stack (no secret: the HS256 secret stays in the
    local Secrets Manager)."""
    assert stack.aws is not None
    assert stack.gateway is not None
    template = stack.gateway.template
    return {
        "base_url": stack.base_url,
        "aws_endpoint": stack.aws.endpoint,
        "supabase_url": stack.supabase_url,
        "signing_key_arn": stack.provisioned.signing_key_arn,
        "environment": {name: template.environment(name) for name in template.functions()},
        "log_file": str(stack.log_path or ""),  # the functions' JSON log (make smoke reads it)
    }


def write_state(stack: LocalStack) -> Path:
    """The running stack's record, readable by the user alone."""
    path = state_path(stack.port)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(state_of(stack), file, indent=2)
    return path


def remove_state(stack: LocalStack) -> None:
    state_path(stack.port).unlink(missing_ok=True)


def read_state(port: int) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(state_path(port).read_text())
    except FileNotFoundError:
        raise EventError(f"no local stack on port {port}: start make run first") from None
    except ValueError:
        raise EventError(f"{state_path(port)} is not JSON: restart make run") from None
    return state


def target_of(state: Mapping[str, Any]) -> Target:
    """The running stack, reached over loopback: its secret read back from its Secrets Manager."""
    environment = next(iter(state["environment"].values()))
    secret_arn = environment.get("SUPABASE_JWT_SECRET_ARN", "")
    if not secret_arn:
        raise EventError("HS256 is off (SUPABASE_JWT_SECRET_ARN=): the events need HS256 tokens")
    endpoint = state["aws_endpoint"]
    secrets = boto3.client(
        "secretsmanager", endpoint_url=endpoint, region_name=REGION, **FAKE_CREDENTIALS
    )
    try:
        secret = secrets.get_secret_value(SecretId=secret_arn)["SecretString"]
    except Exception as error:  # noqa: BLE001 - any failure means the recorded stack is gone
        raise EventError(
            f"the local stack at {state['base_url']} does not answer: {error}"
        ) from None
    return Target(
        state["base_url"],
        state["supabase_url"],
        secret,
        boto3.client("kms", endpoint_url=endpoint, region_name=REGION, **FAKE_CREDENTIALS),
        state["signing_key_arn"],
        environment.get("SCOPES_CLAIM", "api_scopes"),
    )


def _rehost(url: str, host: str) -> str:
    """A loopback URL as a container reaches it through ``host``; any other URL unchanged."""
    parts = urlsplit(url)
    if not parts.hostname or not is_loopback_host(parts.hostname) or host == parts.hostname:
        return url
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def container_environment(state: Mapping[str, Any], host: str) -> dict[str, dict[str, str]]:
    """env.json: every function's environment as deployed locally, AWS pointed at moto. The
    tokens' issuer stays the stack's own URL (a name, never fetched); the URLs a function
    fetches are rehosted."""
    variables: dict[str, str] = {}
    for environment in state["environment"].values():
        variables.update(environment)
    variables["AWS_ENDPOINT_URL"] = state["aws_endpoint"]
    for name in ("AWS_ENDPOINT_URL", "SUPABASE_URL", "API_JWKS_URL"):
        if variables.get(name):
            variables[name] = _rehost(variables[name], host)
    return {"Parameters": dict(sorted(variables.items()))}


def render_events(
    state: Mapping[str, Any], out: Path, host: str, source: Path = EVENTS
) -> list[Path]:
    values = placeholders(target_of(state))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob("*.json")):
        if path.name == "env.json":
            continue
        event = render(read_event(path), values)
        (out / path.name).write_text(json.dumps(event, indent=2) + "\n")
        written.append(out / path.name)
    env = out / "env.json"
    env.write_text(json.dumps(container_environment(state, host), indent=2) + "\n")
    return [*written, env]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="make events",
        description="Render events/ with fresh tokens and an env.json for sam local invoke.",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 3000))
    parser.add_argument(
        "--container-host",
        default="127.0.0.1",
        help="how a container reaches this machine (127.0.0.1 with --docker-network host)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        written = render_events(read_state(args.port), args.out, args.container_host)
    except EventError as error:
        print(f"make events: {error}", file=sys.stderr)
        return 2
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    print(f"{len(written) - 1} events and env.json in {shown}/ (tokens valid for an hour)")
    network = "--docker-network host " if args.container_host == "127.0.0.1" else ""
    print(
        "  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \\\n"
        f"    sam local invoke TokenExchangeFunction {network}\\\n"
        f"    -e {shown}/TokenExchangeFunction-valid.json -n {shown}/env.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

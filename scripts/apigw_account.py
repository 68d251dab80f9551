"""Chooses ApiGatewayCloudWatchRole for ``make deploy`` from the account's API Gateway settings.

API Gateway's CloudWatch Logs role is one setting per account and Region
(``aws apigateway get-account`` shows it as ``cloudwatchRoleArn``). The stage's access log needs
it, so a fresh account or Region needs the stack to create it (``create``); an account that has
one keeps it (``existing``): creating it again would overwrite another stack's setting.

Saves the choice in samconfig.toml's deploy ``parameter_overrides`` (the other saved parameters
kept), where ``sam deploy`` reads it (and ``sam deploy --guided`` offers it as the default), and
explains it on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path

PARAMETER = "ApiGatewayCloudWatchRole"


def choose(role_arn: str | None) -> str:
    """``create`` when the account has no role set, else ``existing``."""
    return "existing" if role_arn else "create"


def saved_overrides(samconfig: Path, environment: str = "default") -> list[str]:
    """``Name=Value`` items of samconfig.toml's deploy parameter_overrides (a string or a list)."""
    if not samconfig.exists():
        return []
    config = tomllib.loads(samconfig.read_text())
    value = config.get(environment, {}).get("deploy", {}).get("parameters", {})
    raw = value.get("parameter_overrides", [])
    return shlex.split(raw) if isinstance(raw, str) else [str(item) for item in raw]


def merged(overrides: list[str], choice: str) -> list[str]:
    """The overrides with ``ApiGatewayCloudWatchRole`` set to ``choice`` (and only once)."""
    kept = [item for item in overrides if item.split("=", 1)[0] != PARAMETER]
    return [*kept, f"{PARAMETER}={choice}"]


def quoted(overrides: list[str]) -> str:
    """``Name="Value"`` items as sam deploy's --parameter-overrides reads them."""
    items = []
    for item in overrides:
        name, _, value = item.partition("=")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        items.append(f'{name}="{escaped}"')
    return " ".join(items)


def with_overrides(text: str, overrides: list[str], environment: str = "default") -> str:
    """samconfig.toml's text with the deploy section's ``parameter_overrides`` set to these."""
    line = f"parameter_overrides = {json.dumps(quoted(overrides))}"
    section = re.search(
        rf"^\[{re.escape(environment)}\.deploy\.parameters\]\n(?:(?!\[).*\n?)*", text, re.M
    )
    if section is None:
        tail = "" if text.endswith("\n") or not text else "\n"
        return f"{text}{tail}\n[{environment}.deploy.parameters]\n{line}\n"
    body = section.group(0)
    if re.search(r"^parameter_overrides\s*=", body, re.M):
        body = re.sub(r"^parameter_overrides\s*=.*$", lambda _: line, body, count=1, flags=re.M)
    else:
        header, _, rest = body.partition("\n")
        body = f"{header}\n{line}\n{rest}"
    return text[: section.start()] + body + text[section.end() :]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samconfig", type=Path, default=Path("samconfig.toml"))
    parser.add_argument("--region", default=None)
    args = parser.parse_args()
    import boto3  # the SAM CLI's environment has it; imported here so the pure parts test alone

    account = boto3.client("apigateway", region_name=args.region).get_account()
    role = account.get("cloudwatchRoleArn")
    choice = choose(role)
    if role:
        print(f"API Gateway's CloudWatch role is set ({role}): reusing it.", file=sys.stderr)
    else:
        print(
            "API Gateway has no CloudWatch role in this account and Region: the stack creates one.",
            file=sys.stderr,
        )
    overrides = merged(saved_overrides(args.samconfig), choice)
    text = args.samconfig.read_text() if args.samconfig.exists() else "version = 0.1\n"
    args.samconfig.write_text(with_overrides(text, overrides))
    print(f"{PARAMETER}={choice} saved in {args.samconfig}.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

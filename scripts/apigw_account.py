"""Chooses ApiGatewayCloudWatchRole for ``make deploy`` from the account's API Gateway settings.

API Gateway's CloudWatch Logs role is one setting per account and Region
(``aws apigateway get-account`` shows it as ``cloudwatchRoleArn``). The stage's access log needs
it, so a fresh account or Region needs the stack to create it (``create``); an account that has
one keeps it (``existing``): creating it again would overwrite another stack's setting.

Prints the ``--parameter-overrides`` value for ``sam deploy``: the overrides saved in
samconfig.toml with ``ApiGatewayCloudWatchRole`` set to the choice (the command line replaces the
saved overrides as a whole, so they are carried over). Explains the choice on stderr.
"""

from __future__ import annotations

import argparse
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
    print(quoted(merged(saved_overrides(args.samconfig), choice)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

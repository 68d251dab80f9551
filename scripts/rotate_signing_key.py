"""Signing-key rotation for a deployed stack (the runbook is in SECURITY.md).

    python scripts/rotate_signing_key.py create  --stack NAME            # 1. make the next KMS key
    python scripts/rotate_signing_key.py publish --stack NAME --next ARN # 2. publish it (not signing)
    python scripts/rotate_signing_key.py switch  --stack NAME --next ARN # 3. sign with it
    python scripts/rotate_signing_key.py retire  --stack NAME            # 4. stop publishing the old
    python scripts/rotate_signing_key.py delete-key --key ARN            # 5. schedule the old key's deletion

Each step but ``create`` and ``delete-key`` prints the ``sam deploy`` command that applies it
(``--apply`` runs it). Wait between steps: after ``publish``, longer than every JWKS cache
(our Cache-Control max-age, 300 s by default, plus the authorizer's 600 s cache); after ``switch``,
longer than the longest token lifetime (TokenTtlSeconds, at most 3600 s) plus the leeway.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from typing import Any

from tokengate.aws import KMS_KEY_SPECS

ROTATION_PARAMETERS = ("SigningKeyArn", "PublishedKeyIds")


def _keys(value: str) -> list[str]:
    return [k for k in value.replace(" ", "").split(",") if k]


def rotation_overrides(
    step: str, current: dict[str, str], stack_key_arn: str, next_key: str = ""
) -> dict[str, str]:
    """The two rotation parameters after ``step``, from the stack's current values.

    ``current`` holds SigningKeyArn and PublishedKeyIds as deployed; ``stack_key_arn`` is the
    stack's own SigningKey, which signs while SigningKeyArn is empty.
    """
    active = current.get("SigningKeyArn") or stack_key_arn
    published = _keys(current.get("PublishedKeyIds", ""))
    if step == "publish":
        if not next_key or next_key == active:
            raise ValueError("publish needs --next, a key other than the one signing")
        return {
            "SigningKeyArn": current.get("SigningKeyArn", ""),
            "PublishedKeyIds": ",".join(dict.fromkeys([*published, next_key])),
        }
    if step == "switch":
        if next_key not in published:
            raise ValueError("publish the next key first, and wait for the JWKS caches")
        remaining = [k for k in published if k != next_key]
        return {"SigningKeyArn": next_key, "PublishedKeyIds": ",".join([active, *remaining])}
    if step == "retire":
        return {"SigningKeyArn": current.get("SigningKeyArn", ""), "PublishedKeyIds": ""}
    raise ValueError(f"unknown step {step!r}")


def signing_key_policy(exchange_role_arn: str, alg: str) -> str:
    """The stack's own key policy (template.yaml, SigningKey) for a key made outside the stack:
    only the exchange function's role signs; the account administers, never signs."""
    from devstack.template import Template

    _, partition, _, _, account, _ = exchange_role_arn.split(":", 5)
    template = Template.load({"SigningAlgorithm": alg})
    template.attributes.update(
        {
            "AWS::Partition": partition,
            "AWS::AccountId": account,
            "TokenExchangeRole.Arn": exchange_role_arn,
        }
    )
    policy = template.evaluate(template.resources["SigningKey"]["Properties"]["KeyPolicy"])
    return json.dumps(policy, separators=(",", ":"))


def create_key(kms: Any, alg: str, stack: str, policy: str | None = None) -> str:
    """A new signing key like the stack's (SIGN_VERIFY, same key spec, same key policy)."""
    key = kms.create_key(
        KeyUsage="SIGN_VERIFY",
        KeySpec=KMS_KEY_SPECS[alg],
        Description=f"{stack} API token signing key (rotation)",
        **({"Policy": policy} if policy else {}),
    )
    return str(key["KeyMetadata"]["Arn"])


def stack_state(cloudformation: Any, stack: str) -> tuple[dict[str, str], dict[str, str], str]:
    """(parameters, outputs, signing algorithm)."""
    description = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    parameters = {
        p["ParameterKey"]: p.get("ParameterValue", "") for p in description.get("Parameters", [])
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
    return parameters, outputs, parameters.get("SigningAlgorithm", "RS256")


def deploy_command(stack: str, overrides: dict[str, str]) -> list[str]:
    values = [f"{name}={value}" for name, value in overrides.items()]
    return [
        "sam",
        "deploy",
        "--stack-name",
        stack,
        "--no-confirm-changeset",
        "--parameter-overrides",
        *values,
    ]


def main(argv: list[str]) -> int:
    import boto3

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", choices=["create", "publish", "switch", "retire", "delete-key"])
    parser.add_argument("--stack")
    parser.add_argument("--next", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--apply", action="store_true")
    args = parser.parse_args(argv)
    if args.step == "delete-key":
        boto3.client("kms").schedule_key_deletion(KeyId=args.key, PendingWindowInDays=30)
        print(f"{args.key} is scheduled for deletion in 30 days (cancel-key-deletion undoes it)")
        return 0
    parameters, outputs, alg = stack_state(boto3.client("cloudformation"), args.stack)
    if args.step == "create":
        policy = signing_key_policy(outputs["TokenExchangeRoleArn"], alg)
        print(create_key(boto3.client("kms"), alg, args.stack, policy))
        return 0
    overrides = rotation_overrides(args.step, parameters, outputs["SigningKeyArn"], args.next)
    command = deploy_command(args.stack, overrides)
    print(shlex.join(command))
    return subprocess.call(command) if args.apply else 0  # noqa: S603 - sam, with our arguments


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

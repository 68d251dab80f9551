"""Signing-key rotation for a deployed stack (the runbook is in SECURITY.md).

    python scripts/rotate_signing_key.py create  --stack NAME            # 1. make the next key
    python scripts/rotate_signing_key.py publish --stack NAME --next ARN # 2. publish it (not signing)
    python scripts/rotate_signing_key.py switch  --stack NAME --next ARN # 3. sign with it
    python scripts/rotate_signing_key.py retire  --stack NAME            # 4. stop publishing the old
    python scripts/rotate_signing_key.py delete-key --key ARN            # 5. schedule the old key's deletion
    python scripts/rotate_signing_key.py sync-public-keys --stack NAME   # SigningPublicKeys up to date
    python scripts/rotate_signing_key.py public-keys --secret ARN        # print SigningPublicKeys

Each step but ``create`` and ``delete-key`` prints the ``sam deploy`` command that applies it
(``--apply`` runs it). Wait between steps: after ``publish``, longer than every JWKS cache
(our Cache-Control max-age, 300 s by default, plus the authorizer's 600 s cache); after ``switch``,
longer than the longest token lifetime (TokenTtlSeconds, at most 3600 s) plus the leeway.

The key mode is the stack's: KMS keys (``SigningKeyArn``) or, with ``SigningMode=secretsmanager``,
secrets holding a PEM private key (``SigningKeySecretArn``; ``create`` makes a new secret). In
that mode every step also sets ``SigningPublicKeys``, the public halves the JWKS function
publishes (it never reads a private key), computed here with the operator's credentials;
``sync-public-keys`` (run by ``make deploy``) recomputes it for the keys deployed.
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
# The parameter naming the signing key, per key mode.
KEY_PARAMETERS = {"kms": "SigningKeyArn", "secretsmanager": "SigningKeySecretArn"}


def _keys(value: str) -> list[str]:
    return [k for k in value.replace(" ", "").split(",") if k]


def rotation_overrides(
    step: str,
    current: dict[str, str],
    stack_key_arn: str,
    next_key: str = "",
    key_parameter: str = "SigningKeyArn",
) -> dict[str, str]:
    """The two rotation parameters after ``step``, from the stack's current values.

    ``current`` holds the key parameter (``SigningKeyArn``, or ``SigningKeySecretArn`` in the
    Secrets Manager mode) and PublishedKeyIds as deployed; ``stack_key_arn`` is the key that
    signs while the key parameter is empty (the stack's own SigningKey).
    """
    active = current.get(key_parameter) or stack_key_arn
    published = _keys(current.get("PublishedKeyIds", ""))
    if step == "publish":
        if not next_key or next_key == active:
            raise ValueError("publish needs --next, a key other than the one signing")
        return {
            key_parameter: current.get(key_parameter, ""),
            "PublishedKeyIds": ",".join(dict.fromkeys([*published, next_key])),
        }
    if step == "switch":
        if next_key not in published:
            raise ValueError("publish the next key first, and wait for the JWKS caches")
        remaining = [k for k in published if k != next_key]
        return {key_parameter: next_key, "PublishedKeyIds": ",".join([active, *remaining])}
    if step == "retire":
        return {key_parameter: current.get(key_parameter, ""), "PublishedKeyIds": ""}
    raise ValueError(f"unknown step {step!r}")


def public_keys_parameter(secrets: Any, parameters: dict[str, str]) -> str:
    """``SigningPublicKeys`` for these parameters (Secrets Manager mode): the public half of the
    signing secret's key, then those of the secrets in ``PublishedKeyIds``, read with the
    operator's credentials. Only public keys come out."""
    from tokengate.published import public_keys_of_pems

    arns = [
        parameters.get("SigningKeySecretArn", ""),
        *_keys(parameters.get("PublishedKeyIds", "")),
    ]
    pems = [
        secrets.get_secret_value(SecretId=arn)["SecretString"].encode()
        for arn in dict.fromkeys(arns)
        if arn
    ]
    return public_keys_of_pems(pems)


def with_public_keys(
    secrets: Any, current: dict[str, str], overrides: dict[str, str]
) -> dict[str, str]:
    """``overrides`` plus the ``SigningPublicKeys`` they call for, in the Secrets Manager mode."""
    if current.get("SigningMode") != "secretsmanager":
        return overrides
    value = public_keys_parameter(secrets, {**current, **overrides})
    return {**overrides, "SigningPublicKeys": value}


def create_secret_key(secrets: Any, alg: str, stack: str) -> str:
    """A new signing secret (Secrets Manager mode): a fresh PEM private key, generated here by
    ``cryptography`` and written straight to the secret, never printed or stored elsewhere."""
    import time

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = (
        rsa.generate_private_key(65537, 2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    name = f"{stack}/signing-key-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    secret = secrets.create_secret(
        Name=name, SecretString=pem, Description=f"{stack} API token signing key (rotation)"
    )
    return str(secret["ARN"])


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


def samconfig_stack(path: str) -> str:
    """The stack ``sam deploy`` deployed, from its config file (``make deploy``); its region
    becomes boto3's default, as sam's."""
    import os
    import tomllib

    with open(path, "rb") as file:
        config = tomllib.load(file).get("default", {})
    region = config.get("global", {}).get("parameters", {}).get("region")
    if region:
        os.environ.setdefault("AWS_DEFAULT_REGION", region)
    stack = config.get("deploy", {}).get("parameters", {}).get("stack_name", "")
    if not stack:
        raise SystemExit(f"{path} names no stack_name (deploy with sam deploy --guided first)")
    return str(stack)


def main(argv: list[str]) -> int:
    import boto3

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "step",
        choices=[
            "create",
            "publish",
            "switch",
            "retire",
            "delete-key",
            "sync-public-keys",
            "public-keys",
        ],
    )
    parser.add_argument(
        "--secret", action="append", default=[], help="public-keys: a signing secret's ARN"
    )
    parser.add_argument("--stack")
    parser.add_argument("--samconfig", help="read --stack (and the region) from this sam config")
    parser.add_argument("--next", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--apply", action="store_true")
    args = parser.parse_args(argv)
    if not args.stack and args.samconfig:
        args.stack = samconfig_stack(args.samconfig)
    if args.step == "public-keys":  # SigningPublicKeys for secrets, before any stack exists
        parameters = {"SigningKeySecretArn": args.secret[0] if args.secret else ""}
        parameters["PublishedKeyIds"] = ",".join(args.secret[1:])
        print(public_keys_parameter(boto3.client("secretsmanager"), parameters))
        return 0
    if args.step == "delete-key":
        boto3.client("kms").schedule_key_deletion(KeyId=args.key, PendingWindowInDays=30)
        print(f"{args.key} is scheduled for deletion in 30 days (cancel-key-deletion undoes it)")
        return 0
    parameters, outputs, alg = stack_state(boto3.client("cloudformation"), args.stack)
    mode = parameters.get("SigningMode", "kms")
    secrets = boto3.client("secretsmanager") if mode == "secretsmanager" else None
    if args.step == "create":
        if secrets is not None:
            print(create_secret_key(secrets, alg, args.stack))
            return 0
        policy = signing_key_policy(outputs["TokenExchangeRoleArn"], alg)
        print(create_key(boto3.client("kms"), alg, args.stack, policy))
        return 0
    if args.step == "sync-public-keys":
        if secrets is None:
            print(f"{args.stack}: KMS key mode, the JWKS reads public keys from KMS: nothing to do")
            return 0
        overrides = with_public_keys(secrets, parameters, {})
        if overrides["SigningPublicKeys"] == parameters.get("SigningPublicKeys", ""):
            print(f"{args.stack}: SigningPublicKeys is up to date")
            return 0
    else:
        key_parameter = KEY_PARAMETERS[mode]
        stack_key = outputs.get("SigningKeyArn", "") if mode == "kms" else ""
        overrides = rotation_overrides(args.step, parameters, stack_key, args.next, key_parameter)
        overrides = with_public_keys(secrets, parameters, overrides)
    command = deploy_command(args.stack, overrides)
    print(shlex.join(command))
    return subprocess.call(command) if args.apply else 0  # noqa: S603 - sam, with our arguments


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

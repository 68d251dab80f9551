"""Operator revocation (docs/revocation.md, docs/operations.md "A laptop was stolen").

    make revoke SID=<session id>             # one session, on make run (PORT=3000 by default)
    make revoke SUB=<user id>                # every session of the user issued before now
    make revoke SUB=<user id> STACK=<name>   # a deployed stack (AWS credentials in the environment)

The revocation is written to the stack's revocation table (the exchange refuses the session from
that moment), then the status list is republished so the authorizers refuse its tokens within
the bound: on make run the script signs it with the local key; on a deployed stack it invokes the
token exchange function's scheduled publication (only that function may sign). Without
lambda:InvokeFunction, the schedule publishes it within five minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3

from devstack.invoke import EventError
from devstack.moto_aws import REGION
from devstack.sam_events import read_state
from devstack.stack import publish_status_list
from tokengate import aws
from tokengate.errors import DependencyUnavailableError
from tokengate.revocation import RevocationStore


def revoke(store: RevocationStore, sub: str | None, sid: str | None) -> str:
    if sid:
        if store.revoke_session(sid, sub):
            return f"revoked session {sid}"
        # Recorded all the same (it can never be exchanged), but a mistyped id looks like this.
        return (
            f"revoked session {sid}: no token was ever issued for it here (recorded, so none "
            "ever will be); check the id if you meant a session in use"
        )
    assert sub
    sessions = store.revoke_user(sub)
    return f"revoked user {sub}: every token issued before now, {len(sessions)} session(s)"


def local(port: int, sub: str | None, sid: str | None) -> str:
    state = read_state(port)
    env = state["environment"]["TokenExchangeFunction"]
    table = env.get("REVOCATION_TABLE", "")
    if not table:
        raise SystemExit("make revoke: revocation is off on this stack (Revocation=false)")

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=state["aws_endpoint"],
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    store = RevocationStore(aws.DynamoTable(client("dynamodb"), table))
    done = revoke(store, sub, sid)
    publish_status_list(env, client, env.get("ISSUER") or state["base_url"])
    return f"{done}; status list republished"


def deployed(stack: str, sub: str | None, sid: str | None) -> str:
    cloudformation = boto3.client("cloudformation")
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    }
    table = outputs.get("RevocationTableName")
    if not table:
        raise SystemExit(f"make revoke: stack {stack} has no revocation table (Revocation=false)")
    store = RevocationStore(aws.DynamoTable(boto3.client("dynamodb"), table))
    done = revoke(store, sub, sid)
    function = cloudformation.describe_stack_resource(
        StackName=stack, LogicalResourceId="TokenExchangeFunction"
    )["StackResourceDetail"]["PhysicalResourceId"]
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    try:
        answer = boto3.client("lambda").invoke(
            FunctionName=function, Payload=json.dumps(event).encode()
        )
        published = json.loads(answer["Payload"].read() or b"{}").get("published") is True
    except Exception as exc:  # noqa: BLE001 - the schedule publishes it anyway
        print(f"make revoke: could not invoke {function}: {exc}", file=sys.stderr)
        published = False
    if published:
        return f"{done}; status list republished"
    return f"{done}; the scheduled publication carries it to the authorizers within 5 minutes"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="make revoke", description=__doc__.split("\n\n")[0])
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--sub", help="a user id: every session issued before now")
    who.add_argument("--sid", help="one session id")
    parser.add_argument("--stack", default="", help="a deployed stack (else make run)")
    parser.add_argument("--port", type=int, default=3000, help="make run's PORT")
    args = parser.parse_args(argv)
    try:
        if args.stack:
            print(deployed(args.stack, args.sub, args.sid))
        else:
            print(local(args.port, args.sub, args.sid))
    except EventError as exc:
        print(f"make revoke: {exc}", file=sys.stderr)
        return 2
    except DependencyUnavailableError as exc:
        print(
            f"make revoke: the store could not be written ({exc.reason}); run it again",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

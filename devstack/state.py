"""The record ``make run`` keeps of where it runs (``.aws-sam/local/<port>.json``: its URL, its
moto endpoint and the functions' environment, no secret), for ``make events`` and ``make token``.

A leaf of the local tooling: it imports none of the modules that read the record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .template import ROOT

if TYPE_CHECKING:
    from .stack import LocalStack

STATE_DIR = ROOT / ".aws-sam" / "local"


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

"""The template's ``Schedule`` events, as EventBridge runs them: each function with a schedule is
invoked with a scheduled event at its rate (``rate(N minutes)``). Without it the local status list
would expire an hour after start."""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime
from typing import Any

from .events import ACCOUNT
from .lambda_runtime import LambdaContext
from .template import Handler, Template

logger = logging.getLogger("devstack.schedules")
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": "local",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": {},
    }


def schedules(template: Template) -> list[tuple[str, float]]:
    """(function, period in seconds) of every enabled Schedule event."""
    found: list[tuple[str, float]] = []
    for name, props in template.functions().items():
        for event in props.get("Events", {}).values():
            if event.get("Type") != "Schedule":
                continue
            spec = event["Properties"]
            state = template.evaluate(spec.get("State", "ENABLED"))
            if not template.evaluate(spec.get("Enabled", True)) or state != "ENABLED":
                continue
            match = _RATE.fullmatch(str(spec["Schedule"]))
            if match is None:
                raise ValueError(f"{name}: only rate(...) schedules are served locally")
            found.append((name, int(match[1]) * _UNIT[match[2].rstrip("s")]))
    return found


class Schedules:
    def __init__(self, template: Template, handlers: dict[str, Handler]) -> None:
        self._jobs = schedules(template)
        self._handlers = handlers
        self._stop = threading.Event()

    def run_all(self) -> None:
        for name, _ in self._jobs:
            self._run(name)

    def _run(self, name: str) -> None:
        try:
            self._handlers[name](scheduled_event(), LambdaContext(name))
        except Exception as exc:  # noqa: BLE001 - as EventBridge: a failed run, the next one comes
            logger.warning("scheduled run of %s failed: %r", name, exc)

    def start(self) -> Schedules:
        for name, period in self._jobs:
            threading.Thread(target=self._loop, args=(name, period), daemon=True).start()
        return self

    def _loop(self, name: str, period: float) -> None:
        while not self._stop.wait(period):
            self._run(name)

    def stop(self) -> None:
        self._stop.set()

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.factories import KeyPair, ec_pair, rsa_pair


class FakeClock:
    """An injected clock: tests move time explicitly."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StaticJwksFetcher:
    """The JwksFetcher seam: serves a document and counts fetches (no network)."""

    def __init__(self, *keys: KeyPair) -> None:
        self.document: Any = {"keys": [k.jwk() for k in keys]}
        self.calls = 0
        self.fail: Exception | None = None

    def fetch(self, url: str) -> bytes:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return json.dumps(self.document).encode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def rsa_key() -> KeyPair:
    return rsa_pair(kid="rsa-key-1")


@pytest.fixture(scope="session")
def ec_key() -> KeyPair:
    return ec_pair(kid="5a8e7c1d-0f3b-4d6a-9c2e-7b1f0e4d3a21")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and region for moto in-process; no real AWS is reachable."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)

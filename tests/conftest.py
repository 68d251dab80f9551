from __future__ import annotations

import functools
import gc
import json
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import botocore.session
import pytest
from moto import mock_aws

from devstack.gateway import Gateway
from devstack.moto_aws import LocalAws, Provisioned, free_port
from devstack.stack import LocalStack, OnFirstCall, deploy, load_handlers
from devstack.template import Template
from tests.factories import HS_SECRET, SUPABASE_URL, KeyPair, ec_pair, rsa_pair
from tests.jwks_server import JwksServer
from tokengate.aws import AwsJsonClient
from tokengate.errors import DependencyUnavailableError
from tokengate.exchange import ACCESS_TOKEN, GRANT_TYPE
from tokengate.http import is_loopback_host

_getaddrinfo = socket.getaddrinfo


def _loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
    """Tests reach loopback only: a name lookup of any other host fails at once, as on a machine
    with no network (the product then answers as it does for an unreachable dependency), instead
    of leaving the machine or waiting on a resolver."""
    name = host.decode() if isinstance(host, bytes) else host
    if name not in (None, "", "0.0.0.0", "::") and not is_loopback_host(name):
        raise socket.gaierror(socket.EAI_NONAME, f"tests reach loopback only, not {name!r}")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_only  # for the whole test session, every thread included


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
        self.fail_next = 0  # fail this many fetches, then serve

    def fetch(self, url: str) -> bytes:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        if self.fail_next:
            self.fail_next -= 1
            raise DependencyUnavailableError("jwks_unavailable", "ConnectionResetError")
        return json.dumps(self.document).encode()


@pytest.fixture
def without_gc_pauses() -> Iterator[None]:
    """For tests that time a handler against its Lambda context: a full collection of this
    worker's heap (up to a second on a busy machine) inside the timed window would measure the
    test process, not the handler (a Lambda process holds one function). Collections wait until
    the test ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """The local-stack wiring writes the functions' environment into os.environ; undo it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@functools.cache
def _loader() -> Any:
    """The service models this process has read, shared by its sessions."""
    return botocore.session.get_session().get_component("data_loader")


def _botocore_session() -> botocore.session.Session:
    """A new botocore session (its own event hooks) that reads service models through one loader
    per process: a fresh session would read and parse every model again."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _loader())
    return session


def _default_session() -> boto3.Session:
    """boto3's default session, a new one on the process's loader if there is none (moto's mock
    starts each test without one)."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session(botocore_session=_botocore_session())
    assert boto3.DEFAULT_SESSION is not None
    return boto3.DEFAULT_SESSION


class InProcessApi:
    """The template's API with moto in-process: the real handlers and authorizers behind the same
    gateway logic the local stack serves over HTTP, counting every AWS call the handlers make."""

    def __init__(
        self,
        template: Template,
        provisioned: Provisioned,
        aws_calls: list[str] | None = None,
        on_first_call: bool = False,
    ) -> None:
        self.provisioned = provisioned
        self.aws_calls: list[str] = aws_calls if aws_calls is not None else []
        # Count from the very first call (the handlers read secrets when they load): clients
        # made after this, from boto3's default session (the one the deployment used, when
        # there is one), report every call here.
        _default_session().events.register("before-call", self._count)
        # Every function started now, or (on_first_call) each on its first invocation, as
        # Lambda starts a function's first container: then a test of one function never waits
        # for the others' starts against a dependency it made unreachable.
        handlers = OnFirstCall(template) if on_first_call else load_handlers(template)
        self.gateway = Gateway(template, handlers)

    def _count(self, model: Any, **_: Any) -> None:
        self.aws_calls.append(f"{model.service_model.service_name}:{model.name}")

    def call(
        self, method: str, path: str, body: bytes = b"", **headers: str
    ) -> tuple[int, dict[str, str], Any]:
        answer = self.gateway.handle(
            method, path, {k.replace("_", "-"): v for k, v in headers.items()}, body, "127.0.0.1"
        )
        document = json.loads(answer.body) if answer.body else None
        return answer.status, answer.headers, document

    def exchange(self, subject_token: str, **params: str) -> tuple[int, dict[str, str], Any]:
        form = {
            "grant_type": GRANT_TYPE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN,
        } | params
        return self.call(
            "POST",
            "/token",
            urlencode(form).encode(),
            Content_Type="application/x-www-form-urlencoded",
        )


ISSUER = "https://api.example.com"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[LocalAws]:
    """moto in server mode, in this process: the functions reach KMS and Secrets Manager over
    HTTP (signed requests, as in AWS) and see what ``mock_aws`` provisions (one moto state)."""
    server = LocalAws().start()
    yield server
    server.stop()


@pytest.fixture
def make_api(
    aws_env: None,
    restore_environ: None,
    moto_server: LocalAws,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., InProcessApi]]:
    calls: list[str] = []
    call = AwsJsonClient.call

    def counted(client: AwsJsonClient, action: str, payload: Any) -> dict[str, Any]:
        calls.append(f"{client.service}:{action}")
        return call(client, action, payload)

    monkeypatch.setattr(AwsJsonClient, "call", counted)  # a spy: the call itself is made
    with mock_aws():

        def build(
            parameters: dict[str, str] | None = None,
            *,
            on_first_call: bool = False,
            **environment: str,
        ) -> InProcessApi:
            calls.clear()
            # moto's mock starts each test without a default session; this one reads the service
            # models through the process's loader.
            boto3.setup_default_session(botocore_session=_botocore_session())
            # Revocation is off unless a test turns it on: in-process, the authorizers could not
            # fetch the status list from the issuer's host (tests/test_revocation.py serves it).
            template, provisioned = deploy(
                supabase_url=SUPABASE_URL,
                jwt_secret=HS_SECRET,
                issuer=ISSUER,
                parameters={"Revocation": "false", **(parameters or {})},
                environment={"AWS_ENDPOINT_URL": moto_server.endpoint} | environment,
            )
            return InProcessApi(template, provisioned, calls, on_first_call)

        yield build


@pytest.fixture(scope="session")
def supabase_server(ec_key: KeyPair, rsa_key: KeyPair) -> Iterator[JwksServer]:
    """The Supabase project on loopback: its JWKS serves an ES256 and an RS256 key."""
    with JwksServer({"keys": [ec_key.jwk(), rsa_key.jwk()]}) as server:
        yield server


@pytest.fixture(scope="module")
def local_stack(supabase_server: JwksServer) -> Iterator[LocalStack]:
    """A local stack (moto server + HTTP on loopback) for one test module. Not wider: moto keeps
    its state in-process, and an in-process ``mock_aws`` test in another module resets it."""
    saved = dict(os.environ)
    running = LocalStack(free_port(), supabase_server.base_url, HS_SECRET).start()
    yield running
    running.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist's ``--dist loadgroup`` (``make test``): the tests of a module that share
    a module-scoped fixture (a local stack, the CLI's Supabase stand-in) run on one worker, so the
    fixture starts once; every other test runs on whichever worker is free. Session-scoped
    fixtures start once per worker, each on its own ports."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        if any(
            definition.scope == "module"
            for definitions in info.name2fixturedefs.values()
            for definition in definitions
        ):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    # Tests that mostly wait start first: their waits then overlap the rest of the run instead of
    # ending it (the scheduler hands out tests in this order, groups by size first).
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """A worker's heap is large and mostly long-lived (every module imported, every test
    collected, moto's backends, hypothesis): with CPython's default thresholds a full collection
    walks it about every second of the run and pauses the worker for up to a second, which is
    both wasted time and a stall inside whatever test is timing a deadline. What exists after
    collection is frozen out of collections, and collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(2_000, 10, 10)

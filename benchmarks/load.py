"""`make load`: a bounded concurrent run against the local stack, on loopback only.

Exchanges N Supabase tokens and makes M authorized calls from a few threads, then checks that
there were no errors and that every issued token verifies with pyjwt against the published JWKS.
Requests are bounded in count; the run stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import HTTPConnection
from urllib.parse import urlencode

import jwt

from devstack.moto_aws import free_port
from devstack.stack import LocalStack
from devstack.supabase_dev import LOCAL_JWT_SECRET, hs256_token, user_claims
from tokengate.exchange import ACCESS_TOKEN, GRANT_TYPE


@dataclass
class Result:
    exchanges: int
    calls: int
    errors: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    exchange_seconds: float = 0.0
    call_seconds: float = 0.0
    verified: int = 0


class Connections:
    """One keep-alive HTTP connection per worker thread, all closed at the end."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._local = threading.local()
        self._all: list[HTTPConnection] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = HTTPConnection("127.0.0.1", self.port, timeout=30)
            with self._lock:
                self._all.append(conn)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        for conn in self._all:
            conn.close()


def run(exchanges: int, calls: int, threads: int) -> Result:
    saved = dict(os.environ)
    stack = LocalStack(free_port()).start()
    result = Result(exchanges, calls)
    lock = threading.Lock()
    connection = Connections(stack.port)
    try:
        subjects = [
            hs256_token(user_claims(stack.supabase_url), LOCAL_JWT_SECRET) for _ in range(50)
        ]

        def exchange(i: int) -> None:
            form = urlencode(
                {
                    "grant_type": GRANT_TYPE,
                    "subject_token": subjects[i % len(subjects)],
                    "subject_token_type": ACCESS_TOKEN,
                }
            ).encode()
            status, body = connection.request(
                "POST", "/token", form, {"Content-Type": "application/x-www-form-urlencoded"}
            )
            with lock:
                if status != 200:
                    result.errors.append(f"exchange {status}")
                else:
                    result.tokens.append(json.loads(body)["access_token"])

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(exchange, range(exchanges)))
        result.exchange_seconds = time.perf_counter() - started

        tokens = list(result.tokens)

        def call(i: int) -> None:
            status, _ = connection.request(
                "GET", "/whoami", headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
            )
            if status != 200:
                with lock:
                    result.errors.append(f"whoami {status}")

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(call, range(calls)))
        result.call_seconds = time.perf_counter() - started

        jwks = jwt.PyJWKClient(f"{stack.base_url}/.well-known/jwks.json")
        key = jwks.get_signing_key_from_jwt(tokens[0]).key
        for token in tokens:
            jwt.decode(token, key, algorithms=["RS256"], audience="api", issuer=stack.base_url)
            result.verified += 1
    finally:
        connection.close()
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exchanges", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the handlers' logs
        result = run(args.exchanges, args.calls, args.threads)
    print(f"load on the local stack ({args.threads} threads, loopback, moto server as KMS):")
    print(
        f"  exchanges        {result.exchanges:6d} in {result.exchange_seconds:6.1f} s = {result.exchanges / result.exchange_seconds:7.0f}/s"
    )
    print(
        f"  authorized calls {result.calls:6d} in {result.call_seconds:6.1f} s = {result.calls / result.call_seconds:7.0f}/s"
    )
    print(
        f"  errors {len(result.errors)}; issued tokens verified with pyjwt: {result.verified}/{len(result.tokens)}"
    )
    return 0 if not result.errors and result.verified == result.exchanges else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

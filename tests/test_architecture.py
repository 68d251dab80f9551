"""Lines the design holds (docs/style.md): a pure core, thin handlers, no boto3 on the authorizers' path."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "layers" / "tokengate" / "tokengate"
AWS_PACKAGES = ("boto3", "botocore", "aws_lambda_powertools")
ADAPTERS = {"aws.py"}  # the one module that talks to AWS


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", sorted(p.name for p in CORE.glob("*.py")))
def test_the_core_imports_nothing_from_aws_or_powertools(module: str) -> None:
    found = {n for n in imported_modules(CORE / module) if n.split(".")[0] in AWS_PACKAGES}
    if module in ADAPTERS:
        # boto3 for scripts and tests; botocore's SigV4 signing for the functions' own calls.
        allowed = {"boto3", "botocore.config", "botocore.exceptions"}
        assert found <= allowed | {"botocore.auth", "botocore.awsrequest", "botocore.credentials"}
    else:
        assert found == set()


@pytest.mark.parametrize(
    "function", ["api_token_authorizer", "supabase_authorizer", "token_exchange", "jwks"]
)
def test_handlers_import_without_boto3(function: str) -> None:
    """boto3 costs ~200 ms of cold start: no handler imports it before it needs AWS."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SUPABASE_URL": "https://x.supabase.co",
        "SIGNING_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/k",
        "AWS_REGION": "us-east-1",
        "PYTHONPATH": str(CORE.parent),
    }
    code = (
        "import importlib.util as u, sys; "
        f"s = u.spec_from_file_location('app', {str(ROOT / 'functions' / function / 'app.py')!r}); "
        "m = u.module_from_spec(s); s.loader.exec_module(m); "
        "print(sorted(k for k in ('boto3', 'aws_lambda_powertools') if k in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = result.stdout.strip().splitlines()[
        -1
    ]  # after any log, EMF or cold-start line of the start
    if function == "jwks":
        assert loaded == "['aws_lambda_powertools']"
    else:
        # neither boto3 nor Powertools in front of every API call, nor at the token endpoint
        assert loaded == "[]"


def test_handlers_are_thin() -> None:
    for app in (ROOT / "functions").glob("*/app.py"):
        assert len(app.read_text().splitlines()) < 100, app


# What each handler may load at its cold start (before its first request): the authorizers sit in
# front of every API call, so they load neither the exchange's side nor AWS's, nor dataclasses.
_SUPABASE_AUTHORIZER_FORBIDDEN = {
    "boto3",
    "botocore",
    "dataclasses",
    "secrets",
    "tokengate.aws",
    "tokengate.session",
    "tokengate.cors",  # the exchange's CORS answers
    "tokengate.published",  # the JWKS function's configured public keys
}
COLD_START_FORBIDDEN = {
    "api_token_authorizer": _SUPABASE_AUTHORIZER_FORBIDDEN | {"tokengate.cache"},
    "supabase_authorizer": _SUPABASE_AUTHORIZER_FORBIDDEN,
}


@pytest.mark.parametrize("function", sorted(COLD_START_FORBIDDEN))
def test_authorizers_load_only_what_they_use(function: str) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SUPABASE_URL": "https://x.supabase.co",
        "ISSUER": "https://api.example.com",
        "AWS_REGION": "us-east-1",
        "PYTHONPATH": str(CORE.parent),
    }
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'functions' / function)!r}); import app; "
        "print(' '.join(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.split())
    assert "app" in loaded
    assert loaded & COLD_START_FORBIDDEN[function] == set()


def test_settings_never_show_the_supabase_api_key() -> None:
    from tokengate.config import Settings

    settings = Settings.from_env(
        {
            "SUPABASE_URL": "https://x.supabase.co",
            "SESSION_CHECK": "true",
            "SUPABASE_API_KEY": "sb_publishable_secretish",
        }
    )
    assert settings.supabase_api_key == "sb_publishable_secretish"
    assert "sb_publishable_secretish" not in repr(settings)
    assert "supabase_url='https://x.supabase.co'" in repr(settings)


# -- import cycles --------------------------------------------------------------------------------
# The project's packages, by the directory that holds each (its modules' names start there).
PACKAGES = {
    "tokengate": CORE.parent,
    "tokengate_cli": ROOT / "client" / "src",
    "devstack": ROOT,
    "benchmarks": ROOT,
    "scripts": ROOT,
    "tests": ROOT,
}


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages, by its dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for package, base in PACKAGES.items():
        for path in sorted((base / package).rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Which project modules each one imports, read from its source with ``ast``: every import
    statement counts, at the top, inside a function or under ``if TYPE_CHECKING``. ``from m
    import n`` is an edge to ``m.n`` when that is a module, else to ``m``."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                targets = [
                    f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                # "import a.b.c" loads a.b.c; the nearest project module counts.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_itself() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"b"}}) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}) == [["a", "b"], ["c", "d"]]


def test_the_import_graph_sees_every_kind_of_import() -> None:
    graph = import_graph(project_modules())
    assert "tokengate.policies" in graph["tokengate.authorizer"]  # from .policies import ...
    assert "tokengate.aws" in graph["tokengate.runtime"]  # from . import aws, in a function
    assert "tokengate.supabase" in graph["tokengate.scopes"]  # under TYPE_CHECKING
    assert "devstack.stack" in graph["tests.conftest"]  # from devstack.stack import ...


def test_no_module_of_the_project_imports_itself_through_others() -> None:
    """No import cycle among the project's modules, not even through an import deferred into a
    function or kept for type checking: each is a knot a change can pull tight."""
    assert cycles(import_graph(project_modules())) == []


# What a first decision (an Allow, the key set fetched from a loopback JWKS) may load: neither
# http.client and the email package nor the client built on them (the document fetcher speaks
# HTTP/1.1 itself), nor cryptography's OpenSSL backend module (ECDSA verification does without
# it), nor the exchange's side, nor logging (a healthy start emits no record: tokengate.log), nor
# urllib.parse (tokengate.net splits the URLs it fetches).
_FIRST_DECISION_FORBIDDEN = _SUPABASE_AUTHORIZER_FORBIDDEN | {
    "http.client",
    "email",
    "logging",
    "urllib.parse",
    "cryptography.hazmat.backends.openssl.backend",
    "tokengate.exchange",
    "tokengate.http",
    "tokengate.signing",  # verifiers never sign
}


@pytest.mark.parametrize(
    ("function", "alg"),
    [
        ("api_token_authorizer", "RS256"),
        ("api_token_authorizer", "ES256"),
        ("supabase_authorizer", "ES256"),
    ],
)
def test_a_first_decision_loads_only_what_it_uses(function: str, alg: str) -> None:
    import json
    import time

    from cryptography.hazmat.primitives import serialization

    from benchmarks.warm import (
        STATUS_LIST_PATH,
        api_tokens,
        authorizer_environment,
        status_list,
        token_event,
    )
    from tests.factories import ec_pair, key_token, rsa_pair, supabase_claims
    from tests.jwks_server import JwksServer

    key = rsa_pair() if alg == "RS256" else ec_pair()
    pem = key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with JwksServer({"keys": [key.jwk()]}) as jwks:
        supabase_url = jwks.base_url
        if function == "api_token_authorizer":
            # Revocation on: the first decision reads the status list beside the key set too.
            jwks.raw[STATUS_LIST_PATH] = status_list(pem, 1).encode()
            env = authorizer_environment(jwks.jwks_url)
            token = api_tokens(pem, 1)[0]
            forbidden = _FIRST_DECISION_FORBIDDEN | {"tokengate.supabase", "tokengate.scopes"}
        else:
            env = {"SUPABASE_URL": supabase_url, "ROUTE_SCOPES": '{"GET /whoami": ""}'}
            claims = supabase_claims(time.time(), iss=f"{supabase_url}/auth/v1")
            token = key_token(key, claims)
            forbidden = _FIRST_DECISION_FORBIDDEN
        # Counting builtins.compile: a NamedTuple whose annotations are strings (a module under
        # `from __future__ import annotations`) compiles each field's annotation at import.
        code = (
            "import builtins, json, sys\n"
            "compiled = []\n"
            "_compile = builtins.compile\n"
            "def counting(source, *args, **kwargs):\n"
            "    compiled.append(str(source)[:60])\n"
            "    return _compile(source, *args, **kwargs)\n"
            "builtins.compile = counting\n"
            f"sys.path.insert(0, {str(ROOT / 'functions' / function)!r})\n"
            "import app\n"
            "class Context:\n"
            "    def get_remaining_time_in_millis(self):\n"
            "        return 3000\n"
            "answer = app.lambda_handler(json.loads(sys.argv[1]), Context())\n"
            "print(answer['policyDocument']['Statement'][0]['Effect'])\n"
            "print(json.dumps(compiled))\n"
            "print(' '.join(sorted(sys.modules)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, json.dumps(token_event(token))],
            env={
                "PATH": os.environ.get("PATH", ""),
                "PYTHONPATH": f"{CORE.parent}{os.pathsep}{ROOT}",
                "AWS_REGION": "us-east-1",
                **env,
            },
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    effect, compiled, modules = result.stdout.strip().splitlines()[-3:]
    assert effect == "Allow", result.stdout[-2000:]
    assert set(modules.split()) & forbidden == set()
    assert json.loads(compiled) == []  # no source text compiled on the way to the first answer


def test_no_named_tuple_is_declared_with_string_annotations() -> None:
    """typing.NamedTuple compiles each field's annotation when it is a string, as every
    annotation is under ``from __future__ import annotations``: ~0.1 ms per field at import, ~6 ms
    of an authorizer's cold start before. Modules that declare one evaluate their annotations."""
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        tree = ast.parse(path.read_text())
        postponed = any(
            isinstance(node, ast.ImportFrom)
            and node.module == "__future__"
            and any(alias.name == "annotations" for alias in node.names)
            for node in tree.body
        )
        named_tuples = [
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            and any(
                (isinstance(base, ast.Name) and base.id == "NamedTuple")
                or (isinstance(base, ast.Attribute) and base.attr == "NamedTuple")
                for base in node.bases
            )
        ]
        if postponed and named_tuples:
            offenders.append(f"{path.name}: {', '.join(named_tuples)}")
    assert offenders == []

"""Reads ``template.yaml``: the single source of truth for routes, authorizers and environment.

A small evaluator covers the intrinsic functions the template uses (Ref, If, Equals, Not, And,
Or, Sub, GetAtt, Split, Join) so the local stack sees the same variable names and defaults a
deployment does.
"""

from __future__ import annotations

import importlib.util
import pickle
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
Handler = Callable[[dict[str, Any], Any], Any]


class _Tag:
    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.value = value

    def __repr__(self) -> str:
        return f"!{self.name} {self.value!r}"


# libyaml's parser where PyYAML was built with it (the wheels are): a tenth of the pure-Python
# parser's time on this template, with the same safe constructors and the same result.
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> _Tag:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return _Tag(suffix, value)


_Loader.add_multi_constructor("!", _construct_tag)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    authorizer: str | None

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Authorizer:
    name: str
    function: str
    payload_type: str
    header: str
    validation: str | None
    ttl: int
    context: tuple[str, ...] = ()  # REQUEST identity sources context.<name>, in the cache key


class ParameterError(ValueError):
    """A parameter value CloudFormation would refuse at deploy time."""


def check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    """The constraints CloudFormation applies to a supplied value: AllowedValues, AllowedPattern
    (matched against the whole value) and, for numbers, MinValue/MaxValue."""
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        choices = ", ".join(str(v) for v in allowed)
        raise ParameterError(f"{name}={value!r} is not allowed: choose one of {choices}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        raise ParameterError(f"{name}={value!r} does not match {pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise ParameterError(f"{name}={value!r} is not a number") from None
        low, high = spec.get("MinValue"), spec.get("MaxValue")
        if (low is not None and number < float(low)) or (high is not None and number > float(high)):
            raise ParameterError(f"{name}={value!r} is outside {low}..{high}")


# path -> (its size and modification time, the document parsed from it, pickled): a stack start
# reads the template three times, the test suite hundreds; a changed file is parsed again. Each
# caller gets its own copy by unpickling this process's own bytes, a tenth of deepcopy's time.
_PARSED: dict[Path, tuple[tuple[int, int], bytes]] = {}


def _parsed(path: Path) -> dict[str, Any]:
    """A private copy of the document in ``path`` (callers may change theirs)."""
    stat = path.stat()
    stamp = (stat.st_size, stat.st_mtime_ns)
    held = _PARSED.get(path)
    if held is None or held[0] != stamp:
        parsed = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
        if len(_PARSED) >= 16:
            _PARSED.clear()
        held = _PARSED[path] = (stamp, pickle.dumps(parsed, pickle.HIGHEST_PROTOCOL))
    document: dict[str, Any] = pickle.loads(held[1])  # noqa: S301 - bytes this process made
    return document


@dataclass
class Template:
    document: dict[str, Any]
    parameters: dict[str, str]
    attributes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, overrides: Mapping[str, str] | None = None, path: Path = TEMPLATE) -> Template:
        document = _parsed(path)
        specs = document.get("Parameters", {})
        defaults = {name: str(spec.get("Default", "")) for name, spec in specs.items()}
        return cls(document, defaults).with_parameters(overrides or {})

    def with_parameters(self, overrides: Mapping[str, str]) -> Template:
        """The same template deployed with these parameter values, checked as CloudFormation
        checks them (the document is parsed once and shared)."""
        specs = self.document.get("Parameters", {})
        params = dict(self.parameters)
        for name, value in overrides.items():
            if name not in specs:
                raise ParameterError(f"{name} is not a parameter of the template")
            check_parameter(name, specs[name], value)
            params[name] = value
        return Template(self.document, params)

    # -- intrinsic functions ------------------------------------------------------------
    def condition(self, name: str) -> bool:
        return bool(self.evaluate(self.document["Conditions"][name]))

    def evaluate(self, value: Any) -> Any:
        if isinstance(value, _Tag):
            return self._intrinsic(value)
        if isinstance(value, list):
            return [self.evaluate(v) for v in value]
        if isinstance(value, dict):
            return {k: self.evaluate(v) for k, v in value.items()}
        return value

    def _intrinsic(self, tag: _Tag) -> Any:
        name, arg = tag.name, tag.value
        if name == "Ref":
            if arg in self.parameters:
                return self.parameters[arg]
            return {
                "AWS::Region": "us-east-1",
                "AWS::StackName": "tokengate-local",
                "AWS::NoValue": None,
            }.get(arg, self.attributes.get(arg, arg))
        if name == "GetAtt":
            return self.attributes.get(".".join(arg), "")
        if name == "If":
            return self.evaluate(arg[1] if self.condition(arg[0]) else arg[2])
        if name == "Equals":
            return self.evaluate(arg[0]) == self.evaluate(arg[1])
        if name == "Not":
            return not self.evaluate(arg[0])
        if name == "And":
            return all(self.evaluate(v) for v in arg)
        if name == "Or":
            return any(self.evaluate(v) for v in arg)
        if name == "Condition":
            return self.condition(arg)
        if name == "Split":
            return str(self.evaluate(arg[1])).split(arg[0])
        if name == "Join":
            return str(arg[0]).join(str(v) for v in self.evaluate(arg[1]))
        if name == "Sub":
            text, names = (arg, {}) if isinstance(arg, str) else (arg[0], self.evaluate(arg[1]))
            return re.sub(
                r"\$\{([^}]+)\}",
                lambda m: str(
                    names.get(
                        m[1],
                        self._intrinsic(_Tag("Ref", m[1]))
                        if "." not in m[1]
                        else self.attributes.get(m[1], ""),
                    )
                ),
                text,
            )
        raise ValueError(f"intrinsic !{name} is not supported by the local stack")

    # -- what the local stack needs -----------------------------------------------------
    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.document["Resources"])

    def functions(self) -> dict[str, dict[str, Any]]:
        return {
            name: res["Properties"]
            for name, res in self.resources.items()
            if res["Type"] == "AWS::Serverless::Function"
        }

    def environment(self, function: str) -> dict[str, str]:
        """Globals' variables overlaid with the function's own, evaluated."""
        glob = self.document.get("Globals", {}).get("Function", {})
        variables = dict(glob.get("Environment", {}).get("Variables", {}))
        own = self.functions()[function].get("Environment", {}).get("Variables", {})
        variables.update(own)
        # A variable whose value is AWS::NoValue is left out, as CloudFormation leaves it out.
        return {k: str(v) for k, val in variables.items() if (v := self.evaluate(val)) is not None}

    def global_variables(self) -> dict[str, Any]:
        """The functions' Globals environment, unevaluated."""
        return dict(self.document["Globals"]["Function"]["Environment"]["Variables"])

    def parameter_variables(self) -> dict[str, str]:
        """Each variable (Globals' or a function's) that carries one parameter, to its name:
        ``VAR: !Ref Parameter``,
        or ``VAR: !If [Cond, !Ref Parameter, ...]`` where ``Cond`` is "Parameter is not empty"
        (the parameter's value whenever it is set)."""
        variables = self.global_variables()
        for props in self.functions().values():  # and a function's own variables
            variables.update(props.get("Environment", {}).get("Variables", {}))
        return {
            name: parameter
            for name, value in variables.items()
            if (parameter := self._carried_parameter(value)) is not None
        }

    def _carried_parameter(self, value: Any) -> str | None:
        if isinstance(value, _Tag) and value.name == "Ref" and value.value in self.parameters:
            return str(value.value)
        if isinstance(value, _Tag) and value.name == "If":
            condition, then = value.value[0], value.value[1]
            parameter = self._carried_parameter(then)
            test = self.document.get("Conditions", {}).get(condition)
            if parameter is not None and _is_not_empty_test(test, parameter):
                return parameter
        return None

    def stage(self) -> str:
        return str(self.evaluate(self.api()["StageName"]))

    def api(self) -> dict[str, Any]:
        apis = [r for r in self.resources.values() if r["Type"] == "AWS::Serverless::Api"]
        return dict(apis[0]["Properties"])

    def routes(self) -> list[Route]:
        routes = []
        for name, props in self.functions().items():
            for event in props.get("Events", {}).values():
                if event.get("Type") != "Api":
                    continue
                spec = event["Properties"]
                auth = spec.get("Auth", {}).get("Authorizer")
                routes.append(Route(spec["Method"].upper(), spec["Path"], name, auth))
        return routes

    def authorizers(self) -> dict[str, Authorizer]:
        result = {}
        for name, spec in self.api().get("Auth", {}).get("Authorizers", {}).items():
            function = spec["FunctionArn"].value[0]  # !GetAtt <LogicalId>.Arn
            identity = spec.get("Identity", {})
            headers = identity.get("Headers") or [identity.get("Header", "Authorization")]
            result[name] = Authorizer(
                name=name,
                function=function,
                payload_type=spec.get("FunctionPayloadType", "TOKEN"),
                header=headers[0],
                validation=identity.get("ValidationExpression"),
                ttl=int(self.evaluate(identity.get("ReauthorizeEvery", 300))),
                context=tuple(identity.get("Context", ())),
            )
        return result

    def load_handler(self, function: str) -> Handler:
        """Import a function's handler from its CodeUri, as Lambda would."""
        props = self.functions()[function]
        module_name, attr = props["Handler"].rsplit(".", 1)
        module = _load_module(f"fn_{function}", ROOT / props["CodeUri"] / f"{module_name}.py")
        handler: Handler = getattr(module, attr)
        return handler


def deployment_values(
    *,
    supabase_url: str,
    jwt_secret_arn: str,
    issuer: str,
    parameters: Mapping[str, str],
    signing_key_secret_arn: str,
) -> dict[str, str]:
    """The template's parameter values of a local deployment: what the stack provisions and
    where it serves, then the caller's own values (which win)."""
    values = {
        "SupabaseUrl": supabase_url.rstrip("/"),
        "SupabaseJwtSecretArn": jwt_secret_arn,
        "Issuer": issuer,
        # The authorizer reads the keys from this stack (the issuer may name another host).
        "ApiJwksUrl": f"{issuer}/.well-known/jwks.json",
    }
    values.update(parameters)
    if values.get("SigningMode") == "secretsmanager":
        values.setdefault("SigningKeySecretArn", signing_key_secret_arn)
    return values


def _is_not_empty_test(test: Any, parameter: str) -> bool:
    """Whether a condition reads ``!Not [!Equals [!Ref parameter, ""]]``."""
    if not (isinstance(test, _Tag) and test.name == "Not"):
        return False
    equals = test.value[0]
    if not (isinstance(equals, _Tag) and equals.name == "Equals"):
        return False
    left, right = equals.value
    return isinstance(left, _Tag) and left.name == "Ref" and left.value == parameter and right == ""


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

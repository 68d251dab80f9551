"""``make run``'s settings: each of the functions' environment variables is applied as the template
parameter it stands for in AWS, with the template's own checks.

The mapping is read from ``template.yaml`` (the ``VAR: !Ref Parameter`` entries of the Globals
environment), so a variable and its parameter cannot drift apart. Two variables exist only
locally: ``PORT`` and ``SUPABASE_JWT_SECRET`` (the legacy HS256 secret, which the stack stores
in the local Secrets Manager). A variable that looks like one of ours but is not (``ROUTE_SCOPE``,
``TOKEN_TTL``) is reported, in one line, and ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from .supabase_dev import LOCAL_JWT_SECRET
from .template import ParameterError, Template, check_parameter

LOCAL_ONLY = {
    "PORT": "where the local API listens (loopback only)",
    "SUPABASE_JWT_SECRET": "the legacy HS256 secret, stored in the local Secrets Manager",
}
# Prefixes shared with other tools' variables (the Supabase CLI, the AWS SDK, Powertools, which
# the functions read themselves) or too generic: only a close match to one of our names is
# reported there.
SHARED_PREFIXES = ("SUPABASE", "AWS", "POWERTOOLS", "API", "DEFAULT")
CLOSE = 0.8  # difflib ratio from which a name is taken for a misspelling of one of ours


@dataclass(frozen=True)
class LocalSettings:
    supabase_url: str  # empty: none given (make run then serves its Supabase Auth stand-in)
    jwt_secret: str
    parameters: dict[str, str]  # template parameter → value, checked
    ignored: tuple[str, ...]  # one note per variable that looks like ours and is not applied

    def warning(self) -> str:
        return "ignoring " + "; ".join(self.ignored) if self.ignored else ""


def local_settings(env: Mapping[str, str], template: Template | None = None) -> LocalSettings:
    """The settings in ``env`` as the template's parameters; a value the template refuses raises
    :class:`ParameterError` naming the variable and the parameter."""
    template = template or Template.load()
    mapping = template.parameter_variables()
    specs = template.document["Parameters"]
    parameters: dict[str, str] = {}
    for variable, parameter in mapping.items():
        if variable not in env:
            continue
        value = env[variable]
        try:
            check_parameter(parameter, specs[parameter], value)
        except ParameterError as error:
            raise ParameterError(f"{variable}: {error}") from None
        parameters[parameter] = value
    supabase_url = parameters.pop("SupabaseUrl", "")
    if parameters.get("SupabaseJwtSecretArn"):
        raise ParameterError(
            "SUPABASE_JWT_SECRET_ARN: the local stack stores SUPABASE_JWT_SECRET in its own "
            "Secrets Manager; leave the ARN unset, or empty to turn HS256 off"
        )
    return LocalSettings(
        supabase_url=supabase_url,
        jwt_secret=env.get("SUPABASE_JWT_SECRET") or LOCAL_JWT_SECRET,
        parameters=parameters,
        ignored=tuple(_ignored(env, template, mapping)),
    )


def _ignored(env: Mapping[str, str], template: Template, mapping: dict[str, str]) -> list[str]:
    derived = set(template.global_variables()) - set(mapping)  # set from several parameters
    known = sorted(set(mapping) | set(LOCAL_ONLY) | derived)
    ours = {name.split("_", 1)[0] for name in known} - set(SHARED_PREFIXES)
    notes = []
    for name in sorted(env):
        if name in derived and not name.startswith(SHARED_PREFIXES):
            notes.append(f"{name} (the template sets it from other parameters)")
            continue
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=CLOSE)
        if not close and name.split("_", 1)[0] not in ours:
            continue
        guess = close or difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        notes.append(f"{name} (did you mean {guess[0]}?)" if guess else f"{name} (not a setting)")
    return notes

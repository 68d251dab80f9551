"""Route keys and route selection, as API Gateway selects the route a request goes to.

A route key is ``"METHOD /path"``: ``METHOD`` is one of :data:`METHODS` or ``ANY``; the path is
``/`` or ``/``-separated segments, each a literal, a path variable ``{name}`` (one non-empty
segment) or, as the last segment only, a greedy variable ``{name+}`` (one or more segments).

Precedence (what :meth:`RouteTable.select` implements):

1. Only routes whose method is the request's, or ``ANY``, and whose path matches are candidates.
2. The candidate whose path is the most specific wins, compared segment by segment from the left:
   a literal segment beats ``{name}``, which beats ``{name+}``; the first difference decides.
3. On the same path, an explicit method beats ``ANY``.

One trailing slash is ignored, as a REST API ignores it: ``/a/b/`` goes where ``/a/b`` goes.

Sources: "Routing API requests" in the HTTP API developer guide
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html): a full
match first, then a match with a path variable, then one with a greedy path variable, and ``ANY``
matches "all methods that you haven't defined for a resource"; REST APIs resolve a request down
their resource tree, a literal child resource before a ``{name}`` one before ``{proxy+}``
(https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-set-up-simple-proxy.html).

Whether API Gateway, when the most specific branch of the tree dead-ends (``/a/b/c`` exists and
``/a/b/d`` is asked, beside ``/{x}/b/d``), falls back to a less specific branch is not documented.
Choosing among the routes that match (rule 1) gives the same answer as API Gateway whenever API
Gateway routes the request at all, whichever way it behaves there: if it does not fall back, it
answers 403/404 itself and never consults an authorizer or its cache for that request.
"""

import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .errors import ConfigurationError

METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
ANY = "ANY"

LITERAL, VARIABLE, GREEDY = 0, 1, 2
# RFC 3986 pchar, less the characters an IAM resource pattern treats as wildcards ("*", "?")
# and the braces of path variables.
_LITERAL = re.compile(r"[A-Za-z0-9._~!$&'()+,;=:@%-]+")
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)(\+?)\}")


# RFC 6749 §3.3 scope-token: what one scope of a token can be (no space, '"' or '\\').
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def check_route_scope(key: str, scope: object) -> str:
    """The scope a route requires (``""``: any valid token), which must be one scope name: a
    value no token can hold (``"read write"``) would make the route unreachable in silence."""
    if not isinstance(scope, str) or (scope and not _SCOPE_TOKEN.fullmatch(scope)):
        raise ConfigurationError(
            f'route {key!r}: the scope must be one scope name (no spaces) or "", not {scope!r}'
        )
    return scope


class Segment(NamedTuple):
    kind: int  # LITERAL, VARIABLE or GREEDY
    text: str  # the literal text, or the variable's name


class Route(NamedTuple):
    method: str  # one of METHODS, or ANY
    path: str
    segments: tuple[Segment, ...]

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def shape(self) -> tuple[str, tuple[tuple[int, str], ...]]:
        """The route with its variables' names left out: two routes of one shape are one route."""
        return self.method, tuple(
            (s.kind, s.text if s.kind == LITERAL else "") for s in self.segments
        )

    @property
    def precedence(self) -> tuple[tuple[int, ...], bool]:
        """Smaller is more specific (rules 2 and 3 of the module docstring)."""
        return tuple(s.kind for s in self.segments), self.method == ANY

    def serves(self, method: str) -> bool:
        return self.method == method or (self.method == ANY and method in METHODS)

    def matches_path(self, segments: list[str]) -> bool:
        """``segments``: a request path as :func:`path_segments` splits it."""
        for index, segment in enumerate(self.segments):
            if segment.kind == GREEDY:
                rest = segments[index:]
                return bool(rest) and rest != [""]
            if index >= len(segments):
                return False
            value = segments[index]
            if segment.kind == LITERAL and value != segment.text:
                return False
            if not value:
                return False
        return len(segments) == len(self.segments)


def path_segments(path: str) -> list[str] | None:
    """A request path's segments as API Gateway routes it (``/`` has none), or None for a path
    that is not absolute. A REST API routes ``/a/`` as ``/a``: one trailing slash is dropped
    (the method ARN keeps it; :mod:`tokengate.policies` refuses such requests)."""
    if not path.startswith("/"):
        return None
    segments = path[1:].split("/")
    if segments[-1] == "":
        segments.pop()
    return segments


def parse_route(key: object) -> Route:
    """A route key, validated; raises :class:`ConfigurationError` saying what is wrong."""
    if not isinstance(key, str):
        raise ConfigurationError("a route key must be a string like 'GET /path'")
    method, sep, path = key.partition(" ")
    if not sep or (method not in METHODS and method != ANY):
        raise ConfigurationError(
            f"route {key!r} must start with one of {', '.join((*METHODS, ANY))} and a space"
        )
    if not path.startswith("/"):
        raise ConfigurationError(f"route {key!r}: the path must start with '/'")
    parts = [] if path == "/" else path[1:].split("/")
    segments: list[Segment] = []
    names: set[str] = set()
    for index, part in enumerate(parts):
        variable = _VARIABLE.fullmatch(part)
        if variable is not None:
            greedy = bool(variable[2])
            if greedy and index != len(parts) - 1:
                raise ConfigurationError(
                    f"route {key!r}: a greedy variable {{name+}} must be the last segment"
                )
            if variable[1] in names:
                raise ConfigurationError(f"route {key!r}: variable {variable[1]!r} is repeated")
            names.add(variable[1])
            segments.append(Segment(GREEDY if greedy else VARIABLE, variable[1]))
        elif _LITERAL.fullmatch(part) and part not in (".", ".."):
            segments.append(Segment(LITERAL, part))
        else:
            raise ConfigurationError(
                f"route {key!r}: segment {part!r} must be a literal (letters, digits, -._~ and "
                "the like; no '*', '?', '.', '..' or empty segment), {name} or a final {name+}"
            )
    return Route(method, path, tuple(segments))


class RouteTable:
    """The routes an authorizer guards, validated once; selection as API Gateway does it."""

    def __init__(self, keys: Iterable[object]) -> None:
        routes: list[Route] = []
        shapes: dict[object, str] = {}
        for key in keys:
            route = parse_route(key)
            if route.shape in shapes:
                raise ConfigurationError(
                    f"routes {shapes[route.shape]!r} and {route.key!r} are the same route"
                )
            shapes[route.shape] = route.key
            routes.append(route)
        self.routes: tuple[Route, ...] = tuple(routes)
        self._by_shape = {route.shape: route for route in routes}

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)

    def select(self, method: str, path: str) -> Route | None:
        """The route API Gateway sends ``method path`` to, or None if no route matches."""
        segments = path_segments(path)
        if segments is None:
            return None
        candidates = [
            route for route in self.routes if route.serves(method) and route.matches_path(segments)
        ]
        return min(candidates, key=lambda route: route.precedence, default=None)

    def resource(self, method: str, path: object) -> Route | None:
        """The route of a REST ``REQUEST`` event, which names the resource path and the
        request's method: the method's own route there, else that resource's ``ANY``."""
        return self.find(f"{method} {path}") or (
            self.find(f"{ANY} {path}") if method in METHODS else None
        )

    def find(self, route_key: object) -> Route | None:
        """The table's route for a route key an event names (variable names aside), or None."""
        try:
            route = parse_route(route_key)
        except ConfigurationError:
            return None
        return self._by_shape.get(route.shape)

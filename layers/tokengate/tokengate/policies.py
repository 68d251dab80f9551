"""IAM policies an authorizer can return without API Gateway's cache ever leaking a decision.

API Gateway caches an authorizer's policy per identity (a ``TOKEN`` authorizer: per token) and
evaluates the cached policy against the method ARN of later requests, on any route. In a resource
ARN an IAM ``*`` matches any characters, ``/`` included, so ``.../POST/orders/*`` (written for
``POST /orders/{id}``) also matches ``POST /orders/8/refund``.

For a set of scopes, :class:`PolicyPlanner` writes one policy for every route:

* an ``Allow`` of each permitted route's pattern (variables as ``*``, ``ANY`` as each method);
* a ``Deny`` of each denied route's pattern wherever some ``Allow`` reaches a request API Gateway
  sends to that route (an explicit Deny wins in IAM);

and proves, when the function starts, whether that policy is *exact*: that no such ``Deny`` also
reaches a request sent to a permitted route. The proof is a search over request paths built from
the table's literal segments, a fresh segment and an empty one, which stand for every path: each
route and pattern only compares a segment with a literal or asks whether it is empty.

Where the policy would not be exact (a permitted route nested under a denied broader pattern, for
example), it is still safe: it allows no denied request. Such scopes get it for every request
it decides rightly; a permitted request one of its Denies would wrongly catch gets a *per-route*
answer instead: the request's own route pattern with the Denies it needs, or, when one of those
would also reach the route itself, the exact method ARN. No answer ever allows a request a fresh
decision denies, whatever route the cache replays it on; each is exact for every request of the
same method and path, which is what a cache keyed on them (a ``REQUEST`` authorizer with the
identity sources ``context.httpMethod`` and ``context.path``) replays it on.

A request path with an empty segment (``//``, or a trailing ``/`` other than the root) is refused,
fresh and cached alike: API Gateway routes ``/a/b/`` as ``/a/b`` but keeps the slash in the method
ARN, where no route's pattern can tell it from a path of another route (``.../orders/*`` matches
``/orders/8/refund/``, which ``Deny .../orders/*/refund`` does not). Every policy that allows
anything also denies every such method ARN, and the path automata below never route one. So are
``.`` and ``..`` segments (should API Gateway resolve ``/a/../admin`` to ``/admin``, the method
ARN would still hold the dots).
"""

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, NoReturn

from .log import get_logger
from .routes import (
    ANY,
    GREEDY,
    LITERAL,
    METHODS,
    Route,
    RouteTable,
    check_route_scope,
    path_segments,
)

logger = get_logger("tokengate.policies")

FRESH = "\x00"  # a segment equal to no literal (literals never hold NUL)
EMPTY = ""  # an empty segment: "/a//b" or "/a/"
MAX_CACHED_PLANS = 4096  # scope sets whose plans are kept (the warm path)
# API Gateway accepts resource ARNs of at most 512 characters in an authorizer's policy; a method
# ARN (the request's path) may be up to 1,600.
MAX_RESOURCE = 512
Statement = dict[str, Any]


class RouteScopes:
    """``"METHOD /path"`` → the scope it requires (``""``: any valid token).

    A request needs the scope of the route API Gateway sends it to, never another route's that
    happens to match too; a route the table does not list is denied.
    """

    def __init__(self, table: Mapping[str, str]) -> None:
        self.table = RouteTable(table)
        self._scope = {
            route: check_route_scope(route.key, table[route.key]) for route in self.table.routes
        }

    def required(self, route: Route) -> str:
        return self._scope[route]

    def permits(self, route: Route | None, scopes: frozenset[str]) -> bool:
        if route is None or route not in self._scope:
            return False
        scope = self._scope[route]
        return not scope or scope in scopes

    def names(self) -> frozenset[str]:
        """Every scope some route requires."""
        return frozenset(scope for scope in self._scope.values() if scope)


# -- path languages over segments -------------------------------------------------------------
def _route_step(route: Route, state: int, symbol: str) -> int | None:
    """Advance a route's (deterministic) automaton by one path segment.

    States: ``i`` < n before segment ``i``; ``n`` matched (no greedy variable); ``n + 1`` the
    greedy variable has taken only an empty segment (not a match); ``n + 2`` it has taken more.
    """
    n = len(route.segments)
    if symbol == EMPTY:
        return None  # a path with an empty segment is refused whatever its route
    if state > n:
        return n + 2
    if state == n:
        return None
    segment = route.segments[state]
    if segment.kind == GREEDY:
        return n + 1 if symbol == EMPTY else n + 2
    if symbol == EMPTY or (segment.kind == LITERAL and symbol != segment.text):
        return None
    return state + 1


def _route_accepts(route: Route, state: int) -> bool:
    n = len(route.segments)
    return state == n + 2 or (
        state == n and not (route.segments and route.segments[-1].kind == GREEDY)
    )


def pattern_parts(route: Route) -> tuple[str | None, ...]:
    """A route's resource pattern, one part per segment: the literal, or None for ``*``."""
    return tuple(s.text if s.kind == LITERAL else None for s in route.segments)


def pattern_path(parts: tuple[str | None, ...]) -> str:
    return "/" + "/".join("*" if part is None else part for part in parts)


def _parts_of(pattern: str) -> tuple[str | None, ...]:
    """:func:`pattern_parts` back from a :func:`pattern_path` (literals never hold ``*``)."""
    if pattern == "/":
        return ()
    return tuple(None if part == "*" else part for part in pattern[1:].split("/"))


_GlobState = tuple[int, bool]  # (part index, inside the "*" of that part)


def _glob_step(
    parts: tuple[str | None, ...], states: frozenset[_GlobState], symbol: str
) -> frozenset[_GlobState]:
    """``*`` between slashes takes one or more whole segments; a literal part exactly one."""
    following: set[_GlobState] = set()
    for index, inside in states:
        if inside:
            following.add((index, True))
        elif index < len(parts):
            part = parts[index]
            if part is None:
                following.add((index, True))
            elif part == symbol:
                following.add((index + 1, False))
    return frozenset(following | {(index + 1, False) for index, inside in following if inside})


def _glob_accepts(parts: tuple[str | None, ...], states: frozenset[_GlobState]) -> bool:
    return (len(parts), False) in states


def _glob_matches(parts: tuple[str | None, ...], segments: list[str]) -> bool:
    if not parts:
        return not segments
    states = frozenset({(0, False)})
    for symbol in segments or [EMPTY]:  # "/" is the pattern "/*" with "*" empty
        states = _glob_step(parts, states, symbol)
    return _glob_accepts(parts, states)


def reaches(route: Route, preferred: Iterable[Route], parts: tuple[str | None, ...]) -> bool:
    """Whether the pattern ``parts`` matches some path that API Gateway sends to ``route`` (a
    path ``route`` matches and no ``preferred`` route does)."""
    rivals = tuple(preferred)
    root = _route_accepts(route, 0) and not any(_route_accepts(r, 0) for r in rivals)
    if root and _glob_matches(parts, []):
        return True
    if not parts:
        return False  # the pattern "/" matches only the root path, handled above
    alphabet = {FRESH, EMPTY}
    for r in (route, *rivals):
        alphabet.update(s.text for s in r.segments if s.kind == LITERAL)
    alphabet.update(part for part in parts if part is not None)
    start = (0, frozenset({(0, False)}), tuple[int | None, ...](0 for _ in rivals))
    seen = {start}
    frontier = [start]
    while frontier:
        state, globs, others = frontier.pop()
        for symbol in alphabet:
            after = _route_step(route, state, symbol)
            if after is None:
                continue
            after_globs = _glob_step(parts, globs, symbol)
            if not after_globs:
                continue
            after_others = tuple(
                None if o is None else _route_step(r, o, symbol)
                for r, o in zip(rivals, others, strict=True)
            )
            if (
                _route_accepts(route, after)
                and _glob_accepts(parts, after_globs)
                and not any(
                    o is not None and _route_accepts(r, o)
                    for r, o in zip(rivals, after_others, strict=True)
                )
            ):
                return True
            config = (after, after_globs, after_others)
            if config not in seen:
                seen.add(config)
                frontier.append(config)
    return False


# -- per method ---------------------------------------------------------------------------------
class _MethodRoutes:
    """The routes serving some methods, and which route patterns reach which routes' requests."""

    def __init__(self, methods: tuple[str, ...], routes: list[Route]) -> None:
        self.methods = methods
        self.routes = sorted(routes, key=lambda r: r.precedence)
        self.parts = {route: pattern_parts(route) for route in self.routes}
        # reach[a][b]: route b's pattern matches a request API Gateway sends to route a.
        self.reach: dict[Route, dict[Route, bool]] = {}
        for index, route in enumerate(self.routes):
            preferred = [r for r in self.routes[:index] if r.precedence < route.precedence]
            self.reach[route] = {
                other: reaches(route, preferred, self.parts[other]) for other in self.routes
            }
        # A route every request of which goes to a more specific one (``ANY /a`` beside
        # ``GET /a``, for GET) needs neither an Allow nor a Deny for these methods.
        self.live = [route for route in self.routes if self.reach[route][route]]


def _method_groups(table: RouteTable) -> list[_MethodRoutes]:
    explicit = sorted({r.method for r in table.routes if r.method != ANY})
    any_routes = [r for r in table.routes if r.method == ANY]
    groups = [
        _MethodRoutes((method,), [r for r in table.routes if r.method in (method, ANY)])
        for method in explicit
    ]
    others = tuple(m for m in METHODS if m not in explicit)
    if any_routes and others:
        groups.append(_MethodRoutes(others, any_routes))
    return groups


class Conflict(NamedTuple):
    """A denied route whose Deny would also reach a permitted route's requests."""

    denied: Route
    permitted: Route


class Plan(NamedTuple):
    """The whole-table policy for one set of scopes, and whether it is exact."""

    allow: tuple[tuple[str, str], ...]  # (method, resource pattern path)
    deny: tuple[tuple[str, str], ...]
    conflicts: tuple[Conflict, ...]

    @property
    def exact(self) -> bool:
        return not self.conflicts


def _plan_allows(plan: Plan, method: str, segments: list[str]) -> bool:
    """Whether a plan's policy allows the method ARN of ``method`` and a path of ``segments``
    (without an empty, "." or ".." one): one of its Allows matches and none of its Denies."""

    def matched(entries: tuple[tuple[str, str], ...]) -> bool:
        return any(
            entry_method == method and _glob_matches(_parts_of(pattern), segments)
            for entry_method, pattern in entries
        )

    return matched(plan.allow) and not matched(plan.deny)


def has_ambiguous_segment(path: str) -> bool:
    """``//`` in the path, a trailing ``/`` other than the root's, or a ``.`` or ``..`` segment
    (which a client normally removes, and API Gateway might resolve before routing)."""
    if path == "/":
        return False
    return "//" in path or path.endswith("/") or any(s in (".", "..") for s in path.split("/"))


def ambiguous_segment_patterns(arn_base: str) -> list[str]:
    """Every method ARN whose path :func:`has_ambiguous_segment`: ``//`` anywhere, a final
    ``/`` after at least one character (the root ``.../GET/`` is not matched), ``/./`` or
    ``/../`` anywhere, a final ``/.`` or ``/..``."""
    return [
        f"{arn_base}/*//*",
        f"{arn_base}/*/?*/",
        f"{arn_base}/*/./*",
        f"{arn_base}/*/.",
        f"{arn_base}/*/../*",
        f"{arn_base}/*/..",
    ]


def _statements(
    arn_base: str, allow: Iterable[tuple[str, str]], deny: Iterable[tuple[str, str]]
) -> list[Statement]:
    statements: list[Statement] = []
    allows = sorted({f"{arn_base}/{method}{path}" for method, path in allow})
    denies = {f"{arn_base}/{method}{path}" for method, path in deny}
    if allows:
        denies.update(ambiguous_segment_patterns(arn_base))
    for effect, arns in (("Allow", allows), ("Deny", sorted(denies))):
        if arns:
            statements.append({"Action": "execute-api:Invoke", "Effect": effect, "Resource": arns})
    return statements


def _read_only(self: object, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError("this policy document is shared and read-only: change a copy")


class ReadOnlyDict(dict[str, Any]):
    """A JSON object that refuses every change: part of an answer shared by every request that
    gets it. It serializes, compares and copies as a dict (``dict(...)`` and
    :func:`copy.deepcopy` give a plain, changeable one)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return dict, (dict(self),)


class ReadOnlyList(list[Any]):
    """A JSON array that refuses every change (see :class:`ReadOnlyDict`)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        return list, (list(self),)


def frozen_policy(statements: Iterable[Statement]) -> dict[str, Any]:
    """An IAM policy document no caller can change, equal to (and serialized as) the plain one."""
    return ReadOnlyDict(
        Version="2012-10-17",
        Statement=ReadOnlyList(
            ReadOnlyDict({**s, "Resource": ReadOnlyList(s["Resource"])}) for s in statements
        ),
    )


def has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _refusal(arn_base: str, method: str, path: str) -> list[Statement]:
    """A Deny of the request's method ARN; past :data:`MAX_RESOURCE` characters, of every ARN
    sharing its first 511 (a Deny may be broader than the request, never an Allow)."""
    arn = f"{arn_base}/{method}{path}"
    if len(arn) > MAX_RESOURCE:
        arn = arn[: MAX_RESOURCE - 1] + "*"
    return [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [arn]}]


def _log_conflicts(conflicts: Iterable[Conflict], shown: int = 10) -> None:
    pairs = [f"{c.denied.key} while allowing {c.permitted.key}" for c in conflicts]
    more = f"; and {len(pairs) - shown} more" if len(pairs) > shown else ""
    logger.warning(
        "IAM wildcards cannot express this route table exactly for every scope set: callers "
        "whose scopes deny %s may get per-route policies (keep the authorizer cache keyed on the "
        "route, or its TTL at 0, so they are not replayed on other routes)",
        "; ".join(pairs[:shown]) + more,
    )


class PolicyPlanner:
    """Policies for a route table; every scope set's exactness is decided when it is built."""

    def __init__(self, scopes: RouteScopes) -> None:
        self.scopes = scopes
        self._groups = _method_groups(scopes.table)
        self._plans: dict[frozenset[str], Plan] = {}
        self._documents: dict[tuple[str, frozenset[str]], list[tuple[str, list[str]]]] = {}
        conflicts = self._every_conflict()
        self.conflicts = tuple(sorted(conflicts, key=lambda c: (c.denied.key, c.permitted.key)))
        if self.conflicts:
            _log_conflicts(self.conflicts)

    def _every_conflict(self) -> set[Conflict]:
        """The conflicts of every scope set, without building a plan for each (2^n of them):
        ``(d, p)`` is a conflict of some set exactly when it is one of the set holding every
        scope but ``d``'s. That set permits the most any set denying ``d`` can, and a conflict
        needs ``p`` permitted and ``d``'s Deny needed by a permitted route, both of which only
        grow with what is permitted."""
        found: set[Conflict] = set()
        for group in self._groups:
            for denied in group.live:
                scope = self.scopes.required(denied)
                if not scope:
                    continue  # never denied
                permitted = [r for r in group.live if self.scopes.required(r) != scope]
                if any(group.reach[denied][p] for p in permitted):
                    found.update(Conflict(denied, p) for p in permitted if group.reach[p][denied])
        return found

    def plan(self, held: frozenset[str]) -> Plan:
        """The plan for the scopes a caller holds (only the table's scope names matter)."""
        key = held & self.scopes.names()
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= MAX_CACHED_PLANS:
                self._plans.clear()
            plan = self._plans[key] = self._build(key)
        return plan

    def _build(self, held: frozenset[str]) -> Plan:
        allow: list[tuple[str, str]] = []
        deny: list[tuple[str, str]] = []
        conflicts: list[Conflict] = []
        for group in self._groups:
            permitted = [r for r in group.live if self.scopes.permits(r, held)]
            denied = [r for r in group.live if not self.scopes.permits(r, held)]
            needed = [d for d in denied if any(group.reach[d][p] for p in permitted)]
            conflicts += [Conflict(d, p) for d in needed for p in permitted if group.reach[p][d]]
            for method in group.methods:
                allow += [(method, pattern_path(group.parts[r])) for r in permitted]
                deny += [(method, pattern_path(group.parts[r])) for r in needed]
        return Plan(tuple(allow), tuple(deny), tuple(dict.fromkeys(conflicts)))

    def _whole_table(self, arn_base: str, held: frozenset[str], plan: Plan) -> list[Statement]:
        """The exact policy, built once per API stage and scope set (the warm path)."""
        key = (arn_base, held & self.scopes.names())
        built = self._documents.get(key)
        if built is None:
            if len(self._documents) >= 256:
                self._documents.clear()
            built = self._documents[key] = [
                (s["Effect"], s["Resource"]) for s in _statements(arn_base, plan.allow, plan.deny)
            ]
        # Fresh objects each time: a caller may keep or change what it is given.
        return [
            {"Action": "execute-api:Invoke", "Effect": effect, "Resource": list(resources)}
            for effect, resources in built
        ]

    def _refused(
        self, arn_base: str, method: str, path: str, held: frozenset[str], plan: Plan
    ) -> list[Statement]:
        """A refusal that, replayed by API Gateway's cache on any other request, decides it as
        a fresh call would: the whole-table policy. It denies every request of a denied route,
        exact or not, and every path with an empty, "." or ".." segment, whatever route that
        reaches (one the method groups count as shadowed included: "/x//" may select
        "ANY /{rest+}" past "GET /{v0}/{rest+}"). A request the table routes nowhere (a route
        of the API the table does not list) may still match one of its Allows: then a Deny of
        its own method ARN is added. With nothing allowed, the Deny of the request alone says
        the same."""
        if not plan.allow:
            return _refusal(arn_base, method, path)
        statements = self._whole_table(arn_base, held, plan)
        segments = None if has_ambiguous_segment(path) else path_segments(path)
        if segments is not None and _plan_allows(plan, method, segments):
            statements += _refusal(arn_base, method, path)
        return statements

    def _group(self, method: str) -> _MethodRoutes | None:
        return next((g for g in self._groups if method in g.methods), None)

    def answer(
        self, arn_base: str, method: str, path: str, route: Route | None, held: frozenset[str]
    ) -> tuple[bool, list[Statement]]:
        """Whether a request API Gateway sent to ``route`` (None: to a route the table does not
        list) is allowed for a caller holding ``held``, and the policy that says so."""
        group = self._group(method)
        plan = self.plan(held)
        if (
            route is None
            or group is None
            or has_ambiguous_segment(path)
            or route not in group.live
            or not self.scopes.permits(route, held)
        ):
            return False, self._refused(arn_base, method, path, held, plan)
        if plan.exact:
            return True, self._whole_table(arn_base, held, plan)
        denied = [r for r in group.live if not self.scopes.permits(r, held)]
        permitted = [r for r in group.live if self.scopes.permits(r, held)]
        needed = [d for d in denied if any(group.reach[d][p] for p in permitted)]
        segments = path_segments(path) or []
        if not any(_glob_matches(group.parts[d], segments) for d in needed):
            # Not one of the requests a needed Deny would wrongly catch: the whole-table policy
            # allows it, and replayed elsewhere denies only those requests.
            return True, self._whole_table(arn_base, held, plan)
        # Per-route answer: this route's pattern with the Denies it needs, unless one of them
        # would also reach this route; then the exact method ARN.
        needed = [d for d in denied if group.reach[d][route]]
        if not any(group.reach[route][d] for d in needed):
            return True, _statements(
                arn_base,
                [(method, pattern_path(group.parts[route]))],
                [(method, pattern_path(group.parts[d])) for d in needed],
            )
        if has_wildcard(path) or len(f"{arn_base}/{method}{path}") > MAX_RESOURCE:
            # The exact ARN would itself be a pattern ("*" and "?" are wildcards in IAM), or be
            # longer than API Gateway accepts in a policy: refused, with the whole-table policy
            # (whose needed Denies catch this request) for the cache to replay.
            return False, self._refused(arn_base, method, path, held, plan)
        return True, _statements(arn_base, [(method, path)], ())

"""Revocation: the store of sessions, users' "revoked before" times and status list indices, and
the publisher of the signed status list (docs/revocation.md).

One DynamoDB table, one string partition key ``pk``, items that expire through the table's TTL
attribute ``expires_at``:

* ``s#<session id>``: the session's status list index ``idx`` (allocated at its first exchange),
  its user ``sub``, ``created``, ``revoked`` (and ``revoked_at``);
* ``u#<sub>``: ``before``: every Supabase token of the user issued before it is refused;
* ``c#index``: the index allocator (an atomic counter: an index is never given twice, so
  revoking one session never flips another's status: no collateral);
* ``c#publish``: the snapshot counter: each snapshot takes the next number before it reads;
* ``l#1``: the signed status list token the public route serves, its ``published_at``, and the
  ``version`` (its snapshot's number) that keeps an older snapshot from replacing a newer one.

Each record lives :data:`RETENTION_SECONDS` after its last write: longer than any token that
can refer to it (a Supabase access token lives at most a week, an API token an hour).
"""

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from .apitoken import MAX_TTL
from .errors import ConditionFailedError, DependencyUnavailableError, InvalidTokenError, Reason
from .signing import Signer
from .statuslist import (
    CAPACITY,
    session_digest,
    sign_status_list,
    status_list_claims,
    user_digest,
)
from .supabase import SUPABASE_MAX_LIFETIME

Clock = Callable[[], float]

RETENTION_SECONDS = SUPABASE_MAX_LIFETIME + MAX_TTL + 3600
REFRESH_BELOW_SECONDS = 24 * 3600  # a live session's record is extended when this close to expiry
LIST_ID = "1"
LIST_LIFETIME_SECONDS = 3600  # a status list token's exp: survives eleven missed schedules
LIST_TTL_SECONDS = 15  # the draft's ttl: how long a verifier may cache the list
REPUBLISH_AFTER_SECONDS = 600  # an exchange that finds the stored list older republishes it


class Table(Protocol):
    """The table operations the store needs (:class:`tokengate.aws.DynamoTable`); every failure
    is a DependencyUnavailableError, a lost condition a ConditionFailedError."""

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None: ...

    def batch_get(self, keys: list[dict[str, Any]], **projection: Any) -> list[dict[str, Any]]: ...

    def put(self, item: dict[str, Any], **condition: Any) -> None: ...

    def update(self, key: dict[str, Any], **params: Any) -> dict[str, Any]: ...

    def transact_write(self, operations: list[dict[str, dict[str, Any]]]) -> None: ...

    def scan(self) -> list[dict[str, Any]]: ...


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


def _n(item: dict[str, Any], name: str, default: int = 0) -> int:
    value = item.get(name)
    return int(value["N"]) if isinstance(value, dict) and "N" in value else default


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return str(value["S"]) if isinstance(value, dict) and "S" in value else None


def _revoked(item: dict[str, Any]) -> bool:
    return bool((item.get("revoked") or {}).get("BOOL"))


def list_uri(issuer: str, list_id: str = LIST_ID) -> str:
    return f"{issuer}/statuslists/{list_id}"


class Snapshot(NamedTuple):
    revoked: frozenset[int]
    sessions: frozenset[bytes]
    users: dict[bytes, int]


class RevocationStore:
    """Sessions, users and indices in the table; reads are strongly consistent."""

    def __init__(self, table: Table, clock: Clock = time.time) -> None:
        self._table = table
        self._clock = clock

    # -- the exchange -----------------------------------------------------------------------
    def admit(self, session_id: str, sub: str, iat: float) -> tuple[int, bool]:
        """The session's status list index for a token exchange, allocated at its first one,
        and whether the stored status list is due to be republished; InvalidTokenError(revoked)
        if the session or (for a token issued before the user's revocation) its user is revoked.

        A revocation racing the exchange: a new session's record is written in one transaction
        with a check of the user's record, so a user revocation either precedes the write (the
        exchange is refused) or follows it (its scan sees the session and flips its index)."""
        now = int(self._clock())
        items = {
            _s(item, "pk"): item
            for item in self._table.batch_get(
                [_key(f"s#{session_id}"), _key(f"u#{sub}"), _key(f"l#{LIST_ID}")],
                # Not the stored list itself: only when it was published.
                ProjectionExpression="pk, idx, #sub, #r, expires_at, #b, published_at",
                ExpressionAttributeNames={"#sub": "sub", "#r": "revoked", "#b": "before"},
            )
        }
        session = items.get(f"s#{session_id}")
        if session is not None and _n(session, "expires_at") <= now:
            session = None  # past its TTL, not yet deleted by DynamoDB
        if session is not None and _revoked(session):
            raise InvalidTokenError(Reason.REVOKED, "the session is revoked")
        user = items.get(f"u#{sub}")
        if session is None:
            idx, user = self._allocate(session_id, sub, iat, now)
        else:
            idx = _n(session, "idx", -1)
            if _n(session, "expires_at") - now < REFRESH_BELOW_SECONDS:
                self._table.update(
                    _key(f"s#{session_id}"),
                    UpdateExpression="SET expires_at = :e",
                    ExpressionAttributeValues={":e": {"N": str(now + RETENTION_SECONDS)}},
                )
        if user is not None and _n(user, "expires_at") > now and _n(user, "before") >= iat:
            raise InvalidTokenError(Reason.REVOKED, "the user's sessions were revoked")
        listed = items.get(f"l#{LIST_ID}")
        stale = listed is None or _n(listed, "published_at") < now - REPUBLISH_AFTER_SECONDS
        return idx, stale

    def _allocate(
        self, session_id: str, sub: str, iat: float, now: int
    ) -> tuple[int, dict[str, Any] | None]:
        """A new session's index and its record, written in one transaction with the check that
        its user's record does not refuse a token issued at ``iat``; (index, the user's record
        still to be checked, None when the transaction checked it)."""
        counter = self._table.update(
            _key("c#index"),
            UpdateExpression="ADD #next :one",
            ExpressionAttributeNames={"#next": "next"},
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        idx = _n(counter, "next") - 1
        if not 0 <= idx < CAPACITY:
            raise DependencyUnavailableError("status_list_full", "no status list index left")
        live = {":now": {"N": str(now)}}
        record: dict[str, Any] = {
            "Item": {
                "pk": {"S": f"s#{session_id}"},
                "idx": {"N": str(idx)},
                "sub": {"S": sub},
                "created": {"N": str(now)},
                "revoked": {"BOOL": False},
                "expires_at": {"N": str(now + RETENTION_SECONDS)},
            },
            "ConditionExpression": "attribute_not_exists(pk) OR expires_at <= :now",
            "ExpressionAttributeValues": live,
        }
        try:
            self._table.transact_write(
                [
                    {
                        "ConditionCheck": {
                            "Key": _key(f"u#{sub}"),
                            # Refused: a live record whose "before" is at or after iat (an
                            # integer "before" >= iat exactly when it is >= ceil(iat)); no
                            # record, or one without these attributes, refuses nothing.
                            "ConditionExpression": "NOT (expires_at > :now AND #b >= :iat)",
                            "ExpressionAttributeNames": {"#b": "before"},
                            "ExpressionAttributeValues": live
                            | {":iat": {"N": str(math.ceil(iat))}},
                        }
                    },
                    {"Put": record},
                ]
            )
        except ConditionFailedError as exc:
            if 0 in exc.failed:
                # Refused; the session is recorded all the same, as a session of the user that
                # reached the store, so a later revocation of the user finds it and revokes it.
                with contextlib.suppress(ConditionFailedError):
                    self._table.put(
                        record["Item"],
                        ConditionExpression=record["ConditionExpression"],
                        ExpressionAttributeValues=live,
                    )
                raise InvalidTokenError(
                    Reason.REVOKED, "the user's sessions were revoked"
                ) from None
            # Another exchange of the session allocated first (this index stays unused), or the
            # session was revoked meanwhile: its record exists now, so the user's record read
            # with it here is read after it was written.
            items = {
                _s(item, "pk"): item
                for item in self._table.batch_get([_key(f"s#{session_id}"), _key(f"u#{sub}")])
            }
            session = items.get(f"s#{session_id}")
            if session is None or _revoked(session) or _n(session, "idx", -1) < 0:
                raise InvalidTokenError(Reason.REVOKED, "the session is revoked") from None
            return _n(session, "idx"), items.get(f"u#{sub}")
        return idx, None

    # -- revocation -------------------------------------------------------------------------
    def revoke_session(self, session_id: str, sub: str | None = None) -> bool:
        """Revoke one session, known or not: one write (nothing half-done). A session never
        exchanged yet is recorded too, so it can never be exchanged. Whether the session had
        been exchanged here (it held a status list index) before."""
        now = int(self._clock())
        names = {"#r": "revoked"}
        values: dict[str, Any] = {
            ":t": {"BOOL": True},
            ":now": {"N": str(now)},
            ":e": {"N": str(now + RETENTION_SECONDS)},
        }
        expression = "SET #r = :t, revoked_at = :now, expires_at = :e"
        if sub:
            expression += ", #sub = if_not_exists(#sub, :sub)"
            names["#sub"] = "sub"
            values[":sub"] = {"S": sub}
        before = self._table.update(
            _key(f"s#{session_id}"),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        )
        return "idx" in before

    def revoke_user(self, sub: str, before: float | None = None) -> list[str]:
        """Refuse every token of the user issued before ``before`` (default: now) and revoke
        every session of the user created before it; the sessions revoked. Idempotent: after a
        failure part way, running it again completes it (the user's record, written first,
        already refuses the exchange and the Supabase authorizer)."""
        now = int(self._clock())
        cutoff = int(before if before is not None else now)
        self._table.update(
            _key(f"u#{sub}"),
            UpdateExpression="SET #b = :b, expires_at = :e",
            ExpressionAttributeNames={"#b": "before"},
            ExpressionAttributeValues={
                ":b": {"N": str(cutoff)},
                ":e": {"N": str(now + RETENTION_SECONDS)},
            },
        )
        revoked = []
        for item in self._table.scan():
            pk = _s(item, "pk") or ""
            if (
                pk.startswith("s#")
                and _s(item, "sub") == sub
                and _n(item, "created") <= cutoff
                and not _revoked(item)
            ):
                self.revoke_session(pk[2:])
                revoked.append(pk[2:])
        return revoked

    # -- publication ------------------------------------------------------------------------
    def snapshot(self) -> tuple[int, Snapshot]:
        """(version, what the list shows): every live revoked index, session and user. The
        version is taken before the scan, from a counter: a snapshot that begins after another
        has the larger number, so it is the one kept."""
        counter = self._table.update(
            _key("c#publish"),
            UpdateExpression="ADD #next :one",
            ExpressionAttributeNames={"#next": "next"},
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        version = _n(counter, "next")
        now = int(self._clock())
        revoked: set[int] = set()
        sessions: set[bytes] = set()
        users: dict[bytes, int] = {}
        for item in self._table.scan():
            pk = _s(item, "pk") or ""
            if _n(item, "expires_at") <= now:
                continue
            if pk.startswith("s#") and _revoked(item):
                sessions.add(session_digest(pk[2:]))
                idx = _n(item, "idx", -1)
                if 0 <= idx < CAPACITY:
                    revoked.add(idx)
            elif pk.startswith("u#"):
                users[user_digest(pk[2:])] = _n(item, "before")
        return version, Snapshot(frozenset(revoked), frozenset(sessions), users)

    def save_list(self, token: str, version: int, issuer: str, list_id: str = LIST_ID) -> bool:
        """Store a signed list unless a newer snapshot's is stored already; the issuer is kept
        for the scheduled publication (which has no request to derive it from)."""
        try:
            self._table.put(
                {
                    "pk": {"S": f"l#{list_id}"},
                    "token": {"S": token},
                    "version": {"N": str(version)},
                    "published_at": {"N": str(int(self._clock()))},
                    "issuer": {"S": issuer},
                },
                ConditionExpression="attribute_not_exists(pk) OR version < :v",
                ExpressionAttributeValues={":v": {"N": str(version)}},
            )
        except ConditionFailedError:
            return False
        return True

    def stored_list(self, list_id: str = LIST_ID) -> str | None:
        item = self._table.get(_key(f"l#{list_id}"))
        return _s(item, "token") if item is not None else None

    def stored_issuer(self, list_id: str = LIST_ID) -> str | None:
        item = self._table.get(_key(f"l#{list_id}"))
        return _s(item, "issuer") if item is not None else None


class StatusListPublisher:
    """Snapshot → signed status list token → stored: at each revocation and on a schedule, in
    the one function allowed to sign."""

    def __init__(
        self,
        store: RevocationStore,
        signer: Signer,
        clock: Clock = time.time,
        lifetime: int = LIST_LIFETIME_SECONDS,
        ttl: int = LIST_TTL_SECONDS,
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self._lifetime = lifetime
        self._ttl = ttl

    def publish(self, issuer: str) -> str:
        version, snapshot = self._store.snapshot()
        claims = status_list_claims(
            uri=list_uri(issuer),
            iat=int(self._clock()),
            lifetime=self._lifetime,
            ttl=self._ttl,
            revoked=snapshot.revoked,
            sessions=snapshot.sessions,
            users=snapshot.users,
        )
        token = sign_status_list(self._signer, claims)
        self._store.save_list(token, version, issuer)
        return token

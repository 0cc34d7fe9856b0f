"""The outbox in the store: enqueue, atomic claims and leases, the hand-over, lost claims,
polling bookkeeping."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from ..status import Status
from .base import SqlBase
from .records import ClaimedMessage, ClaimOutcome, OutboxEntry
from .rows import CHUNK, KEY_CHUNK, MESSAGE_COLUMNS, chunks, claimed_of
from .schema import PENDING_OUTBOX, history, outgoing

__all__ = ["OutboxClaims"]

log = logging.getLogger("smsbridge.store")


def _claimable(now: Any) -> list[Any]:
    """Conditions of a message any worker may claim at ``now``: pending in the outbox,
    due, its lease (if any) over, not handed over to a provider yet."""
    o = outgoing
    return [
        PENDING_OUTBOX,
        or_(o.c.send_at.is_(None), o.c.send_at <= now),
        or_(o.c.lease_until.is_(None), o.c.lease_until < now),
        o.c.sending_since.is_(None),
    ]


def _claiming(where: Any, now: Any) -> Any:
    """The UPDATE that claims the rows ``where`` selects, returning them."""
    o = outgoing
    return (
        update(o)
        .where(where)
        .values(
            claimed_by=bindparam("b_worker"),
            claim_token=bindparam("b_token"),
            lease_until=bindparam("b_lease", type_=o.c.lease_until.type),
            claims=o.c.claims + 1,
            updated_at=now,
        )
        .returning(o.c.seq, *MESSAGE_COLUMNS)
    )


def _mark_statement(with_token: bool) -> Any:
    o = outgoing
    cond = [
        o.c.id == bindparam("b_id"),
        o.c.claimed_by == bindparam("b_worker"),
        o.c.status == Status.pending.value,
    ]
    if with_token:
        cond.append(o.c.claim_token == bindparam("b_token"))
    return (
        update(o)
        .where(*cond)
        .values(
            sending_since=func.coalesce(o.c.sending_since, bindparam("b_now")),
            lease_until=bindparam("b_lease"),
        )
    )


_MARK = {True: _mark_statement(True), False: _mark_statement(False)}
#: The claiming statements' clock: the caller's ``now``, read once the write lock is held.
_NOW = bindparam("b_now", type_=outgoing.c.lease_until.type)
_CLAIM_GIVEN = _claiming(and_(outgoing.c.id == bindparam("b_id"), *_claimable(_NOW)), _NOW)


class OutboxClaims(SqlBase):
    """The outbox half of :class:`~smsbridge.store.protocol.OutboxStore`."""

    # ------------------------------------------------------------------ outbox
    def enqueue(self, entries: Sequence[OutboxEntry]) -> list[str]:
        """Store messages in the outbox in one transaction; returns their ids.

        A message whose ``idempotency_key`` is already stored (or repeated earlier in
        ``entries``) is not stored again: its position gets the first message's id.
        """
        now = self.clock()
        keys = [e.message.idempotency_key for e in entries if e.message.idempotency_key]
        stmt = self._insert(outgoing)
        if keys:
            stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])
        with self._write() as conn:
            for chunk in chunks(entries, CHUNK):  # rows built per chunk: bounded memory
                rows = [
                    self._outgoing_row(
                        e.message_id,
                        e.message,
                        to=e.to,
                        segments=e.segments,
                        encoding=e.encoding,
                        now=now,
                        outbox=True,
                        lane=e.lane,
                    )
                    for e in chunk
                ]
                conn.execute(stmt, rows)
            by_key = self._ids_for_keys(conn, keys) if keys else {}
        return [
            by_key.get(e.message.idempotency_key, e.message_id)
            if e.message.idempotency_key
            else e.message_id
            for e in entries
        ]

    def claim(
        self,
        worker: str,
        *,
        lanes: Sequence[str] | None = None,
        exclude_lanes: Sequence[str] | None = None,
        limit: int = 10,
        lease: float = 30.0,
        now: datetime | None = None,
    ) -> list[ClaimedMessage]:
        """Atomically take up to ``limit`` due outbox messages for ``worker``, oldest first.

        ``lanes`` restricts to those lanes; ``exclude_lanes`` takes every other lane
        (messages whose phone left the config). A claim lasts ``lease`` seconds unless
        renewed; messages claimed by a lost worker become claimable again after that,
        except those it had started sending (see :meth:`lost_claims`).
        """
        stmt = self._claim_statement(
            tuple(lanes) if lanes is not None else None, tuple(exclude_lanes or ())
        )
        with self._write() as conn:
            # the clock is read once the write lock is held (SQLite): a claim that waited
            # for the lock must not start with a lease that is already running out
            now = now or self.clock()
            params = {
                "b_now": now,
                "b_limit": limit,
                "b_worker": worker,
                "b_token": secrets.token_hex(8),
                "b_lease": now + timedelta(seconds=lease),
            }
            rows = sorted(conn.execute(stmt, params).all(), key=lambda r: r.seq)
        return [claimed_of(r) for r in rows]

    def _claim_statement(self, lanes: tuple[str, ...] | None, exclude: tuple[str, ...]) -> Any:
        """The claiming UPDATE for a set of lanes, built once per set (hot path)."""
        key = (lanes, exclude)
        stmt = self._claim_statements.get(key)
        if stmt is not None:
            return stmt
        o = outgoing
        cond = _claimable(_NOW)
        if lanes is not None:
            cond.append(o.c.lane.in_(list(lanes)))
        if exclude:
            cond.append(or_(o.c.lane.is_(None), o.c.lane.not_in(list(exclude))))
        candidates = (
            select(o.c.seq)
            .where(*cond)
            .order_by(o.c.seq)
            .limit(bindparam("b_limit"))
            .with_for_update(skip_locked=True)
        )
        stmt = _claiming(o.c.seq.in_(candidates.scalar_subquery()), _NOW)
        self._claim_statements[key] = stmt
        return stmt

    def claim_one(
        self,
        message_id: str,
        *,
        owner: str,
        lease: float = 30.0,
        resend_ambiguous: bool = False,
    ) -> ClaimOutcome:
        """Claim one given outbox message (task queues that carry message ids).

        A message whose previous owner's lease expired after it had started sending
        is settled first: ``unknown`` (state ``done``), or claimed again when
        ``resend_ambiguous``.
        """
        o = outgoing
        with self._write() as conn:
            now = self.clock()
            # The common case in one statement: pending, due, unclaimed → claimed.
            claimed = conn.execute(
                _CLAIM_GIVEN,
                {
                    "b_id": message_id,
                    "b_now": now,
                    "b_worker": owner,
                    "b_token": secrets.token_hex(8),
                    "b_lease": now + timedelta(seconds=lease),
                },
            ).first()
            if claimed is not None:
                item = claimed_of(claimed)
                return ClaimOutcome(
                    "claimed", message=item.message, status=Status.pending.value, claimed=item
                )
            # Otherwise find out why (and settle a lost send) under the row's lock.
            row = conn.execute(
                select(o.c.seq, o.c.status, o.c.outbox, o.c.sending_since, *MESSAGE_COLUMNS)
                .where(o.c.id == message_id)
                .with_for_update()
            ).first()
            if row is None or not row.outbox:
                return ClaimOutcome("missing")
            if row.status != Status.pending.value:
                return ClaimOutcome("done", status=row.status)
            if row.send_at is not None and row.send_at > now:
                wait = (row.send_at - now).total_seconds()
                return ClaimOutcome("not_due", retry_in=wait, status=row.status)
            if row.lease_until is not None and row.lease_until > now:
                wait = (row.lease_until - now).total_seconds()
                return ClaimOutcome("busy", retry_in=wait, status=row.status)
            if row.sending_since is not None and not resend_ambiguous:
                self._settle_lost(conn, claimed_of(row), now, resend=False)
                return ClaimOutcome("done", status=Status.unknown.value)
            claimed = conn.execute(
                update(o)
                .where(o.c.id == message_id)
                .values(
                    claimed_by=owner,
                    claim_token=secrets.token_hex(8),
                    lease_until=now + timedelta(seconds=lease),
                    sending_since=None,
                    claims=o.c.claims + 1,
                    updated_at=now,
                )
                .returning(o.c.seq, *MESSAGE_COLUMNS)
            ).one()
        item = claimed_of(claimed)
        return ClaimOutcome("claimed", message=item.message, status=row.status, claimed=item)

    def pending_ids(self, *, older_than: float = 0.0, limit: int = 10_000) -> list[str]:
        """Ids of due outbox messages no live worker holds, stored at least
        ``older_than`` seconds ago, oldest first (for re-dispatching lost tasks)."""
        o = outgoing
        now = self.clock()
        with self._read() as conn:
            rows = conn.execute(
                select(o.c.id)
                .where(
                    PENDING_OUTBOX,
                    or_(o.c.send_at.is_(None), o.c.send_at <= now),
                    or_(o.c.lease_until.is_(None), o.c.lease_until < now),
                    o.c.created_at <= now - timedelta(seconds=older_than),
                )
                .order_by(o.c.seq)
                .limit(limit)
            )
            return [r.id for r in rows]

    def count_waiting(self, *, older_than: float) -> int:
        """How many due outbox messages no worker holds were stored more than
        ``older_than`` seconds ago: a backlog no worker is draining (none running, or
        none consuming their queue)."""
        o = outgoing
        now = self.clock()
        with self._read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(o)
                    .where(
                        PENDING_OUTBOX,
                        or_(o.c.send_at.is_(None), o.c.send_at <= now),
                        or_(o.c.lease_until.is_(None), o.c.lease_until < now),
                        o.c.created_at <= now - timedelta(seconds=older_than),
                    )
                ).scalar_one()
            )

    def mark_sending(
        self,
        message_id: str,
        worker: str,
        *,
        token: str | None = None,
        lease: float = 30.0,
    ) -> bool:
        """Record that ``worker`` is about to hand the message to a provider.

        False when the claim (``token``: the one :meth:`claim` returned) is no longer
        held: the caller must then not send. From here on, a lost worker's message is
        not resent blindly (see :meth:`lost_claims`).
        """
        with self._write() as conn:
            now = self.clock()
            params = {
                "b_id": message_id,
                "b_worker": worker,
                "b_token": token,
                "b_now": now,
                "b_lease": now + timedelta(seconds=lease),
            }
            return bool(conn.execute(_MARK[token is not None], params).rowcount == 1)

    def renew(self, worker: str, *, lease: float = 30.0) -> int:
        """Extend every live claim of ``worker`` (its heartbeat); returns how many."""
        o = outgoing
        with self._write() as conn:
            now = self.clock()
            result = conn.execute(
                update(o)
                .where(o.c.claimed_by == worker, o.c.status == Status.pending.value)
                .values(lease_until=now + timedelta(seconds=lease))
            )
            return int(result.rowcount)

    def release(self, worker: str, message_ids: Sequence[str] | None = None) -> int:
        """Give back claimed messages ``worker`` has not started sending."""
        o = outgoing
        cond = [
            o.c.claimed_by == worker,
            o.c.status == Status.pending.value,
            o.c.sending_since.is_(None),
        ]
        if message_ids is not None:
            if not message_ids:
                return 0
            cond.append(o.c.id.in_(list(message_ids)))
        with self._write() as conn:
            result = conn.execute(
                update(o).where(*cond).values(claimed_by=None, claim_token=None, lease_until=None)
            )
            return int(result.rowcount)

    def lost_claims(self, *, now: datetime | None = None, limit: int = 100) -> list[ClaimedMessage]:
        """Messages a worker started sending and then lost (lease expired, still pending),
        and direct sends still ``pending`` after ``pending_grace`` (their process died
        between the record and the outcome).

        They may have reached the provider: resolve each with :meth:`resolve_lost`.
        """
        o = outgoing
        now = now or self.clock()
        with self._read() as conn:
            # (no status test in SQL: it would steer SQLite to the status index; rows
            # leave the in-flight index when their outcome is recorded)
            rows = conn.execute(
                select(o.c.seq, o.c.status, *MESSAGE_COLUMNS)
                .where(o.c.sending_since.is_not(None), o.c.lease_until < now)
                .order_by(o.c.lease_until)
                .limit(limit)
            ).all()
        return [claimed_of(r) for r in rows if r.status == Status.pending.value]

    def resolve_lost(self, lost: ClaimedMessage, *, resend: bool) -> bool:
        """Settle a lost in-flight message: ``unknown`` (it may have gone out), or back
        to the outbox when its route allows resending ambiguous messages (outbox messages
        only: a direct send is never resent). False when something else settled it first."""
        with self._write() as conn:
            return self._settle_lost(conn, lost, self.clock(), resend=resend and lost.outbox)

    @staticmethod
    def _settle_lost(
        conn: Connection, lost: ClaimedMessage, now: datetime, *, resend: bool
    ) -> bool:
        o = outgoing
        owner = o.c.claimed_by
        cond = [
            o.c.id == lost.message_id,
            o.c.status == Status.pending.value,
            o.c.sending_since.is_not(None),
            o.c.lease_until < now,
            owner.is_(None) if lost.claimed_by is None else owner == lost.claimed_by,
        ]
        if resend:
            values: dict[str, Any] = {
                "claimed_by": None,
                "claim_token": None,
                "lease_until": None,
                "sending_since": None,
                "updated_at": now,
            }
            return bool(conn.execute(update(o).where(*cond).values(values)).rowcount == 1)
        who = "worker" if lost.outbox else f"process ({lost.claimed_by})"
        error = {
            "type": "AmbiguousSend",
            "message": f"the {who} sending it stopped before recording the outcome; "
            "it may or may not have gone out",
            "phone": None,
            "retryable": False,
            "provider_code": None,
        }
        changed = conn.execute(
            update(o)
            .where(*cond)
            .values(
                status=Status.unknown.value,
                status_at=now,
                updated_at=now,
                error=error,
                claimed_by=None,
                claim_token=None,
                lease_until=None,
                sending_since=None,
            )
        ).rowcount
        if changed != 1:
            return False
        conn.execute(
            insert(history).values(
                message_id=lost.message_id,
                at=now,
                status=Status.unknown.value,
                error_message=error["message"],
                source="worker",
            )
        )
        return True

    def next_due(self) -> datetime | None:
        """When the earliest scheduled outbox message becomes due (None: none waiting)."""
        o = outgoing
        with self._read() as conn:
            value: datetime | None = conn.execute(
                select(func.min(o.c.send_at)).where(PENDING_OUTBOX, o.c.send_at.is_not(None))
            ).scalar()
        return value

    def to_poll(
        self, phone: str, *, limit: int = 100, max_age: timedelta = timedelta(days=3)
    ) -> list[tuple[str, str]]:
        """(message id, provider id) of ``phone``'s messages still waiting for a final
        status, least recently polled first (for phones whose status_mode is poll)."""
        o = outgoing
        since = self.clock() - max_age
        with self._read() as conn:
            rows = conn.execute(
                select(o.c.id, o.c.provider_id)
                .where(
                    o.c.phone == phone,
                    o.c.provider_id.is_not(None),
                    o.c.status.in_([Status.queued.value, Status.sent.value, Status.unknown.value]),
                    o.c.created_at >= since,
                )
                .order_by(o.c.polled_at.is_not(None), o.c.polled_at, o.c.seq)
                .limit(limit)
            ).all()
        return [(r.id, r.provider_id) for r in rows]

    def mark_polled(self, message_ids: Sequence[str]) -> None:
        if not message_ids:
            return
        now = self.clock()
        with self._write() as conn:
            for chunk in chunks(list(message_ids), KEY_CHUNK):
                conn.execute(update(outgoing).where(outgoing.c.id.in_(chunk)).values(polled_at=now))

"""Read-side queries for the CLI and operators: counts, listings, one message with its
history, retention."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    delete,
    func,
    or_,
    select,
)

from ..message import (
    Attempt,
    IncomingMessage,
)
from ..status import Status
from .base import SqlBase
from .records import HistoryEntry, StoredMessage
from .schema import attempts, history, incoming, outgoing

__all__ = ["PurgeCounts", "Queries"]

log = logging.getLogger("smsbridge.store")


class PurgeCounts(int):
    """How many rows :meth:`Queries.delete_before` deleted (or would delete), per table;
    as an ``int``, the outgoing messages."""

    tables: dict[str, int]

    def __new__(cls, outgoing: int, tables: dict[str, int]) -> PurgeCounts:
        value = super().__new__(cls, outgoing)
        value.tables = dict(tables)
        return value


class Queries(SqlBase):
    """Listings and look-ups (``smsbridge outbox``, ``inbox``, ``status``); ``delete_before``."""

    # ------------------------------------------------------------------ queries
    def counts(self, *, outbox: bool | None = None) -> dict[str, int]:
        """Number of outgoing messages per status."""
        o = outgoing
        query = select(o.c.status, func.count()).group_by(o.c.status)
        if outbox is not None:
            query = query.where(o.c.outbox.is_(outbox))
        with self._read() as conn:
            return {str(status): int(n) for status, n in conn.execute(query)}

    def find_ids(self, prefix: str, *, limit: int = 2) -> list[str]:
        """Message ids starting with ``prefix`` (for short ids typed by humans)."""
        o = outgoing
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._read() as conn:
            rows = conn.execute(
                select(o.c.id).where(o.c.id.like(escaped + "%", escape="\\")).limit(limit)
            )
            return [r.id for r in rows]

    def get_message(self, message_id: str) -> StoredMessage | None:
        """Everything stored about one outgoing message, with attempts and history."""
        with self._read() as conn:
            row = conn.execute(select(outgoing).where(outgoing.c.id == message_id)).first()
            if row is None:
                return None
            tried = self._attempts(conn, message_id)
            h = history
            lines = conn.execute(
                select(h).where(h.c.message_id == message_id).order_by(h.c.at, h.c.id)
            ).all()
        entries = [
            HistoryEntry(
                at=row.created_at,
                status=Status.pending,
                source="enqueue" if row.outbox else "send",
            )
        ] + [
            HistoryEntry(
                at=r.at,
                status=Status(r.status),
                source=r.source,
                raw_status=r.raw_status,
                error_code=r.error_code,
                error_message=r.error_message,
                phone=r.phone,
                provider_id=r.provider_id,
            )
            for r in lines
        ]
        return self._stored(row, tried, entries)

    @staticmethod
    def _stored(
        row: Row[Any], tried: Sequence[Attempt] = (), entries: Sequence[HistoryEntry] = ()
    ) -> StoredMessage:
        return StoredMessage(
            message_id=row.id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            to=row.to,
            body=row.body,
            status=Status(row.status),
            status_at=row.status_at,
            phone=row.phone,
            provider_id=row.provider_id,
            segments=int(row.segments),
            encoding=row.encoding,
            sender=row.sender,
            tag=row.tag,
            requested_phone=row.requested_phone,
            idempotency_key=row.idempotency_key,
            metadata=dict(row.meta or {}),
            error=row.error,
            outbox=bool(row.outbox),
            lane=row.lane,
            send_at=row.send_at,
            claimed_by=row.claimed_by,
            lease_until=row.lease_until,
            attempts=tuple(tried),
            history=tuple(entries),
            template=row.template,
            locale=row.locale,
        )

    def list_outgoing(
        self,
        *,
        status: Status | str | Sequence[Status | str] | None = None,
        phone: str | None = None,
        since: datetime | None = None,
        outbox: bool | None = None,
        limit: int | None = 50,
        newest_first: bool = True,
    ) -> list[StoredMessage]:
        """Outgoing messages, filtered (``phone`` matches the phone used or the lane)."""
        o = outgoing
        query = select(o)
        if status is not None:
            wanted = [status] if isinstance(status, (str, Status)) else list(status)
            query = query.where(o.c.status.in_([Status(s).value for s in wanted]))
        if phone is not None:
            query = query.where(
                or_(o.c.phone == phone, and_(o.c.phone.is_(None), o.c.lane == phone))
            )
        if since is not None:
            query = query.where(o.c.created_at >= since)
        if outbox is not None:
            query = query.where(o.c.outbox.is_(outbox))
        query = query.order_by(o.c.seq.desc() if newest_first else o.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [self._stored(r) for r in rows]

    def list_incoming(
        self,
        *,
        phone: str | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
    ) -> list[IncomingMessage]:
        """Inbound messages, newest first."""
        i = incoming
        query = select(i)
        if phone is not None:
            query = query.where(i.c.phone == phone)
        if since is not None:
            query = query.where(i.c.received_at >= since)
        query = query.order_by(i.c.received_at.desc(), i.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            IncomingMessage(
                id=r.id,
                phone=r.phone,
                sender=r.sender,
                recipient=r.recipient,
                body=r.body,
                received_at=r.received_at,
                provider_id=r.provider_id,
                media=tuple(r.media or ()),
                raw=r.raw,
            )
            for r in rows
        ]

    def delete_before(
        self,
        before: datetime,
        *,
        statuses: Sequence[Status | str] | None = None,
        dry_run: bool = False,
    ) -> PurgeCounts:
        """Delete outgoing messages created before ``before`` (with their history and
        attempts), never a ``pending`` one, and inbound messages received before it.

        ``statuses``: only outgoing messages in these statuses (inbound messages are then
        kept). ``dry_run``: count, delete nothing. Returns the counts per table; as an
        ``int`` it is the number of outgoing messages.
        """
        o = outgoing
        wanted = [Status(s).value for s in statuses] if statuses else None
        if wanted is not None and Status.pending.value in wanted:
            raise ValueError("pending messages are never purged (they may still go out)")
        cond = [o.c.created_at < before, o.c.status != Status.pending.value]
        if wanted is not None:
            cond.append(o.c.status.in_(wanted))
        doomed = select(o.c.id).where(*cond)
        tables: dict[str, tuple[Any, Any]] = {
            "history": (history, history.c.message_id.in_(doomed)),
            "attempts": (attempts, attempts.c.message_id.in_(doomed)),
            "outgoing": (o, and_(*cond)),
        }
        if wanted is None:
            tables["incoming"] = (incoming, incoming.c.received_at < before)
        counts: dict[str, int] = {"incoming": 0}
        with self._write() as conn:
            for name, (table, where) in tables.items():
                if dry_run:
                    query = select(func.count()).select_from(table).where(where)
                    counts[name] = int(conn.execute(query).scalar_one())
                else:
                    counts[name] = int(conn.execute(delete(table).where(where)).rowcount)
        return PurgeCounts(counts["outgoing"], counts)

"""The send lifecycle and reports in the store: pending, attempts, outcomes, status
history, inbound messages."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    bindparam,
    case,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from ..message import (
    Attempt,
    IncomingMessage,
    OutgoingMessage,
    SendResult,
    StatusReport,
)
from ..status import Status
from .base import SqlBase
from .rows import error_from_json, error_json, report_key
from .schema import attempts, history, incoming, outgoing

__all__ = ["MessageRecords"]

log = logging.getLogger("smsbridge.store")

# ---------------------------------------------------------------------- hot statements
# Built once: SQLAlchemy memoises a statement's cache key, so the per-message path
# (hand-over, attempt, outcome) skips statement construction and compilation.
_INSERT_ATTEMPT = insert(attempts)
_INSERT_HISTORY = insert(history)


def _finish_statement(new: Status) -> Any:
    o = outgoing
    movable = [s.value for s in Status if s.may_become(new)]
    moves = o.c.status.in_(movable)
    return (
        update(o)
        .where(o.c.id == bindparam("b_id"))
        .values(
            status=case((moves, new.value), else_=o.c.status),
            status_at=case((moves, bindparam("b_now")), else_=o.c.status_at),
            phone=bindparam("b_phone"),
            provider_id=bindparam("b_provider_id"),
            segments=bindparam("b_segments"),
            encoding=bindparam("b_encoding"),
            error=bindparam("b_error", type_=o.c.error.type),
            raw=bindparam("b_raw", type_=o.c.raw.type),
            updated_at=bindparam("b_now"),
            claimed_by=None,
            claim_token=None,
            lease_until=None,
            sending_since=None,
        )
        .returning(o.c.status)
    )


_FINISH = {status: _finish_statement(status) for status in Status}

_ADOPT = (
    update(history)
    .where(
        history.c.message_id.is_(None),
        history.c.phone == bindparam("b_phone"),
        history.c.provider_id == bindparam("b_pid"),
    )
    .values(message_id=bindparam("b_id"))
    .returning(history.c.id, history.c.status, history.c.at)
)


class MessageRecords(SqlBase):
    """``begin_send`` → ``record_attempt`` → ``finish_send``; ``apply_status``;
    ``record_incoming``."""

    # ------------------------------------------------------------------ MessageStore
    def begin_send(
        self,
        message_id: str,
        message: OutgoingMessage,
        *,
        to: str,
        segments: int,
        encoding: str,
    ) -> SendResult | None:
        key = message.idempotency_key
        existing: str | None = None
        if key:
            with self._read() as conn:
                existing = self._ids_for_keys(conn, [key]).get(key)
            if existing is not None:
                return self.get_result(existing)
        row = self._outgoing_row(
            message_id,
            message,
            to=to,
            segments=segments,
            encoding=encoding,
            now=self.clock(),
            outbox=False,
            lane=None,
            grace=self.pending_grace,
        )
        with self._write() as conn:
            inserted = conn.execute(self._insert_outgoing, row).first() is not None
            if not inserted and key:
                existing = self._ids_for_keys(conn, [key]).get(key)
        if inserted:
            return None
        assert existing is not None
        return self.get_result(existing)

    def record_attempt(self, message_id: str, attempt: Attempt) -> None:
        """A failed attempt is written at once (more provider calls follow it); a
        successful one is written with the outcome by :meth:`finish_send`, which the
        send lifecycle calls right after it: one commit less per message."""
        row = {
            "message_id": message_id,
            "phone": attempt.phone,
            "error": attempt.error,
            "error_type": attempt.error_type,
            "at": attempt.at,
            "retries": attempt.retries,
        }
        if attempt.error is None:
            with self._held_lock:
                self._held_attempts.setdefault(message_id, []).append(row)
            return
        with self._write() as conn:
            conn.execute(_INSERT_ATTEMPT, row)

    def finish_send(self, result: SendResult) -> None:
        now = self.clock()
        params = {
            "b_id": result.message_id,
            "b_phone": result.phone,
            "b_provider_id": result.provider_id,
            "b_segments": result.segments,
            "b_encoding": result.encoding,
            "b_error": error_json(result.error),
            "b_raw": result.raw,
            "b_now": now,
        }
        with self._held_lock:
            held = self._held_attempts.pop(result.message_id, None)
        with self._write() as conn:
            # one conditional UPDATE: the status moves only where Status.may_become allows
            row = conn.execute(_FINISH[result.status], params).first()
            if row is None:
                log.warning("finish_send: message %s is not in the store", result.message_id)
                return
            if held:
                conn.execute(_INSERT_ATTEMPT, held)
            conn.execute(
                _INSERT_HISTORY,
                {
                    "message_id": result.message_id,
                    "at": now,
                    "status": result.status.value,
                    "raw_status": None,
                    "error_code": getattr(result.error, "provider_code", None),
                    "error_message": str(result.error) if result.error is not None else None,
                    "phone": result.phone,
                    "provider_id": result.provider_id,
                    "source": "send",
                    "report_key": None,
                    "raw": None,
                },
            )
            if result.phone and result.provider_id:
                self._adopt_early_reports(conn, result, Status(row.status))

    @staticmethod
    def _adopt_early_reports(conn: Connection, result: SendResult, status: Status) -> None:
        """Reports that arrived before the provider id was stored: attach and apply them."""
        early = conn.execute(
            _ADOPT,
            {"b_id": result.message_id, "b_phone": result.phone, "b_pid": result.provider_id},
        ).all()
        at = None
        for r in sorted(early, key=lambda r: r.id):
            new = Status(r.status)
            if status.may_become(new):
                status, at = new, r.at
        if at is not None:
            conn.execute(
                update(outgoing)
                .where(outgoing.c.id == result.message_id)
                .values(status=status.value, status_at=at)
            )

    def apply_status(self, report: StatusReport) -> tuple[StatusReport, bool]:
        o = outgoing
        now = self.clock()
        with self._write() as conn:
            row = None
            if report.message_id:
                row = conn.execute(
                    select(o.c.id, o.c.status).where(o.c.id == report.message_id).with_for_update()
                ).first()
            if row is None and report.provider_id:
                row = conn.execute(
                    select(o.c.id, o.c.status)
                    .where(o.c.phone == report.phone, o.c.provider_id == report.provider_id)
                    .order_by(o.c.seq.desc())
                    .limit(1)
                    .with_for_update()
                ).first()
            message_id = row.id if row is not None else None
            values = {
                "message_id": message_id,
                "at": report.at,
                "status": report.status.value,
                "raw_status": None if report.raw_status is None else str(report.raw_status),
                "error_code": None if report.error_code is None else str(report.error_code),
                "error_message": report.error_message,
                "phone": report.phone,
                "provider_id": report.provider_id,
                "source": "report",
                "report_key": (
                    report_key(report.phone, report.provider_id, report.status)
                    if report.provider_id
                    else None
                ),
                "raw": report.raw,
            }
            stmt = self._insert(history).values(values)
            if report.provider_id:
                stmt = stmt.on_conflict_do_nothing(index_elements=["report_key"])
            # RETURNING, not rowcount: implicit RETURNING of the key hides rowcount on PG
            fresh = conn.execute(stmt.returning(history.c.id)).first() is not None
            if fresh and row is not None and Status(row.status).may_become(report.status):
                conn.execute(
                    update(o)
                    .where(o.c.id == message_id)
                    .values(status=report.status.value, status_at=report.at, updated_at=now)
                )
        if message_id is not None and report.message_id != message_id:
            report = replace(report, message_id=message_id)
        return report, fresh

    def record_incoming(self, message: IncomingMessage) -> bool:
        stmt = (
            self._insert(incoming)
            .values(
                id=message.id,
                phone=message.phone,
                sender=message.sender,
                recipient=message.recipient,
                body=message.body,
                received_at=message.received_at,
                stored_at=self.clock(),
                provider_id=message.provider_id,
                media=list(message.media) or None,
                raw=message.raw,
            )
            .on_conflict_do_nothing()
        )
        with self._write() as conn:
            return conn.execute(stmt.returning(incoming.c.id)).first() is not None

    def get_result(self, message_id: str) -> SendResult | None:
        o = outgoing
        with self._read() as conn:
            row = conn.execute(
                select(
                    o.c.id,
                    o.c.status,
                    o.c.phone,
                    o.c.provider_id,
                    o.c.to,
                    o.c.segments,
                    o.c.encoding,
                    o.c.error,
                    o.c.raw,
                    o.c.template,
                    o.c.locale,
                ).where(o.c.id == message_id)
            ).first()
            if row is None:
                return None
            tried = self._attempts(conn, message_id)
        return SendResult(
            message_id=row.id,
            status=Status(row.status),
            phone=row.phone,
            provider_id=row.provider_id,
            to=row.to,
            segments=int(row.segments),
            encoding=row.encoding,
            error=error_from_json(row.error),
            attempts=tuple(tried),
            raw=row.raw,
            template=row.template,
            locale=row.locale,
        )

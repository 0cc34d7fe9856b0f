"""Rows to values and back, shared by the store's modules."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .. import errors as errors_module
from ..errors import SendError, SmsBridgeError, error_from_dict
from ..message import (
    OutgoingMessage,
)
from ..status import Status
from .records import ClaimedMessage
from .schema import outgoing

__all__ = [
    "CHUNK",
    "KEY_CHUNK",
    "MESSAGE_COLUMNS",
    "chunks",
    "claimed_of",
    "error_from_json",
    "error_json",
    "message_of",
    "report_key",
]

log = logging.getLogger("smsbridge.store")

CHUNK = 2000  # rows per INSERT batch
KEY_CHUNK = 500  # values per IN (...) lookup


# ---------------------------------------------------------------------- helpers
def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def error_json(error: BaseException | None) -> dict[str, Any] | None:
    if error is None:
        return None
    to_dict = getattr(error, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, dict):
            return data
    return {"type": type(error).__name__, "message": str(error)}


def error_from_json(data: Mapping[str, Any] | None) -> BaseException | None:
    if not data:
        return None
    name = str(data.get("type", ""))
    cls = getattr(errors_module, name, None)
    if isinstance(cls, type) and issubclass(cls, SendError):
        return error_from_dict(data)
    message = str(data.get("message", ""))
    if isinstance(cls, type) and issubclass(cls, SmsBridgeError):
        try:
            return cls(message)
        except TypeError:  # pragma: no cover - an error class with required arguments
            pass
    return SmsBridgeError(f"{name}: {message}" if name else message)


def report_key(phone: str, provider_id: str, status: Status) -> str:
    return f"{phone}\x1f{provider_id}\x1f{status.value}"


def message_of(row: Any) -> OutgoingMessage:
    return OutgoingMessage(
        to=row.to,
        body=row.body,
        sender=row.sender,
        phone=row.requested_phone,
        tag=row.tag,
        flash=bool(row.flash),
        media=tuple(row.media or ()),
        metadata=dict(row.meta or {}),
        idempotency_key=row.idempotency_key,
        send_at=row.send_at,
        template=row.template,
        locale=row.locale,
    )


MESSAGE_COLUMNS = (
    outgoing.c.id,
    outgoing.c.to,
    outgoing.c.body,
    outgoing.c.sender,
    outgoing.c.requested_phone,
    outgoing.c.tag,
    outgoing.c.flash,
    outgoing.c.media,
    outgoing.c.meta,
    outgoing.c.idempotency_key,
    outgoing.c.send_at,
    outgoing.c.lane,
    outgoing.c.claimed_by,
    outgoing.c.claim_token,
    outgoing.c.lease_until,
    outgoing.c.claims,
    outgoing.c.template,
    outgoing.c.locale,
    outgoing.c.outbox,
)


def claimed_of(row: Any) -> ClaimedMessage:
    return ClaimedMessage(
        message_id=row.id,
        message=message_of(row),
        lane=row.lane,
        claimed_by=row.claimed_by,
        lease_until=row.lease_until,
        claims=int(row.claims or 0),
        token=row.claim_token,
        outbox=bool(row.outbox),
    )

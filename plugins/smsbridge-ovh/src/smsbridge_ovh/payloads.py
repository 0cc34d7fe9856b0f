"""OVH's bodies: the job sent for a message, the status callback's fields, replies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from smsbridge.errors import MessageError, WebhookParseError
from smsbridge.numbers import normalize
from smsbridge.phone import PreparedMessage

from .options import OvhOptions

__all__ = ["OVH_TZ", "callback_fields", "job", "reply_sender", "when"]

OVH_TZ = ZoneInfo("Europe/Paris")  # OVH's API answers in Paris time when it omits an offset


def job(message: PreparedMessage, options: OvhOptions) -> dict[str, Any]:
    """The ``POST /sms/{service}/jobs`` body for one message to one receiver."""
    sender = message.sender or options.sender
    payload: dict[str, Any] = {
        "message": message.body,
        "receivers": [message.to],
        "charset": "UTF-8",
        "noStopClause": options.no_stop_clause,
    }
    if sender:
        payload["sender"], payload["senderForResponse"] = sender, False
    else:
        payload["senderForResponse"] = True
    if options.priority:
        payload["priority"] = options.priority
    if options.validity_period:
        payload["validityPeriod"] = options.validity_period
    if message.tag:
        payload["tag"] = message.tag
    return payload


def callback_fields(params: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """The SMS id, DLR id (``dlr`` or ``description``) and ptt of a status callback."""
    sms_id = params.get("id", "").strip()
    if not sms_id:
        raise WebhookParseError("OVH status callback without 'id'")
    dlr = params.get("dlr") or params.get("description")
    ptt = params.get("ptt")
    if not dlr and not ptt:
        raise WebhookParseError("OVH status callback needs 'dlr', 'description' or 'ptt'")
    return sms_id, dlr, ptt


def reply_sender(value: Any, region: str | None) -> str:
    """A reply's sender in E.164 (national numbers read in ``region``, ``0033...``
    accepted); shortcodes and names stay as OVH wrote them."""
    sender = str(value or "")
    try:
        return normalize(sender, region)
    except MessageError:
        return sender


def when(value: Any) -> datetime | None:
    """An OVH datetime in UTC (Paris time when it has no offset); None if unreadable."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=OVH_TZ)).astimezone(UTC)

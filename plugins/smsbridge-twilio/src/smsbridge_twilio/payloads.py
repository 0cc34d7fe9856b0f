"""Twilio's callback fields and fetched messages, read into smsbridge reports and messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from smsbridge.errors import WebhookParseError
from smsbridge.message import IncomingMessage, StatusReport
from smsbridge.numbers import lenient_number
from smsbridge.phone import Phone

__all__ = ["fetched_report", "inbound_message", "status_report"]


def status_report(phone: Phone, data: Mapping[str, str]) -> StatusReport:
    """A status callback's report (``MessageSid``/``MessageStatus``, or the legacy ``Sms*``)."""
    sid = data.get("MessageSid") or data.get("SmsSid")
    raw_status = data.get("MessageStatus") or data.get("SmsStatus")
    if not sid or not raw_status:
        raise WebhookParseError("Twilio status callback without MessageSid/MessageStatus")
    return phone.report(
        sid,
        raw_status,
        error_code=data.get("ErrorCode"),
        error_message=data.get("ErrorMessage"),
        raw=dict(data),
        recipient=lenient_number(data.get("To")),
    )


def inbound_message(phone: Phone, data: Mapping[str, str]) -> IncomingMessage:
    """An inbound SMS/MMS: ``From``, ``To``, ``Body`` and ``NumMedia`` × ``MediaUrlN``."""
    sender = lenient_number(data.get("From"))
    if not sender:
        raise WebhookParseError("Twilio inbound message without From")
    try:
        count = int(data.get("NumMedia") or 0)
    except ValueError:
        raise WebhookParseError(f"NumMedia is not a number: {data['NumMedia']!r}") from None
    media = tuple(data[f"MediaUrl{i}"] for i in range(count) if data.get(f"MediaUrl{i}"))
    if count < 0 or len(media) != count:
        raise WebhookParseError(f"NumMedia={count} but {len(media)} MediaUrlN fields")
    return IncomingMessage(
        phone=phone.name,
        sender=sender,
        recipient=lenient_number(data.get("To")),
        body=data.get("Body", ""),
        received_at=phone.clock(),
        provider_id=data.get("MessageSid") or data.get("SmsMessageSid") or None,
        media=media,
        raw=dict(data),
    )


def fetched_report(phone: Phone, message: Any, provider_id: str, raw: Any) -> StatusReport:
    """The report of a fetched SDK ``MessageInstance`` (``raw``: the answer's JSON)."""
    updated = message.date_updated if hasattr(message.date_updated, "tzinfo") else None
    return phone.report(
        message.sid or provider_id,
        message.status,
        error_code=message.error_code or None,
        error_message=message.error_message or None,
        at=updated.astimezone(UTC) if updated else None,
        raw=raw,
        recipient=lenient_number(message.to),
    )

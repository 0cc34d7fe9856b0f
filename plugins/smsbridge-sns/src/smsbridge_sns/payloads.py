"""Parsing what AWS writes: SMS delivery-status log entries and two-way SMS notifications."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from smsbridge.errors import SendError, WebhookParseError
from smsbridge.message import IncomingMessage, StatusReport
from smsbridge.numbers import lenient_number
from smsbridge.phone import Phone
from smsbridge.status import Status

__all__ = ["find_log_entry", "incoming_message", "sender_number", "status_report"]

E164_LOOSE = re.compile(r"^\+[1-9]\d{5,14}$")

FilterLogEvents = Callable[..., Mapping[str, Any]]


def find_log_entry(
    filter_log_events: FilterLogEvents, group: str, provider_id: str, start_ms: int
) -> dict[str, Any] | None:
    """The delivery-status entry of ``provider_id`` in ``group``, or None.

    The JSON filter pattern narrows the search at AWS; every entry is re-checked here.
    """
    quoted = provider_id.replace("\\", "\\\\").replace('"', '\\"')
    params: dict[str, Any] = {
        "logGroupName": group,
        "filterPattern": f'{{ $.notification.messageId = "{quoted}" }}',
        "startTime": start_ms,
    }
    while True:
        try:
            page = filter_log_events(**params)
        except SendError as exc:
            if exc.provider_code == "ResourceNotFoundException":
                return None  # the group appears with its first log
            raise
        for event in page.get("events", []):
            try:
                entry = json.loads(event.get("message", ""))
            except ValueError:
                continue
            if isinstance(entry, dict) and dig(entry, "notification", "messageId") == provider_id:
                return entry
        token = page.get("nextToken")
        if not token or token == params.get("nextToken"):
            return None
        params["nextToken"] = token


def status_report(phone: Phone, provider_id: str, entry: dict[str, Any]) -> StatusReport:
    """A delivery-status log entry → the phone's :class:`StatusReport` (``raw``: the entry)."""
    raw_status = str(entry.get("status") or "")
    status = phone.map_status(raw_status)
    found = entry.get("delivery")
    delivery: dict[str, Any] = found if isinstance(found, dict) else {}
    return phone.report(
        provider_id,
        raw_status,
        status=status,
        error_message=delivery.get("providerResponse") if status is Status.failed else None,
        # Logs say "2016-06-28 00:40:34.558": UTC without a zone.
        at=iso_time(dig(entry, "notification", "timestamp")),
        raw=entry,
        recipient=delivery.get("destination"),
    )


def incoming_message(phone: str, envelope: Any, now: datetime) -> IncomingMessage:
    """An SNS Notification carrying a two-way SMS payload → :class:`IncomingMessage`."""
    if not isinstance(envelope, dict) or envelope.get("Type") != "Notification":
        raise WebhookParseError("expected an SNS Notification")
    try:
        sms = json.loads(str(envelope.get("Message", "")))
    except ValueError:
        raise WebhookParseError("SNS Message is not a two-way SMS JSON payload") from None
    if not isinstance(sms, dict) or not sms.get("originationNumber"):
        raise WebhookParseError("two-way SMS payload lacks originationNumber")
    return IncomingMessage(
        phone=phone,
        sender=sender_number(sms["originationNumber"]),
        recipient=lenient_number(sms.get("destinationNumber")),
        body=str(sms.get("messageBody") or ""),
        received_at=iso_time(envelope.get("Timestamp")) or now,
        provider_id=sms.get("inboundMessageId") or envelope.get("MessageId"),
        raw={"sns": envelope, "sms": sms},
    )


def dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def sender_number(value: Any) -> str:
    """The sender of an inbound SMS: E.164, or a ``+`` and digits AWS sent as is (short codes,
    new ranges); anything else is :class:`WebhookParseError`."""
    sender = lenient_number(value)
    if sender is None:
        raise WebhookParseError("missing phone number")
    if not E164_LOOSE.match(sender):
        raise WebhookParseError(f"not a phone number: {value!r}")
    return sender


def iso_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)

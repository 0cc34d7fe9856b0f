"""Orange's ``smsmessaging/v1`` JSON: the send request, its answer, and the delivery-receipt
(``deliveryInfoNotification``) and inbound (``inboundSMSMessageNotification``) callbacks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests

from smsbridge.errors import WebhookParseError
from smsbridge.http import WebhookRequest
from smsbridge.message import IncomingMessage
from smsbridge.numbers import lenient_number

from .admin import parse_datetime, resource_id

__all__ = [
    "ON_NET",
    "address",
    "delivery_infos",
    "inbound_messages",
    "provider_id",
    "send_request",
    "subscription_request",
]

#: Query parameter of a send on the Orange-only offer (SMS_OCB2 units).
ON_NET = {"resource_type_parameter_management": "SMS_OCB2"}


def send_request(to: str, sender: str, body: str, sender_name: str | None) -> dict[str, Any]:
    """The ``outboundSMSMessageRequest`` body for one recipient (E.164)."""
    request: dict[str, Any] = {
        "address": f"tel:{to}",
        "senderAddress": sender,
        "outboundSMSTextMessage": {"message": body},
    }
    if sender_name:
        request["senderName"] = sender_name
    return {"outboundSMSMessageRequest": request}


def subscription_request(notify_url: str) -> dict[str, Any]:
    """The body registering ``notify_url`` for delivery receipts."""
    return {"deliveryReceiptSubscription": {"callbackReference": {"notifyURL": notify_url}}}


def provider_id(response: requests.Response) -> tuple[str | None, Any]:
    """The accepted message's id (its ``resourceURL``, else ``Location``) and the body."""
    try:
        data = response.json()
    except ValueError:
        data = {}
    body = data.get("outboundSMSMessageRequest") if isinstance(data, dict) else None
    found = resource_id((body or {}).get("resourceURL")) or resource_id(
        response.headers.get("Location")
    )
    return found, data


def address(value: object) -> str | None:
    """An Orange address (``tel:+225...``, ``225...``, ``00225...``) in E.164, or ``+`` and
    the digits as given when libphonenumber does not know it (short codes)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().removeprefix("tel:").replace(" ", "")
    return lenient_number(text if text.startswith("+") else "+" + text.removeprefix("00"))


def _notification(request: WebhookRequest, key: str, item: str) -> tuple[Any, Any, list[Any]]:
    data = request.json()
    note = data.get(key) if isinstance(data, dict) else None
    if not isinstance(note, dict):
        raise WebhookParseError(f"expected an Orange {key} JSON body")
    items = note.get(item)
    items = items if isinstance(items, list) else [items]
    if not items or not all(isinstance(i, dict) for i in items):
        raise WebhookParseError(f"{key}.{item} is missing or not an object")
    return note, data, items


def delivery_infos(request: WebhookRequest) -> tuple[str | None, Any, list[tuple[str, str | None]]]:
    """A delivery receipt: the message id (``callbackData``), the body, and each
    ``(deliveryStatus, recipient)``."""
    note, data, infos = _notification(request, "deliveryInfoNotification", "deliveryInfo")
    callback = note.get("callbackData")
    message_id = str(callback).strip() or None if callback is not None else None
    found = []
    for info in infos:
        raw = info.get("deliveryStatus")
        if not isinstance(raw, str) or not raw:
            raise WebhookParseError("deliveryInfo.deliveryStatus is missing")
        found.append((raw, address(info.get("address"))))
    return message_id, data, found


def inbound_messages(
    request: WebhookRequest, phone: str, clock: Callable[[], datetime]
) -> list[IncomingMessage]:
    """The messages of an inbound notification to ``phone`` (``clock`` dates the ones
    Orange sent without a time)."""
    _, data, items = _notification(request, "inboundSMSMessageNotification", "inboundSMSMessage")
    found = []
    for item in items:
        sender = address(item.get("senderAddress"))
        if sender is None:
            raise WebhookParseError("inboundSMSMessage.senderAddress is missing")
        message_id = item.get("messageId")
        found.append(
            IncomingMessage(
                phone=phone,
                sender=sender,
                recipient=address(item.get("destinationAddress")),
                body=str(item.get("message") or ""),
                received_at=parse_datetime(item.get("dateTime")) or clock(),
                provider_id=str(message_id) if message_id else None,
                raw=data,
            )
        )
    return found

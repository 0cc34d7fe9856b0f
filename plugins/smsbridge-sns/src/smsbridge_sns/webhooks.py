"""SNS protocol messages on the inbound webhook: subscription and unsubscribe confirmations."""

from __future__ import annotations

import logging
from typing import Any

from smsbridge.errors import WebhookError

from .signature import Fetcher, check_sns_url

__all__ = ["SubscriptionNotConfirmed", "handle_protocol_message"]

log = logging.getLogger("smsbridge.sns")


class SubscriptionNotConfirmed(WebhookError):
    """Confirming a verified subscription failed: HTTP 502, so SNS retries the request."""

    status_code = 502


def handle_protocol_message(
    envelope: dict[str, Any], *, phone: str, confirm: bool, fetch: Fetcher
) -> bool:
    """Act on a *verified* SNS envelope; True when it was a protocol message (handled).

    A ``SubscriptionConfirmation`` is confirmed by fetching its ``SubscribeURL`` (an SNS
    URL only) unless ``confirm`` is off; a failed fetch is :class:`SubscriptionNotConfirmed`.
    An ``UnsubscribeConfirmation`` is logged. A ``Notification`` is left to the parser.
    """
    kind = envelope["Type"]
    if kind == "SubscriptionConfirmation":
        if not confirm:
            log.warning(
                "phone %s: subscription to %s not confirmed (disabled)",
                phone,
                envelope.get("TopicArn"),
            )
            return True
        url = str(envelope.get("SubscribeURL") or "")
        check_sns_url(url, "SubscribeURL")
        try:
            fetch(url)
        except Exception as exc:  # answer 5xx so that SNS sends the confirmation again
            raise SubscriptionNotConfirmed(
                f"could not confirm the SNS subscription: {type(exc).__name__}"
            ) from None
        log.info("phone %s: confirmed SNS subscription to %s", phone, envelope["TopicArn"])
        return True
    if kind == "UnsubscribeConfirmation":
        log.warning("phone %s: unsubscribed from %s", phone, envelope.get("TopicArn"))
        return True
    return False

"""Kept for imports written before 0.2: the webhook value types live in :mod:`smsbridge.http`."""

from ..http import WebhookRequest, WebhookResponse

__all__ = ["WebhookRequest", "WebhookResponse"]

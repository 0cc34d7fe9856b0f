"""Webhooks: the framework-agnostic request/response and dispatcher, plus adapters."""

from ..http import WebhookRequest, WebhookResponse

__all__ = ["WebhookRequest", "WebhookResponse"]

"""Webhooks: the framework-agnostic request/response and dispatcher, plus adapters."""

from .request import WebhookRequest, WebhookResponse

__all__ = ["WebhookRequest", "WebhookResponse"]

"""The framework-agnostic webhook dispatcher behind ``Bridge.handle_webhook``.

For one request: find the phone (404) → body size (413) → ``verify_webhook`` (401/403)
→ provider protocol messages (``handle_webhook_extra``) → parse (400 on malformed input,
never a 500) → apply to the store, dedupe, call the user's callbacks (500 only when a
callback raised, so the provider retries) → the response the provider expects.

Providers retry callbacks, so the same report can arrive twice: a report is passed to
the callbacks once per (phone, provider id, status), and an inbound message once per
(phone, provider id). The memory of what was seen is bounded (LRU) and is recorded only
after the callbacks succeeded, so a retry after a 500 runs them again.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedFeature, WebhookAuthError, WebhookError
from ..message import IncomingMessage, StatusReport
from .request import WebhookRequest, WebhookResponse

if TYPE_CHECKING:
    from ..bridge import Bridge

__all__ = ["KINDS", "CallbackError", "Dispatcher"]

log = logging.getLogger("smsbridge.webhooks")

KINDS = ("status", "inbound")


class CallbackError(Exception):
    """A user callback raised while handling a webhook."""


class _Seen:
    """A bounded, thread-safe set of recently handled keys."""

    def __init__(self, size: int = 100_000) -> None:
        self._items: OrderedDict[Hashable, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def add(self, key: Hashable) -> None:
        with self._lock:
            self._items[key] = None
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class Dispatcher:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._seen_status = _Seen()
        self._seen_inbound = _Seen()
        self.listeners: list[Any] = []  # objects with .status(report) / .inbound(message)

    # ------------------------------------------------------------------ HTTP level
    def handle(self, phone_name: str, kind: str, request: WebhookRequest) -> WebhookResponse:
        bridge = self.bridge
        phone = bridge._phones.get(phone_name)
        if phone is None or kind not in KINDS:
            log.info("webhook %s %s: unknown phone or kind", phone_name, kind)
            return WebhookResponse.text(404, "unknown phone or webhook kind\n")
        limit = bridge.config.webhooks.max_body_bytes
        if len(request.body) > limit:
            log.warning("webhook %s/%s: body of %d bytes over the %d limit",
                        phone_name, kind, len(request.body), limit)
            return WebhookResponse.text(413, "body too large\n")
        try:
            phone.verify_webhook(request)
        except WebhookAuthError as exc:
            log.warning("webhook %s/%s refused: %s", phone_name, kind, exc)
            return WebhookResponse.text(exc.status_code, "forbidden\n")
        try:
            if phone.handle_webhook_extra(kind, request):
                return WebhookResponse.text(200, "ok\n")
            items: list[Any]
            if kind == "status":
                items = list(phone.parse_status_callback(request))
            else:
                items = list(phone.parse_inbound(request))
        except UnsupportedFeature as exc:
            log.info("webhook %s/%s: %s", phone_name, kind, exc)
            return WebhookResponse.text(404, f"phone has no {kind} webhook\n")
        except WebhookError as exc:
            log.warning("webhook %s/%s malformed: %s", phone_name, kind, exc)
            return WebhookResponse.text(exc.status_code, "malformed request\n")
        except Exception as exc:  # a parser bug must not become a 500 loop at the provider
            log.warning("webhook %s/%s could not be parsed: %s: %s",
                        phone_name, kind, type(exc).__name__, exc)
            return WebhookResponse.text(400, "malformed request\n")
        try:
            for item in items:
                if kind == "status":
                    self.dispatch_status(item)
                else:
                    self.dispatch_incoming(item)
        except CallbackError as exc:
            log.error("webhook %s/%s: a callback raised: %s", phone_name, kind, exc.__cause__)
            return WebhookResponse.text(500, "callback failed\n")
        status, body, ctype = phone.webhook_response(kind, request)
        return WebhookResponse(status=status, body=body, content_type=ctype)

    # ------------------------------------------------------------------ event level
    def dispatch_status(self, report: StatusReport) -> StatusReport | None:
        store = self.bridge.store
        fresh = True
        if store is not None:
            report, fresh = store.apply_status(report)
        key = (report.phone, report.provider_id, report.status.value)
        if report.provider_id and key in self._seen_status:
            return None
        if not fresh and report.provider_id is None:
            return None
        self._call(self.bridge._status_callbacks, report)
        for listener in self.listeners:
            listener.status(report)
        if report.provider_id:
            self._seen_status.add(key)
        return report

    def dispatch_incoming(self, message: IncomingMessage) -> bool:
        key = (message.phone, message.provider_id)
        if message.provider_id and key in self._seen_inbound:
            return False
        store = self.bridge.store
        if store is not None and not store.record_incoming(message):
            # Already stored by an earlier delivery; run callbacks only if this process
            # has not (e.g. the earlier attempt's callback raised and the provider retried).
            if message.provider_id is None:
                return False
        self._call(self.bridge._receive_callbacks, message)
        for listener in self.listeners:
            listener.inbound(message)
        if message.provider_id:
            self._seen_inbound.add(key)
        return True

    @staticmethod
    def _call(callbacks: list[Any], item: Any) -> None:
        for callback in list(callbacks):
            try:
                callback(item)
            except Exception as exc:
                raise CallbackError(f"{getattr(callback, '__name__', callback)!s}") from exc

    def close(self) -> None:
        for listener in self.listeners:
            close = getattr(listener, "close", None)
            if close is not None:
                close()


"""The framework-agnostic webhook dispatcher behind ``Bridge.handle_webhook``.

For one request: find the phone (404) → body size (413) → ``verify_webhook`` (401/403)
→ provider protocol messages (``handle_webhook_extra``) → parse (400 on malformed input,
never a 500) → apply to the store, dedupe, call the user's callbacks (500 only when a
callback raised, so the provider retries; 503 when the store failed) → the response the
provider expects.

Delivery semantics:

- **Duplicates.** Providers retry callbacks, so the same report can arrive twice. A
  report reaches the callbacks once per (phone, provider id, status) and an inbound
  message once per (phone, provider id); when a provider gives no id, a digest of its
  raw payload stands in. The memory of what was handled is bounded (LRU) and is written
  only after the callbacks succeeded, so a retry after a 500 runs them again. Two copies
  arriving at the same time are serialised: the second waits for the first's outcome.
  Across processes the store dedupes what it records; callbacks are then at-least-once.
- **Order.** Status never goes backwards: a late ``sent`` after ``delivered`` is recorded
  in the store's history but does not change the current status, and it is *not* passed
  to ``on_status`` callbacks or forwarders (they see each message move forward only).

The module also holds the small HTTP plumbing the WSGI/ASGI adapters share (routing,
client address and external URL behind a trusted proxy, access logs without query
strings), so each adapter is only the I/O of its protocol.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..config import WebhooksConfig
from ..errors import UnsupportedFeature, WebhookAuthError, WebhookError
from ..http import WebhookRequest, WebhookResponse
from ..message import IncomingMessage, StatusReport
from ..phone import Phone
from ..status import Status
from ..store.protocol import MessageStore

__all__ = [
    "KINDS",
    "METHODS",
    "CallbackError",
    "Callbacks",
    "Dispatcher",
    "HasDispatcher",
    "client_address",
    "external_url",
    "parse_route",
]

log = logging.getLogger("smsbridge.webhooks")
access_log = logging.getLogger("smsbridge.webhooks.access")

KINDS = ("status", "inbound")
METHODS = ("GET", "POST")
_BODY_LOG_LIMIT = 2048


@dataclass
class Callbacks:
    """The user's callbacks: ``status(StatusReport)`` and ``receive(IncomingMessage)``,
    called in registration order (``Bridge.on_status`` / ``Bridge.on_receive``)."""

    status: list[Callable[[StatusReport], Any]] = field(default_factory=list)
    receive: list[Callable[[IncomingMessage], Any]] = field(default_factory=list)


class HasDispatcher(Protocol):
    """What the HTTP adapters serve: an object holding a dispatcher (a ``Bridge``)."""

    @property
    def dispatcher(self) -> Dispatcher: ...


def dispatcher_of(target: Dispatcher | HasDispatcher) -> Dispatcher:
    """``target`` itself, or the dispatcher it holds."""
    return target if isinstance(target, Dispatcher) else target.dispatcher


class CallbackError(Exception):
    """A user callback raised while handling a webhook."""


class StoreError(Exception):
    """The message store failed while applying a webhook event."""


class _Once:
    """Run-once bookkeeping for event keys: a bounded LRU of done keys + in-flight keys.

    :meth:`claim` returns False when the key was already handled; when another thread
    is handling it right now, it waits for that thread's outcome first (up to ``wait``
    seconds, then it runs anyway: at-least-once beats a lost event).
    """

    def __init__(self, size: int = 100_000, wait: float = 30.0) -> None:
        self._done: OrderedDict[Hashable, None] = OrderedDict()
        self._inflight: dict[Hashable, threading.Event] = {}
        self._size = size
        self._wait = wait
        self._lock = threading.Lock()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._done

    def claim(self, key: Hashable) -> bool:
        while True:
            with self._lock:
                if key in self._done:
                    self._done.move_to_end(key)
                    return False
                event = self._inflight.get(key)
                if event is None:
                    self._inflight[key] = threading.Event()
                    return True
            if not event.wait(self._wait):
                return True

    def release(self, key: Hashable, done: bool) -> None:
        with self._lock:
            event = self._inflight.pop(key, None)
            if done:
                self._done[key] = None
                self._done.move_to_end(key)
                while len(self._done) > self._size:
                    self._done.popitem(last=False)
        if event is not None:
            event.set()


class _Current:
    """Bounded LRU of the last known status per (phone, provider id), in this process."""

    def __init__(self, size: int = 100_000) -> None:
        self._items: OrderedDict[tuple[str, str], Status] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def advance(self, key: tuple[str, str], new: Status) -> Status | None:
        """Record ``new`` if it moves ``key`` forward; return the status before."""
        with self._lock:
            before = self._items.get(key)
            if before is None or before.may_become(new):
                self._items[key] = new
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            return before


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Dispatcher:
    """Turns provider callbacks into store updates, user callbacks and listener events.

    ``listeners`` are objects with ``status(report)`` / ``inbound(message)`` (and an
    optional ``close()``), called after the user's callbacks succeeded — the event
    forwarder is one. A listener must not block; its errors are logged, never answered
    with a 5xx.
    """

    def __init__(
        self,
        phones: Mapping[str, Phone],
        *,
        store: MessageStore | None = None,
        settings: WebhooksConfig | None = None,
        callbacks: Callbacks | None = None,
        replier: Any = None,
        memory: int = 100_000,
    ) -> None:
        self.phones = phones
        self.store = store
        self.settings = settings or WebhooksConfig()
        self.callbacks = callbacks or Callbacks()
        #: Attached to inbound messages as ``message.bridge``, so that callbacks can
        #: ``message.reply()`` (an object with ``reply(message, body, **fields)``).
        self.replier = replier
        self._once_status = _Once(memory)
        self._once_inbound = _Once(memory)
        self._current = _Current(memory)
        self.listeners: list[Any] = []  # objects with .status(report) / .inbound(message)

    # ------------------------------------------------------------------ HTTP level
    def handle(self, phone_name: str, kind: str, request: WebhookRequest) -> WebhookResponse:
        """One provider callback → the HTTP response to give back (never raises)."""
        phone = self.phones.get(phone_name)
        where = f"{phone_name[:64]!r}/{kind[:16]}"
        if phone is None or kind not in KINDS:
            log.info("webhook %s: unknown phone or kind", where)
            return WebhookResponse.text(404, "unknown phone or webhook kind\n")
        settings = self.settings
        limit = settings.max_body_bytes
        if len(request.body) > limit:
            log.warning(
                "webhook %s: body of %d bytes over the %d limit", where, len(request.body), limit
            )
            return WebhookResponse.text(413, "body too large\n")
        if settings.log_bodies and request.body:
            log.info("webhook %s body: %r", where, request.body[:_BODY_LOG_LIMIT])
        try:
            phone.verify_webhook(request)
        except WebhookAuthError as exc:
            log.warning("webhook %s refused (%d): %s", where, exc.status_code, exc)
            return WebhookResponse.text(exc.status_code, "forbidden\n")
        except Exception:  # a verifier crash must fail closed, and not as a 5xx loop
            log.exception("webhook %s: verify_webhook crashed; refusing the request", where)
            return WebhookResponse.text(400, "malformed request\n")
        try:
            if phone.handle_webhook_extra(kind, request):
                return WebhookResponse.text(200, "ok\n")
            items: list[Any]
            if kind == "status":
                items = list(phone.parse_status_callback(request))
            else:
                items = list(phone.parse_inbound(request))
        except UnsupportedFeature as exc:
            log.info("webhook %s: %s", where, exc)
            return WebhookResponse.text(404, f"phone has no {kind} webhook\n")
        except WebhookAuthError as exc:  # e.g. a signature inside the body (SNS)
            log.warning("webhook %s refused (%d): %s", where, exc.status_code, exc)
            return WebhookResponse.text(exc.status_code, "forbidden\n")
        except WebhookError as exc:
            if exc.status_code >= 500:  # the phone asks the provider to try again later
                log.warning("webhook %s: %s (%d)", where, exc, exc.status_code)
                return WebhookResponse.text(exc.status_code, "try again later\n")
            log.warning("webhook %s malformed: %s", where, exc)
            return WebhookResponse.text(exc.status_code, "malformed request\n")
        except Exception as exc:  # a parser bug must not become a 500 loop at the provider
            log.warning(
                "webhook %s could not be parsed: %s: %s",
                where,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            return WebhookResponse.text(400, "malformed request\n")
        try:
            for item in items:
                if kind == "status":
                    self.dispatch_status(item)
                else:
                    self.dispatch_incoming(item)
        except CallbackError as exc:
            log.error("webhook %s: callback %s raised", where, exc, exc_info=exc.__cause__)
            return WebhookResponse.text(500, "callback failed\n")
        except StoreError as exc:
            log.error("webhook %s: the store failed", where, exc_info=exc.__cause__)
            return WebhookResponse.text(503, "store unavailable, retry later\n")
        except Exception:  # a bug (e.g. a parser returning the wrong type): let it retry
            log.exception("webhook %s: internal error", where)
            return WebhookResponse.text(500, "internal error\n")
        try:
            status, body, ctype = phone.webhook_response(kind, request)
        except Exception:
            log.exception("webhook %s: webhook_response crashed", where)
            return WebhookResponse.text(200, "ok\n")
        return WebhookResponse(status=status, body=body, content_type=ctype)

    def handle_http(self, method: str, route_path: str, request: WebhookRequest) -> WebhookResponse:
        """Route one HTTP request of a webhook app (``route_path`` is relative to where
        the app is mounted): ``/webhooks/{phone}/{kind}`` and ``/healthz``."""
        method = method.upper()
        if route_path.rstrip("/") == "/healthz":
            if method not in ("GET", "HEAD"):
                return _not_allowed("GET, HEAD")
            return self.health()
        route = parse_route(route_path)
        if route is None:
            return WebhookResponse.text(404, "not found\n")
        if method not in METHODS:
            return _not_allowed(", ".join(METHODS))
        return self.handle(route[0], route[1], request)

    def health(self) -> WebhookResponse:
        return WebhookResponse.json(200, {"status": "ok", "phones": len(self.phones)})

    # ------------------------------------------------------------------ event level
    def dispatch_status(self, report: StatusReport) -> StatusReport | None:
        """Apply ``report`` (store, callbacks, listeners) once.

        Returns the report (with ``message_id`` when the store knows the message), or
        None when it is a duplicate. A stale report (one that would move the status
        backwards) is recorded in the store's history and returned, but callbacks and
        listeners do not see it. Raises :class:`CallbackError` when a callback raised.
        """
        key = self._status_key(report)
        if key is not None and not self._once_status.claim(key):
            log.debug(
                "status %s/%s %s: duplicate", report.phone, report.provider_id, report.status.value
            )
            return None
        done = False
        try:
            fresh = True
            store = self.store
            if store is not None:
                try:
                    report, fresh = store.apply_status(report)
                except Exception as exc:
                    raise StoreError("apply_status failed") from exc
            if not fresh and key is None:
                done = True
                return None
            if self._is_stale(report):
                log.info(
                    "status %s/%s %s arrived after a later status: kept in history only",
                    report.phone,
                    report.provider_id,
                    report.status.value,
                )
                done = True
                return report
            self._call(self.callbacks.status, report)
            self._notify("status", report)
            done = True
            return report
        finally:
            if key is not None:
                self._once_status.release(key, done)

    def dispatch_incoming(self, message: IncomingMessage) -> bool:
        """Store an inbound message and call callbacks/listeners once; False if duplicate."""
        if message.bridge is None and self.replier is not None:  # for message.reply()
            message = replace(message, bridge=self.replier)
        key = self._inbound_key(message)
        if key is not None and not self._once_inbound.claim(key):
            log.debug("inbound %s/%s: duplicate", message.phone, message.provider_id)
            return False
        done = False
        try:
            store = self.store
            if store is not None:
                try:
                    stored = store.record_incoming(message)
                except Exception as exc:
                    raise StoreError("record_incoming failed") from exc
                # Already stored by an earlier delivery: run the callbacks only when this
                # process has not (e.g. the earlier attempt's callback raised and the
                # provider retried); without any key there is nothing to tell them apart.
                if not stored and key is None:
                    done = True
                    return False
            self._call(self.callbacks.receive, message)
            self._notify("inbound", message)
            done = True
            return True
        finally:
            if key is not None:
                self._once_inbound.release(key, done)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _status_key(report: StatusReport) -> Hashable | None:
        ref = report.provider_id
        if not ref:
            if report.raw is None:
                return None
            ref = "raw:" + _digest(report.raw, report.recipient)
        return (report.phone, ref, report.status.value)

    @staticmethod
    def _inbound_key(message: IncomingMessage) -> Hashable | None:
        ref = message.provider_id
        if not ref:
            if message.raw is None:
                return None
            ref = "raw:" + _digest(message.raw, message.sender, message.recipient, message.body)
        return (message.phone, ref)

    def _is_stale(self, report: StatusReport) -> bool:
        """Whether ``report`` arrived after a status it must not replace."""
        before: Status | None = None
        if report.provider_id:
            before = self._current.advance((report.phone, report.provider_id), report.status)
        store = self.store
        if store is not None and report.message_id:
            try:
                result = store.get_result(report.message_id)
            except Exception as exc:
                raise StoreError("get_result failed") from exc
            if result is not None:
                return result.status is not report.status
        if before is None or before is report.status:
            return False
        return not before.may_become(report.status)

    @staticmethod
    def _call(callbacks: list[Any], item: Any) -> None:
        for callback in list(callbacks):
            try:
                callback(item)
            except Exception as exc:
                raise CallbackError(f"{getattr(callback, '__qualname__', callback)!s}") from exc

    def _notify(self, kind: str, item: Any) -> None:
        for listener in list(self.listeners):
            method: Callable[[Any], Any] | None = getattr(listener, kind, None)
            if method is None:
                continue
            try:
                method(item)
            except Exception:  # a listener must never fail the provider's callback
                log.exception("webhook listener %r failed on a %s event", listener, kind)

    def close(self) -> None:
        for listener in self.listeners:
            close = getattr(listener, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # pragma: no cover - best effort
                    log.exception("closing webhook listener %r failed", listener)


def _not_allowed(allow: str) -> WebhookResponse:
    return WebhookResponse(
        status=405,
        body=b"method not allowed\n",
        content_type="text/plain; charset=utf-8",
        headers={"Allow": allow},
    )


# ---------------------------------------------------------------------- HTTP plumbing
def parse_route(route_path: str) -> tuple[str, str] | None:
    """``/webhooks/{phone}/{kind}`` → (phone, kind), else None (kind is not checked).

    ``route_path`` is already percent-decoded (as ASGI ``path`` and WSGI ``PATH_INFO`` are).
    """
    parts = route_path.strip("/").split("/")
    if len(parts) != 3 or parts[0] != "webhooks" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def _first(value: str | None) -> str | None:
    if not value:
        return None
    first = value.split(",")[0].strip()
    return first or None


def client_address(peer: str | None, headers: Mapping[str, str], trust_proxy: bool) -> str | None:
    """The caller's address: the TCP peer, or behind a trusted proxy the address that
    proxy saw (the *last* ``X-Forwarded-For`` entry, the only one it vouches for;
    earlier entries are whatever the client claimed)."""
    if trust_proxy:
        forwarded = headers.get("x-forwarded-for")
        if forwarded:
            hops = [h.strip() for h in forwarded.split(",") if h.strip()]
            if hops:
                return hops[-1]
    return peer


def external_url(
    scheme: str,
    host: str | None,
    full_path: str,
    query: str,
    headers: Mapping[str, str],
    trust_proxy: bool,
) -> str:
    """The URL the provider called, as seen from outside (Twilio signs it).

    Behind a trusted proxy, ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` override the
    scheme and the ``Host`` header.
    """
    if trust_proxy:
        scheme = _first(headers.get("x-forwarded-proto")) or scheme
        host = _first(headers.get("x-forwarded-host")) or host
    host = host or "localhost"
    url = f"{scheme}://{host}{full_path or '/'}"
    if query:
        url += "?" + query
    return url


def log_access(
    method: str, path: str, status: int, remote: str | None, started: float, size: int
) -> None:
    """One access-log line. The query string is never logged: it carries ``?token=``."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            '%s "%s %s" %d %dB %.1fms',
            remote or "-",
            method,
            path,
            status,
            size,
            (time.perf_counter() - started) * 1000,
        )

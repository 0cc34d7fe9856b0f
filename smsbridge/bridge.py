"""The :class:`Bridge`: the object users hold.

A facade over the layers below: the phones built from the config, the router, the send
pipeline (:mod:`smsbridge.pipeline`: plan, deliver with failover, record), the optional
message store and outbox, the webhook dispatcher, and the user's callbacks. It holds no
send logic of its own: ``send()``, ``send_many()``, the worker and the Celery task all
go through ``bridge.pipeline``.
"""

from __future__ import annotations

import logging
import os
import queue
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import keywords as _keywords
from . import optouts as _optouts
from . import outbox as _outbox
from . import templates as _templates
from . import verification as _verification
from .cache import KeyValueCache
from .capabilities import Capabilities
from .config import Config, load_config, validate_options
from .errors import ConfigError, MessageError, SendError, SmsBridgeError, UnsupportedFeature
from .http import WebhookRequest, WebhookResponse
from .message import Balance, IncomingMessage, OutgoingMessage, SendResult, StatusReport
from .phone import Phone, PhoneOptions
from .pipeline import Plan, SendPipeline, failure_result
from .registry import load_plugin
from .router import Router
from .webhooks.dispatcher import Callbacks, Dispatcher

if TYPE_CHECKING:
    from .keywords import KeywordRouter
    from .optouts import OptOutList
    from .store.protocol import MessageStore
    from .templates import TemplateLibrary
    from .verification import Verifier

__all__ = ["Bridge", "load"]

log = logging.getLogger("smsbridge")

StatusCallback = Callable[[StatusReport], Any]
_LaneItem = tuple[int, OutgoingMessage, Plan]
ReceiveCallback = Callable[[IncomingMessage], Any]


class Bridge:
    """Phones, routes, store and callbacks, with one ``send()``.

    Build it from a YAML file (:meth:`from_yaml`, :func:`smsbridge.load`), from a parsed
    :class:`~smsbridge.config.Config` (:meth:`from_config`), or directly from phone objects.
    """

    def __init__(
        self,
        phones: Mapping[str, Phone],
        *,
        config: Config | None = None,
        store: MessageStore | None = None,
        lane_workers: int = 4,
    ) -> None:
        if not phones:
            raise ConfigError("a bridge needs at least one phone")
        self.config = config or Config(phones={})
        self._phones: dict[str, Phone] = dict(phones)
        self.router = Router(self.config.routes, self._phones)
        self._store: MessageStore | None = store
        self.lane_workers = max(1, lane_workers)
        #: THE send pipeline (plan, deliver with failover, record): every send goes here.
        self.pipeline = SendPipeline(
            self._phones, self.router, store=store, default_region=self.config.default_region
        )
        #: The user's status and receive callbacks (``on_status``/``on_receive``).
        self.callbacks = Callbacks()
        self.dispatcher = Dispatcher(
            self._phones,
            store=store,
            settings=self.config.webhooks,
            callbacks=self.callbacks,
            replier=self,
        )
        # Called with (message ids, outbox entries) after enqueue() committed them
        # (smsbridge.celery.install registers its dispatcher here).
        self.enqueue_hooks: list[Callable[[Sequence[str], Sequence[Any]], None]] = []
        # Templates, keyword actions, STOP list (smsbridge.templates/keywords/optouts);
        # the verification-code Verifier is created on first use.
        self.templates: TemplateLibrary | None = None
        self.keywords: KeywordRouter | None = None
        self._optouts: OptOutList | None = None
        self.verifier: Verifier | None = None
        _templates.install(self, getattr(self.config, "templates", None))
        _optouts.install(self)  # STOP/START handlers first
        _keywords.install(self)  # configured auto-replies
        if self.config.forward:
            from .webhooks.forward import Forwarder

            self.dispatcher.listeners.append(Forwarder(self.config.forward))
        for phone in self._phones.values():
            phone.connect(self.handle_webhook)
            if isinstance(store, KeyValueCache):
                phone.use_cache(store)
            if not phone.webhook_protected and (
                phone.caps.status_mode == "webhook" or phone.caps.receive_mode == "webhook"
            ):
                log.warning(
                    "phone %s: webhooks are not protected (set webhook_secret or allow_ips)",
                    phone.name,
                )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str] | None = None, **kw: Any) -> Bridge:
        """Load a YAML config (``path`` → ``$SMSBRIDGE_CONFIG`` → ``./smsbridge.yaml``)."""
        return cls.from_config(load_config(path), **kw)

    @classmethod
    def from_config(cls, config: Config, *, store: MessageStore | None = None, **kw: Any) -> Bridge:
        phones = build_phones(config)
        if store is None and config.store:
            store = open_store(config.store, file=config.path)
        return cls(phones, config=config, store=store, **kw)

    @property
    def phones(self) -> Mapping[str, Phone]:
        return dict(self._phones)

    def phone(self, name: str) -> Phone:
        """The phone named ``name`` (:class:`RoutingError` when there is none)."""
        return self.pipeline.phone(name)

    @property
    def store(self) -> MessageStore | None:
        """The message store (None without persistence). Setting it hands it to the
        pipeline and the webhook dispatcher too."""
        return self._store

    @store.setter
    def store(self, value: MessageStore | None) -> None:
        self._store = self.pipeline.store = self.dispatcher.store = value

    @property
    def optouts(self) -> OptOutList | None:
        """The STOP list (:mod:`smsbridge.optouts`); setting it makes it a guard of the
        send pipeline (refusing opted-out numbers, learning providers' opt-out errors)."""
        return self._optouts

    @optouts.setter
    def optouts(self, value: OptOutList | None) -> None:
        guards = self.pipeline.guards
        if self._optouts is not None and self._optouts in guards:
            guards.remove(self._optouts)
        self._optouts = value
        if value is not None:
            guards.insert(0, value)

    def capabilities(self) -> dict[str, Capabilities]:
        return {name: phone.caps for name, phone in self._phones.items()}

    # ------------------------------------------------------------------ callbacks
    def on_status(self, callback: StatusCallback) -> StatusCallback:
        """Call ``callback(StatusReport)`` for every delivery report (usable as a decorator)."""
        self.callbacks.status.append(callback)
        return callback

    def on_receive(
        self, callback: ReceiveCallback | None = None, *, match: str | re.Pattern[str] | None = None
    ) -> Any:
        """Call ``callback(IncomingMessage)`` for every inbound message, or only for those
        whose body matches ``match`` (a regex; see :mod:`smsbridge.keywords`)."""
        if callback is None:
            return lambda fn: self.on_receive(fn, match=match)
        if match is not None:
            return _keywords.on_match(self, match, callback)
        self.callbacks.receive.append(callback)
        return callback

    def on_keyword(
        self, keywords: str | Iterable[str], handler: Any = None, *, priority: int = 100
    ) -> Any:
        """Run ``handler(KeywordMessage)`` for inbound messages starting with a keyword
        (case- and accent-insensitive); usable as a decorator."""
        return _keywords.on_keyword(self, keywords, handler, priority=priority)

    # ------------------------------------------------------------------ templates, codes
    def send_template(
        self,
        to: str,
        slug: str,
        context: Mapping[str, Any] | None = None,
        locale: str | None = None,
        **fields: Any,
    ) -> SendResult:
        """Render template ``slug`` (locale fallback fr_CI → fr → default) and send it."""
        return _templates.send_template(self, to, slug, context, locale, **fields)

    def send_verification(
        self, to: str, locale: str | None = None, template: str | None = None, **kw: Any
    ) -> SendResult:
        """Send a new verification code to ``to`` (see :mod:`smsbridge.verification`)."""
        return _verification.send_verification(self, to, locale, template, **kw)

    def check_verification(self, to: str, code: str, *, purpose: str = "default") -> bool:
        """True once for the right, unexpired code within the attempt limit."""
        return _verification.check_verification(self, to, code, purpose=purpose)

    def dispatch_status(self, report: StatusReport) -> StatusReport | None:
        """Apply a report to the store and call the status callbacks.

        Returns the report (with ``message_id`` when the store knows it), or None when it
        was a duplicate already applied. User callback errors propagate.
        """
        return self.dispatcher.dispatch_status(report)

    def dispatch_incoming(self, message: IncomingMessage) -> bool:
        """Store an inbound message and call the receive callbacks; False if duplicate."""
        return self.dispatcher.dispatch_incoming(message)

    def reply(self, message: IncomingMessage, body: str | None = None, **fields: Any) -> SendResult:
        """Answer ``message``'s sender through the phone that received it
        (``IncomingMessage.reply``; ``template=``, ``context=``, ``locale=`` accepted)."""
        return _keywords.reply(self, message, body, **fields)

    # ------------------------------------------------------------------ routing
    def route(self, to: str, body: str = "x", **fields: Any) -> list[str]:
        """The phone names a message would be tried on, in order, without sending."""
        message = OutgoingMessage(to=to, body=body, **fields)
        return list(self.pipeline.plan(message, peek=True).phones)

    # ------------------------------------------------------------------ sending
    def send(self, to: str, body: str, **fields: Any) -> SendResult:
        """Send one SMS. ``fields``: phone, sender, tag, flash, media, metadata,
        idempotency_key.

        Returns a :class:`SendResult` on success. Raises :class:`MessageError` (bad input,
        before any network call), :class:`RoutingError`, or the last phone's
        :class:`SendError` when every phone failed — its ``result`` attribute holds the
        :class:`SendResult` with every attempt.
        """
        return self.send_message(OutgoingMessage(to=to, body=body, **fields))

    def send_message(self, message: OutgoingMessage | Mapping[str, Any]) -> SendResult:
        result = self.pipeline.send(OutgoingMessage.coerce(message))
        if result.error is not None:
            raise result.error
        return result

    def enqueue(self, to: str, body: str, **fields: Any) -> str:
        """Store a message in the outbox (a worker sends it); returns its message id."""
        return self.enqueue_many([OutgoingMessage(to=to, body=body, **fields)])[0]

    def enqueue_many(self, messages: Iterable[OutgoingMessage | Mapping[str, Any]]) -> list[str]:
        """Validate every message, then store them all in the outbox in one transaction;
        returns their ids (for a repeated ``idempotency_key``, the first message's id).

        If any message is invalid, its error is raised and nothing is stored; the error's
        ``index`` attribute tells which message it was. ``enqueue_hooks`` run after the
        commit (``smsbridge.celery`` dispatches the tasks there).
        """
        store = _outbox.outbox_store(self.store, file=self.config.path)
        items = [OutgoingMessage.coerce(m) for m in messages]
        entries = _outbox.prepare_entries(self.pipeline, items)
        if not entries:
            return []
        ids = store.enqueue(entries)
        for hook in self.enqueue_hooks:
            hook(ids, entries)
        return ids

    def send_many(
        self, messages: Iterable[OutgoingMessage | Mapping[str, Any]]
    ) -> list[SendResult]:
        """Send many messages concurrently; results in input order, never raises for one.

        Messages are grouped by the first phone their route picks; each phone gets its
        own lane of ``lane_workers`` threads, so a slow phone never holds up a fast one,
        and each phone keeps its own rate limit. A message that cannot be sent comes back
        with ``error`` set and status ``failed``.
        """
        items = list(messages)
        results: list[SendResult | None] = [None] * len(items)
        lanes: dict[str, list[_LaneItem]] = {}
        for i, raw in enumerate(items):
            try:
                message = OutgoingMessage.coerce(raw)
                plan = self.pipeline.plan(message)
            except (SmsBridgeError, TypeError, ValueError) as exc:
                results[i] = _failed(raw, exc)
                continue
            lanes.setdefault(plan.phones[0], []).append((i, message, plan))
        threads = sum(min(self.lane_workers, len(v)) for v in lanes.values())
        if threads:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="smsbridge") as pool:
                futures = []
                for lane in lanes.values():
                    work: queue.SimpleQueue[_LaneItem] = queue.SimpleQueue()
                    for item in lane:
                        work.put(item)
                    for _ in range(min(self.lane_workers, len(lane))):
                        futures.append(pool.submit(self._drain_lane, work, results))
                for future in futures:
                    future.result()  # a bug in the lane itself must not pass silently
        return [
            r if r is not None else _failed(items[i], RuntimeError("not sent"))
            for i, r in enumerate(results)
        ]

    def _drain_lane(
        self, work: queue.SimpleQueue[_LaneItem], results: list[SendResult | None]
    ) -> None:
        while True:
            try:
                i, message, plan = work.get_nowait()
            except queue.Empty:
                return
            try:
                results[i] = self.pipeline.send(message, plan=plan)
            except Exception as exc:  # one failure never stops the batch
                if not isinstance(exc, SmsBridgeError):
                    log.exception("send_many: message %d failed unexpectedly", i)
                results[i] = _failed(message, exc)

    # ------------------------------------------------------------------ webhooks
    def handle_webhook(self, phone: str, kind: str, request: WebhookRequest) -> WebhookResponse:
        """Dispatch one provider callback (``kind`` = ``status`` or ``inbound``)."""
        return self.dispatcher.handle(phone, kind, request)

    def webhook_app(self, kind: str = "asgi") -> Any:
        """A mountable app serving ``/webhooks/{phone}/{status|inbound}`` and ``/healthz``."""
        if kind == "asgi":
            from .webhooks.asgi import ASGIApp

            return ASGIApp(self)
        if kind == "wsgi":
            from .webhooks.wsgi import WSGIApp

            return WSGIApp(self)
        raise ValueError(f"kind must be 'asgi' or 'wsgi', not {kind!r}")

    def callback_urls(self) -> dict[str, dict[str, str | None]]:
        """Per phone, the status/inbound URLs to paste in the provider's console."""
        urls: dict[str, dict[str, str | None]] = {}
        for name, phone in self._phones.items():
            caps = phone.caps
            urls[name] = {
                "status": phone.callback_url("status") if caps.status_mode == "webhook" else None,
                "inbound": (
                    phone.callback_url("inbound") if caps.receive_mode == "webhook" else None
                ),
            }
        return urls

    # ------------------------------------------------------------------ polling & admin
    def poll(self) -> dict[str, int]:
        """Pull inbound messages from polling phones and dispatch them; counts per phone."""
        counts: dict[str, int] = {}
        for name, phone in self._phones.items():
            if phone.caps.receive_mode != "poll":
                continue
            try:
                received = phone.fetch_incoming(self._poll_handle)
            except SendError as exc:
                log.warning("phone %s: polling failed: %s", name, exc)
                continue
            counts[name] = len(received)
        return counts

    def _poll_handle(self, message: IncomingMessage) -> None:
        self.dispatch_incoming(message)

    def balance(self, phone_name: str) -> Balance:
        return self.phone(phone_name).balance()

    def check(self) -> dict[str, SmsBridgeError | None]:
        """Check each phone's credentials (``Phone.check``); None means fine."""
        out: dict[str, SmsBridgeError | None] = {}
        for name, phone in self._phones.items():
            try:
                phone.check()
                out[name] = None
            except SmsBridgeError as exc:
                out[name] = exc
        return out

    def close(self) -> None:
        self.dispatcher.close()
        for phone in self._phones.values():
            try:
                phone.close()
            except Exception:  # pragma: no cover - closing is best effort
                log.debug("closing %s failed", phone.name, exc_info=True)
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Bridge phones={list(self._phones)} store={'yes' if self.store else 'no'}>"


# ---------------------------------------------------------------------- helpers
def _failed(raw: Any, exc: BaseException) -> SendResult:
    result = getattr(exc, "result", None)
    if isinstance(result, SendResult):
        return result
    return failure_result(raw, exc)


def build_phones(config: Config) -> dict[str, Phone]:
    """Instantiate every phone of ``config`` through its plugin (errors name the key)."""
    phones: dict[str, Phone] = {}
    for name, spec in config.phones.items():
        try:
            cls = load_plugin(spec.plugin)
        except ConfigError as exc:
            raise ConfigError(
                exc.reason, file=config.path, line=spec.line, key=f"phones.{name}.plugin"
            ) from None
        options = validate_options(spec, cls.Options, config.path)
        assert isinstance(options, PhoneOptions)
        try:
            phones[name] = cls(
                name,
                options,
                public_url=config.webhooks.public_url,
                default_region=config.default_region,
            )
        except (ConfigError, MessageError, UnsupportedFeature) as exc:
            raise ConfigError(
                str(exc), file=config.path, line=spec.line, key=f"phones.{name}"
            ) from None
    return phones


def open_store(url: str, *, file: str | None = None) -> MessageStore:
    try:
        from .store import open_store as _open
    except ImportError as exc:  # pragma: no cover - store is part of the core install
        raise ConfigError(
            f"the message store is not available: {exc}", file=file, key="store"
        ) from None
    try:
        store: MessageStore = _open(url)
        return store
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"cannot open store: {type(exc).__name__}: {exc}", file=file, key="store"
        ) from None


def load(path: str | os.PathLike[str] | None = None) -> Bridge:
    """``Bridge.from_yaml(path)``: path → ``$SMSBRIDGE_CONFIG`` → ``./smsbridge.yaml``."""
    return Bridge.from_yaml(path)

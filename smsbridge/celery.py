"""Scale-out on Celery: outbox messages sent by Celery workers on many machines.

The outbox (the message store) stays the source of truth; Celery only carries message
ids. The producer stores a message (``bridge.enqueue``) and dispatches a task holding its
id; a worker claims the message in the store, sends it with the bridge's own lifecycle
(``Bridge._send(..., already_stored=True)``: validation, rate limit, retries, failover,
status recording), and acknowledges the task only afterwards (late acks). A task that the
broker delivers twice, or that a killed worker leaves behind, finds the message already
claimed or finished and does nothing: the store's state decides, never the task.

Per-phone rate limits are shared by every worker on every machine through Redis
(:mod:`smsbridge.limits`), counted in segments; a provider's ``RateLimited`` answer pauses
that phone for all of them.

Two ways in::

    # 1. your own Celery app (Django, Flask...):
    tasks = smsbridge.celery.install(app, bridge, queues="per_phone", redis_url=REDIS)
    tasks.enqueue("+2250701020304", "Bonjour")       # store + dispatch

    # 2. a ready-made app from the YAML (``queue:`` section), for ``celery -A``:
    #    SMSBRIDGE_CONFIG=smsbridge.yaml celery -A smsbridge.celery worker
    queue:
      backend: celery
      broker: redis://127.0.0.1:6379/0          # or amqp://user:pass@host:5672//
      result_backend: null                      # optional; smsbridge needs none
      queues: per_phone                         # or single (the default)
      redis_url: redis://127.0.0.1:6379/0       # shared limits; default: the broker if Redis

Needs the ``celery`` extra: ``pip install 'smsbridge[celery]'``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

from .bridge import Bridge
from .config import Config, load_yaml, parse_config, resolve_path
from .encoding import count_segments
from .errors import ConfigError, SmsBridgeError
from .message import OutgoingMessage, SendResult, utcnow
from .status import Status
from .store.records import ClaimedMessage, ClaimOutcome, OutboxEntry, StoredMessage

if TYPE_CHECKING:
    from celery import Celery, Task

    from .phone import RateLimiter

__all__ = [
    "QUEUE_KEYS",
    "ClaimLost",
    "Outcome",
    "QueueSettings",
    "SmsbridgeTasks",
    "TaskFailed",
    "app_from_yaml",
    "enqueue",
    "enqueue_many",
    "from_config",
    "install",
    "load_config",
    "tasks_for",
]

log = logging.getLogger("smsbridge.celery")

QUEUE_KEYS = (
    "backend",
    "broker",
    "result_backend",
    "queues",
    "redis_url",
    "prefix",
    "lease",
    "visibility_timeout",
    "sweep_interval",
)
QUEUE_MODES = ("single", "per_phone")
BACKENDS = ("celery", "embedded")


# --------------------------------------------------------------------------- settings
def _hide_password(url: str | None) -> str | None:
    """``amqp://user:***@host//``: URLs are shown without their password."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@dataclass(frozen=True)
class QueueSettings:
    """The ``queue:`` section of the YAML (or :func:`install`'s arguments).

    ``lease``: seconds a worker owns a claimed message; past it, the store takes the
    message back (to the outbox if it never reached a provider, else ``unknown``).
    ``visibility_timeout``: Redis brokers only; seconds before an unacknowledged task is
    delivered again (a killed worker's task comes back after it).
    """

    backend: Literal["celery", "embedded"] = "celery"
    broker: str | None = None
    result_backend: str | None = None
    queues: Literal["single", "per_phone"] = "single"
    redis_url: str | None = None
    prefix: str = "smsbridge"
    lease: float = 60.0
    visibility_timeout: float = 3600.0
    sweep_interval: float = 60.0

    @property
    def limiter_url(self) -> str | None:
        """Where the shared rate limits live: ``redis_url``, else a Redis broker."""
        if self.redis_url:
            return self.redis_url
        if self.broker and self.broker.split("://", 1)[0] in ("redis", "rediss"):
            return self.broker
        return None

    def __repr__(self) -> str:
        return (
            f"QueueSettings(backend={self.backend!r}, broker={_hide_password(self.broker)!r}, "
            f"result_backend={_hide_password(self.result_backend)!r}, queues={self.queues!r}, "
            f"redis_url={_hide_password(self.redis_url)!r}, prefix={self.prefix!r}, "
            f"lease={self.lease!r})"
        )

    __str__ = __repr__


def parse_queue_settings(
    node: Any, *, file: str | None = None, line: int | None = None
) -> QueueSettings:
    """Validate a ``queue:`` mapping (already interpolated) into :class:`QueueSettings`.

    ``line``: where ``queue:`` is in ``file`` (errors name the file, line and key).
    """
    from .config import _line_of

    top_line = line or getattr(node, "line", None) or None
    if not isinstance(node, Mapping):
        raise ConfigError("queue must be a mapping", file=file, line=top_line, key="queue")

    def err(message: str, key: str) -> ConfigError:
        return ConfigError(message, file=file, line=_line_of(node, key), key=f"queue.{key}")

    for key in node:
        if key not in QUEUE_KEYS:
            import difflib

            close = difflib.get_close_matches(str(key), QUEUE_KEYS, n=1)
            hint = (
                f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(QUEUE_KEYS)})"
            )
            raise err(f"unknown key '{key}'{hint}", str(key))
    values: dict[str, Any] = {}
    backend = node.get("backend", "celery")
    if backend not in BACKENDS:
        raise err(f"backend must be one of {', '.join(BACKENDS)}", "backend")
    values["backend"] = backend
    for key in ("broker", "result_backend", "redis_url", "prefix"):
        value = node.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise err(f"{key} must be a non-empty string", key)
        values[key] = value.strip()
    for key in ("broker", "result_backend", "redis_url"):
        if key in values and "://" not in values[key]:
            raise err(f"{key} must be a URL (redis://..., amqp://...)", key)
    if "prefix" in values and not all(c.isalnum() or c in "-_." for c in values["prefix"]):
        raise err("prefix may hold letters, digits, '-', '_' and '.' only", "prefix")
    queues = node.get("queues", "single")
    if queues not in QUEUE_MODES:
        raise err(f"queues must be one of {', '.join(QUEUE_MODES)}", "queues")
    values["queues"] = queues
    for key in ("lease", "visibility_timeout", "sweep_interval"):
        value = node.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise err(f"{key} must be a positive number of seconds", key)
        values[key] = float(value)
    if values["backend"] == "celery" and "broker" not in values:
        raise ConfigError(
            "queue.backend celery needs a broker URL (redis://... or amqp://...)",
            file=file,
            line=top_line,
            key="queue.broker",
        )
    return QueueSettings(**values)


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[Config, QueueSettings | None]:
    """Read a YAML file: the bridge's :class:`Config` and its ``queue:`` section (or None).

    ``path`` → ``$SMSBRIDGE_CONFIG`` → ``./smsbridge.yaml``. ``${VAR}`` interpolation
    applies to the ``queue:`` values too (broker passwords belong in the environment).
    """
    from .config import _interpolate

    resolved = resolve_path(path)
    file = str(resolved)
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", file=file) from None
    data = load_yaml(text, file)
    settings: QueueSettings | None = None
    if isinstance(data, dict) and "queue" in data:
        from .config import _line_of

        line = _line_of(data, "queue")
        node = _interpolate(data["queue"], os.environ if env is None else env, file, "queue", line)
        settings = parse_queue_settings(node, file=file, line=line)
        del data["queue"]  # config.py validates the rest (and may or may not know 'queue')
    return parse_config(data, file=file, env=env), settings


# --------------------------------------------------------------------------- the worker side
class ClaimLost(SmsBridgeError):
    """This worker no longer holds the message's claim (its lease ran out): don't send."""


class TaskFailed(SmsBridgeError):
    """A send task failed for a reason outside the send lifecycle (store, configuration).

    Its message is one redacted line naming the message id and the original error type.
    """


class _MarkSending:
    """A phone's limiter, wrapped: before the provider call, record in the store that the
    message is being handed over (``mark_sending``), then wait for the rate limit.

    Marking first keeps the rate-limit wait the last thing before the HTTP request, so the
    provider sees the spacing the shared limiter gave (a database write between the two
    would bunch requests up). A worker lost before the mark leaves a message the store
    gives back to the outbox; after it, the message may have reached the provider and the
    store settles it as ``unknown`` instead of sending it twice. ``pause`` (a provider's
    429) goes to the wrapped limiter, so every worker of the phone slows down.
    """

    def __init__(self, inner: RateLimiter | None, lease: float) -> None:
        self.inner = inner
        self.lease = lease

    def acquire(self, weight: int = 1) -> None:
        current = _current
        if current.message_id is not None and not current.handed_over and current.store:
            if not current.store.mark_sending(current.message_id, current.owner, lease=self.lease):
                raise ClaimLost(f"message {current.message_id}: claim lost before sending")
            current.handed_over = True
        if self.inner is not None:
            self.inner.acquire(weight)

    def pause(self, seconds: float) -> None:
        pause = getattr(self.inner, "pause", None)
        if pause is not None:
            pause(seconds)


class _Current(threading.local):
    """The message this thread is sending (for :class:`_MarkSending`)."""

    store: CeleryOutbox | None = None
    message_id: str | None = None
    owner: str = ""
    handed_over: bool = False


_current = _Current()


@dataclass(frozen=True)
class Outcome:
    """What one task run did with its message (the task's return value, as a dict).

    ``action``: ``sent`` / ``failed`` / ``unknown`` (this run sent it, or tried), ``skipped``
    (nothing to do: already handled, unknown id...), ``later`` (not due yet, or held by
    another worker: look again in ``retry_in`` seconds).
    """

    message_id: str
    action: Literal["sent", "failed", "unknown", "skipped", "later"]
    status: str | None = None
    phone: str | None = None
    detail: str | None = None
    retry_in: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "action": self.action,
            "status": self.status,
            "phone": self.phone,
            "detail": self.detail,
        }


_REGISTRY: weakref.WeakKeyDictionary[Any, SmsbridgeTasks] = weakref.WeakKeyDictionary()


class SmsbridgeTasks:
    """smsbridge attached to a Celery app: the tasks, dispatch, and the worker's bridge.

    - :attr:`send`: the task ``<prefix>.send(message_id)``.
    - :attr:`sweep`: the periodic task ``<prefix>.sweep()``: settles messages whose worker
      was lost mid-send, and re-dispatches due messages left without a task (stored
      while the broker was down, or a task lost with its queue).
    - :meth:`enqueue` / :meth:`enqueue_many`: store in the outbox, then dispatch.
    - :meth:`queue_for` / :attr:`queue_names`: the queues (``celery worker -Q ...``).
    """

    def __init__(
        self,
        app: Celery,
        bridge: Bridge | Callable[[], Bridge],
        settings: QueueSettings,
        *,
        phone_names: Sequence[str] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self._factory: Callable[[], Bridge] | None = None
        self._bridge: Bridge | None = None
        if isinstance(bridge, Bridge):
            self._bridge = bridge
        else:
            self._factory = bridge
        self._phone_names = list(phone_names) if phone_names is not None else None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._worker_ready = False
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        self.hooked = False  # True when bridge.enqueue() itself dispatches (enqueue_hooks)
        self.send: Task = self._register_send()
        self.sweep: Task = self._register_sweep()

    # ---------------------------------------------------------------- the bridge
    @property
    def bridge(self) -> Bridge:
        """This process's bridge: built on first use, and again in a forked child."""
        pid = os.getpid()
        if self._bridge is None or self._pid != pid:
            with self._lock:
                if self._bridge is None or self._pid != pid:
                    if self._factory is not None:
                        self._bridge = self._factory()
                        _REGISTRY[self._bridge] = self
                    else:
                        assert self._bridge is not None
                        _after_fork(self._bridge)
                    self._pid = pid
                    self._worker_ready = False
                    self._heartbeat = None
        assert self._bridge is not None
        return self._bridge

    @property
    def owner(self) -> str:
        """This worker process's name in the store's claims."""
        return f"celery:{socket.gethostname()}:{os.getpid()}"

    def _worker_setup(self, bridge: Bridge) -> None:
        """First task in a process: shared limits, the sending marker, the lease heartbeat."""
        if self._worker_ready:
            return
        with self._lock:
            if self._worker_ready:
                return
            url = self.settings.limiter_url
            if url:
                from .limits import install_redis_limiters

                install_redis_limiters(bridge, url, prefix=self.settings.prefix)
            else:
                limited = [p.name for p in bridge.phones.values() if p.rate_limit]
                if limited:
                    log.warning(
                        "no redis_url: the rate limits of %s hold per worker process, "
                        "not across workers",
                        ", ".join(limited),
                    )
            for phone in bridge.phones.values():
                if not isinstance(phone.limiter, _MarkSending):
                    phone.limiter = _MarkSending(phone.limiter, self.settings.lease)
            store = _outbox_store(bridge)
            self._heartbeat = threading.Thread(
                target=self._renew_leases,
                args=(store, self.owner, os.getpid()),
                name="smsbridge-lease",
                daemon=True,
            )
            self._heartbeat.start()
            self._worker_ready = True

    def _renew_leases(self, store: CeleryOutbox, owner: str, pid: int) -> None:
        """Keep this process's claims alive while it lives (a third of the lease apart)."""
        lease = self.settings.lease
        while os.getpid() == pid and not self._stop.wait(max(0.2, lease / 3)):
            try:
                store.renew(owner, lease=lease)
            except Exception as exc:  # the next beat tries again
                log.warning("renewing leases failed: %s", type(exc).__name__)

    def close(self) -> None:
        """Stop the lease heartbeat; close the bridge when this object built it."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(5)
        if self._factory is not None and self._bridge is not None:
            self._bridge.close()
            self._bridge = None

    # ---------------------------------------------------------------- queues
    def queue_for(self, phone: str | None) -> str:
        """The queue of a message whose route starts with ``phone`` (its lane)."""
        if self.settings.queues == "per_phone" and phone:
            return f"{self.settings.prefix}.{phone}"
        return self.settings.prefix

    @property
    def queue_names(self) -> list[str]:
        """Every queue the tasks may be sent to (the default one first)."""
        names = [self.settings.prefix]
        if self.settings.queues == "per_phone":
            phones = self._phone_names if self._phone_names is not None else self.bridge.phones
            names += [self.queue_for(name) for name in phones]
        return names

    # ---------------------------------------------------------------- dispatch
    def dispatch(
        self,
        message_id: str,
        *,
        lane: str | None = None,
        send_at: datetime | None = None,
        producer: Any = None,
    ) -> None:
        """Publish ``send(message_id)`` on the lane's queue, with ``send_at`` as its ETA."""
        options: dict[str, Any] = {"queue": self.queue_for(lane)}
        if send_at is not None and send_at > utcnow():
            options["eta"] = send_at
        if producer is not None:
            options["producer"] = producer
        self.send.apply_async((message_id,), **options)

    def dispatch_entries(self, message_ids: Sequence[str], entries: Sequence[OutboxEntry]) -> None:
        """Publish one task per stored message, over one broker connection."""
        with self.app.producer_or_acquire() as producer:
            seen: set[str] = set()
            for message_id, entry in zip(message_ids, entries, strict=True):
                if message_id in seen:  # an idempotency key repeated in the batch
                    continue
                seen.add(message_id)
                self.dispatch(
                    message_id,
                    lane=entry.lane,
                    send_at=entry.message.send_at,
                    producer=producer,
                )

    def on_enqueue(self, message_ids: Sequence[str], entries: Sequence[OutboxEntry]) -> None:
        """The hook for ``Bridge.enqueue_hooks`` (called after the outbox committed).

        The messages are stored whatever happens here: when the broker is unreachable
        this logs, and the sweep dispatches them later.
        """
        try:
            self.dispatch_entries(message_ids, entries)
        except Exception as exc:
            log.warning(
                "%d message(s) stored but not dispatched (%s); the sweep will dispatch them",
                len(message_ids),
                type(exc).__name__,
            )

    def enqueue(self, to: str, body: str, **fields: Any) -> str:
        """Store the message in the outbox, then dispatch its task; returns its id."""
        return self.enqueue_many([OutgoingMessage(to=to, body=body, **fields)])[0]

    def enqueue_many(self, messages: Iterable[OutgoingMessage | Mapping[str, Any]]) -> list[str]:
        """Validate and store many messages (one transaction), then dispatch their tasks.

        Validation is ``bridge.enqueue``'s: a bad message raises before anything is
        stored (its ``index`` attribute tells which). A message stored while the broker
        is unreachable stays in the outbox and the sweep dispatches it later.
        """
        from .outbox import prepare_entry

        bridge = self.bridge
        store = _outbox_store(bridge)
        items = [OutgoingMessage.coerce(m) for m in messages]
        entries: list[OutboxEntry] = []
        for index, message in enumerate(items):
            try:
                entries.append(prepare_entry(bridge, message))
            except Exception as exc:
                if len(items) > 1:
                    exc.index = index  # type: ignore[attr-defined]
                raise
        if not entries:
            return []
        ids = store.enqueue(entries)
        self.on_enqueue(ids, entries)
        return ids

    # ---------------------------------------------------------------- the task body
    def run(self, message_id: str) -> Outcome:
        """Claim ``message_id`` in the store and send it: what the ``send`` task does."""
        bridge = self.bridge
        self._worker_setup(bridge)
        store = _outbox_store(bridge)
        owner = self.owner
        claim = store.claim_one(
            message_id,
            owner=owner,
            lease=self.settings.lease,
            resend_ambiguous=self._resend_ambiguous(store, bridge, message_id),
        )
        if claim.state != "claimed":
            if claim.state in ("not_due", "busy"):
                return Outcome(
                    message_id, "later", claim.status, detail=claim.state, retry_in=claim.retry_in
                )
            if claim.state == "missing":
                log.warning("message %s: not in the outbox; task dropped", message_id)
            return Outcome(message_id, "skipped", claim.status, detail=claim.state)
        message = claim.message
        assert message is not None
        current = _current
        current.store, current.message_id, current.owner = store, message_id, owner
        current.handed_over = False
        try:
            result = bridge._send(message, message_id, already_stored=True)
        except ClaimLost:
            log.warning("message %s: claim lost before sending; left to its new owner", message_id)
            return Outcome(message_id, "skipped", detail="claim lost")
        except Exception as exc:
            # MessageError/RoutingError (the config changed since enqueue): failed.
            # Anything unexpected after the hand-over: unknown (it may have gone out).
            if not isinstance(exc, SmsBridgeError) and not current.handed_over:
                store.release(owner, [message_id])  # nothing went out: back to the outbox
                raise
            ambiguous = current.handed_over and not isinstance(exc, SmsBridgeError)
            status = Status.unknown if ambiguous else Status.failed
            _record_outcome(store, message_id, message, exc, status)
            log.warning(
                "message %s: %s without a provider answer: %s",
                message_id,
                status.value,
                type(exc).__name__,
            )
            return Outcome(
                message_id,
                "unknown" if ambiguous else "failed",
                status.value,
                detail=type(exc).__name__,
            )
        finally:
            current.store, current.message_id = None, None
        action: Literal["sent", "failed", "unknown"]
        if result.error is None:
            action = "sent"
        elif result.status is Status.unknown:
            action = "unknown"
        else:
            action = "failed"
        if result.error is not None:
            log.warning(
                "message %s: %s after %d attempt(s): %s",
                message_id,
                result.status.value,
                len(result.attempts),
                type(result.error).__name__,
            )
        return Outcome(
            message_id,
            action,
            result.status.value,
            result.phone,
            type(result.error).__name__ if result.error else None,
        )

    def _resend_ambiguous(self, store: CeleryOutbox, bridge: Bridge, message_id: str) -> bool:
        """Whether a message lost mid-send may go again (its route's resend_ambiguous).

        Only read from the store when some route of the config allows it.
        """
        if not any(route.resend_ambiguous for route in bridge.config.routes):
            return False
        stored = store.get_message(message_id)
        if stored is None:
            return False
        message = OutgoingMessage(
            to=stored.to, body=stored.body or "x", phone=stored.requested_phone, tag=stored.tag
        )
        try:
            return bridge._decide(message, stored.to).resend_ambiguous
        except SmsBridgeError:
            return False

    def _register_send(self) -> Task:
        tasks = self
        busy_retries = 100
        error_retries = 8

        def send(task: Task, message_id: str) -> dict[str, Any]:
            try:
                outcome = tasks.run(message_id)
            except Exception as exc:
                # One line, secrets redacted: a driver's error text can carry the SQL
                # parameters (bodies, numbers) on its next lines; Celery logs what we raise.
                first = (tasks._redact(str(exc)).splitlines() or [""])[0]
                summary = f"{type(exc).__name__}: {first}"
                log.error("message %s: task failed: %s", message_id, summary)
                if isinstance(exc, SmsBridgeError) or task.request.retries >= error_retries:
                    raise TaskFailed(f"message {message_id}: {summary}") from None
                # e.g. the database restarting: try again later (the claim was given back,
                # or the message is settled by the store once its lease ends).
                raise task.retry(
                    countdown=min(60, 2**task.request.retries), max_retries=None
                ) from None
            if outcome.action == "later" and outcome.retry_in is not None:
                # Not due yet (an early ETA), or held by another worker: look again when
                # it is due / when that claim's lease ends. A lease outlives its owner
                # only when the owner died; then the store decides (resend or unknown).
                if outcome.detail == "not_due" or task.request.retries < busy_retries:
                    raise task.retry(countdown=max(0.2, outcome.retry_in), max_retries=None)
                log.warning(
                    "message %s: still held by another worker; left to the sweep", message_id
                )
            return outcome.to_dict()

        register = self.app.task(
            name=f"{self.settings.prefix}.send",
            bind=True,
            acks_late=True,
            reject_on_worker_lost=True,
            ignore_result=self.settings.result_backend is None,
            max_retries=None,
        )
        return cast("Task", register(send))

    def _register_sweep(self) -> Task:
        tasks = self

        def sweep() -> dict[str, int]:
            return tasks.run_sweep()

        register = self.app.task(name=f"{self.settings.prefix}.sweep", ignore_result=True)
        return cast("Task", register(sweep))

    def run_sweep(
        self, *, orphan_after: float | None = None, limit: int = 10_000
    ) -> dict[str, int]:
        """Settle lost in-flight messages; re-dispatch due messages that have no task.

        A due, unclaimed pending message is re-dispatched only when it has waited more
        than ``orphan_after`` seconds (default: 10 sweep intervals) *and* its queue is
        empty, so a long backlog is never dispatched twice. A duplicate task is harmless
        anyway: the store lets one claim win.
        """
        bridge = self.bridge
        store = _outbox_store(bridge)
        settled = resent = 0
        for lost in store.lost_claims(limit=limit):
            resend = self._resend_ambiguous(store, bridge, lost.message_id)
            if store.resolve_lost(lost, resend=resend):
                settled += 1
                if resend:
                    self.dispatch(lost.message_id, lane=lost.lane)
                    resent += 1
                else:
                    log.warning(
                        "message %s: its worker was lost while sending it; status unknown",
                        lost.message_id,
                    )
        wait = orphan_after if orphan_after is not None else 10 * self.settings.sweep_interval
        ids = store.pending_ids(older_than=wait, limit=limit)
        by_queue: dict[str, list[tuple[str, str | None]]] = {}
        for message_id in ids:
            stored = store.get_message(message_id)
            if stored is None:
                continue
            by_queue.setdefault(self.queue_for(stored.lane), []).append((message_id, stored.lane))
        dispatched = 0
        for queue, stuck in by_queue.items():
            if self._queue_length(queue) > 0:
                continue  # tasks are still waiting there: these will come in turn
            with self.app.producer_or_acquire() as producer:
                for message_id, lane in stuck:
                    self.dispatch(message_id, lane=lane, producer=producer)
            dispatched += len(stuck)
        if dispatched:
            log.warning("sweep: re-dispatched %d message(s) that had no task", dispatched)
        return {"settled": settled, "resent": resent, "dispatched": dispatched}

    def _queue_length(self, queue: str) -> int:
        try:
            with self.app.connection_for_write() as conn:
                declared = conn.default_channel.queue_declare(queue=queue, passive=True)
                return int(declared.message_count)
        except Exception:
            return 0  # the queue does not exist yet: nothing waits in it

    def _redact(self, text: str) -> str:
        try:
            phones = list(self.bridge.phones.values())
        except Exception:  # pragma: no cover - redaction is best effort
            return text
        for phone in phones:
            text = phone.redact(text)
        return text


class CeleryOutbox(Protocol):
    """What this module needs from the store: smsbridge's SQL store provides it."""

    def enqueue(self, entries: Sequence[OutboxEntry]) -> list[str]: ...
    def finish_send(self, result: SendResult) -> None: ...
    def claim_one(
        self, message_id: str, *, owner: str, lease: float = ..., resend_ambiguous: bool = ...
    ) -> ClaimOutcome: ...
    def mark_sending(self, message_id: str, worker: str, *, lease: float = ...) -> bool: ...
    def renew(self, worker: str, *, lease: float = ...) -> int: ...
    def release(self, worker: str, message_ids: Sequence[str] | None = ...) -> int: ...
    def lost_claims(self, *, limit: int = ...) -> list[ClaimedMessage]: ...
    def resolve_lost(self, lost: ClaimedMessage, *, resend: bool) -> bool: ...
    def pending_ids(self, *, older_than: float = ..., limit: int = ...) -> list[str]: ...
    def get_message(self, message_id: str) -> StoredMessage | None: ...


def _outbox_store(bridge: Bridge) -> CeleryOutbox:
    from .outbox import outbox_store

    store = outbox_store(bridge)
    missing = [
        name
        for name in ("claim_one", "mark_sending", "renew", "pending_ids", "get_message")
        if not callable(getattr(store, name, None))
    ]
    if missing:
        raise ConfigError(
            f"the store ({type(store).__name__}) cannot serve Celery workers "
            f"(missing: {', '.join(missing)}); use smsbridge's SQL store",
            key="store",
        )
    return cast("CeleryOutbox", store)


def _record_outcome(
    store: CeleryOutbox,
    message_id: str,
    message: OutgoingMessage,
    exc: BaseException,
    status: Status,
) -> None:
    info = count_segments(message.body or "")
    store.finish_send(
        SendResult(
            message_id=message_id,
            status=status,
            phone=None,
            provider_id=None,
            to=message.to,
            segments=info.segments,
            encoding=info.encoding,
            error=exc,
        )
    )


def _after_fork(bridge: Bridge) -> None:
    """A bridge inherited through fork: drop the parent's database connections."""
    engine = getattr(bridge.store, "engine", None)
    dispose = getattr(engine, "dispose", None)
    if dispose is not None:
        dispose(close=False)


# --------------------------------------------------------------------------- entry points
def install(
    app: Celery,
    bridge: Bridge | Callable[[], Bridge],
    *,
    queues: Literal["single", "per_phone"] = "single",
    redis_url: str | None = None,
    prefix: str = "smsbridge",
    lease: float = 60.0,
    settings: QueueSettings | None = None,
) -> SmsbridgeTasks:
    """Attach smsbridge to your Celery ``app``; returns the tasks and dispatch helpers.

    ``bridge``: a :class:`~smsbridge.Bridge`, or a callable returning one (built lazily,
    once per worker process: preferable with the prefork pool). ``redis_url``: where the
    per-phone rate limits are shared (without it, each worker process has its own).
    """
    if settings is None:
        settings = QueueSettings(
            broker=str(app.conf.broker_url or "") or None,
            queues=queues,
            redis_url=redis_url,
            prefix=prefix,
            lease=lease,
        )
    return _attach(app, bridge, settings)


def _attach(
    app: Celery,
    bridge: Bridge | Callable[[], Bridge],
    settings: QueueSettings,
    phone_names: Sequence[str] | None = None,
) -> SmsbridgeTasks:
    tasks = SmsbridgeTasks(app, bridge, settings, phone_names=phone_names)
    if isinstance(bridge, Bridge):
        _REGISTRY[bridge] = tasks
        # With the enqueue hook in place, bridge.enqueue() dispatches too.
        hooks = getattr(bridge, "enqueue_hooks", None)
        if isinstance(hooks, list):
            hooks.append(tasks.on_enqueue)
            tasks.hooked = True
    return tasks


def tasks_for(bridge: Bridge) -> SmsbridgeTasks:
    """The :class:`SmsbridgeTasks` that :func:`install` attached to ``bridge``."""
    try:
        return _REGISTRY[bridge]
    except KeyError:
        raise ConfigError(
            "this bridge is not attached to Celery: call smsbridge.celery.install(app, bridge)"
        ) from None


def enqueue(bridge: Bridge, to: str, body: str, **fields: Any) -> str:
    """Store a message in ``bridge``'s outbox and dispatch its Celery task."""
    return tasks_for(bridge).enqueue(to, body, **fields)


def enqueue_many(
    bridge: Bridge, messages: Iterable[OutgoingMessage | Mapping[str, Any]]
) -> list[str]:
    """Store many messages and dispatch one Celery task per message."""
    return tasks_for(bridge).enqueue_many(messages)


def from_config(config: Config, settings: QueueSettings, *, bridge: Bridge | None = None) -> Celery:
    """A ready-made Celery app for ``config``: tasks, queues, late acks, beat schedule.

    The app's bridge is built lazily in each worker process from ``config`` (or is the
    given ``bridge``); the tasks are at ``app.smsbridge`` (a :class:`SmsbridgeTasks`).
    """
    from celery import Celery
    from kombu.entity import Queue

    if settings.backend != "celery" or not settings.broker:
        raise ConfigError(
            "queue.backend must be celery, with a broker, for a Celery app",
            file=config.path,
            key="queue.backend",
        )
    app = Celery(settings.prefix, broker=settings.broker, backend=settings.result_backend)
    names = [settings.prefix]
    if settings.queues == "per_phone":
        names += [f"{settings.prefix}.{name}" for name in config.phones]
    app.conf.update(
        task_default_queue=settings.prefix,
        task_queues=[Queue(name, routing_key=name) for name in names],  # type: ignore[no-untyped-call]
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=settings.result_backend is None,
        broker_connection_retry_on_startup=True,
        beat_schedule={
            f"{settings.prefix}-sweep": {
                "task": f"{settings.prefix}.sweep",
                "schedule": settings.sweep_interval,
            }
        },
        enable_utc=True,
    )

    if settings.broker.split("://", 1)[0] in ("redis", "rediss", "sentinel", "sqs"):
        # Only brokers that emulate acknowledgements have a visibility timeout.
        app.conf.broker_transport_options = {"visibility_timeout": settings.visibility_timeout}

    def build() -> Bridge:
        return Bridge.from_config(config)

    tasks = _attach(app, bridge if bridge is not None else build, settings, list(config.phones))
    app.smsbridge = tasks
    return app


def app_from_yaml(path: str | os.PathLike[str] | None = None) -> Celery:
    """The ready-made Celery app of a YAML file with a ``queue:`` section.

    ``path`` → ``$SMSBRIDGE_CONFIG`` → ``./smsbridge.yaml``.
    """
    config, settings = load_config(path)
    if settings is None:
        raise ConfigError(
            "no 'queue:' section: add queue: {backend: celery, broker: redis://...}",
            file=config.path,
            key="queue",
        )
    return from_config(config, settings)


_APP: Celery | None = None
_APP_LOCK = threading.Lock()


def __getattr__(name: str) -> Any:
    """``smsbridge.celery.app``: the ready-made app of ``$SMSBRIDGE_CONFIG`` (for ``-A``)."""
    global _APP
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _APP_LOCK:
        if _APP is None:
            _APP = app_from_yaml()
        return _APP

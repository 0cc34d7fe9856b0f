"""The Celery side of the outbox: the ``send`` and ``sweep`` tasks, dispatch, and the
worker process's bridge.

The outbox (the message store) stays the source of truth; Celery only carries message
ids. A task claims its message in the store and sends it with
:func:`smsbridge.outbox.process_claimed` — the send pipeline of ``send()`` with the outbox
hand-over, the same code as the embedded worker — and is acknowledged only afterwards
(late acks). A task the broker delivers twice, or that a killed worker leaves behind,
finds the message already claimed or finished and does nothing: the store decides.

Per-phone rate limits are shared by every worker on every machine through Redis
(:mod:`smsbridge.limits`), counted in segments; a provider's ``RateLimited`` answer
pauses that phone for all of them.
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

from ..bridge import Bridge
from ..config.queue import QueueSettings
from ..errors import ConfigError, SmsBridgeError
from ..message import OutgoingMessage, utcnow
from ..outbox import outbox_store, prepare_entries, process_claimed
from ..status import Status
from ..store.protocol import OutboxStore
from ..store.records import OutboxEntry, StoredMessage

if TYPE_CHECKING:
    from celery import Celery, Task

__all__ = [
    "REGISTRY",
    "CeleryOutbox",
    "Outcome",
    "SmsbridgeTasks",
    "TaskFailed",
    "after_fork",
    "celery_store",
    "tasks_for",
]

log = logging.getLogger("smsbridge.celery")


class TaskFailed(SmsBridgeError):
    """A send task failed for a reason outside the send lifecycle (store, configuration).

    Its message is one redacted line naming the message id and the original error type.
    """


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


#: The tasks attached to each bridge (see :func:`tasks_for`).
REGISTRY: weakref.WeakKeyDictionary[Any, SmsbridgeTasks] = weakref.WeakKeyDictionary()


class SmsbridgeTasks:
    """smsbridge attached to a Celery app: the tasks, dispatch, and the worker's bridge.

    - :attr:`send`: the task ``<prefix>.send(message_id)``.
    - :attr:`sweep`: the periodic task ``<prefix>.sweep()``: settles messages whose worker
      was lost mid-send, and re-dispatches due messages left without a task (stored
      while the broker was down, or a task lost with its queue or its worker). The
      workers run it themselves too (:meth:`start_sweeper`: one at a time, elected
      through a lease in the store), so no ``celery beat`` is needed.
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
        self._sweeper: threading.Thread | None = None
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
                        REGISTRY[self._bridge] = self
                    else:
                        assert self._bridge is not None
                        after_fork(self._bridge)
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
        """First task in a process: shared limits and the lease heartbeat."""
        if self._worker_ready:
            return
        with self._lock:
            if self._worker_ready:
                return
            url = self.settings.limiter_url
            if url:
                from ..limits import install_redis_limiters

                install_redis_limiters(bridge, url, prefix=self.settings.prefix)
            else:
                limited = [p.name for p in bridge.phones.values() if p.rate_limit]
                if limited:
                    log.warning(
                        "no redis_url: the rate limits of %s hold per worker process, "
                        "not across workers",
                        ", ".join(limited),
                    )
            store = celery_store(bridge)
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

    # ---------------------------------------------------------------- the workers' sweep
    @property
    def sweep_lease(self) -> str:
        """The store lease whose holder runs the sweep."""
        return f"{self.settings.prefix}:sweep"

    def start_sweeper(self) -> None:
        """Run the sweep from this process every ``sweep_interval`` while it holds the
        sweep lease (one process of the fleet at a time; another takes over when the
        holder dies). Called when a worker is ready; idempotent."""
        with self._lock:
            if self._sweeper is not None and self._sweeper.is_alive():
                return
            self._sweeper = threading.Thread(
                target=self._sweep_loop, name="smsbridge-sweep", daemon=True
            )
            self._sweeper.start()

    def _sweep_loop(self) -> None:
        interval = self.settings.sweep_interval
        while not self._stop.wait(interval):
            self.sweep_once()

    def sweep_once(self) -> dict[str, int] | None:
        """Run the sweep if this process holds (or gets) the sweep lease; None if not."""
        try:
            store = celery_store(self.bridge)
            hold = 3 * self.settings.sweep_interval
            if not store.acquire_lease(self.sweep_lease, self.owner, hold):
                return None
            return self.run_sweep()
        except Exception as exc:  # the next round tries again
            log.warning("sweep failed: %s: %s", type(exc).__name__, self._redact(str(exc)))
            return None

    def close(self) -> None:
        """Stop the lease heartbeat and the sweeper; close the bridge when this object
        built it."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(5)
        if self._sweeper is not None:
            self._sweeper.join(5)
        if self._factory is not None and self._bridge is not None:
            self._bridge.close()
            self._bridge = None

    # ---------------------------------------------------------------- queues
    @property
    def default_queue(self) -> str:
        """The app's default queue (``task_default_queue``; ``celery`` unless configured):
        where ``queues: single`` sends every task, so a worker started the usual way
        consumes them."""
        return str(self.app.conf.task_default_queue or "celery")

    def queue_for(self, phone: str | None) -> str:
        """The queue of a message whose route starts with ``phone`` (its lane)."""
        if self.settings.queues == "per_phone" and phone:
            return f"{self.settings.prefix}.{phone}"
        return self.default_queue

    @property
    def phone_queues(self) -> list[str]:
        """The per-phone queues (``queues: per_phone``), else none."""
        if self.settings.queues != "per_phone":
            return []
        phones = self._phone_names if self._phone_names is not None else self.bridge.phones
        return [self.queue_for(name) for name in phones]

    @property
    def queue_names(self) -> list[str]:
        """Every queue the tasks may be sent to (the default one first)."""
        return [self.default_queue, *self.phone_queues]

    def declare_queues(self, queues: Any) -> None:
        """Add the per-phone queues to a worker's set of queues (Celery's ``Queues``), so a
        worker started without ``-Q`` consumes them."""
        for name in self.phone_queues:
            if name not in queues:
                queues.select_add(name)

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
        bridge = self.bridge
        store = celery_store(bridge)
        items = [OutgoingMessage.coerce(m) for m in messages]
        entries = prepare_entries(bridge.pipeline, items)
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
        store = celery_store(bridge)
        claim = store.claim_one(
            message_id,
            owner=self.owner,
            lease=self.settings.lease,
            resend_ambiguous=self._resend_ambiguous(store, bridge, message_id),
        )
        if claim.state != "claimed" or claim.claimed is None:
            if claim.state in ("not_due", "busy"):
                return Outcome(
                    message_id, "later", claim.status, detail=claim.state, retry_in=claim.retry_in
                )
            if claim.state == "missing":
                log.warning("message %s: not in the outbox; task dropped", message_id)
            return Outcome(message_id, "skipped", claim.status, detail=claim.state)
        done = process_claimed(
            bridge.pipeline,
            store,
            claim.claimed,
            owner=self.owner,
            lease=self.settings.lease,
            release_unexpected=True,
        )
        result = done.result
        if result is None:
            return Outcome(message_id, "skipped", detail="claim lost")
        action: Literal["sent", "failed", "unknown"]
        if result.error is None:
            action = "sent"
        elif result.status is Status.unknown:
            action = "unknown"
        else:
            action = "failed"
        if result.error is not None and result.attempts:
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
        return bridge.pipeline.resend_ambiguous(
            OutgoingMessage(
                to=stored.to, body=stored.body or "x", phone=stored.requested_phone, tag=stored.tag
            )
        )

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

        A due pending message that no live worker holds is re-dispatched only when it has
        waited more than ``orphan_after`` seconds (default: the lease or the sweep
        interval, the longer) *and* its queue is empty, so a backlog is never dispatched
        twice; that covers tasks lost with their queue, and tasks a killed worker had
        reserved (the broker would hold them until its visibility timeout). A duplicate
        task is harmless: the store lets one claim win. Messages that waited longer than
        two sweep intervals in a queue no worker consumes are logged, naming the queue.
        """
        bridge = self.bridge
        store = celery_store(bridge)
        settled = resent = 0
        for lost in store.lost_claims(limit=limit):
            resend = lost.outbox and self._resend_ambiguous(store, bridge, lost.message_id)
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
        default_wait = max(self.settings.lease, self.settings.sweep_interval)
        wait = orphan_after if orphan_after is not None else default_wait
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
        unconsumed = self.warn_unconsumed(store, limit=limit)
        return {
            "settled": settled,
            "resent": resent,
            "dispatched": dispatched,
            "unconsumed": unconsumed,
        }

    def warn_unconsumed(self, store: CeleryOutbox, *, limit: int = 10_000) -> int:
        """Log the queues where messages have waited more than two sweep intervals and that
        no running worker consumes; returns how many messages wait there."""
        waited = 2 * self.settings.sweep_interval
        counts: dict[str, int] = {}
        for message_id in store.pending_ids(older_than=waited, limit=limit):
            stored = store.get_message(message_id)
            if stored is not None:
                queue = self.queue_for(stored.lane)
                counts[queue] = counts.get(queue, 0) + 1
        if not counts:
            return 0
        consumed = self.consumed_queues()
        if consumed is None:
            return 0  # no worker answered: nothing to tell apart
        missing = {queue: n for queue, n in counts.items() if queue not in consumed}
        for queue, n in sorted(missing.items()):
            log.warning(
                "%d message(s) have waited over %.0fs in queue %r, which no running worker "
                "consumes: start one that does (celery worker -Q %s, or without -Q)",
                n,
                waited,
                queue,
                ",".join(self.queue_names),
            )
        return sum(missing.values())

    def consumed_queues(self, timeout: float = 1.0) -> set[str] | None:
        """The queues the running workers consume (a broadcast; None if none answered)."""
        try:
            answers = self.app.control.inspect(timeout=timeout).active_queues() or {}
        except Exception:
            return None
        if not answers:
            return None
        return {str(q.get("name")) for queues in answers.values() for q in queues or ()}

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


class CeleryOutbox(OutboxStore, Protocol):
    """What the tasks need from the store: an outbox that can also list a message and
    hold a lease (the workers' sweep)."""

    def get_message(self, message_id: str) -> StoredMessage | None: ...
    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool: ...


def celery_store(bridge: Bridge) -> CeleryOutbox:
    """The bridge's store, which must serve Celery workers (smsbridge's SQL store does)."""
    store = outbox_store(bridge.store, file=bridge.config.path)
    missing = [
        name
        for name in (
            "claim_one",
            "mark_sending",
            "renew",
            "pending_ids",
            "get_message",
            "acquire_lease",
        )
        if not callable(getattr(store, name, None))
    ]
    if missing:
        raise ConfigError(
            f"the store ({type(store).__name__}) cannot serve Celery workers "
            f"(missing: {', '.join(missing)}); use smsbridge's SQL store",
            key="store",
        )
    return cast("CeleryOutbox", store)


def after_fork(bridge: Bridge) -> None:
    """A bridge inherited through fork: drop the parent's database connections."""
    engine = getattr(bridge.store, "engine", None)
    dispose = getattr(engine, "dispose", None)
    if dispose is not None:
        dispose(close=False)


def tasks_for(bridge: Bridge) -> SmsbridgeTasks:
    """The :class:`SmsbridgeTasks` that :func:`~smsbridge.celery.install` attached to ``bridge``."""
    try:
        return REGISTRY[bridge]
    except KeyError:
        raise ConfigError(
            "this bridge is not attached to Celery: call smsbridge.celery.install(app, bridge)"
        ) from None

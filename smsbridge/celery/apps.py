"""Attaching smsbridge to a Celery app: your own (:func:`install`), or a ready-made one
from the YAML's ``queue:`` section (:func:`app_from_yaml`, ``celery -A smsbridge.celery``).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..bridge import Bridge
from ..config import Config
from ..config.queue import QueueSettings, load_with_queue
from ..errors import ConfigError
from ..message import OutgoingMessage
from .tasks import REGISTRY, SmsbridgeTasks, tasks_for

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["app_from_yaml", "enqueue", "enqueue_many", "from_config", "install"]


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

    Works with workers started the usual way (``celery -A proj worker``, no ``-Q``):
    ``queues="single"`` uses the app's default queue; ``"per_phone"`` queues are added to
    such a worker's queues. Every worker runs the sweep (one at a time), so no
    ``celery beat`` is needed to recover a killed worker's messages.
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
    _wire_worker(app, tasks)
    if settings.broker and settings.broker.split("://", 1)[0] in REDELIVERING_BROKERS:
        # Brokers that emulate acknowledgements give a task back after the visibility
        # timeout; the workers' sweep recovers a killed worker's messages long before.
        options = dict(app.conf.broker_transport_options or {})
        options.setdefault("visibility_timeout", settings.visibility_timeout)
        app.conf.broker_transport_options = options
    if isinstance(bridge, Bridge):
        REGISTRY[bridge] = tasks
        # With the enqueue hook in place, bridge.enqueue() dispatches too.
        hooks = getattr(bridge, "enqueue_hooks", None)
        if isinstance(hooks, list):
            hooks.append(tasks.on_enqueue)
            tasks.hooked = True
    return tasks


#: Brokers that emulate acknowledgements with a visibility timeout.
REDELIVERING_BROKERS = ("redis", "rediss", "sentinel", "sqs")


def _wire_worker(app: Celery, tasks: SmsbridgeTasks) -> None:
    """Hook ``tasks`` into the workers of ``app``: a worker started without ``-Q`` also
    consumes the per-phone queues (one started with ``-Q`` keeps its choice), and every
    worker takes part in the sweep (one at a time, elected through the store)."""
    from celery import signals

    ref = weakref.ref(tasks)

    def on_init(sender: Any = None, instance: Any = None, options: Any = None, **kw: Any) -> None:
        mine = ref()
        if mine is None or getattr(instance, "app", None) is not mine.app:
            return
        if not (options or {}).get("queues"):
            mine.declare_queues(instance.app.amqp.queues)

    def on_ready(sender: Any = None, **kw: Any) -> None:
        mine = ref()
        if mine is not None and getattr(sender, "app", None) is mine.app:
            mine.start_sweeper()

    signals.celeryd_init.connect(on_init, weak=False)
    signals.worker_ready.connect(on_ready, weak=False)


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

    def build() -> Bridge:
        return Bridge.from_config(config)

    tasks = _attach(app, bridge if bridge is not None else build, settings, list(config.phones))
    app.smsbridge = tasks
    return app


def app_from_yaml(path: str | os.PathLike[str] | None = None) -> Celery:
    """The ready-made Celery app of a YAML file with a ``queue:`` section.

    ``path`` → ``$SMSBRIDGE_CONFIG`` → ``./smsbridge.yaml``.
    """
    config, settings = load_with_queue(path)
    if settings is None:
        raise ConfigError(
            "no 'queue:' section: add queue: {backend: celery, broker: redis://...}",
            file=config.path,
            key="queue",
        )
    return from_config(config, settings)

"""Scale-out on Celery: outbox messages sent by Celery workers on many machines.

A package: :mod:`.tasks` holds the tasks and dispatch, :mod:`.apps` the apps (``.app``
is the ready-made app itself, for ``celery -A``); the ``queue:`` settings are
:mod:`smsbridge.config.queue`.

The outbox (the message store) stays the source of truth; Celery only carries message
ids. The producer stores a message (``bridge.enqueue``) and dispatches a task holding its
id; a worker claims the message in the store, sends it through the send pipeline with the
outbox hand-over (:func:`smsbridge.outbox.process_claimed`, the embedded worker's code:
validation, rate limit, retries, failover, status recording), and acknowledges the task
only afterwards (late acks). A task that the broker delivers twice, or that a killed
worker leaves behind, finds the message already claimed or finished and does nothing: the
store's state decides, never the task.

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

import threading
from typing import TYPE_CHECKING, Any

from ..config.queue import QUEUE_KEYS, QueueSettings, parse_queue_settings
from ..config.queue import load_with_queue as load_config
from ..outbox import ClaimLost
from .apps import app_from_yaml, enqueue, enqueue_many, from_config, install
from .tasks import Outcome, SmsbridgeTasks, TaskFailed, tasks_for

if TYPE_CHECKING:
    from celery import Celery

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
    "parse_queue_settings",
    "tasks_for",
]

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

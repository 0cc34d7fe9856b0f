"""``Bridge.enqueue``: validate now, store in the outbox, let a worker send later.

Everything that can be checked without a provider is checked here, so a bad message
raises at enqueue time instead of failing silently in a worker: the number (E.164,
``InvalidRecipient``), the route (``RoutingError``), what the chosen phones can carry
(``MessageTooLong``, ``UnsupportedFeature``...), and ``send_at`` (timezone-aware).

The first phone of a message's route is its *lane*: the worker sends it from that
phone's thread, at that phone's rate; failover to the next phones still happens at send
time as in ``send()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .encoding import count_segments
from .errors import ConfigError, MessageError
from .message import OutgoingMessage, new_id
from .store.protocol import OutboxStore
from .store.records import OutboxEntry

if TYPE_CHECKING:
    from .bridge import Bridge

__all__ = ["enqueue", "enqueue_many", "outbox_store", "prepare_entry"]


def outbox_store(bridge: Bridge) -> OutboxStore:
    """The bridge's store, which must keep an outbox."""
    store = bridge.store
    if store is None:
        raise ConfigError(
            "the outbox needs a message store: add e.g. 'store: sqlite:///smsbridge.db' "
            "to the config",
            file=bridge.config.path,
            key="store",
        )
    if not isinstance(store, OutboxStore):
        raise ConfigError(
            f"the configured store ({type(store).__name__}) has no outbox", key="store"
        )
    return store


def prepare_entry(bridge: Bridge, message: OutgoingMessage) -> OutboxEntry:
    """Validate ``message`` as ``send()`` would before any network call."""
    if message.send_at is not None and message.send_at.utcoffset() is None:
        raise MessageError("send_at must be a timezone-aware datetime (e.g. in UTC)")
    to = bridge._normalize(message)
    decision = bridge._decide(message, to)
    info = count_segments(message.body or "")
    return OutboxEntry(
        message_id=new_id(),
        message=message,
        to=to,
        lane=decision.phones[0],
        segments=info.segments,
        encoding=info.encoding,
    )


def enqueue(bridge: Bridge, message: OutgoingMessage) -> str:
    """Store one message in the outbox; returns its message id (or, when its
    ``idempotency_key`` is already known, the first message's id)."""
    return enqueue_many(bridge, [message])[0]


def enqueue_many(bridge: Bridge, messages: Sequence[OutgoingMessage]) -> list[str]:
    """Validate every message, then store them all in one transaction.

    If any message is invalid, its error is raised and nothing is stored; the error's
    ``index`` attribute tells which message it was.
    """
    store = outbox_store(bridge)
    entries: list[OutboxEntry] = []
    for index, message in enumerate(messages):
        try:
            entries.append(prepare_entry(bridge, message))
        except Exception as exc:
            if len(messages) > 1:
                exc.index = index  # type: ignore[attr-defined]
            raise
    if not entries:
        return []
    ids = store.enqueue(entries)
    for hook in bridge.enqueue_hooks:  # e.g. smsbridge.celery dispatches the tasks
        hook(ids, entries)
    return ids

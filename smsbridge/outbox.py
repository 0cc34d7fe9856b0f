"""The outbox: validate and store now (``Bridge.enqueue``), send later (a consumer).

**Producing.** Everything that can be checked without a provider is checked at enqueue
time, by the send pipeline's own planning step, so a bad message raises instead of
failing silently in a worker: the number (``InvalidRecipient``), the route
(``RoutingError``), what the chosen phones can carry (``MessageTooLong``,
``UnsupportedFeature``...), and ``send_at`` (timezone-aware). The first phone of a
message's route is its *lane*; failover to the next phones still happens at send time.

**Consuming.** :func:`process_claimed` sends one claimed outbox message through the
pipeline; the embedded worker (:mod:`smsbridge.worker`) and the Celery task
(:mod:`smsbridge.celery`) both call it. Its :class:`HandOver` is the pipeline's
``before_submit`` hook: before the first provider call it records in the store that
the message is being handed over (``mark_sending``), and refuses with
:class:`ClaimLost` when the claim no longer holds (a fence against a second consumer
after an expired lease). A consumer lost before the hand-over leaves a message the store
gives back to the outbox; after it, the message may have reached the provider and the
store settles it as ``unknown`` instead of sending it twice (unless its route says
``resend_ambiguous: true``).

The hand-over is recorded before the rate-limit wait, so the wait stays the last thing
before the provider call and the provider sees the spacing the limiter gave.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ConfigError, MessageError, SmsBridgeError
from .message import OutgoingMessage, SendResult, new_id
from .phone import PreparedMessage
from .pipeline import SendPipeline, failure_result
from .status import Status
from .store.protocol import MessageStore, OutboxStore
from .store.records import ClaimedMessage, OutboxEntry

__all__ = [
    "ClaimLost",
    "HandOver",
    "Processed",
    "outbox_store",
    "prepare_entries",
    "prepare_entry",
    "process_claimed",
]

log = logging.getLogger("smsbridge.outbox")


class ClaimLost(SmsBridgeError):
    """The consumer no longer holds the message's claim (its lease ran out): it must
    not send it. Not a :class:`~smsbridge.errors.SendError`, so no phone retries or
    fails over on it."""


def outbox_store(store: MessageStore | None, *, file: str | None = None) -> OutboxStore:
    """``store``, which must keep an outbox."""
    if store is None:
        raise ConfigError(
            "the outbox needs a message store: add e.g. 'store: sqlite:///smsbridge.db' "
            "to the config",
            file=file,
            key="store",
        )
    if not isinstance(store, OutboxStore):
        raise ConfigError(
            f"the configured store ({type(store).__name__}) has no outbox", key="store"
        )
    return store


# ---------------------------------------------------------------------- producing
def prepare_entry(pipeline: SendPipeline, message: OutgoingMessage) -> OutboxEntry:
    """Validate ``message`` as ``send()`` would before any network call."""
    if message.send_at is not None and message.send_at.utcoffset() is None:
        raise MessageError("send_at must be a timezone-aware datetime (e.g. in UTC)")
    plan = pipeline.plan(message)
    return OutboxEntry(
        message_id=new_id(),
        message=message,
        to=plan.to,
        lane=plan.phones[0],
        segments=plan.segments.segments,
        encoding=plan.segments.encoding,
    )


def prepare_entries(
    pipeline: SendPipeline, messages: Sequence[OutgoingMessage]
) -> list[OutboxEntry]:
    """Validate every message; the first invalid one raises, with an ``index`` attribute
    telling which it was (when there are several)."""
    entries: list[OutboxEntry] = []
    for index, message in enumerate(messages):
        try:
            entries.append(prepare_entry(pipeline, message))
        except Exception as exc:
            if len(messages) > 1:
                exc.index = index  # type: ignore[attr-defined]
            raise
    return entries


# ---------------------------------------------------------------------- consuming
class HandOver:
    """The ``before_submit`` hook of one claimed message (see the module docstring)."""

    def __init__(self, store: OutboxStore, claimed: ClaimedMessage, *, owner: str, lease: float):
        self.store = store
        self.claimed = claimed
        self.owner = owner
        self.lease = lease
        self.handed_over = False

    def __call__(self, prepared: PreparedMessage) -> None:
        if self.handed_over:
            return
        message_id = self.claimed.message_id
        if not self.store.mark_sending(
            message_id, self.owner, token=self.claimed.token, lease=self.lease
        ):
            raise ClaimLost(f"message {message_id}: claim lost before sending")
        self.handed_over = True


@dataclass(frozen=True)
class Processed:
    """What :func:`process_claimed` did: the recorded ``result``, or ``claim_lost``
    (another consumer owns the message now; nothing was sent or recorded)."""

    message_id: str
    result: SendResult | None
    claim_lost: bool = False


def process_claimed(
    pipeline: SendPipeline,
    store: OutboxStore,
    claimed: ClaimedMessage,
    *,
    owner: str,
    lease: float,
    release_unexpected: bool = False,
) -> Processed:
    """Send one claimed outbox message through the pipeline and record the outcome.

    An error outside the send lifecycle (a bug, the database failing) is recorded as
    ``unknown`` when it came after the hand-over (the message may have gone out), else
    as ``failed`` — or, with ``release_unexpected``, the claim is given back to the
    outbox and the error raised (the Celery task retries later). A
    :class:`~smsbridge.errors.MessageError` or ``RoutingError`` (the config changed since
    enqueue) is ``failed``.
    """
    hand_over = HandOver(store, claimed, owner=owner, lease=lease)
    try:
        result = pipeline.send(
            claimed.message, message_id=claimed.message_id, stored=True, before_submit=hand_over
        )
    except ClaimLost:
        log.warning("message %s: claim lost before sending; not sent", claimed.message_id)
        return Processed(claimed.message_id, None, claim_lost=True)
    except Exception as exc:
        expected = isinstance(exc, SmsBridgeError)
        if not expected and not hand_over.handed_over and release_unexpected:
            store.release(owner, [claimed.message_id])  # nothing went out: back to the outbox
            raise
        if not expected:
            log.exception("message %s: sending failed unexpectedly", claimed.message_id)
        ambiguous = hand_over.handed_over and not expected
        result = failure_result(
            claimed.message,
            exc,
            message_id=claimed.message_id,
            status=Status.unknown if ambiguous else Status.failed,
        )
        store.finish_send(result)
        log.warning(
            "message %s: %s without a provider answer: %s",
            claimed.message_id,
            result.status.value,
            type(exc).__name__,
        )
    return Processed(claimed.message_id, result)

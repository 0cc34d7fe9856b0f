"""THE send pipeline: the one path every message takes to a provider.

``Bridge.send``/``send_many``, the embedded worker and the Celery task all go through
:class:`SendPipeline`, in three steps::

    plan     normalise the number once, route (``send(phone=...)`` bypasses routing;
             phones that cannot carry the message are skipped) → :class:`Plan`
    send     record ``pending`` (idempotency key honoured) unless the message is already
             stored (outbox) → guards (opt-outs...) → for each phone of the plan:
             ``Phone.prepare`` + ``Phone.deliver`` (validation, ``before_submit`` hook,
             rate limit, retries) → fail over on phone-level errors only (DESIGN §7)
    record   every attempt and the outcome in the store; guards observe failed results

Failures come back in ``SendResult.error`` (a :class:`MessageError` about the message
itself, found while planning, raises). Collaborators are handed in: the phones, the
router, the store, and the guards — objects with ``refusal(message, to)`` (an error that
stops the send before any provider call, or None) and ``observe(result)`` (told of every
failed result: the opt-out list learns providers' opt-out errors there).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .encoding import SegmentInfo, count_segments
from .errors import (
    AmbiguousSend,
    AuthError,
    InsufficientCredit,
    MessageError,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    RoutingError,
    SendError,
)
from .message import Attempt, OutgoingMessage, SendResult, new_id
from .numbers import normalize
from .phone import BeforeSubmit, Phone
from .router import RouteDecision, Router
from .status import Status
from .store.protocol import MessageStore

__all__ = ["Plan", "SendGuard", "SendPipeline", "fails_over", "failure_result"]

log = logging.getLogger("smsbridge")


class SendGuard(Protocol):
    """Something that may refuse a message before any provider call (opt-outs)."""

    def refusal(self, message: OutgoingMessage, to: str) -> SendError | None:
        """The error to refuse ``message`` to ``to`` (E.164) with, or None."""

    def observe(self, result: SendResult) -> object:
        """Told of every failed result (e.g. a provider's opt-out error)."""


@dataclass(frozen=True)
class Plan:
    """A message ready to send: its normalised recipient, its phones in order, its size."""

    message: OutgoingMessage
    to: str  # E.164
    decision: RouteDecision
    segments: SegmentInfo

    @property
    def phones(self) -> tuple[str, ...]:
        return self.decision.phones


def fails_over(exc: SendError, decision: RouteDecision) -> bool:
    """DESIGN §7: fail over only on errors about the phone, never on the message."""
    if isinstance(exc, AmbiguousSend):
        return decision.resend_ambiguous
    if isinstance(exc, Rejected):
        return False
    if isinstance(exc, (InsufficientCredit, AuthError, ProviderUnavailable, RateLimited)):
        return True
    return exc.retryable


def failure_result(
    message: OutgoingMessage | Mapping[str, Any] | Any,
    error: BaseException,
    *,
    message_id: str | None = None,
    status: Status = Status.failed,
    to: str | None = None,
    attempts: Sequence[Attempt] = (),
) -> SendResult:
    """The :class:`SendResult` of a message that did not reach any provider (or whose
    fate is unknown): ``error`` set, no provider id. ``message`` may be a raw input
    (a dict, or anything) when the failure was that it is not a valid message."""
    if isinstance(message, Mapping):
        to = to or message.get("to")
        body = message.get("body")
    else:
        to = to or getattr(message, "to", None)
        body = getattr(message, "body", None)
    try:
        info = count_segments(str(body or ""))
        segments, encoding = info.segments, info.encoding
    except ValueError:
        segments, encoding = 0, "gsm7"
    return SendResult(
        message_id=message_id or new_id(),
        status=status,
        phone=attempts[-1].phone if attempts else None,
        provider_id=None,
        to=str(to or ""),
        segments=segments,
        encoding=encoding,
        error=error,
        attempts=tuple(attempts),
    )


class SendPipeline:
    """Plan, deliver with failover, record: see the module docstring."""

    def __init__(
        self,
        phones: Mapping[str, Phone],
        router: Router,
        *,
        store: MessageStore | None = None,
        default_region: str | None = None,
        guards: Sequence[SendGuard] = (),
    ) -> None:
        self.phones = phones
        self.router = router
        self.store = store
        self.default_region = default_region
        self.guards: list[SendGuard] = list(guards)

    # ------------------------------------------------------------------ plan
    def phone(self, name: str) -> Phone:
        try:
            return self.phones[name]
        except KeyError:
            raise RoutingError(
                f"unknown phone '{name}' (phones: {', '.join(self.phones)})"
            ) from None

    def normalize(self, message: OutgoingMessage) -> str:
        """The message's recipient in E.164; raises on a bad number or an empty body."""
        to = normalize(message.to, self.default_region)
        if (not message.body or not message.body.strip()) and not message.media:
            raise MessageError("message body is empty")
        return to

    def plan(self, message: OutgoingMessage, *, peek: bool = False) -> Plan:
        """Normalise and route ``message``; raises :class:`MessageError` or
        :class:`RoutingError` when it cannot go. ``peek``: do not advance round-robin
        turns (for ``Bridge.route``)."""
        to = self.normalize(message)
        if message.phone:
            phone = self.phone(message.phone)
            problem = phone.check_message(message, to)
            if problem is not None:
                raise problem
            decision = RouteDecision((phone.name,), None, {})
        else:
            decision = self.router.decide(message, to, peek=peek)
        return Plan(message, to, decision, count_segments(message.body or ""))

    def resend_ambiguous(self, message: OutgoingMessage) -> bool:
        """Whether ``message``'s route allows resending after an ambiguous send."""
        if not any(route.resend_ambiguous for route in self.router.routes):
            return False
        try:
            return self.plan(message, peek=True).decision.resend_ambiguous
        except (MessageError, RoutingError):
            return False

    # ------------------------------------------------------------------ send
    def send(
        self,
        message: OutgoingMessage,
        *,
        message_id: str | None = None,
        plan: Plan | None = None,
        stored: bool = False,
        before_submit: BeforeSubmit | None = None,
    ) -> SendResult:
        """Send ``message``; failures come back in ``result.error`` (whose ``result``
        attribute is the :class:`SendResult`). Planning errors raise.

        ``stored``: the message is already in the store as ``message_id`` (an outbox
        message): no ``pending`` record and no idempotency check here.
        ``before_submit``: passed to every :meth:`Phone.deliver` (the outbox hand-over).
        """
        if plan is None:
            plan = self.plan(message)
        info = plan.segments
        message_id = message_id or new_id()
        store = self.store
        if store is not None and not stored:
            existing = store.begin_send(
                message_id, message, to=plan.to, segments=info.segments, encoding=info.encoding
            )
            if existing is not None:
                log.info(
                    "idempotency key %r: returning message %s",
                    message.idempotency_key,
                    existing.message_id,
                )
                return existing
        for guard in self.guards:
            refused = guard.refusal(message, plan.to)
            if refused is not None:  # no provider call; recorded as failed
                return self._finish(
                    failure_result(message, refused, message_id=message_id, to=plan.to), []
                )
        attempts: list[Attempt] = []
        last_error: SendError | MessageError | None = None
        for name in plan.phones:
            phone = self.phones[name]
            try:
                prepared = phone.prepare(message, message_id)
                submission, retries = phone.deliver(prepared, before_submit=before_submit)
            except (SendError, MessageError) as exc:
                self._attempt(message_id, attempts, Attempt(name, str(exc), type(exc).__name__))
                last_error = exc
                if isinstance(exc, MessageError) or not fails_over(exc, plan.decision):
                    break
                log.warning("phone %s failed (%s); failing over", name, exc)
                continue
            self._attempt(message_id, attempts, Attempt(phone=name, retries=retries))
            result = replace(phone.result(prepared, submission), attempts=tuple(attempts))
            if store is not None:
                store.finish_send(result)
            return result
        assert last_error is not None
        status = Status.unknown if isinstance(last_error, AmbiguousSend) else Status.failed
        failed = failure_result(
            message,
            last_error,
            message_id=message_id,
            status=status,
            to=plan.to,
            attempts=attempts,
        )
        return self._finish(failed, self.guards)

    def _attempt(self, message_id: str, attempts: list[Attempt], attempt: Attempt) -> None:
        attempts.append(attempt)
        if self.store is not None:
            self.store.record_attempt(message_id, attempt)

    def _finish(self, result: SendResult, observers: Sequence[SendGuard]) -> SendResult:
        """Record a failed (or unknown) ``result`` and tie it to its error."""
        if self.store is not None:
            self.store.finish_send(result)
        for guard in observers:  # Twilio 21610, SNS OptedOut... join the list
            guard.observe(result)
        result.error.result = result  # type: ignore[union-attr]
        return result

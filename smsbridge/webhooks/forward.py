"""Event forwarding: every normalised event, POSTed as signed JSON to your own endpoints.

Configured with ``forward:`` targets (``url``, ``secret``, ``events``, ``timeout``,
``retries``). Each status report and inbound message the webhook dispatcher accepts
(after the user's callbacks succeeded) becomes one POST::

    POST <url>
    Content-Type: application/json
    X-Smsbridge-Event: status                       (or inbound)
    X-Smsbridge-Delivery: 3f2c...                   (event id; the same on every retry)
    X-Smsbridge-Timestamp: 1717171717               (Unix seconds of this attempt)
    X-Smsbridge-Signature: v1=<hex>                 (only when the target has a secret)

    {"id": "3f2c...", "type": "status", "created_at": "2024-...+00:00",
     "data": {...StatusReport.to_dict() or IncomingMessage.to_dict()...}}

The signature is ``HMAC-SHA256(secret, "<timestamp>." + <exact body bytes>)`` in hex.
Receivers check it with :func:`verify_signature` (constant-time, with a tolerance on the
timestamp against replays) and dedupe on ``X-Smsbridge-Delivery``.

Delivery never blocks nor fails the provider's callback: events go to a bounded queue per
target, served by background threads; a 2xx answer is success, anything else (or no
answer) is retried with exponential backoff and jitter up to ``retries`` times, without
holding up the events behind it. An event that cannot be delivered after its retries, or
that finds the queue full, is logged (id, type, phone; never the secret) and dropped.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from ..config import ForwardTarget
from ..errors import WebhookAuthError
from ..message import IncomingMessage, StatusReport, new_id, utcnow

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Forwarder",
    "sign",
    "verify_signature",
]

log = logging.getLogger("smsbridge.forward")

SIGNATURE_HEADER = "X-Smsbridge-Signature"
TIMESTAMP_HEADER = "X-Smsbridge-Timestamp"
EVENT_HEADER = "X-Smsbridge-Event"
DELIVERY_HEADER = "X-Smsbridge-Delivery"
SCHEME = "v1"


# ---------------------------------------------------------------------- signatures
def sign(body: bytes, secret: str, timestamp: int | str) -> str:
    """The ``X-Smsbridge-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    tolerance: float = 300.0,
    *,
    now: float | None = None,
) -> None:
    """Check a forwarded event; raise :class:`~smsbridge.errors.WebhookAuthError` if bad.

    ``body`` is the raw request body (bytes, before any JSON parsing), ``headers`` the
    request headers (any case), ``tolerance`` the largest accepted age (and clock skew)
    of ``X-Smsbridge-Timestamp`` in seconds (0 disables the check). The comparison is
    constant-time. Several ``v1=`` values separated by commas are accepted (rotation).
    """
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    stamp = lower.get(TIMESTAMP_HEADER.lower())
    given = lower.get(SIGNATURE_HEADER.lower())
    if not stamp or not given:
        raise WebhookAuthError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        sent_at = int(stamp)
    except ValueError:
        raise WebhookAuthError(f"{TIMESTAMP_HEADER} is not a Unix timestamp") from None
    if tolerance and abs((time.time() if now is None else now) - sent_at) > tolerance:
        raise WebhookAuthError(f"{TIMESTAMP_HEADER} is outside the {tolerance:g}s tolerance")
    expected = sign(body, secret, sent_at).encode("ascii")
    candidates = [c.strip().encode("ascii", "replace") for c in given.split(",")]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise WebhookAuthError(f"{SIGNATURE_HEADER} does not match the body")


# ---------------------------------------------------------------------- events
def event_body(kind: str, item: StatusReport | IncomingMessage, event_id: str) -> bytes:
    """The JSON body forwarded for one event."""
    data = {
        "id": event_id,
        "type": kind,
        "created_at": utcnow().isoformat(),
        "data": item.to_dict(),
    }
    return json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":")).encode()


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    event_id: str = field(compare=False)
    kind: str = field(compare=False)
    phone: str = field(compare=False)
    body: bytes = field(compare=False)
    attempts: int = field(default=0, compare=False)


def _where(url: str) -> str:
    """A URL safe to log: no credentials, no query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


class _Worker:
    """One target: a bounded due-time queue served by ``threads`` delivery threads."""

    def __init__(
        self,
        target: ForwardTarget,
        *,
        queue_size: int,
        backoff: float,
        max_backoff: float,
        session_factory: Callable[[], requests.Session],
        threads: int = 1,
    ) -> None:
        self.target = target
        self.where = _where(target.url)
        self._queue_size = queue_size
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._session_factory = session_factory
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._busy = 0
        self._stopping = False
        self._deadline = 0.0
        self.stats = {"delivered": 0, "retried": 0, "failed": 0, "dropped": 0}
        self._threads = [
            threading.Thread(target=self._run, name=f"smsbridge-forward-{i}", daemon=True)
            for i in range(max(1, threads))
        ]
        for thread in self._threads:
            thread.start()

    def put(self, kind: str, phone: str, body: bytes, event_id: str) -> bool:
        with self._cond:
            if self._stopping or len(self._heap) + self._busy >= self._queue_size:
                self.stats["dropped"] += 1
                dropped = self.stats["dropped"]
                full = not self._stopping
            else:
                job = _Job(time.monotonic(), next(self._seq), event_id, kind, phone, body)
                heapq.heappush(self._heap, job)
                self._cond.notify()
                return True
        if full and (dropped == 1 or dropped % 100 == 0):
            log.error(
                "forward to %s: queue full (%d events), dropped %s event %s of phone %s "
                "(%d dropped so far)",
                self.where,
                self._queue_size,
                kind,
                event_id,
                phone,
                dropped,
            )
        elif not full:
            log.error("forward to %s: closed, dropped %s event %s", self.where, kind, event_id)
        return False

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._busy

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is queued or in flight (retries included)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def _next(self) -> _Job | None:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._stopping:  # shutting down: one last attempt for each, no waits
                    if not self._heap or now >= self._deadline:
                        return None
                    self._busy += 1
                    return heapq.heappop(self._heap)
                if self._heap and self._heap[0].due <= now:
                    self._busy += 1
                    return heapq.heappop(self._heap)
                self._cond.wait(self._heap[0].due - now if self._heap else None)

    def _run(self) -> None:
        session = self._session_factory()
        try:
            while (job := self._next()) is not None:
                try:
                    ok, why = self._post(session, job)
                except Exception as exc:  # pragma: no cover - never let the thread die
                    ok, why = False, f"{type(exc).__name__}"
                self._done(job, ok, why)
        finally:
            session.close()
            with self._cond:
                lost = len(self._heap)
                self._heap.clear()
                self.stats["dropped"] += lost
                self._cond.notify_all()
            if lost:
                log.error("forward to %s: %d event(s) not delivered at shutdown", self.where, lost)

    def _post(self, session: requests.Session, job: _Job) -> tuple[bool, str]:
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "smsbridge-forward",
            EVENT_HEADER: job.kind,
            DELIVERY_HEADER: job.event_id,
            TIMESTAMP_HEADER: stamp,
        }
        if self.target.secret:
            headers[SIGNATURE_HEADER] = sign(job.body, self.target.secret, stamp)
        try:
            response = session.post(
                self.target.url,
                data=job.body,
                headers=headers,
                timeout=self.target.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return False, type(exc).__name__
        response.close()
        if 200 <= response.status_code < 300:
            return True, ""
        return False, f"HTTP {response.status_code}"

    def _done(self, job: _Job, ok: bool, why: str) -> None:
        retry_in = -1.0
        with self._cond:
            if ok:
                self.stats["delivered"] += 1
            elif job.attempts < self.target.retries and not self._stopping:
                job.attempts += 1
                self.stats["retried"] += 1
                delay = min(self._max_backoff, self._backoff * 2 ** (job.attempts - 1))
                job.due = time.monotonic() + random.uniform(delay / 2, delay)
                heapq.heappush(self._heap, job)
                retry_in = job.due - time.monotonic()
            else:
                self.stats["failed"] += 1
        if not ok:
            self._log_failure(job, why, retry_in)
        with self._cond:  # only now: flush() returns after the outcome was logged
            self._busy -= 1
            self._cond.notify_all()

    def _log_failure(self, job: _Job, why: str, retry_in: float) -> None:
        if retry_in >= 0:
            log.info(
                "forward to %s: %s event %s failed (%s), retry %d in %.1fs",
                self.where,
                job.kind,
                job.event_id,
                why,
                job.attempts,
                retry_in,
            )
        else:
            log.error(
                "forward to %s: %s event %s of phone %s not delivered after %d attempt(s) "
                "(last: %s); dropped",
                self.where,
                job.kind,
                job.event_id,
                job.phone,
                job.attempts + 1,
                why,
            )

    def close(self, timeout: float) -> None:
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        deadline = time.monotonic() + timeout + 1.0
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class Forwarder:
    """A dispatcher listener that forwards events to ``forward:`` targets.

    ``status(report)`` and ``inbound(message)`` only serialise and enqueue (never block,
    never raise); ``close()`` gives queued events ``drain_timeout`` seconds to go out.
    ``backoff`` is the first retry delay in seconds (doubled each retry, up to
    ``max_backoff``); ``threads`` POST in parallel to each target, so events may arrive
    out of order (a retried one always does).
    """

    def __init__(
        self,
        targets: tuple[ForwardTarget, ...] | list[ForwardTarget],
        *,
        queue_size: int = 10_000,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
        drain_timeout: float = 10.0,
        threads: int = 4,
        session_factory: Callable[[], requests.Session] = requests.Session,
    ) -> None:
        self.targets = tuple(targets)
        self.drain_timeout = drain_timeout
        self._workers = [
            _Worker(
                t,
                queue_size=queue_size,
                backoff=backoff,
                max_backoff=max_backoff,
                session_factory=session_factory,
                threads=threads,
            )
            for t in self.targets
        ]
        self._closed = False

    def __repr__(self) -> str:
        return f"<Forwarder targets={[w.where for w in self._workers]}>"

    def status(self, report: StatusReport) -> None:
        self._put("status", report)

    def inbound(self, message: IncomingMessage) -> None:
        self._put("inbound", message)

    def _put(self, kind: str, item: StatusReport | IncomingMessage) -> None:
        workers = [w for w in self._workers if kind in w.target.events]
        if not workers:
            return
        event_id = new_id()
        try:
            body = event_body(kind, item, event_id)
        except Exception:  # pragma: no cover - to_dict of value types cannot fail
            log.exception("forward: cannot serialise %s event %s", kind, event_id)
            return
        for worker in workers:
            worker.put(kind, item.phone, body, event_id)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per target (URL without query): delivered, retried, failed, dropped, pending."""
        return {w.where: {**w.stats, "pending": w.pending} for w in self._workers}

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        return all(w.flush(max(0.0, deadline - time.monotonic())) for w in self._workers)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + self.drain_timeout
        for worker in self._workers:
            worker.close(max(0.0, deadline - time.monotonic()))

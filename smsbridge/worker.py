"""The embedded outbox worker: drains the outbox on one machine (``smsbridge worker``).

Each phone gets its own threads (``threads_per_phone``; by default enough to reach the
phone's rate limit with provider answers of up to 200 ms: ``rate / 5``, at least 2, at
most 16; 4 for phones without a limit), which claim that phone's due messages in small
batches and send each through :func:`smsbridge.outbox.process_claimed` — the send
pipeline of ``send()`` (validation, the phone's rate limit shared by the phone's threads,
retries, failover, recording) with the outbox hand-over. One more thread takes messages
whose phone left the config, and re-routes them.

**One budget per phone for every worker on the store.** A phone with a rate limit is
drained by one worker process at a time: the one holding the store lease
``lane:<phone>`` (:meth:`~smsbridge.store.sql.SqlStore.acquire_lease`). Its threads claim
the phone's messages only while their process holds the lease, and share the phone's
limiter, so the phone sees the rate of one process, whatever the number of workers. The
heartbeat renews the leases with the claims; a worker without the lease tries to take it
every ``idle_interval``; a stopping worker gives its lanes up at once, a killed one
loses them when the lease runs out (then another worker takes over). Phones without a
rate limit (and phones whose limiter is already shared, through Redis) are drained by
every worker at once, as are messages whose phone left the config. The edge left: a
message failing over *to* another phone is paced by that phone's limiter in the process
that sends it, which may not hold that phone's lane.

Crash safety, with every step recorded in the store:

1. **claim** — an atomic conditional ``UPDATE`` (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL) gives the message to one worker for a lease (``lease`` seconds), which a
   heartbeat thread renews while the worker lives.
2. **hand-over** — before the rate-limit wait and the provider call, the pipeline's
   ``before_submit`` hook records ``sending_since`` (only while the worker still holds
   the claim; otherwise it does not send: a fence against a second worker after an
   expired lease).
3. **outcome** — ``queued``/``failed``/``unknown`` and the attempts, as ``send()`` records.

A worker killed between 1 and 2 loses nothing: after the lease its messages are
claimable again. One killed between 2 and 3 may or may not have reached the provider:
after the lease such messages become ``unknown`` and are not resent, unless their route
says ``resend_ambiguous: true``. A worker told to stop (SIGTERM, SIGINT,
:meth:`Worker.stop`) finishes the message in flight, gives back the rest and exits.

Scheduled messages (``send_at``) are claimed only once due. Phones that poll
(``receive_mode``/``status_mode`` ``poll``) are polled every ``poll_interval`` seconds.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from types import FrameType
from typing import Any, Protocol, runtime_checkable

from .bridge import Bridge
from .errors import SendError, UnsupportedFeature
from .limits import RedisLimiter
from .outbox import ClaimLost, outbox_store, process_claimed
from .phone import Phone
from .status import Status
from .store.records import ClaimedMessage

__all__ = ["LANE_LEASE", "ClaimLost", "LeaseStore", "Worker", "WorkerStats"]

log = logging.getLogger("smsbridge.worker")

#: The lease a worker holds while it drains a phone: ``lane:<phone name>``.
LANE_LEASE = "lane:{}"
#: A lane counts as held locally for this share of the lease after each acquisition or
#: renewal (timed from before the store's statement; the heartbeat renews every third of
#: the lease): a process whose renewals stall stops claiming the phone's messages a third
#: of the lease before the store could give the lane to another worker, which leaves the
#: sends already past that check (hand-over, rate-limit wait, request) time to end.
_HELD_SHARE = 2 / 3


@runtime_checkable
class LeaseStore(Protocol):
    """Named, expiring holds shared by every process on the store (the SQL store has them)."""

    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool: ...

    def release_lease(self, name: str, owner: str) -> bool: ...


class _LaneLease:
    """This process's view of one phone lane's store lease."""

    def __init__(self, phone: str) -> None:
        self.phone = phone
        self.name = LANE_LEASE.format(phone)
        self.owned = False  # taken and neither lost nor given up since
        self.until = 0.0  # time.monotonic() up to which the lane is surely ours
        self.tried = -math.inf  # last acquisition attempt (monotonic)
        self.lock = threading.Lock()

    @property
    def held(self) -> bool:
        return time.monotonic() < self.until


@dataclass
class WorkerStats:
    """What a worker did (``status`` counts are of the outcomes it recorded)."""

    sent: int = 0  # queued/sent/delivered
    failed: int = 0
    unknown: int = 0
    claims_lost: int = 0  # claims taken over before the hand-over (not sent)
    released: int = 0  # claimed, given back unsent at shutdown
    lost_unknown: int = 0  # other workers' in-flight messages settled as unknown
    lost_requeued: int = 0  # ... returned to the outbox (resend_ambiguous routes)
    polled_inbound: int = 0
    polled_status: int = 0
    lanes_taken: int = 0  # phone lanes this worker took (at start, or over from another)
    lanes_lost: int = 0  # ... and lost (its lease ran out before the heartbeat renewed it)
    errors: int = 0  # unexpected errors (database down...), logged
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    @property
    def processed(self) -> int:
        return self.sent + self.failed + self.unknown

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


class Worker:
    """Drains a bridge's outbox. ``run()`` blocks until :meth:`stop` (or a signal).

    ``lease``: seconds a claim lasts without a heartbeat (also how long a killed worker's
    messages wait before another worker takes them). ``idle_interval``: seconds between
    looks at an empty outbox. ``poll_interval``: seconds between polls of polling phones.
    """

    def __init__(
        self,
        bridge: Bridge,
        *,
        worker_id: str | None = None,
        threads_per_phone: int | None = None,
        batch_size: int | None = None,
        lease: float = 30.0,
        idle_interval: float = 0.5,
        poll_interval: float = 60.0,
    ) -> None:
        if lease <= 0 or idle_interval <= 0 or poll_interval <= 0:
            raise ValueError("lease, idle_interval and poll_interval must be positive")
        self.bridge = bridge
        self.store = outbox_store(bridge.store, file=bridge.config.path)
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        )
        self.threads_per_phone = threads_per_phone
        self.batch_size = batch_size
        self.lease = float(lease)
        self.idle_interval = float(idle_interval)
        self.poll_interval = float(poll_interval)
        self.stats = WorkerStats()
        self._leases: LeaseStore | None = self.store if isinstance(self.store, LeaseStore) else None
        self._lanes: dict[str, _LaneLease] = {}
        self._stop = threading.Event()
        self._done = threading.Event()
        self._once = False

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """Ask the worker to finish the messages in flight and return (thread-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def lanes_held(self) -> list[str]:
        """The phones whose lane lease this worker holds now."""
        return sorted(name for name, lane in self._lanes.items() if lane.held)

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the worker gracefully; a second one acts as usual."""

        def handler(signum: int, frame: FrameType | None) -> None:
            log.warning(
                "worker %s: %s received, finishing the message in flight",
                self.worker_id,
                signal.Signals(signum).name,
            )
            self.stop()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self, *, once: bool = False) -> WorkerStats:
        """Send outbox messages until stopped; with ``once``, until nothing is due
        (then poll polling phones once) and return."""
        self._once = once
        self._stop.clear()
        self._done.clear()
        self._lanes = self._leased_lanes()
        log.info("worker %s starting (%s)", self.worker_id, "once" if once else "continuous")
        threads: list[threading.Thread] = []
        beat: threading.Thread | None = None
        try:
            self._recover()
            beat = self._thread("heartbeat", self._heartbeat)
            if not once and self._polling_phones():
                threads.append(self._thread("poller", self._poller))
            lanes = self._lane_threads()
            threads.extend(lanes)
            if once:
                for t in lanes:
                    t.join()
                self._poll_once()
                self._stop.set()
            else:
                while not self._stop.wait(0.5):
                    pass
            for t in threads:
                t.join()
        finally:
            self._stop.set()
            self._done.set()
            if beat is not None:
                beat.join()
            try:
                released = self.store.release(self.worker_id)
                if released:
                    self.stats.add("released", released)
            except Exception:
                log.exception("worker %s: could not release its claims", self.worker_id)
            self._release_lanes()
        log.info("worker %s stopped: %s", self.worker_id, self.stats.to_dict())
        return self.stats

    def _thread(self, name: str, target: Any, *args: Any) -> threading.Thread:
        thread = threading.Thread(
            target=target, args=args, name=f"smsbridge-worker-{name}", daemon=True
        )
        thread.start()
        return thread

    # ------------------------------------------------------------------ lanes
    def _lane_threads(self) -> list[threading.Thread]:
        threads = []
        names = list(self.bridge.phones)
        for name in names:
            batch = self._batch_for(self.bridge.phones[name])
            for i in range(self._threads_for(self.bridge.phones[name])):
                threads.append(self._thread(f"{name}-{i}", self._lane, [name], None, batch))
        # messages whose lane phone is no longer configured: re-routed by _send (a
        # rare case, and a query without an index: looked at less often)
        threads.append(self._thread("other", self._lane, None, names, 10, 10.0))
        return threads

    def _leased_lanes(self) -> dict[str, _LaneLease]:
        """The phones drained under a lane lease: those with a rate limit that only this
        process's limiter enforces."""
        if self._leases is None:
            return {}
        return {
            name: _LaneLease(name)
            for name, phone in self.bridge.phones.items()
            if phone.rate_limit and not isinstance(phone.limiter, RedisLimiter)
        }

    def _threads_for(self, phone: Phone) -> int:
        if self.threads_per_phone:
            return max(1, self.threads_per_phone)
        rate = phone.rate_limit
        if not rate:
            return 4
        # a thread waits for each provider answer: enough of them to keep the rate
        return max(2, min(16, math.ceil(rate / 5)))

    def _batch_for(self, phone: Phone) -> int:
        if self.batch_size:
            return self.batch_size
        rate = phone.rate_limit
        if not rate:
            # small enough that a short backlog is shared by all the phone's threads
            return 5
        # about two seconds of work per claim for each of the phone's threads
        return max(1, min(100, math.ceil(rate * 2 / self._threads_for(phone))))

    def _lane(
        self,
        lanes: Sequence[str] | None,
        exclude: Sequence[str] | None,
        batch: int,
        idle_factor: float = 1.0,
    ) -> None:
        idle = self.idle_interval * idle_factor
        lane = self._lanes.get(lanes[0]) if lanes is not None and len(lanes) == 1 else None
        while not self._stop.is_set():
            if lane is not None and not self._take_lane(lane):
                if self._once:
                    return  # another worker drains this phone
                self._stop.wait(idle)
                continue
            try:
                claimed = self.store.claim(
                    self.worker_id,
                    lanes=lanes,
                    exclude_lanes=exclude,
                    limit=batch,
                    lease=self.lease,
                )
            except Exception:
                self.stats.add("errors")
                log.exception("worker %s: claiming failed", self.worker_id)
                self._stop.wait(self.idle_interval)
                continue
            if not claimed:
                if self._once:
                    return
                self._stop.wait(idle)
                continue
            for n, item in enumerate(claimed):
                if self._stop.is_set():
                    self._release([c.message_id for c in claimed[n:]])
                    return
                if lane is not None and not lane.held:  # lost: the new holder sends them
                    self._release([c.message_id for c in claimed[n:]])
                    break
                self.process(item)

    def _take_lane(self, lane: _LaneLease) -> bool:
        """True while this process holds ``lane``; otherwise try to take it (one thread
        of the phone at a time, at most every ``idle_interval``)."""
        if lane.held:
            return True
        with lane.lock:
            if lane.held:
                return True
            now = time.monotonic()
            if now - lane.tried < self.idle_interval:
                return False
            lane.tried = now
            renewal = lane.owned
            if not self._hold(lane):
                return False
        if not renewal:
            self.stats.add("lanes_taken")
            log.info("worker %s: draining phone %s", self.worker_id, lane.phone)
        return True

    def _hold(self, lane: _LaneLease) -> bool:
        """Acquire or renew ``lane``'s lease in the store (False: another worker has it)."""
        assert self._leases is not None
        started = time.monotonic()
        try:
            ok = self._leases.acquire_lease(lane.name, self.worker_id, self.lease)
        except Exception:
            self.stats.add("errors")
            log.exception("worker %s: could not take the lane of %s", self.worker_id, lane.phone)
            ok = False
        lane.until = started + self.lease * _HELD_SHARE if ok else 0.0
        lane.owned = ok
        return ok

    def _renew_lanes(self) -> None:
        for lane in self._lanes.values():
            with lane.lock:
                if not lane.owned or self._done.is_set():
                    continue
                if not self._hold(lane):
                    self.stats.add("lanes_lost")
                    log.warning(
                        "worker %s: lost the lane of %s to another worker",
                        self.worker_id,
                        lane.phone,
                    )

    def _release_lanes(self) -> None:
        """Give every lane up, so that another worker takes over at once."""
        for lane in self._lanes.values():
            with lane.lock:
                if not lane.owned:
                    continue
                lane.owned, lane.until = False, 0.0
                try:
                    assert self._leases is not None
                    self._leases.release_lease(lane.name, self.worker_id)
                except Exception:
                    log.exception(
                        "worker %s: could not give up the lane of %s", self.worker_id, lane.phone
                    )

    def _release(self, message_ids: list[str]) -> None:
        try:
            self.stats.add("released", self.store.release(self.worker_id, message_ids))
        except Exception:
            self.stats.add("errors")
            log.exception("worker %s: could not release claims", self.worker_id)

    def process(self, item: ClaimedMessage) -> None:
        """Send one message this worker claimed, and count the outcome."""
        try:
            done = process_claimed(
                self.bridge.pipeline, self.store, item, owner=self.worker_id, lease=self.lease
            )
        except Exception:
            self.stats.add("errors")
            log.exception("worker %s: could not record %s", self.worker_id, item.message_id)
            return
        if done.result is None:
            self.stats.add("claims_lost")
        elif done.result.status is Status.failed:
            self.stats.add("failed")
        elif done.result.status is Status.unknown:
            self.stats.add("unknown")
        else:
            self.stats.add("sent")

    # ------------------------------------------------------------------ leases
    def _heartbeat(self) -> None:
        renew_every = max(0.05, self.lease / 3)
        recover_every = max(0.1, self.lease / 2)
        next_recover = time.monotonic() + recover_every
        while not self._done.wait(renew_every):
            self._renew_lanes()
            try:
                self.store.renew(self.worker_id, lease=self.lease)
                if time.monotonic() >= next_recover:
                    self._recover()
                    next_recover = time.monotonic() + recover_every
            except Exception:
                self.stats.add("errors")
                log.exception("worker %s: heartbeat failed", self.worker_id)

    def _recover(self) -> None:
        """Settle messages that lost workers had started sending."""
        for lost in self.store.lost_claims():
            resend = lost.outbox and self._resend_ambiguous(lost)
            if self.store.resolve_lost(lost, resend=resend):
                self.stats.add("lost_requeued" if resend else "lost_unknown")
                log.warning(
                    "worker %s: message %s was being sent by lost worker %s: %s",
                    self.worker_id,
                    lost.message_id,
                    lost.claimed_by,
                    "returned to the outbox (resend_ambiguous)" if resend else "now unknown",
                )

    def _resend_ambiguous(self, lost: ClaimedMessage) -> bool:
        return self.bridge.pipeline.resend_ambiguous(lost.message)

    # ------------------------------------------------------------------ polling phones
    def _polling_phones(self) -> bool:
        return any(
            p.caps.receive_mode == "poll" or p.caps.status_mode == "poll"
            for p in self.bridge.phones.values()
        )

    def _poller(self) -> None:
        while not self._stop.is_set():
            self._poll_once()
            self._stop.wait(self.poll_interval)

    def _poll_once(self) -> None:
        if not self._polling_phones():
            return
        try:
            counts = self.bridge.poll()
            self.stats.add("polled_inbound", sum(counts.values()))
        except Exception:
            self.stats.add("errors")
            log.exception("worker %s: polling inbound messages failed", self.worker_id)
        for name, phone in self.bridge.phones.items():
            if phone.caps.status_mode != "poll":
                continue
            try:
                self._poll_statuses(name, phone)
            except Exception:
                self.stats.add("errors")
                log.exception("worker %s: polling statuses of %s failed", self.worker_id, name)

    def _poll_statuses(self, name: str, phone: Phone) -> None:
        due = self.store.to_poll(name)
        done: list[str] = []
        try:
            for message_id, provider_id in due:
                if self._stop.is_set() and not self._once:
                    break
                try:
                    report = phone.fetch_status(provider_id)
                except UnsupportedFeature:
                    return
                except SendError as exc:
                    log.warning("phone %s: status of %s unavailable: %s", name, provider_id, exc)
                    continue
                finally:
                    done.append(message_id)
                if report.message_id is None:
                    report = replace(report, message_id=message_id)
                if self.bridge.dispatch_status(report) is not None:
                    self.stats.add("polled_status")
        finally:
            self.store.mark_polled(done)

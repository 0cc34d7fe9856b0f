"""Time as a seam: every component that reads the time takes a clock, so tests of leases,
expiries and tokens move time forward instead of waiting for it.

A :data:`Clock` is a callable returning an aware UTC :class:`~datetime.datetime`;
:func:`utcnow` is the real one. :class:`FakeClock` is the one tests hand in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "FakeClock", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told (``advance``); thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move forward by ``seconds`` (and any :class:`~datetime.timedelta` keywords)."""
        with self._lock:
            self._now += timedelta(seconds=seconds, **delta)
            return self._now

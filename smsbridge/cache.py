"""The key-value cache protocol: short-lived values shared by every process of a
deployment (e.g. a provider's access token).

A phone gets one like its ``session`` and ``clock`` (``Phone(cache=...)``, or
:meth:`~smsbridge.phone.Phone.use_cache` from the bridge when its message store is
one). :class:`smsbridge.store.SqlStore` implements it; :class:`MemoryCache` is the
in-process one (tests, scripts without a store).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, runtime_checkable

from .clock import utcnow

__all__ = ["KeyValueCache", "MemoryCache"]


@runtime_checkable
class KeyValueCache(Protocol):
    """Short-lived string values under a namespace and a key, each with an expiry."""

    def cache_get(self, namespace: str, key: str) -> tuple[str, datetime] | None:
        """The value and its expiry (UTC); None when missing or expired."""

    def cache_set(self, namespace: str, key: str, value: str, expires_at: datetime) -> None:
        """Store ``value`` until ``expires_at`` (timezone-aware), replacing any value."""

    def cache_delete(self, namespace: str, key: str) -> None:
        """Forget the value, if any."""


class MemoryCache:
    """A :class:`KeyValueCache` in this process's memory (thread-safe)."""

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self.clock = clock
        self._items: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def cache_get(self, namespace: str, key: str) -> tuple[str, datetime] | None:
        with self._lock:
            found = self._items.get((namespace, key))
            if found is None or found[1] <= self.clock():
                self._items.pop((namespace, key), None)
                return None
            return found

    def cache_set(self, namespace: str, key: str, value: str, expires_at: datetime) -> None:
        if expires_at.utcoffset() is None:
            raise ValueError("expires_at must be timezone-aware")
        with self._lock:
            self._items[(namespace, key)] = (value, expires_at)

    def cache_delete(self, namespace: str, key: str) -> None:
        with self._lock:
            self._items.pop((namespace, key), None)

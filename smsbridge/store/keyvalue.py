"""The store as a :class:`~smsbridge.cache.KeyValueCache` (table ``smsbridge_cache``), and
leases on top of it: named, expiring holds that one owner at a time gets (which worker
drains a phone, which worker runs the sweep), taken and renewed in one atomic statement."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import (
    delete,
    select,
)

from .base import SqlBase
from .schema import cache

__all__ = ["LEASES", "KeyValueRecords"]

#: The cache namespace leases live in.
LEASES = "smsbridge.lease"

log = logging.getLogger("smsbridge.store")


class KeyValueRecords(SqlBase):
    """Short-lived values shared by every process using the store (e.g. access tokens)."""

    # ------------------------------------------------------------------ key-value cache
    def cache_get(self, namespace: str, key: str) -> tuple[str, datetime] | None:
        """The value stored under (``namespace``, ``key``) and when it expires; None
        when there is none or it has expired."""
        c = cache
        query = select(c.c.value, c.c.expires_at).where(
            c.c.namespace == namespace, c.c.key == key, c.c.expires_at > self.clock()
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row.value, row.expires_at)

    def cache_set(self, namespace: str, key: str, value: str, expires_at: datetime) -> None:
        """Store ``value`` until ``expires_at`` (replacing any value under that key); the
        namespace's expired entries are dropped on the way."""
        c = cache
        stmt = self._insert(c).values(
            namespace=namespace, key=key, value=value, expires_at=expires_at
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[c.c.namespace, c.c.key],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
        )
        with self._write() as conn:
            conn.execute(
                delete(c).where(
                    c.c.namespace == namespace, c.c.key != key, c.c.expires_at <= self.clock()
                )
            )
            conn.execute(stmt)

    def cache_delete(self, namespace: str, key: str) -> None:
        """Forget the value under (``namespace``, ``key``), if any."""
        c = cache
        with self._write() as conn:
            conn.execute(delete(c).where(c.c.namespace == namespace, c.c.key == key))

    # ------------------------------------------------------------------ leases
    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Hold ``name`` for ``seconds`` from now: a new hold when nobody holds it (or the
        last hold expired), a renewal when ``owner`` holds it. False while another
        owner's hold lasts. One statement (an upsert that only overwrites an expired or
        own hold), so two processes can never both get it."""
        c = cache
        now = self.clock()
        until = now + timedelta(seconds=seconds)
        stmt = self._insert(c).values(namespace=LEASES, key=name, value=owner, expires_at=until)
        stmt = stmt.on_conflict_do_update(
            index_elements=[c.c.namespace, c.c.key],
            set_={"value": owner, "expires_at": until},
            where=(c.c.expires_at <= now) | (c.c.value == owner),
        ).returning(c.c.value)
        with self._write() as conn:
            return conn.execute(stmt).first() is not None

    def release_lease(self, name: str, owner: str) -> bool:
        """Give ``name`` up, if ``owner`` holds it (True when it did)."""
        c = cache
        with self._write() as conn:
            gone = conn.execute(
                delete(c).where(c.c.namespace == LEASES, c.c.key == name, c.c.value == owner)
            ).rowcount
        return bool(gone)

    def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        """Who holds ``name`` and until when (None: nobody, or the hold expired)."""
        return self.cache_get(LEASES, name)

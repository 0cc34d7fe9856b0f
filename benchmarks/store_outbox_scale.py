"""Benchmark 3: outbox scale — enqueue 100,000 messages, then drain them with the worker.

1. ``bridge.enqueue_many`` of ``--messages`` messages (every one validated: E.164, route,
   segments) in one transaction: time, and the process's peak memory (RSS) growth.
2. The embedded worker drains that backlog for ``--drain-seconds`` (two dummy phones,
   no rate limit, no latency: what is measured is smsbridge and its store — claim,
   hand-over, attempt, outcome for every message): messages per second.

SQLite (WAL) always; PostgreSQL too when ``SMSBRIDGE_TEST_POSTGRES_URL`` is set.
Runs in about two minutes with the defaults.

Run: ``.venv/bin/python benchmarks/store_outbox_scale.py [--messages 100000]
[--drain-seconds 20]``
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_send_overhead import pg_url

from smsbridge import Bridge, OutgoingMessage
from smsbridge.phones.dummy import DummyPhone
from smsbridge.store import open_store
from smsbridge.worker import Worker


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(label: str, store_url: str, count: int, drain_seconds: float) -> None:
    phones = {name: DummyPhone(name, {"delivery": "none"}) for name in ("a", "b")}
    bridge = Bridge(phones, store=open_store(store_url))
    try:
        messages = [
            OutgoingMessage(
                to=f"+22507{i % 100_000_000:08d}",
                body=f"Votre code de confirmation est {i % 1_000_000:06d}",
                phone="a" if i % 2 else "b",
            )
            for i in range(count)
        ]
        gc.collect()
        before = peak_rss_mb()
        start = time.perf_counter()
        ids = bridge.enqueue_many(messages)
        enqueue_s = time.perf_counter() - start
        grown = peak_rss_mb() - before
        assert len(ids) == count
        del messages, ids
        for phone in phones.values():
            phone.sent.clear()

        worker = Worker(bridge, threads_per_phone=4, idle_interval=0.05)
        thread = threading.Thread(target=worker.run, daemon=True)
        start = time.perf_counter()
        thread.start()
        time.sleep(drain_seconds)
        worker.stop()
        thread.join()
        drain_s = time.perf_counter() - start
        sent = worker.stats.processed
    finally:
        bridge.close()
    print(
        f"{label:10} enqueue {count:,} in {enqueue_s:5.1f}s ({count / enqueue_s:7,.0f}/s, "
        f"peak RSS +{grown:4.0f} MB)   drain {sent:,} in {drain_s:4.1f}s "
        f"({sent / drain_s:5,.0f}/s, backlog {count:,})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--drain-seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", f"sqlite:///{Path(tmp) / 'scale.db'}", args.messages, args.drain_seconds)
    pg = pg_url()
    if pg:
        run("PostgreSQL", pg, args.messages, args.drain_seconds)


if __name__ == "__main__":
    main()

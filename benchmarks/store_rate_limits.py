"""Benchmark 2: per-phone rate limits under load — achieved throughput ÷ sum of limits.

Three phones with the limits of typical accounts (Orange 5/s, Twilio 50/s, SNS 20/s)
send to one local fake provider that enforces those limits like a provider does (token
bucket, 429 + Retry-After when exceeded) and answers after ``--latency`` seconds. Each
phone gets ``limit × --seconds`` messages, so all three should finish together.

Variants, in one run: ``send_many`` (no store) and the embedded outbox worker on
SQLite (and on PostgreSQL when ``SMSBRIDGE_TEST_POSTGRES_URL`` is set). A control run
with the limiters off shows that the fake really throttles.

The achieved rate of a phone is measured at the provider: (accepted − 1) ÷ (last − first
arrival). Target: total ≥ 0.95 of the sum of limits, and no throttling.

Run: ``.venv/bin/python benchmarks/store_rate_limits.py [--seconds 10] [--latency 0.1]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_fakes import FakeHttpPhone, FakeProvider
from store_send_overhead import pg_url

from smsbridge import Bridge, OutgoingMessage
from smsbridge.store import open_store
from smsbridge.worker import Worker

LIMITS = {"orange": 5.0, "twilio": 50.0, "sns": 20.0}
TO = "+2250701020304"
THREADS: int | None = None  # the worker's default: rate / 5 per phone


def make_bridge(provider: FakeProvider, store_url: str | None, limited: bool = True) -> Bridge:
    phones = {
        name: FakeHttpPhone(
            name,
            {"base_url": provider.url, "rate_limit": rate if limited else None, "retries": 2},
        )
        for name, rate in LIMITS.items()
    }
    # send_many: lane_workers threads per phone (12: enough for 50/s at 100 ms per answer)
    return Bridge(phones, store=open_store(store_url) if store_url else None, lane_workers=12)


def messages(seconds: float) -> list[OutgoingMessage]:
    out = []
    for name, rate in LIMITS.items():
        out += [
            OutgoingMessage(to=TO, body=f"{name} {i}", phone=name)
            for i in range(int(rate * seconds))
        ]
    return out


def report(label: str, provider: FakeProvider, elapsed: float) -> None:
    provider.collect()
    total_rate = 0.0
    cells = []
    for name, limit in LIMITS.items():
        times = provider.accepted[name]
        rate = (len(times) - 1) / (max(times) - min(times)) if len(times) > 1 else 0.0
        total_rate += rate
        cells.append(
            f"{name} {rate:5.1f}/{limit:g} (max {provider.max_in_window(name)} in 1 s, "
            f"{provider.throttled[name]} x 429)"
        )
    ratio = total_rate / sum(LIMITS.values())
    throttled = sum(provider.throttled.values())
    print(
        f"{label:28} {total_rate:6.1f}/s of {sum(LIMITS.values()):g}  ratio {ratio:4.2f}  "
        f"429s {throttled:3d}  wall {elapsed:5.1f}s"
    )
    for cell in cells:
        print(f"{'':30}{cell}")


def run_send_many(seconds: float, latency: float) -> None:
    with FakeProvider(LIMITS, latency) as provider:
        bridge = make_bridge(provider, None)
        try:
            start = time.perf_counter()
            results = bridge.send_many(messages(seconds))
            elapsed = time.perf_counter() - start
        finally:
            bridge.close()
        failed = sum(1 for r in results if not r.ok)
        report(f"send_many{' (' + str(failed) + ' failed)' if failed else ''}", provider, elapsed)


def run_worker(label: str, store_url: str, seconds: float, latency: float) -> None:
    with FakeProvider(LIMITS, latency) as provider:
        bridge = make_bridge(provider, store_url)
        store = bridge.store
        assert store is not None
        try:
            bridge.enqueue_many(messages(seconds))
            worker = Worker(bridge, threads_per_phone=THREADS, idle_interval=0.05)
            thread = threading.Thread(target=worker.run, daemon=True)
            start = time.perf_counter()
            thread.start()
            while "pending" in store.counts():  # type: ignore[attr-defined]
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            worker.stop()
            thread.join()
        finally:
            bridge.close()
        report(label, provider, elapsed)


def run_control(latency: float) -> None:
    with FakeProvider(LIMITS, latency) as provider:
        bridge = make_bridge(provider, None, limited=False)
        try:
            batch = [OutgoingMessage(to=TO, body=f"o{i}", phone="orange") for i in range(60)]
            for phone in bridge.phones.values():
                phone.options = phone.options.model_copy(update={"retries": 0})
            results = bridge.send_many(batch)
        finally:
            bridge.close()
        refused = sum(1 for r in results if not r.ok)
        print(f"control, limiter off: 60 messages to orange at once -> {refused} refused (429)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.1, help="provider answer time (s)")
    args = parser.parse_args()
    n = sum(int(rate * args.seconds) for rate in LIMITS.values())
    print(
        f"{n} messages, limits {LIMITS}, provider latency {args.latency * 1000:.0f} ms, "
        "worker threads per phone: the default (rate / 5, at least 2)"
    )
    run_control(args.latency)
    run_send_many(args.seconds, args.latency)
    with tempfile.TemporaryDirectory() as tmp:
        run_worker(
            "worker, SQLite store", f"sqlite:///{Path(tmp) / 'b.db'}", args.seconds, args.latency
        )
    pg = pg_url()
    if pg:
        run_worker("worker, PostgreSQL store", pg, args.seconds, args.latency)


if __name__ == "__main__":
    main()

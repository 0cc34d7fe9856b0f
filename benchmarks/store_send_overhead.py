"""Benchmark 1: what ``send()`` costs on top of the HTTP call, with and without a store.

Three loops of sequential sends to the same local fake provider (HTTP/1.1 keep-alive on
127.0.0.1), in one run:

- a bare ``requests.Session`` loop posting the same JSON (the floor);
- ``bridge.send()`` without a store (validation, routing, segments, the phone lifecycle);
- ``bridge.send()`` with the SQLite store (WAL): the message is written ``pending``
  before the call, the attempt and the outcome after it;
- with the PostgreSQL store too when ``SMSBRIDGE_TEST_POSTGRES_URL`` is set.

Run: ``.venv/bin/python benchmarks/store_send_overhead.py [--messages 2000]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_fakes import FakeHttpPhone, FakeProvider

from smsbridge import Bridge
from smsbridge.store import open_store

TO = "+2250701020304"


def timed(count: int, send: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for i in range(count):
        send(i)
    return count / (time.perf_counter() - start)


def pg_url() -> str | None:
    base = os.environ.get("SMSBRIDGE_TEST_POSTGRES_URL")
    if not base:
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = "smsbridge_bench_" + uuid.uuid4().hex[:8]
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    n = args.messages
    rounds = 5  # variants interleaved, median of the rounds: fair on a busy machine
    samples: dict[str, list[float]] = {}
    with FakeProvider() as provider, tempfile.TemporaryDirectory() as tmp:
        session = requests.Session()
        url = f"{provider.url}/p/messages"

        def bare(i: int) -> object:
            return session.post(url, json={"to": TO, "body": f"m{i}", "ref": str(i)}).json()

        senders: dict[str, Callable[[int], object]] = {"bare requests.Session loop": bare}
        stores: list[tuple[str, str | None]] = [
            ("smsbridge send(), no store", None),
            ("smsbridge send(), SQLite store", f"sqlite:///{Path(tmp) / 'bench.db'}"),
        ]
        pg = pg_url()
        if pg:
            stores.append(("smsbridge send(), PostgreSQL store", pg))
        bridges = []
        for label, store_url in stores:
            phone = FakeHttpPhone("p", {"base_url": provider.url, "retries": 0})
            bridge = Bridge({"p": phone}, store=open_store(store_url) if store_url else None)
            bridges.append(bridge)
            senders[label] = lambda i, b=bridge: b.send(TO, f"message {i}")
        try:
            for send in senders.values():
                timed(50, send)  # warm up: connections, caches, schema
            for _ in range(rounds):
                for label, send in senders.items():
                    samples.setdefault(label, []).append(timed(max(1, n // rounds), send))
        finally:
            for bridge in bridges:
                bridge.close()
    results = {label: statistics.median(rates) for label, rates in samples.items()}
    floor = results["bare requests.Session loop"]
    print(f"send() overhead, {n} sequential messages each, fake provider on 127.0.0.1")
    print(f"{'variant':40} {'msg/s':>9} {'vs bare':>8} {'ms/msg':>8}")
    for label, rate in results.items():
        print(f"{label:40} {rate:9.0f} {rate / floor:8.2f} {1000 / rate:8.2f}")


if __name__ == "__main__":
    main()

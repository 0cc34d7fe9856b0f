"""Benchmark: one phone's rate limit shared by 1, 2 and 4 embedded worker processes.

One phone with ``rate_limit`` ``--rate`` (20/s) sends to a local fake provider (a
process of its own) that enforces the same limit as a token bucket (429 + Retry-After
when exceeded) and answers after ``--latency`` seconds. 1, 2 and 4 worker processes
(each a real process running :class:`smsbridge.worker.Worker`, as ``smsbridge worker``
does) drain ``rate × --seconds`` outbox messages from one store, SQLite and PostgreSQL
(when ``SMSBRIDGE_TEST_POSTGRES_URL`` is set). The workers are started, then the
messages enqueued, so that start-up is not measured.

At the provider: the most requests in any rolling second, and the achieved rate
(accepted − 1) ÷ (last − first arrival) ÷ the limit. Target: ≥ 0.95, never above the
limit, no 429. A control run (2 workers with the lane leases switched off: each process
paces the phone on its own, as before) shows what the leases prevent.

Run: ``.venv/bin/python benchmarks/worker_shared_limits.py [--rate 20] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_fakes import FakeHttpPhone, FakeProvider
from store_send_overhead import pg_url

from smsbridge import Bridge
from smsbridge.store import open_store

HERE = Path(__file__).resolve().parent
TO = "+2250701020304"

#: One worker process: the phone, the store, ``Worker.run()`` until SIGTERM; stats on stdout.
WORKER = """
import json, sys
sys.path.insert(0, {here!r})
from store_fakes import FakeHttpPhone
from smsbridge import Bridge
from smsbridge.store import open_store
from smsbridge.worker import Worker
if not {lanes!r}:
    Worker._leased_lanes = lambda self: {{}}  # the control: every process drains the phone
phone = FakeHttpPhone("p", {{"base_url": {url!r}, "rate_limit": {rate!r}, "retries": 2}})
bridge = Bridge({{"p": phone}}, store=open_store({store!r}))
worker = Worker(bridge, idle_interval=0.05)
worker.install_signal_handlers()
print("ready", flush=True)
stats = worker.run()
bridge.close()
print(json.dumps(stats.to_dict()), flush=True)
"""


def start_workers(count: int, url: str, store: str, rate: float, lanes: bool) -> list[Any]:
    code = WORKER.format(here=str(HERE), url=url, store=store, rate=rate, lanes=lanes)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), env.get("PYTHONPATH")) if p)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for _ in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return procs


def run(label: str, store: str, count: int, args: argparse.Namespace, lanes: bool = True) -> None:
    n = int(args.rate * args.seconds)
    with FakeProvider({"p": args.rate}, args.latency) as provider:
        phone = FakeHttpPhone("p", {"base_url": provider.url, "rate_limit": args.rate})
        bridge = Bridge({"p": phone}, store=open_store(store))
        db: Any = bridge.store
        try:
            bridge.enqueue_many([])  # the schema, before the workers start
            procs = start_workers(count, provider.url, store, args.rate, lanes)
            try:
                start = time.perf_counter()
                bridge.enqueue_many([{"to": TO, "body": f"m{i}"} for i in range(n)])
                while "pending" in db.counts():
                    time.sleep(0.05)
                wall = time.perf_counter() - start
            finally:
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                stats = [
                    json.loads(proc.communicate(timeout=60)[0].splitlines()[-1]) for proc in procs
                ]
        finally:
            bridge.close()
        provider.collect()
    times = sorted(provider.accepted["p"])
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    split = "/".join(str(s["sent"]) for s in stats)
    print(
        f"{label:34} max/1s {provider.max_in_window('p'):3d}  achieved {achieved:5.1f}/s  "
        f"÷ limit {achieved / args.rate:4.2f}  429s {provider.throttled['p']:3d}  "
        f"wall {wall:5.1f}s  sent per worker {split}"
    )


def drop_schema(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    options = make_url(url).query.get("options", "")
    schema = str(options).rpartition("=")[2]
    engine = create_engine(os.environ["SMSBRIDGE_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=20.0, help="the phone's limit (per s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="of messages at the limit")
    parser.add_argument("--latency", type=float, default=0.05, help="provider answer time (s)")
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    counts = [int(c) for c in args.workers.split(",")]
    print(
        f"{int(args.rate * args.seconds)} messages, rate_limit {args.rate:g}/s "
        f"(default rate_headroom), provider latency {args.latency * 1000:.0f} ms, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            store = f"sqlite:///{Path(tmp) / uuid.uuid4().hex}.db"
            run(f"SQLite, {count} worker(s)", store, count, args)
        store = f"sqlite:///{Path(tmp) / uuid.uuid4().hex}.db"
        run("SQLite, 2 workers, no lane leases", store, 2, args, lanes=False)
    if os.environ.get("SMSBRIDGE_TEST_POSTGRES_URL"):
        for count in counts:
            url = pg_url()
            assert url is not None
            try:
                run(f"PostgreSQL, {count} worker(s)", url, count, args)
            finally:
                drop_schema(url)
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""Celery scale-out benchmarks: real ``celery worker`` processes, a real broker and store,
a local HTTP fake provider (tests/celery_support.py) that records every request.

1. ``throughput``: N messages drained by 1, 2 and 4 worker processes (no provider limit),
   with the provider answering at once and after 50 ms; speed-up ratios vs 1 worker.
2. ``limits``: three phones limited to 5/s, 50/s and 20/s, each with its own Celery queue
   and workers, and a fake provider that throttles (429) above those rates in any
   one-second window. Reports achieved ÷ sum of limits (target ≥ 0.95) and 429s (target 0).
3. ``outbox``: N messages (default 100,000) enqueued (time, producer peak memory) and
   drained by 4 workers (time, rate, peak memory per worker process).

Needs Redis (127.0.0.1:6379, db 14 by default) and, for the store, PostgreSQL when
SMSBRIDGE_TEST_POSTGRES_URL is set (else an SQLite file). ``--broker amqp`` uses RabbitMQ.

Run: ``.venv/bin/python benchmarks/celery_scaleout.py [throughput|limits|outbox|all]
[--messages N] [--outbox-messages N] [--broker redis|amqp]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import celery_support as cs  # noqa: E402


@contextmanager
def cluster(broker_kind: str, **kw: Any) -> Iterator[cs.Cluster]:
    broker = cs.amqp_broker() if broker_kind == "amqp" else cs.redis_broker()
    redis = cs.redis_broker()
    with (
        tempfile.TemporaryDirectory(prefix="smsbridge-bench-") as tmp_name,
        cs.FakeProvider() as provider,
    ):
        tmp = Path(tmp_name)
        with cs.plugin_site(tmp) as site, cs.store_url(tmp) as store:
            kw.setdefault("queue", {})
            kw["queue"] = {"lease": 60, "visibility_timeout": 3600, **kw["queue"]}
            c = cs.Cluster(tmp, site, provider, broker=broker, store=store, redis_url=redis, **kw)
            try:
                yield c
            finally:
                c.close()


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_memory(c: cs.Cluster) -> dict[str, dict[str, float]]:
    """Peak RSS (VmHWM) of each worker: its main process and its pool child."""
    out = {}
    for name, proc in c.workers.procs.items():
        kids = _children(proc.pid)
        out[name] = {
            "main_mb": round(_peak_rss_mb(proc.pid), 1),
            "child_mb": round(max((_peak_rss_mb(k) for k in kids), default=0.0), 1),
        }
    return out


def _settle(c: cs.Cluster, ids: list[str], timeout: float) -> None:
    """Wait until the store holds no pending message of this run (one COUNT query)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts: Mapping[str, int] = c.store.counts(outbox=True)
        if not counts.get("pending"):
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out: {c.store.counts(outbox=True)}")


def _enqueue(c: cs.Cluster, n: int, batch: int = 5000, to: str = "+336") -> list[str]:
    ids: list[str] = []
    for start in range(0, n, batch):
        ids += c.tasks.enqueue_many(
            [
                {"to": f"{to}{i:08d}", "body": f"bench {i}"}
                for i in range(start, min(n, start + batch))
            ]
        )
    return ids


# --------------------------------------------------------------------------- 1. throughput
def throughput(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for latency in (0.0, 0.05):
        n = args.messages if latency == 0 else max(200, args.messages // 2)
        rates = {}
        for workers in (1, 2, 4):
            with cluster(
                args.broker,
                phones={"p": {"provider": {"latency": latency}}},
                queue={"queues": "single"},
            ) as c:
                names = [f"w{i}" for i in range(workers)]
                c.start(*names)
                _enqueue(c, 20)  # warm-up: every worker opens its store and connections
                _settle(c, [], 60)
                start = time.perf_counter()
                ids = _enqueue(c, n)
                enqueued = time.perf_counter() - start
                _settle(c, ids, 600)
                elapsed = time.perf_counter() - start
                hits = c.provider_hits("p")
                assert len(hits) == n + 20, (len(hits), n)
                rates[workers] = n / elapsed
                print(
                    f"  latency {latency * 1000:3.0f} ms, {workers} worker(s): {n} msgs in "
                    f"{elapsed:6.2f} s = {rates[workers]:7.1f} msg/s (enqueue {enqueued:.2f} s)",
                    flush=True,
                )
        results[f"latency_{int(latency * 1000)}ms"] = {
            "messages": n,
            "rate": {w: round(r, 1) for w, r in rates.items()},
            "speedup": {w: round(r / rates[1], 2) for w, r in rates.items()},
        }
    return results


# --------------------------------------------------------------------------- 2. limits
def limits(args: argparse.Namespace) -> dict[str, Any]:
    return {f"headroom_{headroom:g}": limits_run(args, headroom) for headroom in args.headroom}


def limits_run(args: argparse.Namespace, headroom: float) -> dict[str, Any]:
    """``rate_limit`` set to the provider's limit, paced ``rate_headroom`` under it."""
    plan = {"p5": 5, "p50": 50, "p20": 20}
    if args.scale != 1:  # e.g. 0.5: the same shape where the machine is not the bottleneck
        plan = {name: rate * args.scale for name, rate in plan.items()}
    seconds = args.limit_seconds
    print(f"  rate_limit = provider limit, rate_headroom {headroom:g}:")
    with cluster(
        args.broker,
        phones={
            name: {
                "rate_limit": rate,
                "rate_headroom": headroom,
                "retries": 2,
                "provider": {"limit": rate},
            }
            for name, rate in plan.items()
        },
        routes=[{"match": {"tags": [name]}, "phones": [name]} for name in plan],
    ) as c:
        # Workers per phone queue: enough processes for each rate (one per ~25/s here).
        layout = {"p5": 1, "p50": args.p50_workers, "p20": args.p20_workers}
        names, queues = [], {}
        for phone, count in layout.items():
            for i in range(count):
                name = f"w-{phone}-{i}"
                names.append(name)
                queues[name] = [c.tasks.queue_for(phone)]
        c.start(*names, queues=queues)
        messages = []
        for phone, rate in plan.items():
            count = round(rate * seconds)
            messages += [
                {"to": f"+336{i:08d}", "body": f"{phone} {i}", "tag": phone} for i in range(count)
            ]
        start = time.perf_counter()
        ids = c.tasks.enqueue_many(messages)
        _settle(c, ids, seconds * 4 + 60)
        out: dict[str, Any] = {"phones": {}}
        total_rate = 0.0
        throttled = 0
        for phone, rate in plan.items():
            row = cs.route_figures(c.provider_hits(phone, accepted=False), rate)
            out["phones"][phone] = row
            total_rate += row["achieved"]
            throttled += row["throttled_429"]
        statuses = c.store.counts(outbox=True)
        out["sum_of_limits"] = sum(plan.values())
        out["achieved"] = round(total_rate, 2)
        out["achieved_over_sum"] = round(total_rate / sum(plan.values()), 3)
        out["throttling_errors"] = throttled
        out["statuses"] = statuses
        out["wall_s"] = round(time.perf_counter() - start, 2)
    cs.print_route_figures(out["phones"])
    print(
        f"  achieved / sum of limits = {out['achieved']:.2f} / {out['sum_of_limits']:g} = "
        f"{out['achieved_over_sum']:.3f}; throttling errors {out['throttling_errors']}; "
        f"statuses {out['statuses']}",
        flush=True,
    )
    return out


# --------------------------------------------------------------------------- 3. outbox
def outbox(args: argparse.Namespace) -> dict[str, Any]:
    n = args.outbox_messages
    with cluster(args.broker, phones={"p": {}}, queue={"queues": "single"}) as c:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        ids = _enqueue(c, n, batch=args.batch)
        enqueue_s = time.perf_counter() - start
        producer_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"  enqueued {n} in {enqueue_s:.1f} s ({n / enqueue_s:.0f}/s); producer peak RSS "
            f"{producer_peak:.0f} MB (was {before:.0f} MB before)",
            flush=True,
        )
        names = [f"w{i}" for i in range(4)]
        start = time.perf_counter()
        c.start(*names)
        _settle(c, ids, 3600)
        drain_s = time.perf_counter() - start
        memory = worker_memory(c)
        sent = len(c.provider_hits("p"))
        dupes = sum(1 for v in c.provider.sends_per_message().values() if v > 1)
        print(
            f"  drained by 4 workers in {drain_s:.1f} s ({n / drain_s:.0f}/s, worker start "
            f"included); provider got {sent}, duplicates {dupes}",
            flush=True,
        )
        for name, mem in memory.items():
            print(f"    {name}: peak RSS main {mem['main_mb']} MB, pool child {mem['child_mb']} MB")
        return {
            "messages": n,
            "enqueue_s": round(enqueue_s, 1),
            "enqueue_rate": round(n / enqueue_s),
            "producer_peak_mb": round(producer_peak),
            "drain_s": round(drain_s, 1),
            "drain_rate": round(n / drain_s),
            "provider_received": sent,
            "duplicates": dupes,
            "worker_peak_mb": memory,
        }


def main() -> None:
    # The fake provider runs in this process: hand the GIL over quickly so that its
    # threads timestamp arrivals as they come (the default 5 ms would add jitter).
    sys.setswitchinterval(0.0005)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "part", nargs="?", default="all", choices=["throughput", "limits", "outbox", "all"]
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--outbox-messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--limit-seconds", type=int, default=20)
    parser.add_argument(
        "--headroom",
        type=lambda text: [float(h) for h in text.split(",")],
        default=[0.0, 0.02],
        help="rate_headroom of each run, comma-separated (default: 0,0.02)",
    )
    parser.add_argument("--p50-workers", type=int, default=3)
    parser.add_argument("--p20-workers", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the three limits")
    parser.add_argument("--broker", choices=["redis", "amqp"], default="redis")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    store = "PostgreSQL" if os.environ.get("SMSBRIDGE_TEST_POSTGRES_URL") else "SQLite"
    print(f"broker {args.broker}, store {store}, {os.cpu_count()} CPUs")
    results: dict[str, Any] = {"broker": args.broker, "store": store}
    parts = ["throughput", "limits", "outbox"] if args.part == "all" else [args.part]
    for part in parts:
        print(f"== {part}", flush=True)
        results[part] = {"throughput": throughput, "limits": limits, "outbox": outbox}[part](args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

"""The Redis-shared rate limiter alone: processes competing for phones' budgets, sending to a
local HTTP fake provider that answers 429 above its limit in any rolling second.

No Celery, no store: what the limiter itself achieves, so that the Celery figures
(benchmarks/celery_scaleout.py) can be read as "limiter" versus "machine". Each phone gets
``--procs`` sender processes; each process loops ``acquire(1)`` → ``POST`` for ``--seconds``.

Two pacings are compared on the same traffic, with ``rate_limit`` = the provider's limit and
the default ``rate_headroom`` of 2 %:

- ``exact``: tolerance 0 (every unit exactly 1/rate after the previous; what smsbridge did
  before 0.2: each late wake-up is lost);
- ``default``: the phone's ``pacing_tolerance`` (catch-up of late wake-ups).

Reports per phone: achieved ÷ limit, 429s, the most accepted in any rolling second, and the
split of units between processes (fairness).

Needs Redis (127.0.0.1:6379, db 14, or SMSBRIDGE_TEST_CELERY_REDIS_URL).
Run: ``.venv/bin/python benchmarks/shared_limiter.py [--seconds 10] [--procs 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import celery_support as cs  # noqa: E402

from smsbridge.limits import RedisLimiter  # noqa: E402
from smsbridge.phones.dummy import DummyPhone  # noqa: E402

SENDER = """
import os, sys, time, requests
from smsbridge.limits import RedisLimiter
url, route, rate, tolerance, prefix, seconds = sys.argv[1:7]
limiter = RedisLimiter.from_url(url, route, float(rate), prefix=prefix,
                                tolerance=float(tolerance))
session = requests.Session()
print("ready", flush=True)
start = float(sys.stdin.readline())  # the same moment for every sender
time.sleep(max(0.0, start - time.time()))
n = 0
while time.time() < start + float(seconds):
    limiter.acquire(1)
    session.post(route + "/send", json={"id": f"{os.getpid()}-{n}"},
                 headers={"X-Worker-Pid": str(os.getpid()), "X-Sent-At": repr(time.time())})
    n += 1
"""


def run(args: argparse.Namespace, pacing: str) -> dict[str, Any]:
    plan = {"p5": 5, "p50": 50, "p20": 20}
    redis_url = cs.redis_broker()
    prefix = "sbbench-" + uuid.uuid4().hex[:8]
    with cs.FakeProvider() as provider:
        routes = {name: provider.route(f"{prefix}-{name}", limit=r) for name, r in plan.items()}
        procs = []
        for name, rate in plan.items():
            phone = DummyPhone(name, {"rate_limit": rate})
            tolerance = phone.pacing_tolerance if pacing == "default" else 0.0
            argv = [redis_url, routes[name], str(phone.pacing_rate), str(tolerance), prefix]
            argv.append(str(args.seconds))
            for _ in range(args.procs):
                cmd = [sys.executable, "-c", SENDER, *argv]
                pipe = subprocess.PIPE
                procs.append(subprocess.Popen(cmd, stdin=pipe, stdout=pipe, text=True))
        for proc in procs:  # every interpreter has started and connected
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        start = time.time() + 0.2
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start!r}\n")
            proc.stdin.close()
        for proc in procs:
            proc.wait(args.seconds + 60)
        out: dict[str, Any] = {"phones": {}}
        for name, rate in plan.items():
            route = f"{prefix}-{name}"
            with provider.state.lock:
                hits = [h for h in provider.state.hits if h.route == route]
            out["phones"][name] = cs.route_figures(hits, rate)
            RedisLimiter.from_url(redis_url, routes[name], 1, prefix=prefix).reset()
        total = sum(row["achieved"] for row in out["phones"].values())
        out["achieved_over_sum"] = round(total / sum(plan.values()), 3)
        out["throttling_errors"] = sum(row["throttled_429"] for row in out["phones"].values())
    cs.print_route_figures(out["phones"])
    print(
        f"  achieved / sum of limits = {out['achieved_over_sum']:.3f}; "
        f"throttling errors {out['throttling_errors']}",
        flush=True,
    )
    return out


def main() -> None:
    sys.setswitchinterval(0.0005)  # the fake provider's threads timestamp arrivals promptly
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--procs", type=int, default=3, help="sender processes per phone")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(f"{args.procs} processes per phone, {args.seconds:g} s, {os.cpu_count()} CPUs")
    results = {}
    for pacing in ("exact", "default"):
        print(f"== pacing {pacing}", flush=True)
        results[pacing] = run(args, pacing)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

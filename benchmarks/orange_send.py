"""Orange phone benchmark against the local fake Orange (no network, no credentials).

1. Throughput at the default limit: N messages (default 100) through one OrangePhone
   with its default rate limit (5/s), sent from 8 threads, against a fake that enforces
   Orange's documented 5 TPS (429 code 53 beyond). Reports the achieved rate (target:
   within 5% of 5/s), the throttling errors the fake returned (target: 0) and the token
   requests (target: 1).
2. Overhead: smsbridge's cost per message (validation, segment counting, limiter,
   retries wrapper, token lookup, error mapping, result building) versus a bare
   ``requests.Session`` loop posting the same JSON to the same fake, rate limit off.

Run: ``.venv/bin/python benchmarks/orange_send.py [--messages 100] [--overhead-n 500]``
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from smsbridge_orange import OrangePhone
from smsbridge_orange.auth import forget_shared_tokens
from smsbridge_orange.testing import FakeOrange

from smsbridge.message import OutgoingMessage

RECIPIENT = "+2250701020304"


def throughput(messages: int) -> None:
    with FakeOrange(tps=5) as fake:
        phone = OrangePhone("orange-ci", fake.phone_options())
        done: list[float] = []
        lock = threading.Lock()

        def send(i: int) -> None:
            phone.send(OutgoingMessage(to=RECIPIENT, body=f"benchmark message {i}"))
            with lock:
                done.append(time.perf_counter())

        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(messages)))
        elapsed = time.perf_counter() - start
        phone.close()
        done.sort()
        rate = messages / elapsed
        print(f"throughput at the default limit ({phone.rate_limit:g}/s), {messages} messages:")
        print(f"  elapsed                 {elapsed:8.2f} s")
        print(f"  achieved rate           {rate:8.3f} msg/s  ({(rate / 5 - 1) * 100:+.1f}% vs 5/s)")
        print(f"  accepted by the fake    {len(fake.sent):8d}")
        print(f"  throttling errors (429) {fake.throttled:8d}")
        print(f"  token requests          {fake.token_requests:8d}")


def overhead(n: int, rounds: int = 3) -> None:
    forget_shared_tokens()  # a fresh fake may reuse the first one's port
    with FakeOrange() as fake:
        phone = OrangePhone("orange-ci", fake.phone_options(rate_limit=1_000_000))
        phone.send(OutgoingMessage(to=RECIPIENT, body="warm-up"))
        token = phone.token().access_token
        session = requests.Session()
        url = f"{fake.url}/smsmessaging/v1/outbound/tel%3A%2B2250000/requests"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        body = {
            "outboundSMSMessageRequest": {
                "address": f"tel:{RECIPIENT}",
                "senderAddress": "tel:+2250000",
                "outboundSMSTextMessage": {"message": "overhead test"},
            }
        }
        session.post(url, json=body, headers=headers, timeout=5).raise_for_status()

        def bare() -> float:
            start = time.perf_counter()
            for _ in range(n):
                response = session.post(url, json=body, headers=headers, timeout=5)
                assert response.status_code == 201
                response.json()
            return (time.perf_counter() - start) / n

        def bridge() -> float:
            message = OutgoingMessage(to=RECIPIENT, body="overhead test")
            start = time.perf_counter()
            for _ in range(n):
                phone.send(message)
            return (time.perf_counter() - start) / n

        bare_s, bridge_s = [], []
        for _ in range(rounds):  # interleaved, best of `rounds`
            bare_s.append(bare())
            bridge_s.append(bridge())
        b, s = min(bare_s), min(bridge_s)
        print(f"overhead, {n} sequential sends x {rounds} rounds (best), rate limit off:")
        print(f"  bare requests.Session   {b * 1e3:8.3f} ms/msg")
        print(f"  OrangePhone.send        {s * 1e3:8.3f} ms/msg")
        print(f"  smsbridge overhead      {(s - b) * 1e3:8.3f} ms/msg ({(s / b - 1) * 100:+.0f}%)")
        print(
            f"  (median rounds: bare {statistics.median(bare_s) * 1e3:.3f} ms, "
            f"smsbridge {statistics.median(bridge_s) * 1e3:.3f} ms)"
        )
        print(f"  token requests          {fake.token_requests:8d}")
        session.close()
        phone.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--overhead-n", type=int, default=500)
    args = parser.parse_args()
    throughput(args.messages)
    overhead(args.overhead_n)


if __name__ == "__main__":
    main()

"""A local fake SMS provider and the small HTTP phone that talks to it (store benchmarks).

:class:`FakeProvider` is a threaded HTTP/1.1 server on 127.0.0.1 (keep-alive). For each
phone (``POST /<phone>/messages``) it can enforce a rate limit the way providers do — a
token bucket of ``rate`` per second holding at most one second of burst, answering 429
with ``Retry-After`` when empty — and it records the arrival time of every accepted
request, so a benchmark can judge the achieved rate from what the *provider* saw.

:class:`FakeHttpPhone` is a real :class:`smsbridge.HttpPhone` plugin (one ``requests``
session per phone, the base class's rate limiter, retries and error mapping).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from smsbridge import Capabilities, HttpPhone, PhoneOptions, RateLimited, Submission
from smsbridge.errors import ProviderUnavailable, Rejected
from smsbridge.phone import PreparedMessage
from smsbridge.testing import FakeServer

__all__ = ["FakeHttpPhone", "FakeProvider"]


class _Bucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)  # one second of burst
        self.tokens = self.capacity
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms ACK delay)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # /_stats: what the provider saw (for the benchmark)
        state: _State = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            data = {"accepted": state.accepted, "throttled": state.throttled}
        self._reply(200, data)

    def do_POST(self) -> None:
        state: _State = self.server.state  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        phone = self.path.strip("/").split("/")[0]
        if state.latency:
            time.sleep(state.latency)
        with state.lock:
            bucket = state.buckets.get(phone)
            allowed = bucket.take() if bucket is not None else True
            if allowed:
                state.accepted.setdefault(phone, []).append(time.monotonic())
            else:
                state.throttled[phone] = state.throttled.get(phone, 0) + 1
        del body
        if allowed:
            self._reply(201, {"id": uuid.uuid4().hex, "status": "queued"})
        else:
            self._reply(429, {"error": "too many requests"}, {"Retry-After": "1"})

    def _reply(self, code: int, data: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)


class _State:
    def __init__(self, limits: dict[str, float], latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.buckets = {name: _Bucket(rate) for name, rate in limits.items()}
        self.accepted: dict[str, list[float]] = {}
        self.throttled: dict[str, int] = {}


def _serve(limits: dict[str, float], latency: float, port_out: Any) -> None:
    server = FakeServer(_Handler, state=_State(limits, latency))
    port_out.send(server.url)
    server.httpd.serve_forever()


class FakeProvider:
    """The fake provider, in a process of its own (so that it never competes with the
    code under test for the GIL). ``limits``: phone → messages per second."""

    def __init__(self, limits: dict[str, float] | None = None, latency: float = 0.0) -> None:
        self.limits = dict(limits or {})
        self.latency = latency
        self.url = ""
        self._process: Any = None
        self.accepted: defaultdict[str, list[float]] = defaultdict(list)
        self.throttled: defaultdict[str, int] = defaultdict(int)

    def __enter__(self) -> FakeProvider:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        receive, send = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_serve, args=(self.limits, self.latency, send), daemon=True
        )
        self._process.start()
        self.url = receive.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self.collect()
        self._process.terminate()
        self._process.join()

    def collect(self) -> None:
        """Fetch what the provider saw (``accepted`` times, ``throttled`` counts)."""
        import requests

        data = requests.get(f"{self.url}/_stats", timeout=30).json()
        self.accepted = defaultdict(list, data["accepted"])
        self.throttled = defaultdict(int, data["throttled"])

    def max_in_window(self, phone: str, window: float = 1.0) -> int:
        """Most requests accepted for ``phone`` in any ``window`` seconds."""
        times = sorted(self.accepted[phone])
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best


class FakeOptions(PhoneOptions):
    base_url: str = "http://127.0.0.1:1"


class FakeHttpPhone(HttpPhone):
    """A phone whose provider is :class:`FakeProvider`."""

    plugin: ClassVar[str] = "fakehttp"
    capabilities: ClassVar[Capabilities] = Capabilities(
        send=True, unicode=True, long_messages=True, max_segments=10
    )
    Options: ClassVar[type[PhoneOptions]] = FakeOptions
    options: FakeOptions

    def submit(self, message: PreparedMessage) -> Submission:
        resp = self.request(
            "POST",
            f"{self.options.base_url}/{self.name}/messages",
            json={"to": message.to, "body": message.body, "ref": message.message_id},
        )
        if resp.status_code == 429:
            raise RateLimited("throttled", retry_after=float(resp.headers.get("Retry-After") or 1))
        if resp.status_code >= 500:
            raise ProviderUnavailable(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise Rejected(f"HTTP {resp.status_code}")
        data = resp.json()
        return Submission(provider_id=data["id"], raw=data)

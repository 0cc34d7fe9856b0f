"""Webhook receiver benchmark: N provider callbacks to ``smsbridge serve`` over loopback.

``smsbridge serve`` runs as a subprocess (uvicorn, SQLite store in WAL mode, event
forwarding to a local receiver); this process is the client. The mix, shuffled:

- valid callbacks, spread over the installed providers: dummy (JSON status + inbound),
  Orange (DR + MO, ``?token=``), Twilio (signed form status + inbound), OVH (GET status);
- 2% duplicates of earlier valid callbacks (providers retry): 200, applied once;
- 1% malformed bodies: 400;  1% bad secrets / signatures: 401/403.

It reports requests per second and p50/p99/max latency, then checks correctness: every
request got the answer its kind expects, no 5xx; every unique valid report/message was
applied exactly once — in the store (status history and inbox) and in the events
forwarded (each one is one run of the callbacks/listeners); nothing else was applied.

Run: ``.venv/bin/python benchmarks/webhooks_serve.py [--requests 10000] [--concurrency 16]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from smsbridge.testing import free_port

DUMMY_SECRET = "bench-dummy-secret"
ORANGE_SECRET = "bench-orange-secret"
OVH_SECRET = "bench-ovh-secret"
TWILIO_SID = "AC00000000000000000000000000000001"
TWILIO_TOKEN = "bench-twilio-token"
FORWARD_SECRET = "bench-forward-secret"


def installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@dataclass
class Call:
    method: str
    path: str  # with query
    body: bytes
    headers: dict[str, str]
    expect: str  # "ok" | "dup" | "malformed" | "auth"
    key: (
        tuple[str, ...] | None
    )  # what it applies: ("status", phone, pid, status) / ("inbound", ...)


class Mix:
    """Builds provider-shaped requests (each provider's own wire format)."""

    def __init__(self, base: str, providers: list[str]) -> None:
        self.base = base
        self.providers = providers
        self.n = 0
        if "twilio" in providers:
            from twilio.request_validator import RequestValidator

            self.validator = RequestValidator(TWILIO_TOKEN)

    def uid(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n:07d}"

    # ---- valid
    def valid(self, rng: random.Random) -> Call:
        provider = rng.choice(self.providers)
        kinds = ["status"] if provider == "ovh" else ["status", "inbound"]
        return getattr(self, f"{provider}_{rng.choice(kinds)}")(rng)

    def dummy_status(self, rng: random.Random) -> Call:
        pid, status = self.uid("dummy-"), rng.choice(["sent", "delivered", "failed"])
        body = json.dumps({"provider_id": pid, "status": status}).encode()
        return Call(
            "POST",
            f"/webhooks/dev/status?token={DUMMY_SECRET}",
            body,
            {"Content-Type": "application/json"},
            "ok",
            ("status", "dev", pid, status),
        )

    def dummy_inbound(self, rng: random.Random) -> Call:
        mid = self.uid("dmo-")
        body = json.dumps({"from": "+2250701020304", "body": "Bonjour", "id": mid}).encode()
        return Call(
            "POST",
            f"/webhooks/dev/inbound?token={DUMMY_SECRET}",
            body,
            {"Content-Type": "application/json"},
            "ok",
            ("inbound", "dev", mid),
        )

    def orange_status(self, rng: random.Random) -> Call:
        pid = self.uid("orange-")
        raw, status = rng.choice(
            [
                ("DeliveredToTerminal", "delivered"),
                ("DeliveredToNetwork", "sent"),
                ("DeliveryImpossible", "failed"),
            ]
        )
        payload = {
            "deliveryInfoNotification": {
                "callbackData": pid,
                "deliveryInfo": {"address": "tel:+2250701020304", "deliveryStatus": raw},
            }
        }
        return Call(
            "POST",
            f"/webhooks/orange-ci/status?token={ORANGE_SECRET}",
            json.dumps(payload).encode(),
            {"Content-Type": "application/json"},
            "ok",
            ("status", "orange-ci", pid, status),
        )

    def orange_inbound(self, rng: random.Random) -> Call:
        mid = self.uid("omo-")
        payload = {
            "inboundSMSMessageNotification": {
                "inboundSMSMessage": {
                    "senderAddress": "tel:+2250701020304",
                    "destinationAddress": "2250000",
                    "messageId": mid,
                    "message": "Salut",
                    "dateTime": "2024-05-01T10:00:00Z",
                }
            }
        }
        return Call(
            "POST",
            f"/webhooks/orange-ci/inbound?token={ORANGE_SECRET}",
            json.dumps(payload).encode(),
            {"Content-Type": "application/json"},
            "ok",
            ("inbound", "orange-ci", mid),
        )

    def _twilio(self, kind: str, params: dict[str, str], good: bool = True) -> Call:
        path = f"/webhooks/twilio-world/{kind}"
        signed_url = self.base + path if good else "https://forged.example.com" + path
        signature = self.validator.compute_signature(signed_url, params)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        return Call("POST", path, urlencode(params).encode(), headers, "ok", None)

    def twilio_status(self, rng: random.Random) -> Call:
        sid = self.uid("SM")
        status = rng.choice(["sent", "delivered", "undelivered"])
        call = self._twilio(
            "status",
            {
                "AccountSid": TWILIO_SID,
                "MessageSid": sid,
                "MessageStatus": status,
                "To": "+33612345678",
                "From": "+15005550006",
            },
        )
        normal = {"undelivered": "failed"}.get(status, status)
        call.key = ("status", "twilio-world", sid, normal)
        return call

    def twilio_inbound(self, rng: random.Random) -> Call:
        sid = self.uid("SM")
        call = self._twilio(
            "inbound",
            {
                "AccountSid": TWILIO_SID,
                "MessageSid": sid,
                "From": "+33612345678",
                "To": "+15005550006",
                "Body": "Hello",
                "NumMedia": "0",
            },
        )
        call.key = ("inbound", "twilio-world", sid)
        return call

    def ovh_status(self, rng: random.Random) -> Call:
        sms_id = str(100000 + self.n)
        self.n += 1
        dlr, status = rng.choice([("1", "delivered"), ("2", "failed"), ("8", "sent")])
        query = urlencode({"token": OVH_SECRET, "id": sms_id, "dlr": dlr})
        return Call(
            "GET",
            f"/webhooks/ovh-fr/status?{query}",
            b"",
            {},
            "ok",
            ("status", "ovh-fr", sms_id, status),
        )

    # ---- invalid
    def malformed(self, rng: random.Random) -> Call:
        provider = rng.choice(self.providers)
        if provider == "twilio":
            call = self._twilio("status", {"AccountSid": TWILIO_SID, "Foo": "bar"})
        elif provider == "ovh":
            call = Call(
                "GET", f"/webhooks/ovh-fr/status?token={OVH_SECRET}&dlr=1", b"", {}, "", None
            )
        else:
            phone, secret = (
                ("dev", DUMMY_SECRET) if provider == "dummy" else ("orange-ci", ORANGE_SECRET)
            )
            call = Call(
                "POST",
                f"/webhooks/{phone}/status?token={secret}",
                b'{"truncated": ',
                {"Content-Type": "application/json"},
                "",
                None,
            )
        call.expect, call.key = "malformed", None
        return call

    def bad_auth(self, rng: random.Random) -> Call:
        provider = rng.choice(self.providers)
        if provider == "twilio":
            call = self._twilio(
                "status",
                {"AccountSid": TWILIO_SID, "MessageSid": "SMforged", "MessageStatus": "delivered"},
                good=False,
            )
        else:
            call = self.valid_for(provider, rng)
            call.path = call.path.replace("token=", "token=wrong")
        call.expect, call.key = "auth", None
        return call

    def valid_for(self, provider: str, rng: random.Random) -> Call:
        return getattr(self, f"{provider}_status")(rng)  # type: ignore[no-any-return]


def build_calls(n: int, mix: Mix, seed: int = 7) -> list[Call]:
    rng = random.Random(seed)
    n_bad = max(1, n // 100)
    n_dup = max(1, n * 2 // 100)
    n_valid = n - 2 * n_bad - n_dup
    calls = [mix.valid(rng) for _ in range(n_valid)]
    dups = [
        Call(c.method, c.path, c.body, c.headers, "dup", c.key) for c in rng.sample(calls, n_dup)
    ]
    calls += [mix.malformed(rng) for _ in range(n_bad)]
    calls += [mix.bad_auth(rng) for _ in range(n_bad)]
    rng.shuffle(calls)
    # a duplicate goes after its original (a provider retry), anywhere later
    for dup in dups:
        first = next(i for i, c in enumerate(calls) if c.key == dup.key and c.expect == "ok")
        calls.insert(rng.randint(first + 1, len(calls)), dup)
    return calls


# ---------------------------------------------------------------------- forward receiver
class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        event = json.loads(body)
        data = event["data"]
        if event["type"] == "status":
            key = ("status", data["phone"], data["provider_id"], data["status"])
        else:
            key = ("inbound", data["phone"], data["provider_id"])
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.events[key] += 1  # type: ignore[attr-defined]
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


def start_receiver() -> tuple[ThreadingHTTPServer, str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    httpd.daemon_threads = True
    httpd.events = Counter()  # type: ignore[attr-defined]
    httpd.lock = threading.Lock()  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_port}"


# ---------------------------------------------------------------------- server
def write_config(
    tmp: Path, port: int, providers: list[str], forward: str | None, store: bool = True
) -> Path:
    lines = [
        f"store: sqlite:///{(tmp / 'bench.db').as_posix()}" if store else "",
        "webhooks:",
        f"  public_url: http://127.0.0.1:{port}",
        "phones:",
        f"  dev: {{plugin: dummy, webhook_secret: {DUMMY_SECRET}, delivery: none}}",
    ]
    if "orange" in providers:
        lines.append(
            f"  orange-ci: {{plugin: orange, client_id: bench, client_secret: bench, "
            f"sender_address: '2250000', base_url: 'http://127.0.0.1:9', token_cache: false, "
            f"webhook_secret: {ORANGE_SECRET}}}"
        )
    if "twilio" in providers:
        lines.append(
            f"  twilio-world: {{plugin: twilio, account_sid: {TWILIO_SID}, "
            f"auth_token: {TWILIO_TOKEN}, from: '+15005550006', base_url: 'http://127.0.0.1:9'}}"
        )
    if "ovh" in providers:
        lines.append(
            f"  ovh-fr: {{plugin: ovh, endpoint: 'http://127.0.0.1:9/1.0', application_key: a, "
            f"application_secret: b, consumer_key: c, service_name: sms-bench-1, "
            f"webhook_secret: {OVH_SECRET}}}"
        )
    if forward:
        lines += ["forward:", f"  - {{url: '{forward}/events', secret: {FORWARD_SECRET}}}"]
    path = tmp / "smsbridge.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start_server(
    config: Path, port: int, threads: int | None, log: Path
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "smsbridge.cli",
        "--config",
        str(config),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("smsbridge serve did not start:\n" + log.read_text())


# ---------------------------------------------------------------------- client
def run_client(
    port: int, calls: list[Call], concurrency: int
) -> tuple[list[float], list[int], float]:
    latencies = [0.0] * len(calls)
    codes = [0] * len(calls)
    cursor = iter(range(len(calls)))
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                break
            call = calls[i]
            headers = dict(call.headers)
            if call.body:
                headers["Content-Length"] = str(len(call.body))
            started = time.perf_counter()
            for attempt in range(2):
                try:
                    conn.request(call.method, call.path, body=call.body or None, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    break
                except (ConnectionError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    if attempt:
                        raise
            latencies[i] = time.perf_counter() - started
            codes[i] = response.status
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, codes, time.perf_counter() - started


def store_counts(db: Path) -> tuple[Counter[tuple[str, ...]], Counter[tuple[str, ...]]]:
    conn = sqlite3.connect(db)
    status = Counter(
        {
            ("status", p, i, s): n
            for p, i, s, n in conn.execute(
                "SELECT phone, provider_id, status, count(*) FROM smsbridge_status_history "
                "WHERE source = 'report' GROUP BY phone, provider_id, status"
            )
        }
    )
    inbound = Counter(
        {
            ("inbound", p, i): n
            for p, i, n in conn.execute(
                "SELECT phone, provider_id, count(*) FROM smsbridge_incoming "
                "GROUP BY phone, provider_id"
            )
        }
    )
    conn.close()
    return status, inbound


def wait_forwarded(receiver: ThreadingHTTPServer, expected: int, idle: float = 10.0) -> float:
    """Seconds until ``expected`` events arrived (or none came for ``idle`` seconds)."""
    started = last_change = time.perf_counter()
    seen = -1
    while time.perf_counter() - last_change < idle:
        with receiver.lock:  # type: ignore[attr-defined]
            now = sum(receiver.events.values())  # type: ignore[attr-defined]
        if now >= expected:
            break
        if now != seen:
            seen, last_change = now, time.perf_counter()
        time.sleep(0.02)
    return time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="serve --threads")
    parser.add_argument("--no-forward", action="store_true", help="no forward: target")
    parser.add_argument("--no-store", action="store_true", help="no SQLite store")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    providers = ["dummy"] + [p for p in ("orange", "twilio", "ovh") if installed(f"smsbridge_{p}")]
    port = free_port()
    receiver, receiver_url = (None, None) if args.no_forward else start_receiver()
    with tempfile.TemporaryDirectory(prefix="smsbridge-bench-") as tmp_name:
        tmp = Path(tmp_name)
        config = write_config(tmp, port, providers, receiver_url, not args.no_store)
        calls = build_calls(args.requests, Mix(f"http://127.0.0.1:{port}", providers))
        server = start_server(config, port, args.threads, tmp / "serve.log")
        lag = None
        try:
            latencies, codes, elapsed = run_client(port, calls, args.concurrency)
            if receiver is not None:  # let the forwarder catch up before stopping
                lag = wait_forwarded(receiver, len({c.key for c in calls if c.key}))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        if args.no_store:
            status_rows, inbound_rows = Counter(), Counter()
        else:
            status_rows, inbound_rows = store_counts(tmp / "bench.db")
        log_tail = (tmp / "serve.log").read_text(errors="replace")[-2000:]

    expected = {"ok": (200,), "dup": (200,), "malformed": (400,), "auth": (401, 403)}
    wrong = [
        (c.expect, code, c.method, c.path.split("?")[0])
        for c, code in zip(calls, codes)
        if code not in expected[c.expect]
    ]
    five_xx = sum(1 for code in codes if code >= 500)
    valid_keys = Counter(c.key for c in calls if c.expect == "ok")
    applied_store = status_rows + inbound_rows
    store_ok = None if args.no_store else applied_store == valid_keys
    forward_ok = None
    if receiver is not None:
        forwarded = receiver.events  # type: ignore[attr-defined]
        forward_ok = forwarded == valid_keys
        receiver.shutdown()
    by_kind = Counter(c.expect for c in calls)
    result = {
        "requests": len(calls),
        "concurrency": args.concurrency,
        "providers": providers,
        "mix": dict(by_kind),
        "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(len(calls) / elapsed, 1),
        "latency_ms": {
            "p50": round(pct(latencies, 0.50) * 1000, 2),
            "p90": round(pct(latencies, 0.90) * 1000, 2),
            "p99": round(pct(latencies, 0.99) * 1000, 2),
            "max": round(max(latencies) * 1000, 2),
            "mean": round(statistics.fmean(latencies) * 1000, 2),
        },
        "status_codes": dict(sorted(Counter(codes).items())),
        "unexpected_answers": len(wrong),
        "5xx": five_xx,
        "unique_valid_events": len(valid_keys),
        "applied_once_in_store": store_ok,
        "applied_once_forwarded": forward_ok,
        "forward_lag_s": None if lag is None else round(lag, 2),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"smsbridge serve, {len(calls)} callbacks, {args.concurrency} client connections, "
            f"providers {', '.join(providers)} ({os.cpu_count()} CPUs, client and server on "
            "the same machine)"
        )
        print(f"  mix                      {dict(by_kind)}")
        print(f"  throughput               {result['requests_per_s']:.0f} req/s ({elapsed:.2f} s)")
        lat = result["latency_ms"]
        print(
            f"  latency p50 / p90 / p99  {lat['p50']:.1f} / {lat['p90']:.1f} / "
            f"{lat['p99']:.1f} ms (max {lat['max']:.1f})"
        )
        print(f"  status codes             {result['status_codes']}")
        print(f"  unexpected answers       {len(wrong)}   5xx: {five_xx}")
        print(f"  unique valid events      {len(valid_keys)}")
        print(f"  applied exactly once     store: {store_ok}   forwarded: {forward_ok}")
        if lag is not None:
            print(f"  forwarding done          {lag:.2f} s after the last answer")
    if wrong:
        print("first unexpected answers:", wrong[:10], file=sys.stderr)
    ok = not wrong and not five_xx and store_ok is not False and forward_ok is not False
    if not ok:
        missing = valid_keys - applied_store
        extra = applied_store - valid_keys
        print(
            f"store: {len(missing)} missing, {len(extra)} extra; e.g. {list(missing)[:3]} "
            f"{list(extra)[:3]}",
            file=sys.stderr,
        )
        print(log_tail, file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

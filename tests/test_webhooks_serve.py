"""End to end: ``smsbridge serve`` as a real subprocess on 127.0.0.1, driven over HTTP;
events it applies are observed through ``forward:`` to a local receiver."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests

from smsbridge.testing import FakeServer, free_port
from smsbridge.webhooks.forward import verify_signature
from smsbridge.webhooks.server import mask_token

SECRET = "serve-secret-abc123"
FORWARD_SECRET = "fwd-secret-def456"
SMSBRIDGE = [sys.executable, "-m", "smsbridge.cli"]


class Receiver(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.state["lock"]:  # type: ignore[attr-defined]
            self.server.state["events"].append((body, dict(self.headers.items())))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()


@pytest.fixture(scope="module")
def receiver() -> Iterator[FakeServer]:
    with FakeServer(Receiver, {"events": [], "lock": threading.Lock()}) as server:
        yield server


def write_config(tmp: Path, receiver_url: str, extra: str = "") -> Path:
    path = tmp / "smsbridge.yaml"
    path.write_text(
        f"""
webhooks:
  max_body_bytes: 4096
phones:
  dev:
    plugin: dummy
    webhook_secret: {SECRET}
    delivery: none
  open:
    plugin: dummy
    delivery: none
forward:
  - url: {receiver_url}/events
    secret: {FORWARD_SECRET}
{extra}""",
        encoding="utf-8",
    )
    return path


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err


def start(config: Path, *args: str) -> Served:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            *SMSBRIDGE,
            "--config",
            str(config),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    served = Served(proc, port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, out, err = served.stop()
            raise AssertionError(f"serve exited early:\n{out}\n{err}")
        try:
            if requests.get(served.url + "/healthz", timeout=0.5).status_code == 200:
                return served
        except requests.ConnectionError:
            time.sleep(0.05)
    served.stop()
    raise AssertionError("serve did not become healthy")


@pytest.fixture
def served(tmp_path: Path, receiver: FakeServer) -> Iterator[Served]:
    receiver.state["events"].clear()
    server = start(write_config(tmp_path, receiver.url))
    yield server
    if server.proc.poll() is None:
        server.stop()


def post(served: Served, path: str, data: Any) -> requests.Response:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return requests.post(
        served.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=10
    )


def test_serve_end_to_end(served: Served, receiver: FakeServer) -> None:
    status = f"/webhooks/dev/status?token={SECRET}"
    inbound = f"/webhooks/dev/inbound?token={SECRET}"
    r = post(served, status, {"provider_id": "e2e-1", "status": "sent"})
    assert r.status_code == 200
    assert post(served, status, {"provider_id": "e2e-1", "status": "delivered"}).status_code == 200
    assert post(served, status, {"provider_id": "e2e-1", "status": "delivered"}).status_code == 200
    assert post(served, status, {"provider_id": "e2e-1", "status": "sent"}).status_code == 200
    msg = {"from": "+2250701020304", "to": "+2250700000001", "body": "Allô", "id": "in-e2e"}
    assert post(served, inbound, msg).status_code == 200
    assert post(served, inbound, msg).status_code == 200
    # refusals
    bad = post(served, "/webhooks/dev/status?token=nope", {"provider_id": "x", "status": "sent"})
    assert bad.status_code == 403
    assert post(served, status, b"{not json").status_code == 400
    assert post(served, "/webhooks/ghost/status", {"provider_id": "x"}).status_code == 404
    assert requests.put(served.url + status, timeout=5).status_code == 405
    big = {"provider_id": "big", "status": "sent", "pad": "x" * 5000}
    assert post(served, status, big).status_code == 413
    assert oversize_without_sending_it(served) == 413
    # the unprotected phone still works (and was warned about at start-up)
    open_status = {"provider_id": "open-1", "status": "delivered"}
    assert post(served, "/webhooks/open/status", open_status).status_code == 200
    health = requests.get(served.url + "/healthz", timeout=5)
    assert health.json() == {"status": "ok", "phones": 2}

    code, out, err = served.stop()  # SIGTERM: graceful, and the forwarder drains
    assert code == 0, err
    events = [(json.loads(b), h) for b, h in receiver.state["events"]]
    for (_, headers), (raw, _) in zip(events, receiver.state["events"]):
        verify_signature(raw, headers, FORWARD_SECRET)
    applied = sorted(
        (e["type"], e["data"]["phone"], e["data"].get("provider_id"), e["data"].get("status"))
        for e, _ in events
    )
    assert applied == [
        ("inbound", "dev", "in-e2e", None),
        ("status", "dev", "e2e-1", "delivered"),
        ("status", "dev", "e2e-1", "sent"),
        ("status", "open", "open-1", "delivered"),
    ]
    # start-up banner: URLs to paste, masked token, a warning for the open phone
    assert f"http://127.0.0.1:{served.port}/webhooks/dev/status?token=***" in out
    assert f"http://127.0.0.1:{served.port}/webhooks/open/inbound\n" in out
    assert "WARNING: phone 'open'" in out
    assert "phone 'dev'" not in out.split("WARNING", 1)[1]
    # secrets appear nowhere in the output or the logs
    assert SECRET not in out + err
    assert FORWARD_SECRET not in out + err
    assert '"POST /webhooks/dev/status" 200' in err  # the access log, without query


def oversize_without_sending_it(served: Served) -> int:
    """Announce a 50 MiB body and send none of it: the answer must still come."""
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.putrequest("POST", f"/webhooks/dev/status?token={SECRET}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(50 * 1024 * 1024))
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


def test_serve_json_banner_with_secrets(tmp_path: Path, receiver: FakeServer) -> None:
    config = write_config(tmp_path, receiver.url)
    text = config.read_text().replace(
        "webhooks:\n", "webhooks:\n  public_url: https://sms.example.com\n"
    )
    config.write_text(text)
    server = start(config, "--json", "--show-secrets", "--no-access-log")
    requests.get(server.url + "/healthz", timeout=5)
    code, out, err = server.stop()
    assert code == 0
    info = json.loads(out.splitlines()[0])
    assert info["listen"] == f"http://127.0.0.1:{server.port}"
    assert info["unprotected"] == ["open"]
    assert info["phones"]["dev"]["status"] == (
        f"https://sms.example.com/webhooks/dev/status?token={SECRET}"
    )
    assert info["phones"]["open"]["protected"] is False
    assert "GET /healthz" not in err  # --no-access-log


def test_port_in_use_is_one_clear_line(tmp_path: Path, receiver: FakeServer) -> None:
    config = write_config(tmp_path, receiver.url)
    with FakeServer(Receiver, {}) as busy:
        port = busy.url.rsplit(":", 1)[1]
        proc = subprocess.run(
            [*SMSBRIDGE, "--config", str(config), "serve", "--port", port],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1
    assert "cannot listen on 127.0.0.1:" + port in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mask_token() -> None:
    assert (
        mask_token("https://x/webhooks/a/status?token=abc")
        == "https://x/webhooks/a/status?token=***"
    )
    assert mask_token("https://x/w?token=abc&b=1") == "https://x/w?token=***&b=1"
    assert mask_token("https://x/w") == "https://x/w"
    assert mask_token(None) is None

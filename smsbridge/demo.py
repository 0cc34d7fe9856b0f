"""``smsbridge demo``: the embedded default, end to end, with no file and no credentials.

Dummy phones in two countries and a default route; a few messages (one fails over from a
phone that ran out of credit); routing decisions; delivery reports and an inbound message
arriving through the real webhook path (over HTTP on 127.0.0.1 when the WSGI adapter is
available); the message store (SQLite in a temporary folder); the capability matrix.
"""

from __future__ import annotations

import json
import logging
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from .bridge import Bridge
from .config import load_yaml, parse_config
from .errors import Rejected, SmsBridgeError
from .message import IncomingMessage, StatusReport

__all__ = ["DEMO_CONFIG", "run_demo"]

DEMO_CONFIG = """\
default_region: CI
store: sqlite:///{db}
webhooks:
  public_url: {public_url}
phones:
  orange-ci:                 # stands for Orange Côte d'Ivoire; out of credit in the demo
    plugin: dummy
    countries: [CIV]
    fail_all: true
    error: InsufficientCredit
    post_reports: {post}
    webhook_secret: demo-secret-ci
  backup-ci:                 # second phone for Côte d'Ivoire: takes over
    plugin: dummy
    countries: [CI]
    post_reports: {post}
    webhook_secret: demo-secret-ci2
  orange-sn:                 # stands for Orange Sénégal
    plugin: dummy
    countries: [SN]
    post_reports: {post}
    webhook_secret: demo-secret-sn
  world:                     # everything else
    plugin: dummy
    delivery: failed
    post_reports: {post}
    webhook_secret: demo-secret-world
routes:
  - match: {{countries: [CI]}}
    phones: [orange-ci, backup-ci]
  - match: {{countries: [SEN]}}
    phones: [orange-sn, world]
  - phones: [world]
"""

MESSAGES = [
    ("07 01 02 03 04", "Bonjour ! Votre code est 123456."),
    ("+221 77 123 45 67", "Bienvenue chez nous, à bientôt."),
    ("+33 6 12 34 56 78", "Hello from smsbridge 👋"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_http(bridge: Bridge, port: int) -> tuple[Any, str] | None:
    """Serve the bridge's WSGI app on 127.0.0.1 (None when the adapter is absent)."""
    try:
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        app = bridge.webhook_app("wsgi")
    except (ImportError, ValueError):
        return None

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", port, app, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def run_demo(as_json: bool = False) -> int:
    # The demo prints every attempt itself; keep the failover warnings for -v.
    logger = logging.getLogger("smsbridge")
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.ERROR)
    out: dict[str, Any] = {"routing": {}, "sends": [], "reports": [], "inbound": []}

    def say(text: str = "") -> None:
        if not as_json:
            print(text)

    with tempfile.TemporaryDirectory(prefix="smsbridge-demo-") as tmp:
        db = Path(tmp) / "demo.db"
        store_ok = _store_available()
        port = _free_port()
        bridge = Bridge.from_config(_config(db, f"http://127.0.0.1:{port}", store=store_ok))
        http = _start_http(bridge, port)
        reports: list[StatusReport] = []
        inbound: list[IncomingMessage] = []
        done = threading.Event()

        def on_status(report: StatusReport) -> None:
            reports.append(report)
            if len(reports) >= 3:
                done.set()

        bridge.on_status(on_status)
        bridge.on_receive(inbound.append)

        try:
            say(
                "smsbridge demo: dummy phones, no credentials"
                + (", SQLite store" if store_ok else "")
                + (f", webhooks served on {http[1]}" if http else "")
            )
            say()
            say("1. Routing decisions (first match wins; phones in failover order)")
            for to, body in MESSAGES:
                phones = bridge.route(to, body)
                out["routing"][to] = phones
                say(f"   {to:<20} -> {' -> '.join(phones)}")
            say()
            say("2. Sending")
            for to, body in MESSAGES:
                result = bridge.send(to, body)
                out["sends"].append(result.to_dict())
                tried = ", ".join(
                    f"{a.phone} ({a.error_type})" if a.error else a.phone for a in result.attempts
                )
                say(
                    f"   {result.to:<14} via {result.phone:<10} {result.status.value:<7} "
                    f"{result.segments} {result.encoding} segment(s); tried: {tried}"
                )
            say()
            say("3. Delivery reports arriving through the webhook path")
            for phone in bridge.phones.values():
                wait = getattr(phone, "wait_reports", None)
                if wait:
                    wait()
            done.wait(5)
            for report in reports:
                out["reports"].append(report.to_dict())
                say(
                    f"   {report.phone:<10} {report.provider_id}  {report.status.value}"
                    + (f"  (message {report.message_id[:8]}…)" if report.message_id else "")
                )
            say()
            say("4. An inbound SMS")
            sender = "+2250701020304"
            if http:
                import requests

                url = bridge.phones["backup-ci"].callback_url("inbound")
                assert url is not None
                resp = requests.post(
                    url,
                    json={"from": sender, "to": "+2250700000000", "body": "STOP", "id": "mo-1"},
                    timeout=5,
                )
                say(f"   POST /webhooks/backup-ci/inbound -> HTTP {resp.status_code}")
            else:
                bridge.phones["backup-ci"].simulate_inbound(sender, "STOP")  # type: ignore[attr-defined]
            for msg in inbound:
                out["inbound"].append(msg.to_dict())
                say(f"   from {msg.sender} on {msg.phone}: {msg.body!r}")
            try:
                bridge.send(sender, "Promo: -20% ce week-end")
                out["after_stop"] = "sent"
            except Rejected as exc:  # STOP put the number on the opt-out list
                out["after_stop"] = "refused (opt-out)" if exc.opt_out else str(exc)
            say(f"   next marketing SMS to {sender}: {out['after_stop']}")
            say()
            say("5. Capability matrix")
            if not as_json:
                from .cli.output import capability_rows, print_table

                rows, headers = capability_rows(bridge.capabilities())
                keep = [
                    "phone",
                    "send",
                    "receive",
                    "status",
                    "mms_send",
                    "flash",
                    "sender_name",
                    "max_segments",
                    "balance",
                    "countries",
                ]
                idx = [headers.index(k) for k in keep]
                print_table([[r[i] for i in idx] for r in rows], keep)
            out["capabilities"] = {n: c.to_dict() for n, c in bridge.capabilities().items()}
            if store_ok and bridge.store is not None:
                stored = [bridge.store.get_result(s["message_id"]) for s in out["sends"]]
                say()
                say("6. What the store kept")
                for res in stored:
                    if res is not None:
                        say(
                            f"   {res.message_id[:8]}… {res.to:<14} {res.phone:<10} "
                            f"{res.status.value}"
                        )
            if as_json:
                print(json.dumps(out, indent=2, ensure_ascii=False, default=str))
            else:
                say()
                say(
                    "Next: write your own smsbridge.yaml (see examples/), then "
                    "`smsbridge send --config smsbridge.yaml +225... 'Bonjour'`."
                )
        except SmsBridgeError as exc:
            print(f"demo failed: {exc}")
            return 1
        finally:
            if http:
                http[0].shutdown()
                http[0].server_close()
            bridge.close()
    return 0


def _config(db: Path, public_url: str, *, store: bool) -> Any:
    post = "true" if _wsgi_available() else "false"
    text = DEMO_CONFIG.format(db=db.as_posix(), public_url=public_url, post=post)
    if not store:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("store:"))
    return parse_config(load_yaml(text, "<demo>"), file="<demo>")


def _wsgi_available() -> bool:
    try:
        from .webhooks.wsgi import WSGIApp  # noqa: F401
    except ImportError:
        return False
    return True


def _store_available() -> bool:
    try:
        from .store import open_store  # noqa: F401
    except ImportError:
        return False
    return True

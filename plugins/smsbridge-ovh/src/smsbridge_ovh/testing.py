"""A local fake of the OVHcloud SMS API (``/1.0``) over real HTTP on 127.0.0.1.

It speaks what the official ``ovh`` SDK sends and expects: ``GET /auth/time`` (a bare
integer), request signatures checked exactly as OVH computes them
(``"$1$" + sha1(AS+CK+METHOD+URL+BODY+TIMESTAMP)`` joined by ``+``), OVH's error bodies,
``POST /sms/{service}/jobs`` with valid and invalid receivers and credit accounting,
``/outgoing``, ``/jobs`` and ``/incoming`` resources. Use it to test apps built on
smsbridge without an OVH account::

    with OvhFake() as fake:
        phone = OvhPhone("ovh-test", fake.phone_options())
        phone.send(OutgoingMessage(to="+33612345678", body="Bonjour"))
        assert fake.outgoing[fake.last_id]["message"] == "Bonjour"

Error bodies not settled by public sources (credit exhaustion, expired service, clock
skew, sender/receiver refusals) follow OVH's ``{"class": ..., "message": ...}`` shape;
their exact wording is a best guess, marked below.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from smsbridge.encoding import count_segments
from smsbridge.http import WebhookRequest

__all__ = ["ERRORS", "OvhFake"]

# Bodies quoted from live responses (provider-apis.md §2.1) ...
ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "invalid_key": (
        403,
        {
            "errorCode": "INVALID_KEY",
            "httpCode": "403 Forbidden",
            "message": "This application key is invalid",
        },
    ),
    "invalid_credential": (
        403,
        {
            "errorCode": "INVALID_CREDENTIAL",
            "httpCode": "403 Forbidden",
            "message": "This credential is not valid",
        },
    ),
    "invalid_signature": (
        400,
        {
            "errorCode": "INVALID_SIGNATURE",
            "httpCode": "400 Bad Request",
            "message": "Invalid signature",
        },
    ),
    "not_granted": (
        403,
        {
            "errorCode": "NOT_GRANTED_CALL",
            "httpCode": "403 Forbidden",
            "message": "This call has not been granted",
        },
    ),
    "not_granted_class": (
        403,
        {"class": "Client::Forbidden", "message": "This call has not been granted"},
    ),
    "not_found": (404, {"class": "Client::NotFound", "message": "This service does not exist"}),
    # ... and best guesses in the same shape (wording UNCERTAIN):
    "no_credits": (
        403,
        {"class": "Client::Forbidden", "message": "Not enough credits to send this message"},
    ),
    "expired": (460, {"class": "Client::Expired", "message": "This service is expired"}),
    "query_time_out": (
        400,
        {
            "errorCode": "QUERY_TIME_OUT",
            "httpCode": "400 Bad Request",
            "message": "Query out of time",
        },
    ),
    "bad_request": (
        400,
        {"class": "Client::BadRequest", "message": "Invalid value for parameter priority"},
    ),
    "rate_limited": (429, {"class": "Client::TooManyRequests", "message": "Too many requests"}),
    "server_error": (
        500,
        {"class": "Server::InternalServerError", "message": "Internal server error"},
    ),
    "unavailable": (
        503,
        {"class": "Server::ServiceUnavailable", "message": "Service temporarily unavailable"},
    ),
}

_RECEIVER = re.compile(r"^\+[1-9][0-9]{6,14}$")


class OvhFake:
    """The fake OVH API. All attributes are plain data the tests may read or change."""

    def __init__(
        self,
        *,
        application_key: str = "test-ak-123",
        application_secret: str = "test-as-123",
        consumer_key: str = "test-ck-123",
        service_name: str = "sms-test-1",
        credits: float = 100.0,
        senders: tuple[str, ...] = ("MonService",),
        time_offset: int = -3600,
        max_skew: int = 30,
    ) -> None:
        self.application_key = application_key
        self.application_secret = application_secret
        self.consumer_key = consumer_key
        self.service_name = service_name
        self.credits_left = credits
        self.senders = set(senders)
        self.time_offset = time_offset  # server clock minus ours: the SDK must use the delta
        self.max_skew = max_skew
        self.granted = True
        self.hold_jobs = False  # True: new SMS wait in /jobs instead of /outgoing
        self.invalid_receivers: set[str] = set()
        self.jobs: dict[int, dict[str, Any]] = {}
        self.outgoing: dict[int, dict[str, Any]] = {}
        self.incoming: dict[int, dict[str, Any]] = {}
        self.account: dict[str, Any] = {"callBack": "", "status": "enable"}
        self.payloads: dict[int, dict[str, Any]] = {}  # the job body each SMS came from
        self.requests: list[dict[str, Any]] = []
        self.last_id: int | None = None
        self._faults: list[tuple[str, Any]] = []
        self._ids = itertools.count(26929925)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.state = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> OvhFake:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OvhFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The API base URL to give the phone as ``endpoint``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/1.0"

    def phone_options(self, **overrides: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "endpoint": self.endpoint,
            "application_key": self.application_key,
            "application_secret": self.application_secret,
            "consumer_key": self.consumer_key,
            "service_name": self.service_name,
            "webhook_secret": "test-secret-123",
        }
        options.update(overrides)
        return options

    def server_time(self) -> int:
        return int(time.time()) + self.time_offset

    # ------------------------------------------------------------------ scripting
    def fail_next(
        self,
        case_or_status: str | int,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next signed request with an error (a key of ``ERRORS`` or a status)."""
        if isinstance(case_or_status, str):
            status, body = ERRORS[case_or_status]
        else:
            status, body = case_or_status, dict(body or {})
        self._faults.append(("error", (status, body, dict(headers or {}))))

    def stall_next(self, seconds: float) -> None:
        """Wait ``seconds`` before handling the next signed request (client read timeout)."""
        self._faults.append(("stall", seconds))

    def drop_next(self) -> None:
        """Read the next signed request, then close the connection without answering."""
        self._faults.append(("drop", None))

    def garble_next(self, status: int = 502) -> None:
        """Answer the next signed request with an HTML page (a broken proxy)."""
        self._faults.append(("garble", status))

    def add_incoming(self, sender: str, message: str, tag: str = "") -> int:
        with self._lock:
            sms_id = next(self._ids)
            self.incoming[sms_id] = {
                "id": sms_id,
                "sender": sender,
                "message": message,
                "tag": tag,
                "credits": 0,
                "creationDatetime": _now_paris(),
            }
        return sms_id

    def set_status(
        self, sms_id: int | str, *, ptt: int | None = None, delivery_receipt: int | None = None
    ) -> None:
        record = self.outgoing[int(sms_id)]
        if ptt is not None:
            record["ptt"] = ptt
        if delivery_receipt is not None:
            record["deliveryReceipt"] = delivery_receipt

    def release_jobs(self) -> None:
        """Move held jobs to /outgoing, as OVH does once they went out."""
        with self._lock:
            for sms_id, job in list(self.jobs.items()):
                self.outgoing[sms_id] = {**job, "tag": job.get("tag", ""), "tariffCode": "1"}
                del self.jobs[sms_id]

    @staticmethod
    def status_callback(
        url: str,
        sms_id: int | str,
        *,
        ptt: int | str | None = None,
        dlr: int | str | None = None,
        param: str = "description",
        text: str | None = None,
    ) -> WebhookRequest:
        """The GET OVH makes on the service's callback URL when an SMS changes state.

        ``param`` names the DLR id parameter: ``description`` (OVH's guide) or ``dlr``
        (what RaspiSMS reads).
        """
        query: dict[str, Any] = {"id": sms_id, "date": _now_paris()}
        if ptt is not None:
            query["ptt"] = ptt
        if dlr is not None:
            query[param] = dlr
        if text is not None:
            query["descriptionDlr"] = text
        sep = "&" if urlsplit(url).query else "?"
        return WebhookRequest("GET", url + sep + urlencode(query), remote_addr="127.0.0.1")

    # ------------------------------------------------------------------ API
    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        match = re.fullmatch(r"/sms/([^/]+)(/.*)?", path.split("?")[0])
        if not match:
            return 404, {"class": "Client::NotFound", "message": "Got an invalid (or empty) URL"}
        if match.group(1) != self.service_name:
            return ERRORS["not_found"]
        rest = match.group(2) or ""
        with self._lock:
            if rest == "":
                if method == "PUT":
                    self.account.update(body or {})
                    return 200, None
                return 200, {
                    "name": self.service_name,
                    "description": "",
                    "creditsLeft": self.credits_left,
                    "creditsHoldByQuota": 0,
                    "smsResponse": {"responseType": "text"},
                    **self.account,
                }
            if rest == "/jobs" and method == "POST":
                return self._post_job(body or {})
            found = re.fullmatch(r"/(jobs|outgoing|incoming)(?:/(\d+))?", rest)
            if not found:
                return 404, {"class": "Client::NotFound", "message": "Got an invalid URL"}
            table = {"jobs": self.jobs, "outgoing": self.outgoing, "incoming": self.incoming}[
                found.group(1)
            ]
            if found.group(2) is None:
                return 200, sorted(table)
            sms_id = int(found.group(2))
            if sms_id not in table:
                return 404, {
                    "class": "Client::NotFound",
                    "message": f"The requested object (id = {sms_id}) does not exist",
                }
            if method == "DELETE":
                del table[sms_id]
                return 200, None
            return 200, table[sms_id]

    def _post_job(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        message = body.get("message")
        if not isinstance(message, str) or not message:
            return 400, {
                "class": "Client::BadRequest",
                "message": "Missing parameter message",
            }  # wording UNCERTAIN
        sender = body.get("sender")
        if sender and body.get("senderForResponse"):
            return 400, {
                "class": "Client::BadRequest",  # wording UNCERTAIN
                "message": "senderForResponse cannot be used with a sender",
            }
        if sender and sender not in self.senders:
            return 400, {
                "class": "Client::BadRequest",  # wording seen in a public issue
                "message": f"Sms sender {sender} does not exists. Please create it first",
            }
        receivers = [str(r) for r in body.get("receivers") or []]
        valid = [r for r in receivers if _RECEIVER.match(r) and r not in self.invalid_receivers]
        invalid = [r for r in receivers if r not in valid]
        info = count_segments(message)
        cost = float(info.segments * len(valid))
        if cost > self.credits_left:
            return ERRORS["no_credits"]
        self.credits_left -= cost
        ids = []
        for receiver in valid:
            sms_id = next(self._ids)
            record = {
                "id": sms_id,
                "receiver": receiver,
                "message": message,
                "sender": sender or "36xxx",
                "creationDatetime": _now_paris(),
                "credits": info.segments,
                "numberOfSms": info.segments,
                "messageLength": len(message),
                "ptt": 0,
                "deliveryReceipt": 0,
                "differedDelivery": 0,
                "tag": body.get("tag") or "",
                "tariffCode": "1",
            }
            self.payloads[sms_id] = dict(body)
            (self.jobs if self.hold_jobs else self.outgoing)[sms_id] = record
            ids.append(sms_id)
            self.last_id = sms_id
        return 200, {
            "ids": ids,
            "validReceivers": valid,
            "invalidReceivers": invalid,
            "totalCreditsRemoved": cost,
            "creditsLeft": self.credits_left,
        }

    def check_auth(
        self, method: str, url: str, body: str, headers: Mapping[str, str]
    ) -> tuple[int, Any] | None:
        if headers.get("x-ovh-application") != self.application_key:
            return ERRORS["invalid_key"]
        if headers.get("x-ovh-consumer") != self.consumer_key:
            return ERRORS["invalid_credential"]
        stamp = headers.get("x-ovh-timestamp", "")
        expected = (
            "$1$"
            + hashlib.sha1(
                "+".join(
                    [self.application_secret, self.consumer_key, method, url, body, stamp]
                ).encode("utf-8")
            ).hexdigest()
        )
        if headers.get("x-ovh-signature") != expected:
            return ERRORS["invalid_signature"]
        if not stamp.isdigit() or abs(int(stamp) - self.server_time()) > self.max_skew:
            return ERRORS["query_time_out"]
        if not self.granted:
            return ERRORS["not_granted"]
        return None


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-ovh"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        fake: OvhFake = self.server.state  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode("utf-8") if length else ""
        path = self.path[4:] if self.path.startswith("/1.0/") else self.path
        if path == "/auth/time" and method == "GET":
            return self._send(200, fake.server_time())
        headers = {k.lower(): v for k, v in self.headers.items()}
        url = f"http://{self.headers.get('Host')}{self.path}"
        try:
            body = json.loads(text) if text else None
        except ValueError:
            return self._send(400, {"class": "Client::BadRequest", "message": "Invalid JSON"})
        fake.requests.append({"method": method, "path": path, "body": body, "headers": headers})
        refused = fake.check_auth(method, url, text, headers)
        if refused is not None:
            return self._send(*refused)
        while fake._faults:
            kind, arg = fake._faults.pop(0)
            if kind == "stall":
                time.sleep(arg)
                continue
            if kind == "drop":
                self.close_connection = True
                return None
            if kind == "garble":
                return self._send(arg, "<html><body>502 Bad Gateway</body></html>", html=True)
            status, error, extra = arg
            return self._send(status, error, extra)
        return self._send(*fake.handle(method, path, body))

    def _send(
        self, status: int, data: Any, headers: Mapping[str, str] | None = None, html: bool = False
    ) -> None:
        payload = (data if html else json.dumps(data)).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if html else "application/json")
            self.send_header("X-OVH-QUERYID", f"EU.ext-1.fake.{time.monotonic_ns()}")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
            self.close_connection = True


def _now_paris() -> str:
    """OVH's datetime form: ISO 8601 in Paris time with its offset."""
    return datetime.now(ZoneInfo("Europe/Paris")).isoformat(timespec="seconds")

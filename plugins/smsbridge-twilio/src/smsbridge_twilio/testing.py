"""A local fake Twilio REST API (2010-04-01) over real HTTP, for tests of apps and plugins.

It speaks Twilio's wire format (form-encoded requests, HTTP Basic auth with the account SID
and auth token or an API key, JSON answers, legacy error bodies) and honours Twilio's
test-credential magic numbers: To ``+15005550001`` (21211), ``+15005550002`` (21612),
``+15005550003`` (21408), ``+15005550004`` (21610, unsubscribed), ``+15005550009`` (21614);
From ``+15005550001`` (21212), ``+15005550007`` (21606), ``+15005550008`` (21611).
Any other valid To/From succeeds. Callbacks are signed like Twilio's (``X-Twilio-Signature``)::

    with FakeTwilio() as fake:
        phone = TwilioPhone("tw", {**fake.phone_options(), "from": "+15005550006"},
                            public_url="https://sms.example.com")
        result = phone.send(OutgoingMessage(to="+14155552671", body="hi"))
        fake.fail_next(20429, status=429, headers={"Retry-After": "1"})
        fake.advance(result.provider_id, "sent", "delivered")  # POSTs status callbacks
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

from smsbridge.message import utcnow
from smsbridge.testing import FakeServer

__all__ = ["FakeTwilio", "Fault", "RecordedRequest"]

TEST_ACCOUNT_SID = "AC" + "0" * 31 + "1"
TEST_AUTH_TOKEN = "test-secret-123"
API = "/2010-04-01/Accounts/"

MAGIC_TO = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for {to}."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number"),
}
MAGIC_FROM = {
    "+15005550001": (21212, "The 'From' number {sender} is not a valid phone number."),
    "+15005550007": (21606, "The 'From' phone number provided is not owned by your account."),
    "+15005550008": (
        21611,
        "This 'From' number has exceeded the maximum number of queued messages",
    ),
}


@dataclass
class Fault:
    """How the fake answers one of the next requests instead of serving it."""

    code: int | None = None  # Twilio error code in the JSON body
    status: int = 400
    message: str = "Fake Twilio error"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (timeouts)
    drop: bool = False  # close the connection without answering
    body: str | None = None  # raw body instead of the legacy JSON error
    method: str | None = None  # only requests with this method consume the fault


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    form: dict[str, list[str]]
    headers: dict[str, str]
    auth: tuple[str, str] | None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        fake: FakeTwilio = self.server.state["fake"]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        parts = urlsplit(self.path)
        form = parse_qs(raw, keep_blank_values=True)
        recorded = RecordedRequest(
            self.command, parts.path, form, dict(self.headers.items()), _basic(self.headers)
        )
        fault = fake._take_fault(self.command, recorded)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                self.close_connection = True
                self.connection.close()
                return
            body = fault.body if fault.body is not None else _error_body(fault)
            self._send(fault.status, body, fault.headers)
            return
        status, payload, headers = fake._dispatch(self.command, parts.path, form, recorded)
        self._send(status, json.dumps(payload), headers)

    do_GET = do_POST = do_DELETE = _serve

    def _send(self, status: int, body: str, headers: Mapping[str, str] | None = None) -> None:
        data = body.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout tests)
            self.close_connection = True


def _basic(headers: Any) -> tuple[str, str] | None:
    value = headers.get("Authorization") or ""
    if not value.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(value[6:]).decode("utf-8").partition(":")
    except ValueError:
        return None
    return user, password


def _error_body(fault: Fault) -> str:
    code = fault.code if fault.code is not None else fault.status
    return json.dumps(
        {
            "code": code,
            "message": fault.message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": fault.status,
        }
    )


class FakeTwilio:
    """The fake; a context manager. ``requests`` records every call, ``messages`` the state."""

    def __init__(
        self,
        account_sid: str = TEST_ACCOUNT_SID,
        auth_token: str = TEST_AUTH_TOKEN,
        api_keys: Mapping[str, str] | None = None,
        balance: str = "12.34",
        currency: str = "USD",
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_keys = dict(api_keys or {})
        self.balance = balance
        self.currency = currency
        self.account_status = "active"
        self.messages: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.callbacks: list[requests.Response] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server = FakeServer(_Handler, {"fake": self})
        self._server.httpd.handle_error = _quiet  # type: ignore[method-assign]
        self._http = requests.Session()

    # ---------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> FakeTwilio:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._http.close()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.requests.clear()
            self.callbacks.clear()
            self._faults.clear()
            self.account_status = "active"

    def phone_options(self) -> dict[str, Any]:
        """Options pointing a TwilioPhone at this fake."""
        return {
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "base_url": self.url,
        }

    # ---------------------------------------------------------------- misbehaviour
    def fail_next(
        self, code: int | None = None, *, status: int = 400, times: int = 1, **kw: Any
    ) -> None:
        """Answer the next ``times`` requests with this error (see :class:`Fault`)."""
        with self._lock:
            self._faults.extend(Fault(code=code, status=status, **kw) for _ in range(times))

    def _take_fault(self, method: str, recorded: RecordedRequest) -> Fault | None:
        with self._lock:
            self.requests.append(recorded)
            if self._faults and self._faults[0].method in (None, method):
                return self._faults.popleft()
            return None

    # ---------------------------------------------------------------- REST API
    def _dispatch(
        self, method: str, path: str, form: dict[str, list[str]], req: RecordedRequest
    ) -> tuple[int, Any, dict[str, str]]:
        if not path.startswith(API):
            return _err(404, 20404, "The requested resource was not found")
        sid, _, rest = path[len(API) :].partition("/")
        if not self._authorized(req.auth, sid):
            status, body, _ = _err(401, 20003, "Authenticate")
            return status, body, {"WWW-Authenticate": 'Basic realm="Twilio API"'}
        if sid.endswith(".json") and method == "GET":
            return 200, self._account(), {}
        if rest == "Messages.json" and method == "POST":
            return self._create(form)
        if rest == "Balance.json" and method == "GET":
            return 200, {"account_sid": sid, "balance": self.balance, "currency": self.currency}, {}
        found = re.fullmatch(r"Messages/((?:SM|MM)[0-9a-f]{32})\.json", rest)
        if found and method == "GET":
            with self._lock:
                msg = self.messages.get(found.group(1))
            if msg is None:
                return _err(404, 20404, f"The requested resource {path} was not found")
            return 200, {k: v for k, v in msg.items() if not k.startswith("_")}, {}
        return _err(404, 20404, f"The requested resource {path} was not found")

    def _authorized(self, auth: tuple[str, str] | None, sid: str) -> bool:
        if auth is None or sid.removesuffix(".json") != self.account_sid:
            return False
        user, password = auth
        if user == self.account_sid:
            return password == self.auth_token
        return self.api_keys.get(user) == password

    def _account(self) -> dict[str, Any]:
        return {
            "sid": self.account_sid,
            "friendly_name": "smsbridge fake",
            "status": self.account_status,
            "type": "Full",
            "date_created": _rfc2822(),
            "uri": f"{API}{self.account_sid}.json",
        }

    def _create(self, form: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        one = {k: v[0] for k, v in form.items()}
        to, sender, service = one.get("To", ""), one.get("From"), one.get("MessagingServiceSid")
        media = form.get("MediaUrl", [])
        if not to:
            return _err(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return _err(400, 21603, "A 'From' phone number is required.")
        if not one.get("Body") and not media:
            return _err(400, 21602, "Message body is required.")
        if to in MAGIC_TO:
            code, text = MAGIC_TO[to]
            return _err(400, code, text.format(to=to))
        if sender in MAGIC_FROM:
            code, text = MAGIC_FROM[sender]
            return _err(400, code, text.format(sender=sender))
        if not re.fullmatch(r"\+[1-9][0-9]{6,14}", to):
            return _err(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        sid = ("MM" if media else "SM") + uuid.uuid4().hex
        body = one.get("Body", "")
        now = _rfc2822()
        msg = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service and not sender else "queued",
            "subresource_uris": {"media": f"{API}{self.account_sid}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"{API}{self.account_sid}/Messages/{sid}.json",
            # not part of Twilio's answer: kept for assertions and callbacks
            "_media_url": media,
            "_status_callback": one.get("StatusCallback"),
            "_validity_period": one.get("ValidityPeriod"),
        }
        with self._lock:
            self.messages[sid] = msg
        public = {k: v for k, v in msg.items() if not k.startswith("_")}
        return 201, public, {}

    # ---------------------------------------------------------------- callbacks
    def sign(self, url: str, params: Mapping[str, str | Sequence[str]]) -> str:
        """The X-Twilio-Signature Twilio would send for ``params`` POSTed to ``url``."""
        lists = {k: [v] if isinstance(v, str) else list(v) for k, v in params.items()}

        class _Multi(dict[str, list[str]]):
            def getlist(self, name: str) -> list[str]:
                return self[name]

        return str(RequestValidator(self.auth_token).compute_signature(url, _Multi(lists)))

    def post(
        self,
        url: str,
        params: Mapping[str, str | Sequence[str]],
        *,
        signature: str | None = None,
        sign_url: str | None = None,
    ) -> requests.Response:
        """POST a signed form callback to ``url`` (``sign_url`` signs another URL: tests)."""
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        headers["X-Twilio-Signature"] = signature or self.sign(sign_url or url, params)
        resp = self._http.post(url, data=urlencode(params, doseq=True), headers=headers, timeout=5)
        self.callbacks.append(resp)
        return resp

    def advance(
        self, sid: str, *statuses: str, error_code: int | None = None, url: str | None = None
    ) -> list[requests.Response]:
        """Move message ``sid`` through ``statuses``, POSTing a status callback for each
        (to its StatusCallback, or ``url``). ``error_code`` goes with failed/undelivered."""
        answers = []
        for status in statuses:
            with self._lock:
                msg = self.messages[sid]
                msg["status"] = status
                msg["date_updated"] = _rfc2822()
                failed = status in ("failed", "undelivered")
                msg["error_code"] = error_code if failed else None
                msg["error_message"] = "Unknown error" if failed and error_code else None
                target = url or msg["_status_callback"]
            if not target:
                continue
            params = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "From": msg["from"] or "",
                "MessageSid": sid,
                "MessageStatus": status,
                "SmsSid": sid,
                "SmsStatus": status,
                "To": msg["to"],
            }
            if msg["messaging_service_sid"]:
                params["MessagingServiceSid"] = msg["messaging_service_sid"]
            if failed and error_code:
                params["ErrorCode"] = str(error_code)
            answers.append(self.post(target, params))
        return answers

    def inbound_params(
        self,
        sender: str,
        recipient: str,
        body: str,
        media: Sequence[tuple[str, str]] = (),
    ) -> dict[str, str]:
        """The form Twilio POSTs to a number's messaging webhook; ``media`` = (url, type)."""
        sid = ("MM" if media else "SM") + uuid.uuid4().hex
        params = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": str(len(media)),
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "To": recipient,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": sender,
            "ApiVersion": "2010-04-01",
        }
        for i, (url, content_type) in enumerate(media):
            params[f"MediaUrl{i}"] = url
            params[f"MediaContentType{i}"] = content_type
        return params

    def inbound(
        self,
        url: str,
        sender: str,
        recipient: str,
        body: str,
        media: Sequence[tuple[str, str]] = (),
    ) -> requests.Response:
        """POST a signed inbound SMS/MMS to ``url``."""
        return self.post(url, self.inbound_params(sender, recipient, body, media))


def _quiet(request: Any, client_address: Any) -> None:
    """Clients that gave up (timeout tests) are expected: no traceback on stderr."""


def _err(status: int, code: int, message: str) -> tuple[int, Any, dict[str, str]]:
    fault = Fault(code=code, status=status, message=message)
    return status, json.loads(_error_body(fault)), {}


def _rfc2822() -> str:
    return format_datetime(utcnow(), usegmt=True)

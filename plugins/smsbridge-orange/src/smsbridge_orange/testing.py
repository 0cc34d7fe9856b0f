"""A local fake of the Orange SMS API, speaking its wire format over real HTTP.

Public, so applications can test against it too::

    from smsbridge_orange.testing import FakeOrange

    with FakeOrange() as fake:
        phone = OrangePhone("orange-ci", fake.phone_options())
        phone.send(OutgoingMessage(to="+2250701020304", body="Bonjour"))
        assert fake.sent[0]["message"] == "Bonjour"

What it implements (from Orange's guide and the reference notes):

- ``POST /oauth/v3/token``: Basic auth, ``grant_type=client_credentials``; 401
  ``invalid_client`` bodies; ``expires_in`` as a string or an integer; configurable TTL.
- Bearer checks with the real 401 bodies: code 40 (missing), 41 (invalid), 42 (expired).
- ``POST /smsmessaging/v1/outbound/{tel:+sender}/requests``, optionally with
  ``?resource_type_parameter_management=SMS_OCB2`` (on-net units): path/body sender
  agreement, ``tel:+`` address formats, a sender-name whitelist, a unit counter per
  offer (403 policy error at zero or after expiry), a TPS limiter
  (429 code 53), injected failures and delays.
- DR subscriptions: create, list, get, delete.
- Admin: ``/sms/admin/v1/contracts`` (array or ``partnerContracts`` shape),
  ``/statistics``, ``/purchaseorders``.
- A driver that POSTs delivery receipts and inbound SMS to webhook URLs.
"""

from __future__ import annotations

import base64
import collections
import json
import re
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import requests

from smsbridge.http import WebhookRequest
from smsbridge.testing import FakeServer

from .countries import country_for_sender

__all__ = ["FakeOrange"]

ADDRESS_RE = re.compile(r"^tel:\+\d{6,15}$")
SEND_RE = re.compile(r"^/smsmessaging/v1/outbound/([^/]+)/requests$")
SUBS_RE = re.compile(r"^/smsmessaging/v1/outbound/([^/]+)/subscriptions(?:/([^/]+))?$")
SUB_GET_RE = re.compile(r"^/smsmessaging/v1/outbound/subscriptions/([^/]+)$")

GATEWAY_401 = {
    40: ("Missing credentials", "The requested service needs credentials, but none were provided."),
    41: (
        "Invalid credentials",
        "The requested service needs credentials, but the ones provided were invalid.",
    ),
    42: (
        "Expired credentials",
        "The requested service needs credentials, and the ones provided were out-of-date.",
    ),
}
TOO_MANY = {
    "code": 53,
    "message": "Too many requests",
    "description": "The application has made too many calls and has exceeded the rate limit.",
}


def gateway(code: int, message: str, description: str) -> dict[str, Any]:
    return {"code": code, "message": message, "description": description}


def service_error(message_id: str, text: str, *variables: str) -> dict[str, Any]:
    body: dict[str, Any] = {"messageId": message_id, "text": text}
    if variables:
        body["variables"] = list(variables)
    return {"requestError": {"serviceException": body}}


def policy_error(message_id: str, text: str, *variables: str) -> dict[str, Any]:
    body: dict[str, Any] = {"messageId": message_id, "text": text}
    if variables:
        body["variables"] = list(variables)
    return {"requestError": {"policyException": body}}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeOrange:
    """The fake Orange platform. All counters are safe to read from tests."""

    def __init__(
        self,
        *,
        client_id: str = "test-client-id",
        client_secret: str = "test-secret-123",
        sender_address: str = "2250000",
        country: str | None = None,
        ttl: float = 3600,
        expires_in_as: str = "str",
        sender_names: Iterable[str] = ("MonService",),
        units: float = 1_000_000,
        on_net_units: float = 1000,
        contract_days: float = 30,
        contracts_shape: str = "array",
        tps: float | None = None,
        resource_url_encoded: bool = False,
        expire_tokens_after_sends: int | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.sender_address = sender_address
        self.country = country or country_for_sender(sender_address) or "CIV"
        self.ttl = ttl
        self.expires_in_as = expires_in_as
        self.sender_names = set(sender_names)
        self.contracts_shape = contracts_shape
        self.tps = tps
        self.resource_url_encoded = resource_url_encoded
        self.expire_tokens_after_sends = expire_tokens_after_sends
        self._initial = (client_id, client_secret, units, on_net_units, contract_days)
        self.contracts: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.token_requests = 0
        self.throttled = 0
        self.sent: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.failures: collections.deque[tuple[str, int, Any, dict[str, str], float]] = (
            collections.deque()
        )
        self._arrivals: collections.deque[float] = collections.deque()
        self.purchase_orders = [
            {
                "id": "6368bdba70585131d5454a5b",
                "developerId": "dev-test",
                "contractId": "63-test",
                "country": self.country,
                "offerName": "SMS_OCB",
                "bundleId": "6368b9b35455a62e00d9997a",
                "bundleDescription": "Bundle 0 - 20 SMS for 320 FCFA (Starter for 7 days)",
                "price": 320.00,
                "currency": "XOF",
                "purchaseDate": "2022-11-07T08:11:38.260Z",
                "paymentMode": "OTP_SMS_OCB",
                "paymentProviderOrderId": None,
                "payerId": "22507******",
                "type": "BUNDLE_PURCHASE",
                "oldAvailableUnits": 0,
                "newAvailableUnits": 20,
                "oldExpirationDate": "2022-11-07T22:59:59.000Z",
                "newExpirationDate": "2022-11-14T08:11:38.227Z",
            }
        ]
        self.server = FakeServer(_Handler, state={"fake": self})
        self.reset()

    def reset(self) -> None:
        """Back to the initial credentials, units and contract dates; no pending failures.
        (Issued tokens, counters and the sent list are kept.)"""
        client_id, client_secret, units, on_net_units, days = self._initial
        expires = datetime.now(UTC) + timedelta(days=days)
        with self.lock:
            self.client_id, self.client_secret = client_id, client_secret
            self.contracts = {
                "SMS_OCB": {"units": units, "expires": expires, "id": "6368bdba70585131d5454a5a"},
                "SMS_OCB2": {
                    "units": on_net_units,
                    "expires": expires,
                    "id": "6368bdba70585131d5454a5c",
                },
            }
            self.failures.clear()

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> FakeOrange:
        # Own serving thread with a short poll interval, so that stop() is quick.
        self._thread = threading.Thread(
            target=self.server.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.httpd.shutdown()
        self.server.httpd.server_close()

    def __enter__(self) -> FakeOrange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def phone_options(self, **overrides: Any) -> dict[str, Any]:
        """Options for an :class:`~smsbridge_orange.OrangePhone` pointed at this fake
        (no persistent token cache unless asked)."""
        options: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "sender_address": self.sender_address,
            "base_url": self.url,
            "token_cache": False,
            "timeout": 5,
        }
        options.update(overrides)
        return options

    # ------------------------------------------------------------------ test controls
    @property
    def authorization_header(self) -> str:
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def expire_tokens(self) -> None:
        """Every issued token is now out-of-date (401 code 42)."""
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def revoke_tokens(self) -> None:
        """Forget every issued token (401 code 41)."""
        with self.lock:
            self.tokens.clear()

    def fail_next(
        self,
        status: int,
        body: Any = None,
        *,
        endpoint: str = "send",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls to ``endpoint`` (send, token, admin, subscriptions)
        answer ``status``/``body`` after ``delay`` seconds (status 0: delay only;
        ``bytes`` bodies are sent as-is, anything else as JSON)."""
        with self.lock:
            for _ in range(times):
                self.failures.append((endpoint, status, body, headers or {}, delay))

    def set_units(self, units: float, offer: str = "SMS_OCB") -> None:
        with self.lock:
            self.contracts[offer]["units"] = units

    def expire_contract(self, offer: str = "SMS_OCB") -> None:
        with self.lock:
            self.contracts[offer]["expires"] = datetime.now(UTC) - timedelta(days=1)

    # ------------------------------------------------------------------ driver
    @staticmethod
    def delivery_payload(resource_id: str, address: str, status: str) -> dict[str, Any]:
        return {
            "deliveryInfoNotification": {
                "callbackData": resource_id,
                "deliveryInfo": {"address": address, "deliveryStatus": status},
            }
        }

    @staticmethod
    def inbound_payload(
        sender: str, message: str, destination: str = "+2250000", when: str | None = None
    ) -> dict[str, Any]:
        return {
            "inboundSMSMessageNotification": {
                "inboundSMSMessage": {
                    "senderAddress": sender if sender.startswith("tel:") else f"tel:{sender}",
                    "destinationAddress": destination,
                    "message": message,
                    "dateTime": when or _iso(datetime.now(UTC)),
                }
            }
        }

    @staticmethod
    def webhook_request(url: str, payload: Any, remote_addr: str = "127.0.0.1") -> WebhookRequest:
        """The request Orange would make, for in-process dispatch."""
        return WebhookRequest(
            method="POST",
            url=url,
            headers={"Content-Type": "application/json"},
            body=json.dumps(payload).encode("utf-8"),
            remote_addr=remote_addr,
        )

    def post_delivery_receipt(
        self, url: str, resource_id: str, address: str, status: str
    ) -> requests.Response:
        """POST a delivery receipt to ``url`` as Orange does."""
        return requests.post(
            url, json=self.delivery_payload(resource_id, address, status), timeout=5
        )

    def post_inbound(
        self, url: str, sender: str, message: str, destination: str = "+2250000"
    ) -> requests.Response:
        """POST an inbound SMS (MO) to ``url`` as Orange does."""
        return requests.post(
            url, json=self.inbound_payload(sender, message, destination), timeout=5
        )

    def deliver_all(self, status: str = "DeliveredToTerminal") -> list[requests.Response]:
        """POST a receipt for every sent message to its sender's subscriptions."""
        with self.lock:
            jobs = [
                (sub["notifyURL"], sent["id"], address)
                for sent in self.sent
                for sub in self.subscriptions.values()
                if sub["sender"] == sent["sender"]
                for address in sent["address"]
            ]
        return [self.post_delivery_receipt(url, rid, addr, status) for url, rid, addr in jobs]

    # ------------------------------------------------------------------ request logic
    def take_failure(self, endpoint: str) -> tuple[int, Any, dict[str, str], float] | None:
        with self.lock:
            for i, (name, status, body, headers, delay) in enumerate(self.failures):
                if name == endpoint:
                    del self.failures[i]
                    return status, body, headers, delay
        return None

    def issue_token(self, authorization: str | None, form: dict[str, list[str]]) -> tuple[int, Any]:
        with self.lock:
            self.token_requests += 1
        if not authorization or not authorization.startswith("Basic "):
            return 401, {
                "error": "invalid_client",
                "error_description": "The requested service needs credentials, "
                "but none were provided.",
            }
        try:
            pair = base64.b64decode(authorization[6:], validate=True).decode("utf-8")
        except ValueError:
            return 401, {
                "error": "invalid_client",
                "error_description": "Unable to decode Basic authorization.",
            }
        if pair != f"{self.client_id}:{self.client_secret}":
            return 401, {
                "error": "invalid_client",
                "error_description": "The requested service needs credentials, "
                "but the ones provided were invalid.",
            }
        if form.get("grant_type") != ["client_credentials"]:
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "grant_type must be client_credentials",
            }
        token = "fake-token-" + uuid.uuid4().hex
        with self.lock:
            self.tokens[token] = time.monotonic() + self.ttl
        ttl: Any = str(int(self.ttl)) if self.expires_in_as == "str" else int(self.ttl)
        return 200, {"token_type": "Bearer", "access_token": token, "expires_in": ttl}

    def check_bearer(self, authorization: str | None) -> tuple[int, Any] | None:
        if not authorization or not authorization.startswith("Bearer "):
            return 401, gateway(40, *GATEWAY_401[40])
        with self.lock:
            expiry = self.tokens.get(authorization[7:])
        if expiry is None:
            return 401, gateway(41, *GATEWAY_401[41])
        if expiry <= time.monotonic():
            return 401, gateway(42, *GATEWAY_401[42])
        return None

    def throttle(self) -> bool:
        if not self.tps:
            return False
        now = time.monotonic()
        with self.lock:
            while self._arrivals and self._arrivals[0] <= now - 1.0:
                self._arrivals.popleft()
            if len(self._arrivals) >= self.tps:
                self.throttled += 1
                return True
            self._arrivals.append(now)
        return False

    def send(
        self, raw_sender: str, query: dict[str, list[str]], token: str, body: Any, raw_path: str
    ) -> tuple[int, Any, dict[str, str]]:
        path_sender = unquote(raw_sender)
        request = body.get("outboundSMSMessageRequest") if isinstance(body, dict) else None
        if not isinstance(request, dict):
            return (
                400,
                service_error(
                    "SVC0002",
                    "Invalid input value for message part %1",
                    "outboundSMSMessageRequest",
                ),
                {},
            )
        if request.get("senderAddress") != path_sender or not ADDRESS_RE.match(path_sender):
            return (
                400,
                service_error(
                    "SVC0002", "Invalid input value for message part %1", "senderAddress"
                ),
                {},
            )
        addresses = request.get("address")
        addresses = addresses if isinstance(addresses, list) else [addresses]
        if not addresses or not all(isinstance(a, str) and ADDRESS_RE.match(a) for a in addresses):
            return (
                400,
                service_error(
                    "SVC0004", "No valid addresses provided in message part %1", "address"
                ),
                {},
            )
        text = (request.get("outboundSMSTextMessage") or {}).get("message")
        if not isinstance(text, str) or not text:
            return (
                400,
                service_error(
                    "SVC0002",
                    "Invalid input value for message part %1",
                    "outboundSMSTextMessage.message",
                ),
                {},
            )
        name = request.get("senderName")
        if name is not None and name not in self.sender_names:
            return (
                400,
                service_error("SVC0002", "Invalid input value for message part %1", "senderName"),
                {},
            )
        offer_param = query.get("resource_type_parameter_management", [None])[0]
        if offer_param not in (None, "SMS_OCB2"):
            return (
                400,
                service_error(
                    "SVC0002",
                    "Invalid input value for message part %1",
                    "resource_type_parameter_management",
                ),
                {},
            )
        offer = offer_param or "SMS_OCB"
        resource = str(uuid.uuid4())
        with self.lock:
            contract = self.contracts[offer]
            if contract["expires"] <= datetime.now(UTC) or contract["units"] < len(addresses):
                return (
                    403,
                    policy_error(
                        "POL0001",
                        "A policy error occurred. For example, rate limit error, authorization "
                        "error. %1",
                        "No valid contracts for this operation (expired or no units left)",
                    ),
                    {},
                )
            contract["units"] -= len(addresses)
            self.sent.append(
                {
                    "id": resource,
                    "address": addresses,
                    "sender": path_sender,
                    "sender_name": name,
                    "message": text,
                    "offer": offer,
                    "raw_path": raw_path,
                    "token": token,
                }
            )
            expire = (
                self.expire_tokens_after_sends is not None
                and len(self.sent) == self.expire_tokens_after_sends
            )
        if expire:
            self.expire_tokens()
        sender_part = quote(path_sender, safe="") if self.resource_url_encoded else path_sender
        url = f"{self.url}/smsmessaging/v1/outbound/{sender_part}/requests/{resource}"
        echo = dict(request, address=addresses, resourceURL=url)
        return 201, {"outboundSMSMessageRequest": echo}, {"Location": url}

    def contracts_body(self, country: str | None) -> Any:
        with self.lock:
            rows = [
                {
                    "id": c["id"],
                    "type": "SELFSERVICE",
                    "developerId": "dev-test",
                    "applicationId": "app-test",
                    "country": self.country,
                    "offerName": offer,
                    "availableUnits": c["units"],
                    "requestedUnits": 0,
                    "status": "ACTIVE" if c["expires"] > datetime.now(UTC) else "EXPIRED",
                    "expirationDate": _iso(c["expires"]),
                    "creationDate": "2022-11-07T08:11:38.220Z",
                    "lastUpdateDate": "2022-12-08T15:04:20.656Z",
                }
                for offer, c in self.contracts.items()
                if country in (None, self.country)
            ]
        if self.contracts_shape == "array":
            return rows
        return {
            "partnerContracts": {
                "partnerId": "dev-test",
                "contracts": [
                    {
                        "service": r["offerName"],
                        "contractDescription": "SMS bundle",
                        "serviceContracts": [
                            {
                                "country": r["country"],
                                "service": r["offerName"],
                                "contractId": r["id"],
                                "availableUnits": r["availableUnits"],
                                "expires": r["expirationDate"],
                                "scDescription": "",
                            }
                        ],
                    }
                    for r in rows
                ],
            }
        }

    def statistics_body(self, country: str | None, appid: str | None) -> Any:
        with self.lock:
            usage: dict[str, int] = collections.Counter(s["offer"] for s in self.sent)
        services = [
            {
                "service": offer,
                "serviceStatistics": [
                    {
                        "country": self.country,
                        "countryStatistics": [
                            {"appid": appid or "app-test", "usage": count, "nbEnforcements": count}
                        ],
                    }
                ],
            }
            for offer, count in sorted(usage.items())
            if country in (None, self.country)
        ]
        return {"partnerStatistics": {"developerId": "dev-test", "statistics": services}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOrange/1.0"
    disable_nagle_algorithm = True  # keep-alive without 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def fake(self) -> FakeOrange:
        return self.server.state["fake"]  # type: ignore[attr-defined,no-any-return]

    def reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        if isinstance(body, bytes):  # a non-JSON body, e.g. a proxy's HTML error page
            data, content_type = body, "text/html"
        else:
            data = b"" if body is None else json.dumps(body).encode("utf-8")
            content_type = "application/json"
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def injected(self, endpoint: str) -> bool:
        failure = self.fake.take_failure(endpoint)
        if failure is None:
            return False
        status, body, headers, delay = failure
        if delay:
            time.sleep(delay)
        if not status:
            return False
        self.reply(status, body, headers)
        return True

    def do_POST(self) -> None:
        self.route("POST")

    def do_GET(self) -> None:
        self.route("GET")

    def do_DELETE(self) -> None:
        self.route("DELETE")

    def route(self, method: str) -> None:
        fake = self.fake
        raw = self.read_body()
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        auth = self.headers.get("Authorization")
        with fake.lock:
            fake.requests.append(
                {
                    "method": method,
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                }
            )
        if path == "/oauth/v3/token" and method == "POST":
            if not self.injected("token"):
                self.reply(*fake.issue_token(auth, parse_qs(raw.decode("utf-8"))))
            return
        denied = fake.check_bearer(auth)
        if denied is not None:
            self.reply(*denied)
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self.reply(
                400,
                gateway(
                    22,
                    "Invalid body",
                    "The posted body is not well-formed and thus can not be parsed.",
                ),
            )
            return
        if (match := SEND_RE.match(path)) and method == "POST":
            if self.injected("send"):
                return
            if fake.throttle():
                self.reply(429, TOO_MANY, {"Retry-After": "1"})
                return
            self.reply(*fake.send(match.group(1), query, auth or "", body, path))
        elif (match := SUBS_RE.match(path)) or (match := SUB_GET_RE.match(path)):
            if not self.injected("subscriptions"):
                self.subscriptions(method, match, body)
        elif path.startswith("/sms/admin/v1/") and method == "GET":
            if not self.injected("admin"):
                self.admin(path.rsplit("/", 1)[-1], query)
        else:
            self.reply(
                404,
                gateway(
                    60,
                    "Resource not found",
                    "The requested URI or the requested resource does not exist.",
                ),
            )

    def subscriptions(self, method: str, match: re.Match[str], body: Any) -> None:
        fake = self.fake
        if match.re is SUB_GET_RE:
            sub = fake.subscriptions.get(match.group(1))
            if method != "GET" or sub is None:
                self.reply(404, gateway(60, "Resource not found", "No such subscription."))
                return
            self.reply(200, {"deliveryReceiptSubscription": sub["body"]})
            return
        sender, sub_id = unquote(match.group(1)), match.group(2)
        if method == "POST" and sub_id is None:
            ref = ((body or {}).get("deliveryReceiptSubscription") or {}).get("callbackReference")
            url = (ref or {}).get("notifyURL")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                self.reply(
                    400,
                    service_error(
                        "SVC0002", "Invalid input value for message part %1", "notifyURL"
                    ),
                )
                return
            new_id = uuid.uuid4().hex[:24]
            out = {
                "callbackReference": dict(ref or {}),
                "resourceURL": f"{fake.url}/smsmessaging/v1/outbound/subscriptions/{new_id}",
            }
            with fake.lock:
                fake.subscriptions[new_id] = {"sender": sender, "notifyURL": url, "body": out}
            self.reply(201, {"deliveryReceiptSubscription": out})
        elif method == "GET" and sub_id is None:
            subs = [s["body"] for s in fake.subscriptions.values() if s["sender"] == sender]
            self.reply(
                200, {"deliveryReceiptSubscriptionList": {"deliveryReceiptSubscription": subs}}
            )
        elif method == "DELETE" and sub_id is not None:
            with fake.lock:
                found = fake.subscriptions.pop(sub_id, None)
            if found is None:
                self.reply(404, gateway(60, "Resource not found", "No such subscription."))
            else:
                self.reply(204)
        else:
            self.reply(405, gateway(61, "Method not allowed", "Method not supported."))

    def admin(self, what: str, query: dict[str, list[str]]) -> None:
        fake = self.fake
        country = query.get("country", [None])[0]
        if what == "contracts":
            self.reply(200, fake.contracts_body(country))
        elif what == "statistics":
            self.reply(200, fake.statistics_body(country, query.get("appid", [None])[0]))
        elif what == "purchaseorders":
            rows = [p for p in fake.purchase_orders if country in (None, p["country"])]
            self.reply(200, rows)
        else:
            self.reply(404, gateway(60, "Resource not found", "Unknown admin resource."))

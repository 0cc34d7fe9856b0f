"""Every provider's callback format, over real HTTP on 127.0.0.1, through both stacks
(the ASGI app under uvicorn, the WSGI app under wsgiref): dummy, Orange (DR and MO),
Twilio (signed status and inbound), OVH (GET status callbacks), SNS (signed inbound
notifications and subscription confirmations).

Each provider's cases are skipped when its plugin is not installed; the requests are
made with the plugin's own testing helpers (signers, payload builders), so they are the
provider's wire format, not a copy of it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests

import smsbridge
from smsbridge.config import Config, WebhooksConfig
from smsbridge.message import IncomingMessage, StatusReport
from smsbridge.phone import Phone
from smsbridge.phones.dummy import DummyPhone
from smsbridge.status import Status

MAX_BODY = 64 * 1024


# ---------------------------------------------------------------------- live servers
class Switch:
    """An ASGI/WSGI app forwarding to the current test's bridge app."""

    def __init__(self) -> None:
        self.asgi: Any = None
        self.wsgi: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await self.asgi(scope, receive, send)

    def wsgi_app(self, environ: Any, start_response: Any) -> Any:
        return self.wsgi(environ, start_response)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(WSGIServer):
    daemon_threads = True


class LiveStack:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.switch = Switch()
        self._stop: Callable[[], None] = lambda: None
        self.base = ""

    def start(self) -> LiveStack:
        if self.kind == "uvicorn":
            import uvicorn

            sock = socket.create_server(("127.0.0.1", 0))
            config = uvicorn.Config(
                self.switch,
                log_level="warning",
                access_log=False,
                lifespan="on",
                proxy_headers=False,
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.01)
            self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"

            def stop() -> None:
                server.should_exit = True
                thread.join(10)
                sock.close()

            self._stop = stop
        else:
            httpd = make_server("127.0.0.1", 0, self.switch.wsgi_app, handler_class=_Quiet)
            thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self.base = f"http://127.0.0.1:{httpd.server_port}"

            def stop_wsgi() -> None:
                httpd.shutdown()
                httpd.server_close()

            self._stop = stop_wsgi
        return self

    def serve(self, bridge: smsbridge.Bridge) -> None:
        self.switch.asgi = bridge.webhook_app("asgi")
        self.switch.wsgi = bridge.webhook_app("wsgi")

    def stop(self) -> None:
        self._stop()


@pytest.fixture(scope="module", params=["uvicorn", "wsgiref"])
def live(request: pytest.FixtureRequest) -> Iterator[LiveStack]:
    if request.param == "uvicorn":
        pytest.importorskip("uvicorn")
    stack = LiveStack(str(request.param)).start()
    yield stack
    stack.stop()


# ---------------------------------------------------------------------- provider fakes
@pytest.fixture(scope="module")
def orange_fake() -> Iterator[Any]:
    testing = pytest.importorskip("smsbridge_orange.testing")
    with testing.FakeOrange() as fake:
        yield fake


@pytest.fixture(scope="module")
def twilio_fake() -> Iterator[Any]:
    testing = pytest.importorskip("smsbridge_twilio.testing")
    with testing.FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def ovh_fake() -> Iterator[Any]:
    testing = pytest.importorskip("smsbridge_ovh.testing")
    with testing.OvhFake() as fake:
        yield fake


@pytest.fixture(scope="module")
def sns_signer() -> Any:
    testing = pytest.importorskip("smsbridge_sns.testing")
    return testing.SnsSigner()


# ---------------------------------------------------------------------- the shared cases
class ProviderCases:
    """Shared cases; a subclass tells how its provider calls back over HTTP."""

    name: ClassVar[str] = "phone"
    status_webhook: ClassVar[bool] = True
    inbound_webhook: ClassVar[bool] = True
    delivered_raw: ClassVar[str] = "delivered"
    sent_raw: ClassVar[str] = "sent"
    sender: ClassVar[str] = "+2250701020304"

    # ---- hooks
    def make_phone(self, public_url: str) -> Phone:
        raise NotImplementedError

    def status(self, phone: Phone, provider_id: str, raw: str) -> requests.Response:
        """POST/GET the provider's status callback for ``provider_id`` over HTTP."""
        raise NotImplementedError

    def inbound(self, phone: Phone, sender: str, body: str, ref: str) -> requests.Response:
        """The provider's inbound callback; the same ``ref`` makes the same request."""
        raise NotImplementedError

    def unauthenticated(self, phone: Phone, kind: str) -> requests.Response:
        raise NotImplementedError

    def malformed(self, phone: Phone, kind: str) -> requests.Response:
        raise NotImplementedError

    # ---- plumbing
    @pytest.fixture
    def env(self, live: LiveStack) -> Iterator[tuple[smsbridge.Bridge, Phone, LiveStack]]:
        phone = self.make_phone(live.base)
        config = Config(
            phones={}, webhooks=WebhooksConfig(public_url=live.base, max_body_bytes=MAX_BODY)
        )
        bridge = smsbridge.Bridge({phone.name: phone}, config=config)
        live.serve(bridge)
        yield bridge, phone, live
        bridge.close()

    def url(self, phone: Phone, kind: str) -> str:
        url = phone.callback_url(kind)
        assert url is not None
        return url

    def kinds(self) -> list[str]:
        return [
            k
            for k, on in (("status", self.status_webhook), ("inbound", self.inbound_webhook))
            if on
        ]

    @staticmethod
    def collect(bridge: smsbridge.Bridge) -> tuple[list[StatusReport], list[IncomingMessage]]:
        reports: list[StatusReport] = []
        inbound: list[IncomingMessage] = []
        bridge.on_status(reports.append)
        bridge.on_receive(inbound.append)
        return reports, inbound

    # ---- cases
    def test_status_happy_path(self, env: Any) -> None:
        bridge, phone, _ = env
        reports, _ = self.collect(bridge)
        r = self.status(phone, "pid-happy", self.delivered_raw)
        assert r.status_code == 200, r.text
        assert [(x.provider_id, x.status) for x in reports] == [("pid-happy", Status.delivered)]
        assert reports[0].phone == phone.name
        assert reports[0].raw_status is not None

    def test_inbound_happy_path(self, env: Any) -> None:
        bridge, phone, _ = env
        _, inbound = self.collect(bridge)
        r = self.inbound(phone, self.sender, "Bonjour à vous", "in-happy")
        assert r.status_code == 200, r.text
        assert [(m.sender, m.body, m.phone) for m in inbound] == [
            (self.sender, "Bonjour à vous", phone.name)
        ]

    def test_bad_auth(self, env: Any) -> None:
        bridge, phone, _ = env
        reports, inbound = self.collect(bridge)
        for kind in self.kinds():
            r = self.unauthenticated(phone, kind)
            assert r.status_code in (401, 403), (kind, r.text)
        assert reports == [] and inbound == []

    def test_malformed(self, env: Any) -> None:
        bridge, phone, _ = env
        reports, inbound = self.collect(bridge)
        for kind in self.kinds():
            r = self.malformed(phone, kind)
            assert r.status_code == 400, (kind, r.text)
        assert reports == [] and inbound == []

    def test_unknown_phone(self, env: Any) -> None:
        _, phone, _ = env
        kind = self.kinds()[0]
        url = self.url(phone, kind).replace(f"/webhooks/{phone.name}/", "/webhooks/nobody/")
        assert requests.post(url, data=b"{}", timeout=10).status_code == 404
        assert requests.get(url, timeout=10).status_code == 404

    def test_oversize_body(self, env: Any) -> None:
        bridge, phone, _ = env
        reports, inbound = self.collect(bridge)
        for kind in self.kinds():
            r = requests.post(
                self.url(phone, kind),
                data=b"x" * (MAX_BODY + 1),
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            assert r.status_code == 413
        assert reports == [] and inbound == []

    def test_duplicate_delivery(self, env: Any) -> None:
        bridge, phone, _ = env
        reports, inbound = self.collect(bridge)
        for _ in range(3):
            if self.status_webhook:
                assert self.status(phone, "pid-dup", self.delivered_raw).status_code == 200
            if self.inbound_webhook:
                assert self.inbound(phone, self.sender, "dup", "in-dup").status_code == 200
        assert len(reports) == (1 if self.status_webhook else 0)
        assert len(inbound) == (1 if self.inbound_webhook else 0)

    def test_out_of_order_statuses(self, env: Any) -> None:
        bridge, phone, _ = env
        reports, _ = self.collect(bridge)
        assert self.status(phone, "pid-ooo", self.delivered_raw).status_code == 200
        assert self.status(phone, "pid-ooo", self.sent_raw).status_code == 200
        assert [r.status for r in reports] == [Status.delivered]

    def test_raising_callback_is_500_then_retried(self, env: Any) -> None:
        bridge, phone, _ = env
        calls: list[str] = []

        def flaky(item: Any) -> None:
            calls.append(type(item).__name__)
            if len(calls) == 1:
                raise RuntimeError("user code failed")

        if self.status_webhook:
            bridge.on_status(flaky)
            assert self.status(phone, "pid-500", self.delivered_raw).status_code == 500
            assert self.status(phone, "pid-500", self.delivered_raw).status_code == 200
            assert calls == ["StatusReport", "StatusReport"]
        else:
            bridge.on_receive(flaky)
            assert self.inbound(phone, self.sender, "x", "in-500").status_code == 500
            assert self.inbound(phone, self.sender, "x", "in-500").status_code == 200
            assert calls == ["IncomingMessage", "IncomingMessage"]


# ---------------------------------------------------------------------- dummy
class TestDummy(ProviderCases):
    name = "dummy"
    secret = "dummy-hook-secret"

    def make_phone(self, public_url: str) -> Phone:
        return DummyPhone(
            "dev", {"webhook_secret": self.secret, "delivery": "none"}, public_url=public_url
        )

    def _post(self, url: str, data: Any) -> requests.Response:
        return requests.post(url, json=data, timeout=10)

    def status(self, phone: Phone, provider_id: str, raw: str) -> requests.Response:
        return self._post(self.url(phone, "status"), {"provider_id": provider_id, "status": raw})

    def inbound(self, phone: Phone, sender: str, body: str, ref: str) -> requests.Response:
        return self._post(self.url(phone, "inbound"), {"from": sender, "body": body, "id": ref})

    def unauthenticated(self, phone: Phone, kind: str) -> requests.Response:
        url = self.url(phone, kind).split("?")[0] + "?token=guess"
        return self._post(url, {"provider_id": "p", "status": "sent", "from": self.sender})

    def malformed(self, phone: Phone, kind: str) -> requests.Response:
        return requests.post(self.url(phone, kind), data=b"<xml/>", timeout=10)


# ---------------------------------------------------------------------- Orange
class TestOrange(ProviderCases):
    name = "orange"
    delivered_raw = "DeliveredToTerminal"
    sent_raw = "DeliveredToNetwork"
    secret = "orange-hook-secret"

    @pytest.fixture(autouse=True)
    def _fake(self, orange_fake: Any) -> None:
        self.fake = orange_fake

    def make_phone(self, public_url: str) -> Phone:
        from smsbridge_orange import OrangePhone

        options = self.fake.phone_options(webhook_secret=self.secret)
        return OrangePhone("orange-ci", options, public_url=public_url)

    def status(self, phone: Phone, provider_id: str, raw: str) -> requests.Response:
        return self.fake.post_delivery_receipt(  # type: ignore[no-any-return]
            self.url(phone, "status"), provider_id, "tel:+2250701020304", raw
        )

    def inbound(self, phone: Phone, sender: str, body: str, ref: str) -> requests.Response:
        payload = self.fake.inbound_payload(sender, body, when="2024-05-01T10:00:00Z")
        payload["inboundSMSMessageNotification"]["inboundSMSMessage"]["messageId"] = ref
        return requests.post(self.url(phone, "inbound"), json=payload, timeout=10)

    def unauthenticated(self, phone: Phone, kind: str) -> requests.Response:
        url = self.url(phone, kind).split("?")[0]  # Orange cannot sign: the token is all
        payload = (
            self.fake.delivery_payload("p", "tel:+2250701020304", "DeliveredToTerminal")
            if kind == "status"
            else self.fake.inbound_payload(self.sender, "x")
        )
        return requests.post(url, json=payload, timeout=10)

    def malformed(self, phone: Phone, kind: str) -> requests.Response:
        wrong = {"deliveryInfoNotification": {"deliveryInfo": "nope"}}
        return requests.post(self.url(phone, kind), json=wrong, timeout=10)


# ---------------------------------------------------------------------- Twilio
class TestTwilio(ProviderCases):
    name = "twilio"
    sender = "+15005550006"

    @pytest.fixture(autouse=True)
    def _fake(self, twilio_fake: Any) -> None:
        self.fake = twilio_fake

    def make_phone(self, public_url: str) -> Phone:
        from smsbridge_twilio import TwilioPhone

        options = {**self.fake.phone_options(), "from": "+15005550006"}
        return TwilioPhone("twilio-world", options, public_url=public_url)

    def status_params(self, provider_id: str, raw: str) -> dict[str, str]:
        return {
            "AccountSid": self.fake.account_sid,
            "ApiVersion": "2010-04-01",
            "From": "+15005550006",
            "MessageSid": provider_id,
            "MessageStatus": raw,
            "SmsSid": provider_id,
            "SmsStatus": raw,
            "To": "+33612345678",
        }

    def status(self, phone: Phone, provider_id: str, raw: str) -> requests.Response:
        return self.fake.post(  # type: ignore[no-any-return]
            self.url(phone, "status"), self.status_params(provider_id, raw)
        )

    def inbound(self, phone: Phone, sender: str, body: str, ref: str) -> requests.Response:
        params = self.fake.inbound_params(sender, "+15005550006", body)
        params.update(MessageSid=ref, SmsSid=ref, SmsMessageSid=ref)
        return self.fake.post(self.url(phone, "inbound"), params)  # type: ignore[no-any-return]

    def unauthenticated(self, phone: Phone, kind: str) -> requests.Response:
        params = self.status_params("SMbad", "delivered")
        # signed for another URL: what a forger (or a wrong public_url) produces
        return self.fake.post(  # type: ignore[no-any-return]
            self.url(phone, kind), params, sign_url="https://evil.example.com/x"
        )

    def malformed(self, phone: Phone, kind: str) -> requests.Response:
        params = {"AccountSid": self.fake.account_sid, "NumMedia": "two"}
        return self.fake.post(self.url(phone, kind), params)  # type: ignore[no-any-return]

    def test_inbound_answer_is_empty_twiml(self, env: Any) -> None:
        _, phone, _ = env
        r = self.inbound(phone, self.sender, "hi", "SMtwiml")
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/xml")
        assert "<Response" in r.text

    def test_missing_signature(self, env: Any) -> None:
        _, phone, _ = env
        r = requests.post(
            self.url(phone, "status"), data=self.status_params("SMx", "sent"), timeout=10
        )
        assert r.status_code == 403

    def test_signature_behind_a_trusted_proxy(self, live: LiveStack) -> None:
        """No public_url: the URL Twilio signed is rebuilt from X-Forwarded-* headers."""
        from smsbridge_twilio import TwilioPhone

        phone = TwilioPhone("tw", {**self.fake.phone_options(), "from": "+15005550006"})
        for trust, expected in ((True, 200), (False, 403)):
            config = Config(phones={}, webhooks=WebhooksConfig(trust_proxy=trust))
            bridge = smsbridge.Bridge({"tw": phone}, config=config)
            live.serve(bridge)
            public = "https://sms.example.com/webhooks/tw/status?x=1"
            params = self.status_params("SMproxy", "sent")
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": self.fake.sign(public, params),
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "sms.example.com",
                "X-Forwarded-For": "54.172.60.1",
            }
            r = requests.post(
                live.base + "/webhooks/tw/status?x=1",
                data=urlencode(params),
                headers=headers,
                timeout=10,
            )
            assert r.status_code == expected, (trust, r.text)
            bridge.close()

    def test_send_then_signed_callbacks_round_trip(self, env: Any) -> None:
        bridge, phone, _ = env
        reports, _ = self.collect(bridge)
        result = bridge.send("+33612345678", "Bonjour", phone=phone.name)
        answers = self.fake.advance(
            result.provider_id, "sent", "delivered", url=self.url(phone, "status")
        )
        assert [a.status_code for a in answers] == [200, 200]
        assert [r.status for r in reports] == [Status.sent, Status.delivered]


# ---------------------------------------------------------------------- OVH
class TestOvh(ProviderCases):
    name = "ovh"
    inbound_webhook = False  # OVH inbound is polled
    test_inbound_happy_path = None  # type: ignore[assignment]
    delivered_raw = "dlr=1"
    sent_raw = "ptt=2"
    secret = "ovh-hook-secret"

    @pytest.fixture(autouse=True)
    def _fake(self, ovh_fake: Any) -> None:
        self.fake = ovh_fake

    def make_phone(self, public_url: str) -> Phone:
        from smsbridge_ovh import OvhPhone

        return OvhPhone(
            "ovh-fr", self.fake.phone_options(webhook_secret=self.secret), public_url=public_url
        )

    def status(self, phone: Phone, provider_id: str, raw: str) -> requests.Response:
        key, _, value = raw.partition("=")
        request = self.fake.status_callback(
            self.url(phone, "status"), provider_id, **{key: int(value)}
        )
        assert request.method == "GET"
        return requests.get(request.url, timeout=10)

    def unauthenticated(self, phone: Phone, kind: str) -> requests.Response:
        url = self.url(phone, kind).split("?")[0]
        return requests.get(url + "?" + urlencode({"id": "1", "dlr": "1"}), timeout=10)

    def malformed(self, phone: Phone, kind: str) -> requests.Response:
        return requests.get(self.url(phone, kind) + "&dlr=1", timeout=10)  # no id

    def test_status_by_post_form_too(self, env: Any) -> None:
        bridge, phone, _ = env
        reports, _ = self.collect(bridge)
        r = requests.post(self.url(phone, "status"), data={"id": "77", "dlr": "1"}, timeout=10)
        assert r.status_code == 200
        assert [(x.provider_id, x.status) for x in reports] == [("77", Status.delivered)]
        assert "token" not in json.dumps(reports[0].raw)


# ---------------------------------------------------------------------- SNS
class TestSns(ProviderCases):
    name = "sns"
    status_webhook = False  # SNS delivery status comes from CloudWatch Logs (polled)
    test_status_happy_path = None  # type: ignore[assignment]
    test_out_of_order_statuses = None  # type: ignore[assignment]
    sender = "+33612345678"

    @pytest.fixture(autouse=True)
    def _signer(self, sns_signer: Any) -> None:
        self.signer = sns_signer
        self.envelopes: dict[str, Any] = {}

    def make_phone(self, public_url: str) -> Phone:
        from smsbridge_sns import SnsPhone

        options = {
            "region": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "endpoint_url": "http://127.0.0.1:9",
        }
        return SnsPhone(
            "sns-promo", options, public_url=public_url, fetch_url=self.signer.fetch_url
        )

    def post_envelope(self, phone: Phone, envelope: dict[str, Any]) -> requests.Response:
        template = self.signer.request(envelope, url=self.url(phone, "inbound"))
        return requests.post(
            template.url, data=template.body, headers=dict(template.headers), timeout=10
        )

    def inbound(self, phone: Phone, sender: str, body: str, ref: str) -> requests.Response:
        if ref not in self.envelopes:  # SNS retries resend the very same envelope
            from smsbridge_sns.testing import two_way_sms

            sms = two_way_sms(sender, body)
            sms["inboundMessageId"] = ref
            self.envelopes[ref] = self.signer.notification(json.dumps(sms))
        return self.post_envelope(phone, self.envelopes[ref])

    def unauthenticated(self, phone: Phone, kind: str) -> requests.Response:
        from smsbridge_sns.testing import two_way_sms

        envelope = self.signer.notification(json.dumps(two_way_sms(self.sender, "hi")))
        envelope["Message"] = json.dumps(two_way_sms(self.sender, "forged"))
        return self.post_envelope(phone, envelope)

    def malformed(self, phone: Phone, kind: str) -> requests.Response:
        envelope = self.signer.notification("not the two-way SMS JSON")
        return self.post_envelope(phone, envelope)

    def test_subscription_confirmation(self, env: Any) -> None:
        bridge, phone, _ = env
        _, inbound = self.collect(bridge)
        envelope = self.signer.subscription_confirmation()
        assert self.post_envelope(phone, envelope).status_code == 200
        assert any("ConfirmSubscription" in u for u in self.signer.fetched)
        assert inbound == []


def test_live_stacks_report_health(live: LiveStack) -> None:
    bridge = smsbridge.Bridge({"dev": DummyPhone("dev")})
    live.serve(bridge)
    r = requests.get(live.base + "/healthz", timeout=10)
    assert r.json() == {"status": "ok", "phones": 1}
    assert urlsplit(live.base).hostname == "127.0.0.1"
    bridge.close()

"""Public test helpers for plugin authors.

:class:`PhoneContract` holds the test cases every phone must pass. A plugin's test module
subclasses it, tells it how to build a phone pointed at its local fake provider and how
to make the fake misbehave, and gets the shared cases for free::

    class TestOrangeContract(PhoneContract):
        recipient = "+2250701020304"
        error_cases = {"no_units": InsufficientCredit, "outage": ProviderUnavailable}
        status_cases = [("DeliveredToTerminal", Status.delivered)]

        def make_phone(self, **options): ...
        def arrange_error(self, case): ...
        def status_request(self, phone, provider_id, raw_status): ...

The base class never talks to a network by itself: everything goes through the hooks.

:class:`WebhookCases` holds the webhook cases every phone with callbacks must pass, over
real HTTP (uvicorn and wsgiref): a plugin's ``TestXxxWebhooks(WebhookCases)`` says how its
provider calls back. This module sits at the top of the layers (it builds bridges); no
module of smsbridge imports it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests

from .bridge import Bridge
from .config import Config, WebhooksConfig
from .errors import InvalidSender, SendError, UnsupportedFeature, WebhookAuthError
from .http import WebhookRequest
from .message import Balance, IncomingMessage, OutgoingMessage, SendResult, StatusReport
from .phone import Phone
from .status import Status

__all__ = [
    "WEBHOOK_MAX_BODY",
    "FakeServer",
    "LiveStack",
    "PhoneContract",
    "WebhookCases",
    "free_port",
]

#: The body size limit the shared webhook cases configure (to test 413 answers).
WEBHOOK_MAX_BODY = 64 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # the client hung up (timeouts in tests): not a fake-server bug
        super().handle_error(request, client_address)


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 for fake providers.

    ``handler`` is a :class:`BaseHTTPRequestHandler` subclass; the server object is
    reachable from it as ``self.server`` and carries ``state`` (a dict) for the fake's data.
    Use as a context manager; ``url`` is the base URL.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler], state: Any = None) -> None:
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.httpd.state = state if state is not None else {}  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def state(self) -> Any:
        return self.httpd.state  # type: ignore[attr-defined]

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PhoneContract:
    """Shared cases for every phone plugin. Subclass and fill in the hooks.

    Attributes to set:

    - ``recipient``: a valid E.164 number the fake accepts.
    - ``error_cases``: case name → the exact :class:`SendError` class (a plain
      ``SendError`` means exactly that, not a subclass) a send must raise after
      :meth:`arrange_error` prepared that case (retries are disabled for these).
    - ``status_cases``: (raw provider status, expected :class:`Status`) pairs.
    """

    recipient: ClassVar[str] = "+33612345678"
    error_cases: ClassVar[Mapping[str, type[SendError]]] = {}
    status_cases: ClassVar[list[tuple[str, Status]]] = []

    # ---------------------------------------------------------------- hooks
    def make_phone(self, **options: Any) -> Phone:
        """A phone pointed at the local fake (options override the defaults)."""
        raise NotImplementedError

    def arrange_error(self, phone: Phone, case: str) -> None:
        """Make the next send through ``phone`` fail as ``case`` describes."""
        raise NotImplementedError

    def assert_provider_received(self, phone: Phone, result: SendResult, body: str) -> None:
        """Assert the fake provider really got the message (its recipient and ``body``),
        from what the fake recorded. Required: a contract that only trusts the phone's
        own answer cannot catch a phone that sends nothing."""
        raise NotImplementedError(f"{type(self).__name__} must implement assert_provider_received")

    def status_request(self, phone: Phone, provider_id: str, raw_status: str) -> WebhookRequest:
        """A status callback request as the provider would send it (webhook phones)."""
        raise NotImplementedError

    def arrange_status(self, phone: Phone, provider_id: str, raw_status: str) -> None:
        """Make the fake report ``raw_status`` for ``provider_id`` (polling phones)."""
        raise NotImplementedError

    def inbound_request(self, phone: Phone, sender: str, body: str) -> WebhookRequest:
        """An inbound SMS request as the provider would send it (webhook phones)."""
        raise NotImplementedError

    def unauthenticated_request(self, phone: Phone, kind: str) -> WebhookRequest:
        """A webhook request with a bad or missing secret/signature."""
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers
    def message(self, body: str = "Hello from smsbridge", **fields: Any) -> OutgoingMessage:
        return OutgoingMessage(to=self.recipient, body=body, **fields)

    @contextmanager
    def phone_ctx(self, **options: Any) -> Iterator[Phone]:
        phone = self.make_phone(**options)
        try:
            yield phone
        finally:
            phone.close()

    # ---------------------------------------------------------------- cases
    def test_send_happy_path(self) -> None:
        with self.phone_ctx() as phone:
            result = phone.send(self.message("Hello from smsbridge"))
            assert result.status in (Status.queued, Status.sent, Status.delivered)
            assert result.provider_id
            assert result.phone == phone.name
            assert result.to == self.recipient
            assert result.segments == 1 and result.encoding == "gsm7"
            self.assert_provider_received(phone, result, "Hello from smsbridge")

    def test_send_unicode(self) -> None:
        if not type(self.make_phone()).capabilities.unicode:
            pytest.skip("phone has no unicode capability")
        body = "Bientôt chez vous ✓ — œuvre"
        with self.phone_ctx() as phone:
            result = phone.send(self.message(body))
            assert result.encoding == "ucs2"
            self.assert_provider_received(phone, result, body)

    def test_error_mapping(self) -> None:
        if not self.error_cases:
            pytest.fail("a phone contract must declare error_cases")
        for case, expected in self.error_cases.items():
            with self.phone_ctx(retries=0) as phone:
                self.arrange_error(phone, case)
                with pytest.raises(SendError) as info:
                    phone.send(self.message(f"error case {case}"))
                got = type(info.value)
                assert got is expected, f"{case}: raised {got.__name__}, want {expected.__name__}"
                assert info.value.phone == phone.name, case
                for secret in phone.secrets():
                    assert secret not in str(info.value), f"{case}: secret leaked in error"

    def test_status_mapping(self) -> None:
        phone = self.make_phone()
        caps = phone.caps
        if not caps.status:
            with pytest.raises(UnsupportedFeature):
                phone.fetch_status("x")
            with pytest.raises(UnsupportedFeature):
                phone.parse_status_callback(WebhookRequest("POST", "http://localhost/"))
            return
        assert self.status_cases, "a phone with status reports must declare status_cases"
        for raw, expected in self.status_cases:
            provider_id = f"pid-{abs(hash(raw)) % 10**8}"
            if caps.status_mode == "webhook":
                request = self.status_request(phone, provider_id, raw)
                phone.verify_webhook(request)
                reports = phone.parse_status_callback(request)
                assert len(reports) >= 1, raw
                report = reports[0]
            else:
                self.arrange_status(phone, provider_id, raw)
                report = phone.fetch_status(provider_id)
            assert report.status is expected, f"{raw!r} -> {report.status}, want {expected}"
            assert report.raw_status is not None
            assert report.phone == phone.name
        phone.close()

    def test_inbound(self) -> None:
        phone = self.make_phone()
        caps = phone.caps
        if not caps.receive:
            with pytest.raises(UnsupportedFeature):
                phone.parse_inbound(WebhookRequest("POST", "http://localhost/"))
            with pytest.raises(UnsupportedFeature):
                phone.fetch_incoming()
            return
        if caps.receive_mode != "webhook":
            pytest.skip("polling inbound: covered by the plugin's own tests")
        request = self.inbound_request(phone, self.recipient, "STOP merci")
        phone.verify_webhook(request)
        messages = phone.parse_inbound(request)
        assert len(messages) == 1
        assert messages[0].sender == self.recipient
        assert messages[0].body == "STOP merci"
        assert messages[0].phone == phone.name
        phone.close()

    def test_webhook_auth(self) -> None:
        phone = self.make_phone()
        caps = phone.caps
        kinds = [
            k
            for k, on in (
                ("status", caps.status_mode == "webhook"),
                ("inbound", caps.receive_mode == "webhook"),
            )
            if on
        ]
        if not kinds:
            pytest.skip("phone has no webhooks")
        for kind in kinds:
            with pytest.raises(WebhookAuthError):
                phone.verify_webhook(self.unauthenticated_request(phone, kind))
        phone.close()

    def test_capabilities_honesty(self) -> None:
        phone = self.make_phone()
        caps = phone.caps
        if not caps.mms_send:
            with pytest.raises(UnsupportedFeature):
                phone.send(self.message(media=("https://example.com/a.png",)))
        if not caps.flash:
            with pytest.raises(UnsupportedFeature):
                phone.send(self.message(flash=True))
        if not caps.sender_name:
            with pytest.raises(InvalidSender):
                phone.send(self.message(sender="MyBrand"))
        if not caps.balance:
            with pytest.raises(UnsupportedFeature):
                phone.balance()
        else:
            assert isinstance(phone.balance(), Balance)
        phone.close()

    def test_repr_hides_secrets(self) -> None:
        phone = self.make_phone()
        text = repr(phone) + repr(phone.options) + str(phone.options)
        for secret in phone.secrets():
            assert secret not in text
        phone.close()


def run_in_thread(fn: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


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
    """An HTTP server on 127.0.0.1 (``uvicorn`` or ``wsgiref``) serving a bridge's webhook
    app; :meth:`serve` switches it to another bridge."""

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

    def serve(self, bridge: Bridge) -> None:
        self.switch.asgi = bridge.webhook_app("asgi")
        self.switch.wsgi = bridge.webhook_app("wsgi")

    def stop(self) -> None:
        self._stop()


# ---------------------------------------------------------------------- the shared cases
class WebhookCases:
    """Shared webhook cases for every phone plugin, over real HTTP on 127.0.0.1 through
    both stacks (the ASGI app under uvicorn, the WSGI app under wsgiref): happy paths,
    bad auth, malformed bodies, unknown phone, oversize bodies, duplicates, out-of-order
    statuses, a raising callback. A subclass (``TestXxxWebhooks(WebhookCases)`` in the
    plugin's tests) tells how its provider calls back, with the plugin's own signers and
    payload builders, so the requests are the provider's wire format.
    """

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
    @pytest.fixture(scope="class", params=["uvicorn", "wsgiref"])
    @classmethod
    def live(cls, request: pytest.FixtureRequest) -> Iterator[LiveStack]:
        """A running HTTP stack serving the current test's bridge."""
        if request.param == "uvicorn":
            pytest.importorskip("uvicorn")
        stack = LiveStack(str(request.param)).start()
        yield stack
        stack.stop()

    @pytest.fixture
    def env(self, live: LiveStack) -> Iterator[tuple[Bridge, Phone, LiveStack]]:
        phone = self.make_phone(live.base)
        config = Config(
            phones={},
            webhooks=WebhooksConfig(public_url=live.base, max_body_bytes=WEBHOOK_MAX_BODY),
        )
        bridge = Bridge({phone.name: phone}, config=config)
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
    def collect(bridge: Bridge) -> tuple[list[StatusReport], list[IncomingMessage]]:
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
                data=b"x" * (WEBHOOK_MAX_BODY + 1),
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

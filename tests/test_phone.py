"""The Phone base class: validation, rate limiting, retries, HTTP error mapping, webhooks auth."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from smsbridge import (
    AmbiguousSend,
    Capabilities,
    HttpPhone,
    InvalidRecipient,
    InvalidSender,
    MessageError,
    MessageTooLong,
    OutgoingMessage,
    Phone,
    PhoneOptions,
    PreparedMessage,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SendError,
    Status,
    Submission,
    UnsupportedFeature,
    WebhookAuthError,
    WebhookRequest,
)
from smsbridge.phone import TokenBucketLimiter, redact
from smsbridge.testing import FakeServer, free_port


class ScriptedPhone(Phone):
    """Raises the scripted errors in order, then succeeds."""

    plugin: ClassVar[str] = "scripted"
    capabilities: ClassVar[Capabilities] = Capabilities(
        sender_name=False,
        mms_send=False,
        flash=False,
        unicode=True,
        max_segments=2,
        countries=frozenset({"FR", "CI"}),
    )

    def __init__(self, *a: Any, script: list[BaseException] | None = None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.script = list(script or [])
        self.calls: list[PreparedMessage] = []

    def submit(self, message: PreparedMessage) -> Submission:
        self.calls.append(message)
        if self.script:
            raise self.script.pop(0)
        return Submission(provider_id=f"p{len(self.calls)}", raw={"ok": True})


class RecordingLimiter:
    def __init__(self) -> None:
        self.weights: list[int] = []

    def acquire(self, weight: int = 1) -> None:
        self.weights.append(weight)


def msg(body: str = "hello", to: str = "+33612345678", **kw: Any) -> OutgoingMessage:
    return OutgoingMessage(to=to, body=body, **kw)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("message", "error", "words"),
    [
        (msg(to=""), InvalidRecipient, "empty"),
        (msg(to="+33 1"), InvalidRecipient, "+33 1"),
        (msg(to="+442071838750"), InvalidRecipient, "does not serve GB"),
        (msg(body=""), MessageError, "empty"),
        (msg(body="   "), MessageError, "empty"),
        (msg(media=("https://e.com/a.png",)), UnsupportedFeature, "media"),
        (msg(flash=True), UnsupportedFeature, "flash"),
        (msg(sender="MyBrand"), InvalidSender, "sender name"),
        (msg(sender="+999"), InvalidSender, "not a valid number"),
        (msg(body="x" * 307), MessageTooLong, "3 gsm7 segments"),
        (msg(body="é" * 200 + "ê"), MessageTooLong, "ucs2"),
    ],
)
def test_invalid_messages_fail_before_any_provider_call(
    message: OutgoingMessage, error: type[Exception], words: str
) -> None:
    phone = ScriptedPhone("p")
    with pytest.raises(error) as info:
        phone.send(message)
    assert words in str(info.value)
    assert phone.calls == []


def test_sender_number_and_name_rules() -> None:
    class Named(ScriptedPhone):
        capabilities = ScriptedPhone.capabilities.replace(sender_name=True)

    phone = Named("p")
    phone.send(msg(sender="Mon Service"))
    phone.send(msg(sender="+33612345678"))
    for bad in ("MonServiceSMS", "Mon-Service", "É"):
        with pytest.raises(InvalidSender):
            phone.send(msg(sender=bad))


def test_national_number_needs_region() -> None:
    with pytest.raises(InvalidRecipient, match="default_region"):
        ScriptedPhone("p").send(msg(to="0612345678"))
    result = ScriptedPhone("p", default_region="FR").send(msg(to="06 12 34 56 78"))
    assert result.to == "+33612345678"


def test_options_narrow_capabilities() -> None:
    phone = ScriptedPhone("p", {"countries": ["CIV"], "max_segments": 1, "rate_limit": 3})
    assert phone.caps.countries == frozenset({"CI"})
    assert phone.caps.max_segments == 1
    assert phone.caps.default_rate_limit == 3
    with pytest.raises(InvalidRecipient):
        phone.send(msg())  # France is no longer served
    with pytest.raises(MessageTooLong):
        phone.send(msg(to="+2250701020304", body="x" * 161))


def test_result_fields() -> None:
    result = ScriptedPhone("p").send(msg("Bonjour ê"), message_id="abc")
    assert (result.message_id, result.phone, result.provider_id) == ("abc", "p", "p1")
    assert result.status is Status.queued and result.encoding == "ucs2" and result.segments == 1
    assert result.to_dict()["status"] == "queued"


# ------------------------------------------------------------------ rate limiting and retries
def test_limiter_is_charged_in_segments_for_every_attempt() -> None:
    limiter = RecordingLimiter()
    phone = ScriptedPhone(
        "p",
        {"retries": 2},
        limiter=limiter,
        sleep=lambda s: None,
        script=[ProviderUnavailable("down")],
    )
    phone.send(msg("x" * 200))  # 2 segments
    assert limiter.weights == [2, 2]


def test_retries_only_retryable_errors_with_backoff() -> None:
    sleeps: list[float] = []
    phone = ScriptedPhone(
        "p",
        {"retries": 3, "max_backoff": 8},
        sleep=sleeps.append,
        script=[ProviderUnavailable("a"), ProviderUnavailable("b")],
    )
    result = phone.send(msg())
    assert result.provider_id == "p3"
    assert len(sleeps) == 2 and all(0 < s <= 8 for s in sleeps)

    phone = ScriptedPhone("p", {"retries": 3}, sleep=sleeps.append, script=[Rejected("no")])
    with pytest.raises(Rejected):
        phone.send(msg())
    assert len(phone.calls) == 1


def test_retries_are_bounded_and_last_error_raised() -> None:
    phone = ScriptedPhone(
        "p",
        {"retries": 1},
        sleep=lambda s: None,
        script=[ProviderUnavailable("one"), ProviderUnavailable("two"), ProviderUnavailable("3")],
    )
    with pytest.raises(ProviderUnavailable, match="two") as info:
        phone.send(msg())
    assert info.value.phone == "p"
    assert len(phone.calls) == 2


def test_retry_after_is_honoured() -> None:
    sleeps: list[float] = []
    phone = ScriptedPhone(
        "p",
        {"retries": 1, "max_backoff": 30},
        sleep=sleeps.append,
        script=[RateLimited("slow down", retry_after=7)],
    )
    phone.send(msg())
    assert sleeps and sleeps[0] >= 7


def test_token_bucket_limiter_spaces_units_evenly() -> None:
    limiter = TokenBucketLimiter(20)  # one unit every 50 ms
    start = time.monotonic()
    for _ in range(5):
        limiter.acquire(1)
    limiter.acquire(3)  # a 3-segment message costs 3 units
    # 8 units at 20/s: the last one leaves 7 emission intervals (350 ms) after the first
    assert time.monotonic() - start >= 0.33
    assert TokenBucketLimiter(2.5).rate == 2.5


def test_token_bucket_is_thread_safe() -> None:
    limiter = TokenBucketLimiter(1000)
    threads = [
        threading.Thread(target=lambda: [limiter.acquire(1) for _ in range(100)]) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)


# ------------------------------------------------------------------ HTTP helper
class SlowHandler(BaseHTTPRequestHandler):
    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        mode = self.server.state["mode"]  # type: ignore[attr-defined]
        if mode == "slow":
            time.sleep(1.0)
        if mode == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class HttpTestOptions(PhoneOptions):
    api_key: SecretStr


class PlainHttpPhone(HttpPhone):
    plugin = "plainhttp"
    Options = HttpTestOptions
    base = ""
    method = "POST"

    def submit(self, message: PreparedMessage) -> Submission:
        response = self.request(self.method, self.base + "/send", data=message.body)
        return Submission(provider_id=response.text)


def test_http_phone_maps_network_failures() -> None:
    with FakeServer(SlowHandler, {"mode": "ok"}) as server:
        phone = PlainHttpPhone("h", {"api_key": "k-123456", "timeout": 0.3, "retries": 0})
        phone.base = server.url
        assert phone.send(msg()).provider_id == "ok"

        server.state["mode"] = "slow"
        with pytest.raises(AmbiguousSend, match="may or may not"):
            phone.send(msg())
        phone.method = "GET"
        with pytest.raises(ProviderUnavailable):
            phone.send(msg())
        phone.method = "POST"
        server.state["mode"] = "drop"
        with pytest.raises((AmbiguousSend, ProviderUnavailable)):
            phone.send(msg())
    phone.base = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProviderUnavailable, match="cannot reach"):
        phone.send(msg())
    phone.close()


def test_secrets_are_redacted_from_errors_and_reprs() -> None:
    class Leaky(PlainHttpPhone):
        def submit(self, message: PreparedMessage) -> Submission:
            raise SendError("provider echoed key=k-secret-987 back")

    phone = Leaky("h", {"api_key": "k-secret-987", "retries": 0})
    with pytest.raises(SendError) as info:
        phone.send(msg())
    assert "k-secret-987" not in str(info.value)
    assert "***" in str(info.value)
    assert "k-secret-987" not in repr(phone.options) + str(phone.options) + repr(phone)
    assert redact("a tok-1234 b", ["tok-1234", None, ""]) == "a *** b"


# ------------------------------------------------------------------ webhooks
def test_callback_url_and_token_check() -> None:
    phone = ScriptedPhone(
        "my phone", {"webhook_secret": "s3cr3t/+&"}, public_url="https://sms.example.com/"
    )
    url = phone.callback_url("status")
    assert url == "https://sms.example.com/webhooks/my%20phone/status?token=s3cr3t%2F%2B%26"
    phone.verify_webhook(WebhookRequest("POST", url))
    for bad in (
        "https://sms.example.com/webhooks/x/status",
        "https://sms.example.com/webhooks/x/status?token=s3cr3t",
    ):
        with pytest.raises(WebhookAuthError):
            phone.verify_webhook(WebhookRequest("POST", bad))
    assert phone.webhook_protected
    assert ScriptedPhone("p").callback_url("status") is None


def test_allow_ips() -> None:
    phone = ScriptedPhone("p", {"allow_ips": ["10.0.0.0/8", "192.0.2.7"]})
    phone.verify_webhook(WebhookRequest("POST", "http://x/", remote_addr="10.1.2.3"))
    phone.verify_webhook(WebhookRequest("POST", "http://x/", remote_addr="192.0.2.7"))
    for addr in ("192.0.2.8", None, "garbage"):
        with pytest.raises(WebhookAuthError):
            phone.verify_webhook(WebhookRequest("POST", "http://x/", remote_addr=addr))
    with pytest.raises(ValueError, match="not an IP"):
        ScriptedPhone("p", {"allow_ips": ["nope"]})


def test_unsupported_methods_say_so() -> None:
    phone = ScriptedPhone("p")
    for call in (
        lambda: phone.fetch_status("x"),
        phone.fetch_incoming,
        phone.balance,
        lambda: phone.parse_inbound(WebhookRequest("POST", "http://x/")),
        lambda: phone.parse_status_callback(WebhookRequest("POST", "http://x/")),
    ):
        with pytest.raises(UnsupportedFeature, match="'p'"):
            call()

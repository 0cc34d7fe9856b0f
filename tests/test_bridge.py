"""Bridge: the send lifecycle across phones, failover rules, send_many, callbacks."""

from __future__ import annotations

from typing import Any

import pytest

import smsbridge
from smsbridge import (
    AmbiguousSend,
    ConfigError,
    IncomingMessage,
    InsufficientCredit,
    InvalidRecipient,
    MessageError,
    OutgoingMessage,
    ProviderUnavailable,
    Rejected,
    RoutingError,
    SendError,
    Status,
    StatusReport,
    UnsupportedFeature,
)
from smsbridge.phones.dummy import DummyPhone

TWO_PHONES = """
default_region: CI
phones:
  first: {{plugin: dummy, retries: 0, delivery: none{first}}}
  second: {{plugin: dummy, retries: 0, delivery: none}}
routes:
  - phones: [first, second]{route}
"""


def two(bridge_factory: Any, first: str = "", route: str = "") -> smsbridge.Bridge:
    return bridge_factory(TWO_PHONES.format(first=first, route=route))


def sent(bridge: smsbridge.Bridge, name: str) -> list[dict[str, Any]]:
    phone = bridge.phones[name]
    assert isinstance(phone, DummyPhone)
    return phone.sent


@pytest.mark.parametrize(
    "error", ["InsufficientCredit", "AuthError", "ProviderUnavailable", "RateLimited"]
)
def test_fails_over_on_errors_about_the_phone(bridge_factory: Any, error: str) -> None:
    bridge = two(bridge_factory, f", fail_all: true, error: {error}")
    result = bridge.send("0701020304", "hi")
    assert result.phone == "second" and result.status is Status.queued
    assert [a.phone for a in result.attempts] == ["first", "second"]
    assert result.attempts[0].error_type == error and result.attempts[1].error is None
    assert len(sent(bridge, "second")) == 1


@pytest.mark.parametrize("error", ["Rejected", "AmbiguousSend", "SendError"])
def test_no_failover_on_errors_about_the_message(bridge_factory: Any, error: str) -> None:
    bridge = two(bridge_factory, f", fail_all: true, error: {error}")
    with pytest.raises(SendError) as info:
        bridge.send("+2250701020304", "hi")
    assert type(info.value).__name__ == error
    result = info.value.result  # type: ignore[attr-defined]
    assert [a.phone for a in result.attempts] == ["first"]
    assert result.status is (Status.unknown if error == "AmbiguousSend" else Status.failed)
    assert sent(bridge, "second") == []


def test_resend_ambiguous_when_the_route_says_so(bridge_factory: Any) -> None:
    bridge = two(
        bridge_factory, ", fail_all: true, error: AmbiguousSend", "\n    resend_ambiguous: true"
    )
    assert bridge.send("+2250701020304", "hi").phone == "second"


def test_all_phones_failing_raises_the_last_error_with_every_attempt(bridge_factory: Any) -> None:
    bridge = bridge_factory("""
phones:
  a: {plugin: dummy, retries: 0, fail_all: true, error: ProviderUnavailable}
  b: {plugin: dummy, retries: 0, fail_all: true, error: InsufficientCredit}
""")
    with pytest.raises(InsufficientCredit) as info:
        bridge.send("+33612345678", "hi")
    result = info.value.result  # type: ignore[attr-defined]
    assert [(a.phone, a.error_type) for a in result.attempts] == [
        ("a", "ProviderUnavailable"),
        ("b", "InsufficientCredit"),
    ]
    assert result.status is Status.failed and result.error is info.value
    assert not result.ok


def test_explicit_phone_bypasses_routing(bridge_factory: Any) -> None:
    bridge = two(bridge_factory, ", fail_all: true")
    with pytest.raises(ProviderUnavailable):
        bridge.send("+2250701020304", "hi", phone="first")
    assert sent(bridge, "second") == []
    assert bridge.send("+2250701020304", "hi", phone="second").phone == "second"
    with pytest.raises(RoutingError, match="unknown phone 'nope'"):
        bridge.send("+2250701020304", "hi", phone="nope")


def test_bad_input_raises_before_any_send(bridge_factory: Any) -> None:
    bridge = two(bridge_factory)
    with pytest.raises(InvalidRecipient, match="'12'"):
        bridge.send("12", "hi")
    with pytest.raises(InvalidRecipient, match="empty"):
        bridge.send("", "hi")
    with pytest.raises(MessageError, match="empty"):
        bridge.send("+33612345678", "")
    assert sent(bridge, "first") == [] and sent(bridge, "second") == []


def test_capabilities_skip_phones_and_unsupported_features_raise(bridge_factory: Any) -> None:
    bridge = bridge_factory("""
phones:
  small: {plugin: dummy, max_segments: 1, delivery: none}
  big: {plugin: dummy, delivery: none}
""")
    assert bridge.route("+33612345678", "x" * 200) == ["big"]
    assert bridge.send("+33612345678", "x" * 200).phone == "big"
    with pytest.raises(smsbridge.MessageTooLong):
        bridge.send("+33612345678", "x" * 200, phone="small")
    with pytest.raises(RoutingError, match=r"small: .*big: "):
        bridge.send("+33612345678", "x" * 2000)


def test_send_many_mixes_good_and_bad_and_keeps_order(bridge_factory: Any) -> None:
    bridge = bridge_factory("""
default_region: FR
phones:
  fr: {plugin: dummy, countries: [FR], delivery: none, retries: 0, fail_for: ["+33612345670"]}
  ci: {plugin: dummy, countries: [CI], delivery: none}
""")
    messages: list[Any] = [
        {"to": "06 12 34 56 78", "body": "one"},
        {"to": "not a number", "body": "two"},
        OutgoingMessage(to="+2250701020304", body="three"),
        {"to": "+33612345670", "body": "four"},  # the provider fails this one
        {"to": "+33612345679", "body": ""},
        {"to": "+33612345679", "body": "six", "bogus": 1},
        {"to": "+447700900123", "body": "no phone serves GB"},
    ] + [{"to": f"+3361234{i:04d}", "body": f"bulk {i}"} for i in range(20)]
    results = bridge.send_many(messages)
    assert len(results) == len(messages)
    assert results[0].ok and results[0].phone == "fr"
    assert isinstance(results[1].error, InvalidRecipient)
    assert results[2].ok and results[2].phone == "ci"
    assert isinstance(results[3].error, ProviderUnavailable)
    assert results[3].attempts[0].phone == "fr"
    assert isinstance(results[4].error, MessageError)
    assert isinstance(results[5].error, TypeError)
    assert isinstance(results[6].error, (RoutingError, InvalidRecipient))
    assert all(r.ok for r in results[7:])
    bodies = sorted(m["body"] for m in sent(bridge, "fr"))
    assert bodies == sorted(["one"] + [f"bulk {i}" for i in range(20)])


def test_send_many_runs_phones_concurrently(bridge_factory: Any) -> None:
    bridge = bridge_factory(
        """
phones:
  slow: {plugin: dummy, countries: [FR], latency: 0.2, delivery: none}
  fast: {plugin: dummy, countries: [CI], delivery: none}
""",
        lane_workers=2,
    )
    finished: list[str] = []
    original = DummyPhone.submit

    def spy(self: DummyPhone, message: Any) -> Any:
        out = original(self, message)
        finished.append(self.name)
        return out

    DummyPhone.submit = spy  # type: ignore[method-assign]
    try:
        results = bridge.send_many(
            [{"to": "+33612345678", "body": "s"}] * 4 + [{"to": "+2250701020304", "body": "f"}] * 4
        )
    finally:
        DummyPhone.submit = original  # type: ignore[method-assign]
    assert all(r.ok for r in results)
    # The fast phone's lane never waits behind the slow phone's 0.2 s sends.
    assert finished[:4] == ["fast"] * 4
    assert sorted(finished) == ["fast"] * 4 + ["slow"] * 4


def test_status_and_inbound_callbacks_through_the_webhook_path(bridge_factory: Any) -> None:
    bridge = bridge_factory("""
webhooks: {public_url: "https://sms.example.com"}
phones:
  dev: {plugin: dummy, delivery: delivered, delivery_delay: 0, webhook_secret: t0ken-1}
""")
    reports: list[StatusReport] = []
    inbound: list[IncomingMessage] = []
    bridge.on_status(reports.append)
    bridge.on_receive(inbound.append)
    result = bridge.send("+33612345678", "hi")
    phone = bridge.phones["dev"]
    assert isinstance(phone, DummyPhone)
    phone.wait_reports()
    assert [(r.provider_id, r.status) for r in reports] == [(result.provider_id, Status.delivered)]
    response = phone.simulate_inbound("+33612345679", "STOP")
    assert response.status == 200
    assert inbound[0].sender == "+33612345679" and inbound[0].body == "STOP"
    assert bridge.callback_urls()["dev"]["status"] == (
        "https://sms.example.com/webhooks/dev/status?token=t0ken-1"
    )


def test_poll_dispatches_from_polling_phones(bridge_factory: Any) -> None:
    class PollingPhone(DummyPhone):
        plugin = "polling"
        capabilities = DummyPhone.capabilities.replace(receive_mode="poll")

        def fetch_incoming(self, handle: Any = None) -> list[IncomingMessage]:
            msgs = [
                IncomingMessage(
                    phone=self.name,
                    sender="+33612345678",
                    recipient=None,
                    body="hello",
                    provider_id="in-1",
                )
            ]
            for m in msgs:
                if handle:
                    handle(m)
            return msgs

    received: list[IncomingMessage] = []
    bridge = smsbridge.Bridge({"p": PollingPhone("p"), "d": DummyPhone("d")})
    bridge.on_receive(received.append)
    assert bridge.poll() == {"p": 1}
    assert bridge.poll() == {"p": 1}
    assert [m.provider_id for m in received] == ["in-1"]  # the duplicate was not re-dispatched
    bridge.close()


def test_balance_check_and_capabilities(bridge_factory: Any) -> None:
    bridge = bridge_factory("""
phones:
  dev: {plugin: dummy, units: 10}
""")
    assert bridge.balance("dev").units == 10
    assert bridge.check() == {"dev": None}
    assert bridge.capabilities()["dev"].mms_send is True
    with pytest.raises(RoutingError):
        bridge.balance("nope")


def test_bridge_needs_phones_and_load_uses_env(config_file: Any, monkeypatch: Any) -> None:
    with pytest.raises(ConfigError):
        smsbridge.Bridge({})
    path = config_file("phones:\n  dev: {plugin: dummy}\n")
    monkeypatch.setenv("SMSBRIDGE_CONFIG", str(path))
    with smsbridge.load() as bridge:
        assert list(bridge.phones) == ["dev"]
        assert "dev" in repr(bridge)


def test_webhook_app_kind_is_checked(bridge_factory: Any) -> None:
    bridge = bridge_factory("phones:\n  dev: {plugin: dummy}\n")
    with pytest.raises(ValueError, match="asgi"):
        bridge.webhook_app("cgi")


def test_unsupported_feature_is_a_message_error() -> None:
    assert issubclass(UnsupportedFeature, MessageError)
    assert issubclass(Rejected, SendError) and issubclass(AmbiguousSend, SendError)

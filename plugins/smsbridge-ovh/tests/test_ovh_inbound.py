"""Inbound replies polled from /sms/{service}/incoming: read, hand over, then delete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

import pytest
from smsbridge_ovh import OvhPhone
from smsbridge_ovh.testing import OvhFake

from smsbridge.bridge import Bridge
from smsbridge.errors import AuthError, ProviderUnavailable
from smsbridge.message import IncomingMessage
from smsbridge.webhooks.dispatcher import CallbackError

MakePhone = Callable[..., OvhPhone]


def test_replies_are_handed_over_then_deleted(fake: OvhFake, make_phone: MakePhone) -> None:
    first = fake.add_incoming("+33612345678", "OUI", tag="campagne")
    second = fake.add_incoming("0033698765432", "Non merci")
    got: list[IncomingMessage] = []

    def handle(msg: IncomingMessage) -> None:
        assert int(msg.provider_id or 0) in fake.incoming  # still at OVH while handled
        got.append(msg)

    returned = make_phone().fetch_incoming(handle)
    assert returned == got
    assert [m.provider_id for m in got] == [str(first), str(second)]
    assert [m.sender for m in got] == ["+33612345678", "+33698765432"]
    assert got[0].body == "OUI" and got[0].phone == "ovh-test"
    assert got[0].received_at.tzinfo == UTC
    assert got[0].raw["tag"] == "campagne"
    assert fake.incoming == {}


def test_crash_between_read_and_delete_loses_nothing(fake: OvhFake, make_phone: MakePhone) -> None:
    sms_id = fake.add_incoming("+33612345678", "STOP")
    phone = make_phone()

    def crash(msg: IncomingMessage) -> None:
        raise RuntimeError("store is down")

    with pytest.raises(RuntimeError):
        phone.fetch_incoming(crash)
    assert sms_id in fake.incoming  # not deleted
    assert not [r for r in fake.requests if r["method"] == "DELETE"]

    got: list[IncomingMessage] = []
    phone.fetch_incoming(got.append)  # the next poll delivers it again
    assert [m.body for m in got] == ["STOP"]
    assert fake.incoming == {}


def test_new_process_after_crash_gets_it_too(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.add_incoming("+33612345678", "STOP")
    with pytest.raises(RuntimeError):
        make_phone().fetch_incoming(lambda m: (_ for _ in ()).throw(RuntimeError("boom")))
    got: list[IncomingMessage] = []
    make_phone().fetch_incoming(got.append)
    assert len(got) == 1


def test_failed_delete_is_retried_without_handing_over_twice(
    fake: OvhFake, make_phone: MakePhone
) -> None:
    sms_id = fake.add_incoming("+33612345678", "OUI")
    phone = make_phone()
    got: list[IncomingMessage] = []
    phone.check()
    # GET list, GET item, then the DELETE fails.
    original = fake.handle

    def flaky(method: str, path: str, body: object) -> tuple[int, object]:
        if method == "DELETE":
            return 503, {"class": "Server::ServiceUnavailable", "message": "try later"}
        return original(method, path, body)

    fake.handle = flaky  # type: ignore[method-assign]
    phone.fetch_incoming(got.append)
    assert sms_id in fake.incoming and len(got) == 1
    fake.handle = original  # type: ignore[method-assign]
    assert phone.fetch_incoming(got.append) == []
    assert len(got) == 1  # deduped by provider id within the process
    assert fake.incoming == {}


def test_dedupe_memory_is_bounded(fake: OvhFake, make_phone: MakePhone) -> None:
    phone = make_phone()
    phone.HANDLED_MEMORY = 2  # type: ignore[misc]
    for i in range(4):
        fake.add_incoming("+33612345678", f"m{i}")
    phone.fetch_incoming(lambda m: None)
    assert len(phone._handled) == 2


def test_without_handle_nothing_is_deleted(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.add_incoming("+33612345678", "OUI")
    phone = make_phone()
    assert [m.body for m in phone.fetch_incoming()] == ["OUI"]
    assert len(fake.incoming) == 1
    assert len(phone.fetch_incoming()) == 1


def test_alphanumeric_sender_is_kept(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.add_incoming("INFO", "hello")
    [msg] = make_phone().fetch_incoming(lambda m: None)
    assert msg.sender == "INFO"


def test_polling_errors_are_mapped(fake: OvhFake, make_phone: MakePhone) -> None:
    phone = make_phone()
    fake.fail_next("not_granted")
    with pytest.raises(AuthError):
        phone.fetch_incoming(lambda m: None)
    fake.fail_next("unavailable")
    with pytest.raises(ProviderUnavailable):
        phone.fetch_incoming(lambda m: None)


def test_bridge_poll_dispatches_and_deletes(fake: OvhFake, make_phone: MakePhone) -> None:
    phone = make_phone()
    bridge = Bridge({"ovh-test": phone})
    received: list[IncomingMessage] = []
    bridge.on_receive(received.append)
    fake.add_incoming("+33612345678", "OUI")
    assert bridge.poll() == {"ovh-test": 1}
    assert [m.body for m in received] == ["OUI"] and fake.incoming == {}


def test_bridge_poll_callback_crash_keeps_the_reply(fake: OvhFake, make_phone: MakePhone) -> None:
    phone = make_phone()
    bridge = Bridge({"ovh-test": phone})
    calls: list[str] = []

    def callback(msg: IncomingMessage) -> None:
        calls.append(msg.body)
        if len(calls) == 1:
            raise RuntimeError("app crashed")

    bridge.on_receive(callback)
    fake.add_incoming("+33612345678", "OUI")
    with pytest.raises(CallbackError):
        bridge.poll()
    assert len(fake.incoming) == 1
    bridge.poll()
    assert calls == ["OUI", "OUI"] and fake.incoming == {}

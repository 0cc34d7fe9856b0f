"""Options, capabilities and client wiring."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from pydantic import ValidationError
from smsbridge_ovh import OvhPhone
from smsbridge_ovh.testing import OvhFake

from smsbridge.errors import AuthError
from smsbridge.message import OutgoingMessage
from smsbridge.registry import load_plugin

MakePhone = Callable[..., OvhPhone]


def test_entry_point_loads_the_phone() -> None:
    assert load_plugin("ovh") is OvhPhone


def test_region_names_map_to_the_sdk_endpoints(fake: OvhFake) -> None:
    phone = OvhPhone("ovh", fake.phone_options(endpoint="ovh-ca"))
    assert phone.client._endpoint == "https://ca.api.ovh.com/1.0"
    phone.close()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("endpoint", "ovh-mars"),
        ("sender", "Way-too-long-sender"),
        ("priority", "urgent"),
        ("validity_period", 0),
        ("service_name", ""),
    ],
)
def test_bad_options_are_refused(fake: OvhFake, key: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        OvhPhone("ovh", fake.phone_options(**{key: value}))
    assert info.value.errors()[0]["loc"] == (key,)


def test_secrets_are_hidden(fake: OvhFake) -> None:
    options = fake.phone_options()
    phone = OvhPhone("ovh", options)
    text = repr(phone.options) + str(phone.options.model_dump())
    for secret in ("test-as-123", "test-ck-123", "test-secret-123"):
        assert secret not in text
    phone.close()


def test_capabilities(make_phone: MakePhone) -> None:
    caps = make_phone().caps
    assert (caps.receive, caps.receive_mode) == (True, "poll")
    assert (caps.status, caps.status_mode) == (True, "webhook")
    assert caps.sender_name and caps.balance and not caps.flash and not caps.mms_send


def test_injected_session_is_used(fake: OvhFake) -> None:
    session = requests.Session()
    session.headers["User-Agent"] = "my-app"
    phone = OvhPhone("ovh", fake.phone_options(), session=session)
    phone.send(OutgoingMessage(to="+33612345678", body="x"))
    assert fake.requests[-1]["headers"]["user-agent"] == "my-app"
    phone.close()


def test_balance_reads_credits_left(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.credits_left = 42.5
    balance = make_phone().balance()
    assert balance.units == 42.5 and balance.details["status"] == "enable"


def test_fetch_status_with_a_wrong_service_is_an_auth_error(
    fake: OvhFake, make_phone: MakePhone
) -> None:
    phone = make_phone(service_name="sms-nope-1")
    with pytest.raises(AuthError, match="sms-nope-1"):
        phone.fetch_status("123")

"""Live tests against a real Orange account (skipped unless configured).

Set SMSBRIDGE_TEST_ORANGE_CLIENT_ID, SMSBRIDGE_TEST_ORANGE_CLIENT_SECRET and
SMSBRIDGE_TEST_ORANGE_COUNTRY (e.g. CIV); SMSBRIDGE_TEST_ORANGE_TO (E.164) to also send
one real SMS (costs one unit).
"""

from __future__ import annotations

import os

import pytest
from smsbridge_orange import OrangePhone

from smsbridge.message import OutgoingMessage

ENV = {
    k: os.environ.get(f"SMSBRIDGE_TEST_ORANGE_{k.upper()}")
    for k in ("client_id", "client_secret", "country", "to")
}

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (ENV["client_id"] and ENV["client_secret"] and ENV["country"]),
        reason="SMSBRIDGE_TEST_ORANGE_CLIENT_ID/_CLIENT_SECRET/_COUNTRY not set",
    ),
]


def live_phone() -> OrangePhone:
    return OrangePhone(
        "orange-live",
        {
            "client_id": ENV["client_id"],
            "client_secret": ENV["client_secret"],
            "country": ENV["country"],
        },
    )


def test_live_token_and_balance() -> None:
    phone = live_phone()
    phone.check()
    balance = phone.balance()
    assert balance.units is not None


@pytest.mark.skipif(not ENV["to"], reason="SMSBRIDGE_TEST_ORANGE_TO not set")
def test_live_send() -> None:
    result = live_phone().send(OutgoingMessage(to=ENV["to"] or "", body="smsbridge live test"))
    assert result.provider_id

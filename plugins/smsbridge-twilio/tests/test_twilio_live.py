"""Live tests against a real Twilio account (skipped unless configured).

Set ``SMSBRIDGE_TEST_TWILIO_ACCOUNT_SID``, ``SMSBRIDGE_TEST_TWILIO_AUTH_TOKEN``,
``SMSBRIDGE_TEST_TWILIO_FROM`` and ``SMSBRIDGE_TEST_TWILIO_TO``. With Twilio's *test
credentials* (console → Account → API keys & tokens → Test credentials) and From
``+15005550006`` nothing is delivered or charged, and the magic-number case runs too.
"""

from __future__ import annotations

import os

import pytest
from smsbridge_twilio import TwilioPhone

from smsbridge.errors import Rejected
from smsbridge.message import OutgoingMessage
from smsbridge.status import Status

ENV = "SMSBRIDGE_TEST_TWILIO_"
NAMES = ("ACCOUNT_SID", "AUTH_TOKEN", "FROM", "TO")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not all(os.environ.get(ENV + n) for n in NAMES),
        reason=f"set {', '.join(ENV + n for n in NAMES)} to run live Twilio tests",
    ),
]


@pytest.fixture
def phone() -> TwilioPhone:
    return TwilioPhone(
        "twilio-live",
        {
            "account_sid": os.environ[ENV + "ACCOUNT_SID"],
            "auth_token": os.environ[ENV + "AUTH_TOKEN"],
            "from": os.environ[ENV + "FROM"],
            "retries": 0,
        },
    )


def test_live_send(phone: TwilioPhone) -> None:
    result = phone.send(OutgoingMessage(to=os.environ[ENV + "TO"], body="smsbridge live test"))
    assert result.provider_id and result.status in (Status.queued, Status.sent)


def test_live_magic_unsubscribed_number(phone: TwilioPhone) -> None:
    if os.environ[ENV + "FROM"] != "+15005550006":
        pytest.skip("magic numbers need Twilio test credentials and From +15005550006")
    with pytest.raises(Rejected) as info:
        phone.send(OutgoingMessage(to="+15005550004", body="smsbridge live test"))
    assert info.value.opt_out

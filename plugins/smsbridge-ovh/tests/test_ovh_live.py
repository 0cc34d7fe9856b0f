"""Live checks against a real OVH SMS service; skipped unless SMSBRIDGE_TEST_OVH_* is set.

Required: SMSBRIDGE_TEST_OVH_APPLICATION_KEY, _APPLICATION_SECRET, _CONSUMER_KEY,
_SERVICE_NAME (optional _ENDPOINT, default ovh-eu). Sending costs credits, so it also needs
SMSBRIDGE_TEST_OVH_RECIPIENT (E.164) and, optionally, _SENDER.
"""

from __future__ import annotations

import os

import pytest
from smsbridge_ovh import OvhPhone

from smsbridge.message import OutgoingMessage

PREFIX = "SMSBRIDGE_TEST_OVH_"
KEYS = ("APPLICATION_KEY", "APPLICATION_SECRET", "CONSUMER_KEY", "SERVICE_NAME")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not all(os.environ.get(PREFIX + k) for k in KEYS),
        reason="set SMSBRIDGE_TEST_OVH_* to run live OVH tests",
    ),
]


def live_phone() -> OvhPhone:
    options = {k.lower(): os.environ[PREFIX + k] for k in KEYS}
    options["endpoint"] = os.environ.get(PREFIX + "ENDPOINT", "ovh-eu")
    options["status_webhook"] = False
    if os.environ.get(PREFIX + "SENDER"):
        options["sender"] = os.environ[PREFIX + "SENDER"]
    return OvhPhone("ovh-live", options)


def test_live_check_and_balance() -> None:
    phone = live_phone()
    phone.check()
    assert phone.balance().units is not None
    phone.close()


@pytest.mark.skipif(not os.environ.get(PREFIX + "RECIPIENT"), reason="no live recipient")
def test_live_send_and_poll_status() -> None:
    phone = live_phone()
    result = phone.send(
        OutgoingMessage(to=os.environ[PREFIX + "RECIPIENT"], body="smsbridge live test")
    )
    assert result.provider_id
    report = phone.fetch_status(result.provider_id)
    assert report.provider_id == result.provider_id
    phone.close()

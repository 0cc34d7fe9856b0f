"""OVH's status callbacks (GET) over real HTTP: the shared
:class:`smsbridge.testing.WebhookCases`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from smsbridge.phone import Phone
from smsbridge.status import Status
from smsbridge.testing import WebhookCases


@pytest.fixture(scope="module")
def ovh_fake() -> Iterator[Any]:
    from smsbridge_ovh.testing import OvhFake

    with OvhFake() as fake:
        yield fake


class TestOvhWebhooks(WebhookCases):
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

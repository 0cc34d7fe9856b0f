"""Shared fixtures: a fake OVH API on 127.0.0.1 and phones pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from smsbridge_ovh import OvhPhone
from smsbridge_ovh.testing import OvhFake


@pytest.fixture
def fake() -> Iterator[OvhFake]:
    with OvhFake() as server:
        yield server


@pytest.fixture
def make_phone(fake: OvhFake) -> Iterator[Callable[..., OvhPhone]]:
    phones: list[OvhPhone] = []

    def build(**options: Any) -> OvhPhone:
        options.setdefault("retries", 0)
        options.setdefault("timeout", 2.0)
        phone = OvhPhone(
            "ovh-test",
            fake.phone_options(**options),
            sleep=lambda _s: None,
            public_url="https://sms.example.com",
        )
        phones.append(phone)
        return phone

    yield build
    for phone in phones:
        phone.close()

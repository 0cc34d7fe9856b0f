"""The plumbing the Phone base owns for every plugin: error table, Retry-After, report
builder, lenient numbers, redacted callback params, the cache and clock seams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from smsbridge.cache import KeyValueCache, MemoryCache
from smsbridge.clock import FakeClock
from smsbridge.errors import (
    AuthError,
    InsufficientCredit,
    InvalidRecipient,
    InvalidSender,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SendError,
)
from smsbridge.http import WebhookRequest, parse_retry_after
from smsbridge.numbers import lenient_number
from smsbridge.phone import ErrorRule, Phone, PhoneOptions, PreparedMessage, Submission
from smsbridge.status import Status


class TablePhone(Phone):
    plugin: ClassVar[str] = "table"
    Options: ClassVar[type[PhoneOptions]] = PhoneOptions
    STATUS_MAP: ClassVar[dict[str, Status]] = {"DLVRD": Status.delivered, "FAIL": Status.failed}
    ERROR_CODES: ClassVar[dict[Any, ErrorRule]] = {
        21211: InvalidRecipient,
        "NO_CREDIT": InsufficientCredit,
        21610: (Rejected, {"opt_out": True}),
        "SENDER": InvalidSender,
    }

    def submit(self, message: PreparedMessage) -> Submission:  # pragma: no cover - unused
        raise NotImplementedError


@pytest.fixture
def phone() -> TablePhone:
    return TablePhone("t", {"webhook_secret": "s3cr3t-token"}, clock=FakeClock())


def test_error_table_by_code_then_http_status(phone: TablePhone) -> None:
    err = phone.provider_error("bad number", code=21211, http_status=400, recipient="+22501")
    assert type(err) is InvalidRecipient
    assert err.recipient == "+22501" and "(Table error 21211)" in str(err)
    assert err.provider_code == "21211"
    assert type(phone.provider_error("x", code="21211")) is SendError  # "21211" ≠ 21211 row
    assert type(phone.provider_error("x", code="NO_CREDIT")) is InsufficientCredit
    opted = phone.provider_error("stop", code=21610, http_status=400)
    assert type(opted) is Rejected and opted.opt_out is True and opted.phone == "t"
    assert type(phone.provider_error("x", code="SENDER")) is InvalidSender
    for status, kind in [
        (401, AuthError),
        (403, AuthError),
        (429, RateLimited),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
        (400, SendError),
        (None, SendError),
    ]:
        err = phone.provider_error("x", code=99999, http_status=status)
        assert type(err) is kind, status
        assert err.provider_code == "99999"
    limited = phone.provider_error("slow down", http_status=429, retry_after=2.5)
    assert isinstance(limited, RateLimited) and limited.retry_after == 2.5
    assert limited.provider_code == "429" and limited.retryable


def test_error_text_is_redacted(phone: TablePhone) -> None:
    err = phone.provider_error("token s3cr3t-token refused", http_status=401)
    assert "s3cr3t-token" not in str(err) and "***" in str(err)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2026 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == expected


def test_report_maps_status_and_defaults_time(phone: TablePhone) -> None:
    report = phone.report("abc", "DLVRD", raw={"id": "abc"}, error_code="", recipient="+1")
    assert report.status is Status.delivered and report.raw_status == "DLVRD"
    assert report.phone == "t" and report.error_code is None
    assert report.at == phone.clock()
    assert phone.report(None, "weird").status is Status.unknown
    assert phone.report("x", 7, status=Status.failed, error_code=12).error_code == "12"


def test_lenient_number() -> None:
    assert lenient_number("+225 07 01 02 03 04") == "+2250701020304"
    assert lenient_number("2250701020304") == "+2250701020304"
    assert lenient_number("38100") == "38100"  # a short code stays as given
    assert lenient_number("MonService") == "MonService"
    assert lenient_number("") is None and lenient_number(None) is None


def test_callback_params_drop_the_token(phone: TablePhone) -> None:
    request = WebhookRequest(
        method="POST",
        url="https://x/webhooks/t/status?token=s3cr3t-token&id=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=b"status=DLVRD",
    )
    assert phone.callback_params(request) == {"id": "1", "status": "DLVRD"}


def test_memory_cache_expires_on_its_clock() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    assert isinstance(cache, KeyValueCache)
    cache.cache_set("ns", "k", "v", clock() + timedelta(seconds=10))
    assert cache.cache_get("ns", "k") == ("v", clock() + timedelta(seconds=10))
    clock.advance(10)
    assert cache.cache_get("ns", "k") is None
    with pytest.raises(ValueError):
        cache.cache_set("ns", "k", "v", datetime(2030, 1, 1))
    cache.cache_set("ns", "k", "v", clock() + timedelta(days=1))
    cache.cache_delete("ns", "k")
    assert cache.cache_get("ns", "k") is None


def test_phone_takes_a_cache_like_a_session(phone: TablePhone) -> None:
    cache = MemoryCache()
    assert TablePhone("c", cache=cache).cache is cache
    phone.use_cache(cache)
    assert phone.cache is cache


def test_fake_clock_only_moves_when_told() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock() == clock()
    assert clock.advance(minutes=1) == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        FakeClock(datetime(2026, 1, 1))

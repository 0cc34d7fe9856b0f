"""Admin API (contracts, statistics, purchase orders), DR subscriptions and the CLI."""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from smsbridge_orange.admin import (
    parse_contracts,
    parse_purchase_orders,
    parse_statistics,
    parse_subscriptions,
    resource_id,
)
from smsbridge_orange.cli import register
from smsbridge_orange.testing import FakeOrange

from smsbridge.errors import ConfigError
from smsbridge.message import Balance, OutgoingMessage
from smsbridge.phones.dummy import DummyPhone

SEED_CONTRACTS = [
    {
        "id": "6368bdba70585131d5454a5a",
        "type": "SELFSERVICE",
        "developerId": "dev",
        "applicationId": "app",
        "country": "CIV",
        "offerName": "SMS_OCB",
        "availableUnits": 120,
        "requestedUnits": 0,
        "status": "ACTIVE",
        "expirationDate": "2023-01-07T15:04:20.653Z",
        "creationDate": "2022-11-07T08:11:38.220Z",
        "lastUpdateDate": "2022-12-08T15:04:20.656Z",
    }
]
OLD_CONTRACTS = {
    "partnerContracts": {
        "partnerId": "p",
        "contracts": [
            {
                "service": "SMS_OCB",
                "contractDescription": "x",
                "serviceContracts": [
                    {
                        "country": "MLI",
                        "service": "SMS_OCB",
                        "contractId": "c1",
                        "availableUnits": 42,
                        "expires": "2026-03-01T00:00:00Z",
                    }
                ],
            }
        ],
    }
}
SEED_STATS = {
    "partnerStatistics": {
        "developerId": "dev",
        "statistics": [
            {
                "service": "SMS_OCB",
                "serviceStatistics": [
                    {
                        "country": "CIV",
                        "countryStatistics": [
                            {"appid": "yf1qyS4gv****", "usage": 2, "nbEnforcements": 2}
                        ],
                    }
                ],
            }
        ],
    }
}


def test_parse_contracts_both_shapes() -> None:
    (new,) = parse_contracts(SEED_CONTRACTS)
    assert (new.country, new.offer, new.units, new.active) == ("CIV", "SMS_OCB", 120, True)
    assert new.expires_at == datetime(2023, 1, 7, 15, 4, 20, 653000, tzinfo=UTC)
    (old,) = parse_contracts(OLD_CONTRACTS)
    assert (old.country, old.offer, old.units, old.id) == ("MLI", "SMS_OCB", 42, "c1")
    assert old.expires_at == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_contracts({"partnerContracts": {}}) == []


def test_parse_statistics_and_purchase_orders() -> None:
    (stat,) = parse_statistics(SEED_STATS)
    assert (stat.service, stat.country, stat.appid, stat.usage, stat.enforcements) == (
        "SMS_OCB",
        "CIV",
        "yf1qyS4gv****",
        2,
        2,
    )
    orders = parse_purchase_orders(
        {
            "purchaseOrders": [
                {
                    "id": "o1",
                    "country": "CIV",
                    "offerName": "SMS_OCB",
                    "price": 1600.00,
                    "currency": "XOF",
                    "purchaseDate": "2022-12-08T15:04:20.664Z",
                    "oldAvailableUnits": 20,
                    "newAvailableUnits": 120,
                    "newExpirationDate": "2023-01-07T15:04:20.653Z",
                    "bundleDescription": "Bundle 1 - 100 SMS for 1 600 FCFA (for 30 days)",
                }
            ]
        }
    )
    assert orders[0].units_after == 120 and orders[0].price == 1600
    assert orders[0].to_dict()["purchased_at"] == "2022-12-08T15:04:20.664000+00:00"


def test_resource_id_variants() -> None:
    base = "https://api.orange.com/smsmessaging/v1/outbound"
    assert resource_id(f"{base}/tel:+2250000/requests/81e4296d-ed39") == "81e4296d-ed39"
    assert resource_id(f"{base}/tel%3A%2B2250000/requests/81e4296d-ed39/") == "81e4296d-ed39"
    assert resource_id("") is None and resource_id(None) is None


@pytest.mark.parametrize("shape", ["array", "partner"])
def test_balance_from_fake(shape: str, make_phone: Any) -> None:
    with FakeOrange(contracts_shape=shape, units=500) as fake:
        phone = make_phone(server=fake)
        balance = phone.balance()
        assert isinstance(balance, Balance)
        assert balance.units == 500
        assert balance.expires_at is not None and balance.expires_at.tzinfo is not None
        assert balance.details["country"] == "CIV"
        calls = [r["path"] for r in fake.requests if "/contracts" in r["path"]]
        assert calls == ["/sms/admin/v1/contracts?country=CIV"]


def test_balance_warnings(fake: FakeOrange, make_phone: Any, caplog: Any) -> None:
    phone = make_phone(low_units_warning=10, expiry_warning_days=3)
    with caplog.at_level(logging.WARNING, "smsbridge.orange"):
        phone.balance()
    assert not caplog.records
    fake.set_units(5)
    with caplog.at_level(logging.WARNING, "smsbridge.orange"):
        phone.balance()
    assert "only 5 Orange units left" in caplog.text
    caplog.clear()
    now = datetime.now(UTC)
    soon = make_phone("soon", clock=lambda: now + timedelta(days=28), low_units_warning=0)
    with caplog.at_level(logging.WARNING, "smsbridge.orange"):
        soon.balance()
    assert "contract expires" in caplog.text
    caplog.clear()
    fake.expire_contract()
    with caplog.at_level(logging.WARNING, "smsbridge.orange"):
        assert phone.balance().units == 0
    assert "units left" in caplog.text


def test_statistics_and_purchase_orders_from_fake(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone()
    phone.send(OutgoingMessage(to="+2250701020304", body="x"))
    (stat,) = phone.statistics()
    assert (stat.service, stat.country, stat.usage) == ("SMS_OCB", "CIV", 1)
    phone.statistics(all_countries=True, appid="my-app")
    orders = phone.purchase_orders()
    assert orders[0].description and orders[0].currency == "XOF"
    paths = [r["path"] for r in fake.requests if r["path"].startswith("/sms/admin")]
    assert "/sms/admin/v1/statistics?country=CIV" in paths
    assert "/sms/admin/v1/statistics?appid=my-app" in paths
    assert "/sms/admin/v1/purchaseorders?country=CIV" in paths


def test_subscription_management(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(webhook_secret="test-hook-secret", public_url="https://sms.example.com")
    sub = phone.subscribe()
    assert sub.id
    assert sub.notify_url == "https://sms.example.com/webhooks/orange-ci/status?token=***"
    stored = fake.subscriptions[sub.id]
    assert stored["notifyURL"].endswith("token=test-hook-secret")  # Orange gets the real one
    assert stored["sender"] == "tel:+2250000"
    listed = phone.subscriptions()
    assert [s.id for s in listed] == [sub.id] and phone.is_own_subscription(listed[0])
    phone.unsubscribe(sub.id)
    assert phone.subscriptions() == []
    with pytest.raises(Exception, match="Resource not found"):
        phone.unsubscribe(sub.id)


def test_subscribe_needs_a_url(make_phone: Any) -> None:
    with pytest.raises(ConfigError):
        make_phone().subscribe()


def test_parse_subscription_shapes() -> None:
    one = {
        "deliveryReceiptSubscription": {
            "callbackReference": {"notifyURL": "https://a"},
            "resourceURL": "https://h/subscriptions/s1",
        }
    }
    assert [s.id for s in parse_subscriptions(one)] == ["s1"]
    assert [s.id for s in parse_subscriptions([one, one])] == ["s1", "s1"]
    listing = {
        "deliveryReceiptSubscriptionList": {
            "deliveryReceiptSubscription": [one["deliveryReceiptSubscription"]]
        }
    }
    assert [s.notify_url for s in parse_subscriptions(listing)] == ["https://a"]


# ---------------------------------------------------------------- CLI
def run_cli(bridge: Any, *argv: str, json_out: bool = False) -> int:
    parser = argparse.ArgumentParser(prog="smsbridge")
    parser.add_argument("--json", action="store_true")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args([*(["--json"] if json_out else []), *argv])
    return int(args.func(args, bridge))


def test_cli_commands(fake: FakeOrange, make_phone: Any, capsys: Any) -> None:
    phone = make_phone(webhook_secret="test-hook-secret", public_url="https://sms.example.com")
    bridge = SimpleNamespace(phones={"orange-ci": phone})
    assert run_cli(bridge, "orange", "subscribe", "orange-ci") == 0
    out = capsys.readouterr().out
    assert "token=***" in out and "test-hook-secret" not in out
    assert run_cli(bridge, "orange", "subscriptions", "orange-ci", json_out=True) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["this_phone"] is True
    other = phone.subscribe("https://elsewhere.example.com/dr")
    assert run_cli(bridge, "orange", "unsubscribe", "orange-ci") == 0  # only this phone's
    assert [s.id for s in phone.subscriptions()] == [other.id]
    assert run_cli(bridge, "orange", "unsubscribe", "orange-ci", "--all") == 0
    assert phone.subscriptions() == []
    capsys.readouterr()
    assert run_cli(bridge, "orange", "stats", "orange-ci") == 0
    assert run_cli(bridge, "orange", "purchases", "orange-ci") == 0
    out = capsys.readouterr().out
    assert "PURCHASED_AT" in out and "Bundle 0" in out
    assert (
        run_cli(bridge, "orange", "purchases", "orange-ci", "--all-countries", json_out=True) == 0
    )
    assert json.loads(capsys.readouterr().out)[0]["currency"] == "XOF"


def test_cli_phone_errors(make_phone: Any) -> None:
    bridge = SimpleNamespace(phones={"dev": DummyPhone("dev")})
    with pytest.raises(ConfigError, match="no phone named"):
        run_cli(bridge, "orange", "stats", "nope")
    with pytest.raises(ConfigError, match="not an orange phone"):
        run_cli(bridge, "orange", "stats", "dev")

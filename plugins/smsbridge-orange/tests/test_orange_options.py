"""Options: credentials, sender address / country table, sender name, defaults, entry points."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pytest
from pydantic import ValidationError
from smsbridge_orange import OrangeOptions, OrangePhone
from smsbridge_orange.countries import SENDER_NUMBERS

from smsbridge.errors import ConfigError, InvalidSender

CREDS = {"client_id": "test-client-id", "client_secret": "test-secret-123", "token_cache": False}


def phone(**options: Any) -> OrangePhone:
    return OrangePhone("orange", {**CREDS, **options})


def test_country_alone_is_enough() -> None:
    p = phone(country="SEN")
    assert p.options.sender_address == "2210000"
    assert p.sender == "tel:+2210000"
    assert p.caps.countries == frozenset({"SN"})
    assert phone(country="ci").options.sender_address == "2250000"  # alpha-2 accepted


def test_shipped_table_matches_the_guide() -> None:
    assert len(SENDER_NUMBERS) == 13
    assert SENDER_NUMBERS["BWA"] == "2670000" and SENDER_NUMBERS["TUN"] == "2160000"
    for alpha3, number in SENDER_NUMBERS.items():
        assert phone(sender_address=number).options.country == alpha3


@pytest.mark.parametrize("given", ["2250000", "+2250000", "tel:+2250000", "002250000"])
def test_sender_address_forms(given: str) -> None:
    p = phone(sender_address=given)
    assert p.options.sender_address == "2250000"
    assert p.options.country == "CIV"


def test_country_inferred_outside_the_table() -> None:
    assert phone(sender_address="2270000").options.country == "NER"


@pytest.mark.parametrize("bad", ["22500a0", "+", "12", "tel:+22 50 00 00 00 00 00 00"])
def test_bad_sender_address(bad: str) -> None:
    with pytest.raises(ValidationError):
        phone(sender_address=bad)


def test_needs_sender_or_country_and_credentials() -> None:
    with pytest.raises(ValidationError, match="sender_address or country"):
        phone()
    with pytest.raises(ValidationError, match="no known sender number"):
        phone(country="FRA")
    with pytest.raises(ValidationError, match="client_id and client_secret"):
        OrangePhone("o", {"country": "CIV"})
    with pytest.raises(ValidationError, match="Basic"):
        OrangePhone("o", {"country": "CIV", "authorization_header": "Bearer x"})
    with pytest.raises(ValidationError):
        phone(country="CIV", unknown_key=1)


@pytest.mark.parametrize("name", ["TwelveLetter", "Mon-Service", "Café", ""])
def test_bad_sender_name_is_invalid_sender_at_config_time(name: str) -> None:
    with pytest.raises(InvalidSender) as info:
        phone(country="CIV", sender_name=name)
    assert isinstance(info.value, ConfigError)  # also a configuration error naming the key
    assert info.value.key == "sender_name"
    with pytest.raises(ValidationError):  # validating options alone (config loader path)
        OrangeOptions.model_validate({**CREDS, "country": "CIV", "sender_name": name})


def test_good_sender_names() -> None:
    for name in ("MonService", "Mon Service", "A1", "ABCDEFGHIJK"):
        assert phone(country="CIV", sender_name=name).options.sender_name == name


def test_defaults() -> None:
    p = phone(country="CIV")
    assert p.rate_limit == 5 and p.capabilities.default_rate_limit == 5
    assert p.limiter is not None and p.limiter.rate == pytest.approx(4.9)  # type: ignore[attr-defined]
    assert p.base_url == "https://api.orange.com"
    assert p.token_url == "https://api.orange.com/oauth/v3/token"
    assert p.options.on_net is False
    custom = phone(country="CIV", base_url="http://127.0.0.1:9/", rate_limit=2)
    assert custom.token_url == "http://127.0.0.1:9/oauth/v3/token" and custom.rate_limit == 2
    caps = OrangePhone.capabilities
    assert caps.status_mode == "webhook" and caps.receive_mode == "webhook"
    assert caps.balance and caps.sender_name and not caps.flash and not caps.mms_send
    assert caps.countries is not None and "CI" in caps.countries and len(caps.countries) == 13


def test_country_restriction_option_narrows() -> None:
    assert phone(country="CIV", countries=["SN"]).caps.countries == frozenset()


def test_secrets_hidden() -> None:
    p = phone(country="CIV", webhook_secret="test-hook-secret")
    text = repr(p) + repr(p.options) + str(p.options)
    for secret in ("test-secret-123", "test-hook-secret", p._basic):
        assert secret not in text
    assert "test-secret-123" not in p.redact("x test-secret-123 y")


def test_entry_points_registered() -> None:
    (phone_ep,) = [e for e in entry_points(group="smsbridge.phones") if e.name == "orange"]
    assert phone_ep.load() is OrangePhone
    (cmd_ep,) = [e for e in entry_points(group="smsbridge.commands") if e.name == "orange"]
    assert callable(cmd_ep.load())

"""Phone numbers: E.164 normalisation, national numbers, countries (alpha-2 / alpha-3)."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsbridge.errors import ConfigError, InvalidRecipient, MessageError
from smsbridge.numbers import (
    country_alpha2,
    country_alpha3,
    country_of,
    normalize,
    normalize_country,
)

CI_MOBILE = "+2250701020304"  # Côte d'Ivoire, 10-digit plan (2021)
SN_MOBILE = "+221771234567"  # Senegal
FR_MOBILE = "+33612345678"
US_NUMBER = "+12025550123"  # Washington DC (555-01xx: fictional but valid)


# ---------------------------------------------------------------------- normalize
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (CI_MOBILE, CI_MOBILE),
        ("+225 07 01 02 03 04", CI_MOBILE),
        ("+225-07-01-02-03-04", CI_MOBILE),
        ("+225.07.01.02.03.04", CI_MOBILE),
        ("  +225 0701020304\t", CI_MOBILE),
        ("002250701020304", CI_MOBILE),
        ("00 225 07 01 02 03 04", CI_MOBILE),
        ("+33 (0)6 12 34 56 78", FR_MOBILE),
        ("+1 (202) 555-0123", US_NUMBER),
        ("+221 77 123 45 67", SN_MOBILE),
        ("tel:+33612345678", FR_MOBILE),
    ],
)
def test_international_numbers_normalise_to_e164(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("0701020304", "CI", CI_MOBILE),
        ("07 01 02 03 04", "CIV", CI_MOBILE),  # alpha-3, as Orange writes it
        ("07-01-02-03-04", "civ", CI_MOBILE),  # any case
        ("06 12 34 56 78", "FR", FR_MOBILE),
        ("77 123 45 67", "SN", SN_MOBILE),
        ("77 123 45 67", "SEN", SN_MOBILE),
        # an international number ignores the default region
        ("+33612345678", "CI", FR_MOBILE),
        ("0033612345678", "CI", FR_MOBILE),
    ],
)
def test_national_numbers_use_default_region(raw: str, region: str, expected: str) -> None:
    assert normalize(raw, region) == expected


def test_national_number_without_region_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidRecipient, match="default_region") as caught:
        normalize("0701020304")
    assert "'0701020304'" in str(caught.value)
    assert caught.value.recipient == "0701020304"


@pytest.mark.parametrize(
    "raw",
    [
        "+225070102030",  # one digit short
        "+22507010203045",  # one digit long
        "+999123456789",  # no such country code
        "+33 1",  # too short
        "not a number",
        "+1 650 253 GOOG",  # vanity letters: not an SMS destination
        "+33612345678 ext 5",  # an extension: an SMS cannot reach it
        "+33612345678;ext=5",
        "John Doe",
        "+",
        "00",
    ],
)
def test_invalid_numbers_raise_invalid_recipient_naming_the_input(raw: str) -> None:
    with pytest.raises(InvalidRecipient) as caught:
        normalize(raw, "CI")
    assert repr(raw) in str(caught.value)
    assert caught.value.recipient == raw
    assert isinstance(caught.value, MessageError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_empty_recipient(raw: str) -> None:
    with pytest.raises(InvalidRecipient, match="empty"):
        normalize(raw)


@pytest.mark.parametrize("raw", [None, 2250701020304, 3.5, ["+2250701020304"], {"to": 1}, b"+33"])
def test_non_string_recipient_is_invalid_recipient_not_a_crash(raw: Any) -> None:
    with pytest.raises(InvalidRecipient, match="must be a string") as caught:
        normalize(raw)
    assert type(raw).__name__ in str(caught.value)
    assert caught.value.recipient == repr(raw)


def test_unknown_default_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'XY'"):
        normalize("0701020304", "XY")


def test_errors_are_not_cached_and_results_are() -> None:
    for _ in range(2):
        with pytest.raises(InvalidRecipient):
            normalize("+225 07")
    assert normalize(CI_MOBILE) is normalize(CI_MOBILE)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["CI", "SN", "FR", "US", "GB", "CM", "NG", "DE", "BR", "IN"]),
    st.sampled_from(["mobile", "fixed"]),
)
def test_example_numbers_roundtrip_in_every_written_form(region: str, kind: str) -> None:
    """libphonenumber's own example numbers, written nationally and internationally."""
    number_type = (
        phonenumbers.PhoneNumberType.MOBILE
        if kind == "mobile"
        else phonenumbers.PhoneNumberType.FIXED_LINE
    )
    example = phonenumbers.example_number_for_type(region, number_type)
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    intl = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    assert normalize(e164) == e164
    assert normalize(intl) == e164
    assert normalize("00" + e164[1:]) == e164
    assert normalize(national, region) == e164
    digits = e164[1:]
    dashed = "-".join(digits[i : i + 2] for i in range(0, len(digits), 2))
    assert normalize(f"+{dashed}") == e164
    # normalising is idempotent and the country comes back
    assert normalize(normalize(intl)) == e164
    assert country_of(e164) == region


# ---------------------------------------------------------------------- countries
@pytest.mark.parametrize(
    ("number", "country"),
    [(CI_MOBILE, "CI"), (SN_MOBILE, "SN"), (FR_MOBILE, "FR"), (US_NUMBER, "US")],
)
def test_country_of(number: str, country: str) -> None:
    assert country_of(number) == country


@pytest.mark.parametrize("number", ["garbage", "", "+999123", "+80012345678", "+88213123456"])
def test_country_of_unknown_or_non_geographic_is_none(number: str) -> None:
    # +800 (freephone) and +882 (international networks) belong to no country
    assert country_of(number) is None


@pytest.mark.parametrize(
    ("code", "alpha2", "alpha3"),
    [
        ("CI", "CI", "CIV"),
        ("CIV", "CI", "CIV"),
        ("ci", "CI", "CIV"),
        (" civ ", "CI", "CIV"),
        ("SN", "SN", "SEN"),
        ("SEN", "SN", "SEN"),
        ("CM", "CM", "CMR"),
        ("FR", "FR", "FRA"),
        ("NO", "NO", "NOR"),
    ],
)
def test_country_codes_alpha2_and_alpha3(code: str, alpha2: str, alpha3: str) -> None:
    assert normalize_country(code) == alpha2
    assert country_alpha2(code) == alpha2
    assert country_alpha3(code) == alpha3


@pytest.mark.parametrize("code", ["XX", "ZZZ", "UK", "", "C", "CIVX", "France", "384", "C1"])
def test_unknown_country_is_a_config_error_naming_it(code: str) -> None:
    with pytest.raises(ConfigError, match="alpha-2 or alpha-3") as caught:
        normalize_country(code)
    assert repr(code) in str(caught.value)
    with pytest.raises(ConfigError):
        country_alpha3(code)


@pytest.mark.parametrize("raw", ["+33612345678#5", "+33 6 12 34 56 78 ,5"])
def test_numbers_with_an_extension_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRecipient, match="extension"):
        normalize(raw)


def test_default_region_must_be_a_string() -> None:
    with pytest.raises(ConfigError, match="default_region"):
        normalize("0701020304", 225)  # type: ignore[arg-type]

"""Phone numbers: E.164 normalisation and country lookup.

Parsing and validation use ``phonenumbers`` (Google's libphonenumber metadata); the
alpha-2 ↔ alpha-3 country table comes from ``iso3166``. Orange identifies countries
by alpha-3 (``CIV``), routes may use either form.
"""

from __future__ import annotations

import functools

import iso3166
import phonenumbers

from .errors import ConfigError, InvalidRecipient

__all__ = ["country_alpha2", "country_alpha3", "country_of", "normalize", "normalize_country"]


@functools.lru_cache(maxsize=4096)
def normalize(number: str, default_region: str | None = None) -> str:
    """Return ``number`` in E.164 (``+22507...``) or raise :class:`InvalidRecipient`.

    National numbers need ``default_region`` (ISO alpha-2 or alpha-3). ``00`` international
    prefixes are accepted. Only numbers valid per libphonenumber's metadata pass.
    """
    if not isinstance(number, str):
        raise InvalidRecipient(
            f"recipient must be a string, got {type(number).__name__}", recipient=repr(number)
        )
    text = number.strip()
    if not text:
        raise InvalidRecipient("recipient is empty", recipient=number)
    if text.startswith("00"):
        text = "+" + text[2:]
    region = normalize_country(default_region) if default_region else None
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if text.startswith("+") or region else " (national numbers need default_region)"
        raise InvalidRecipient(
            f"invalid recipient {number!r}: {exc._msg}{hint}", recipient=number
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidRecipient(
            f"invalid recipient {number!r}: not a valid number for its country", recipient=number
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def country_of(e164: str) -> str | None:
    """ISO alpha-2 country of an E.164 number (``CI``), or None when unknown."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    return region if region and region != "ZZ" else None


def normalize_country(code: str) -> str:
    """Turn an alpha-2 or alpha-3 country code into alpha-2, or raise ``ConfigError``."""
    text = str(code).strip().upper()
    try:
        return str(iso3166.countries.get(text).alpha2)
    except KeyError:
        raise ConfigError(f"unknown country code {code!r} (use ISO 3166 alpha-2 or alpha-3)") from None


def country_alpha2(code: str) -> str:
    return normalize_country(code)


def country_alpha3(code: str) -> str:
    """``CI`` or ``CIV`` → ``CIV``."""
    return str(iso3166.countries.get(normalize_country(code)).alpha3)

"""Phone numbers: E.164 normalisation and country lookup.

Parsing and validation use ``phonenumbers`` (Google's libphonenumber metadata); the
alpha-2 ↔ alpha-3 country table comes from ``iso3166``. Orange identifies countries
by alpha-3 (``CIV``), routes may use either form.
"""

from __future__ import annotations

import functools
import re

import iso3166
import phonenumbers

from .errors import ConfigError, InvalidRecipient

__all__ = [
    "country_alpha2",
    "country_alpha3",
    "country_of",
    "lenient_number",
    "normalize",
    "normalize_country",
]


_LETTERS = re.compile(r"[A-Za-z]")


def normalize(number: str, default_region: str | None = None) -> str:
    """Return ``number`` in E.164 (``+22507...``) or raise :class:`InvalidRecipient`.

    National numbers need ``default_region`` (ISO alpha-2 or alpha-3). ``00`` international
    prefixes, spaces, dashes, dots and parentheses are accepted. Only numbers valid per
    libphonenumber's metadata pass; letters (vanity numbers, names typed in the wrong
    field) and extensions are refused, since an SMS cannot reach either.
    """
    if not isinstance(number, str):
        raise InvalidRecipient(
            f"recipient must be a string, got {type(number).__name__}: {number!r}",
            recipient=repr(number),
        )
    if default_region is not None and not isinstance(default_region, str):
        raise ConfigError(f"default_region must be a country code, not {default_region!r}")
    return _normalize(number, default_region)


@functools.lru_cache(maxsize=4096)
def _normalize(number: str, default_region: str | None) -> str:
    text = number.strip()
    if not text:
        raise InvalidRecipient("recipient is empty", recipient=number)
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    if _LETTERS.search(text):
        raise InvalidRecipient(
            f"invalid recipient {number!r}: letters are not allowed in a phone number",
            recipient=number,
        )
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
    if parsed.extension:
        raise InvalidRecipient(
            f"invalid recipient {number!r}: an SMS cannot reach an extension", recipient=number
        )
    if not phonenumbers.is_valid_number(parsed):
        hint = "" if text.startswith("+") or region else " (national numbers need default_region)"
        raise InvalidRecipient(
            f"invalid recipient {number!r}: not a valid number for its country{hint}",
            recipient=number,
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def lenient_number(value: object) -> str | None:
    """A number as providers send it back: E.164 when it parses as one (``+`` added to
    bare international digits), else as given (short codes, sender names); None when empty."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    candidate = text if text.startswith("+") or not text.isdigit() else "+" + text
    try:
        return normalize(candidate)
    except InvalidRecipient:
        return text


def country_of(e164: str) -> str | None:
    """ISO alpha-2 country of an E.164 number (``CI``), or None when unknown."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    # "ZZ": unknown; "001": non-geographic entities (+800, +882...), not a country
    return region if region and region.isalpha() and region != "ZZ" else None


def normalize_country(code: str) -> str:
    """Turn an alpha-2 or alpha-3 country code into alpha-2, or raise ``ConfigError``."""
    text = str(code).strip().upper()
    if not (text.isascii() and text.isalpha() and len(text) in (2, 3)):
        raise ConfigError(
            f"unknown country code {code!r} (use ISO 3166 alpha-2 or alpha-3, e.g. CI or CIV)"
        )
    try:
        return str(iso3166.countries.get(text).alpha2)
    except KeyError:
        raise ConfigError(
            f"unknown country code {code!r} (use ISO 3166 alpha-2 or alpha-3)"
        ) from None


def country_alpha2(code: str) -> str:
    return normalize_country(code)


def country_alpha3(code: str) -> str:
    """``CI`` or ``CIV`` → ``CIV``."""
    return str(iso3166.countries.get(normalize_country(code)).alpha3)

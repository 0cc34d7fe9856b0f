"""The Orange phone's options: credentials, sender address or country, sender name, token
cache and the admin API's warning thresholds."""

from __future__ import annotations

import base64

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from smsbridge.errors import ConfigError, InvalidSender
from smsbridge.numbers import country_alpha3
from smsbridge.phone import SENDER_NAME_RE, PhoneOptions

from .countries import SENDER_NUMBERS, country_for_sender

__all__ = [
    "DEFAULT_BASE_URL",
    "OrangeOptions",
    "SenderNameError",
    "check_sender",
    "infer_country",
    "is_number",
    "sender_name_error",
]

DEFAULT_BASE_URL = "https://api.orange.com"


class SenderNameError(InvalidSender, ConfigError):
    """An invalid ``sender_name`` option: both an :class:`InvalidSender` and a config error."""

    def __init__(self, message: str, *, key: str = "sender_name") -> None:
        InvalidSender.__init__(self, message)
        self.key = key


def sender_name_error(exc: ValidationError) -> InvalidSender | None:
    """The :class:`SenderNameError` inside a validation error of the options, if any."""
    for error in exc.errors():
        found = error.get("ctx", {}).get("error")
        if isinstance(found, InvalidSender):
            return found
    return None


class OrangeOptions(PhoneOptions):
    client_id: str | None = Field(default=None, description="Client ID (portal, MyApps).")
    client_secret: SecretStr | None = Field(default=None, description="Client secret.")
    authorization_header: SecretStr | None = Field(
        default=None, description='The ready "Basic ..." header the portal shows (instead).'
    )
    sender_address: str | None = Field(
        default=None, description="country_sender_number, digits (e.g. 2250000); from country."
    )
    sender_name: str | None = Field(
        default=None, description="Approved sender name, <= 11 letters, digits or spaces."
    )
    country: str | None = Field(
        default=None, description="ISO alpha-3 (CIV); inferred from sender_address."
    )
    on_net: bool = Field(default=False, description="Orange-only offer (SMS_OCB2 units).")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="API host.")
    token_url: str | None = Field(default=None, description="Default: {base_url}/oauth/v3/token.")
    token_cache: bool = Field(default=True, description="Persist tokens across processes.")
    token_cache_dir: str | None = Field(default=None, description="Default: user cache dir.")
    low_units_warning: float = Field(default=50, ge=0, description="Warn at or below this.")
    expiry_warning_days: float = Field(default=7, ge=0, description="Warn this close to expiry.")

    @field_validator("sender_address", mode="before")
    @classmethod
    def _sender_address(cls, value: object) -> str | None:
        if value is None:
            return None
        text = str(value).strip().removeprefix("tel:").replace(" ", "")
        text = text.removeprefix("+") if text.startswith("+") else text.removeprefix("00")
        if not text.isdigit() or not 4 <= len(text) <= 15:
            raise ValueError(f"sender_address must be digits like 2250000, got {value!r}")
        return text

    @field_validator("sender_name")
    @classmethod
    def _sender_name(cls, value: str | None) -> str | None:
        if value is not None and not SENDER_NAME_RE.match(value):
            raise SenderNameError(
                f"sender_name {value!r} must be 1-11 letters, digits or spaces", key="sender_name"
            )
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return country_alpha3(value) if value else None

    @model_validator(mode="after")
    def _complete(self) -> OrangeOptions:
        if self.authorization_header is None and not (self.client_id and self.client_secret):
            raise ValueError("set client_id and client_secret, or authorization_header")
        if (
            self.authorization_header is not None
            and not self.authorization_header.get_secret_value().startswith("Basic ")
        ):
            raise ValueError('authorization_header must start with "Basic "')
        if self.sender_address is None:
            if self.country is None:
                raise ValueError("set sender_address or country")
            if self.country not in SENDER_NUMBERS:
                raise ValueError(f"no known sender number for {self.country}: set sender_address")
            object.__setattr__(self, "sender_address", SENDER_NUMBERS[self.country])
        if self.country is None:
            object.__setattr__(self, "country", infer_country(self.sender_address or ""))
        return self

    def basic_header(self) -> str:
        """The token request's ``Authorization: Basic ...`` value (a secret)."""
        if self.authorization_header is not None:
            return self.authorization_header.get_secret_value()
        secret = self.client_secret.get_secret_value() if self.client_secret else ""
        pair = f"{self.client_id}:{secret}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def is_number(sender: str) -> bool:
    """Whether a message's sender is a number (``tel:+2250000``) rather than a name."""
    return sender.removeprefix("tel:").lstrip("+").isdigit()


def check_sender(sender: str, sender_address: str | None) -> None:
    """Raise :class:`InvalidSender` unless ``sender`` is an approvable sender name or the
    phone's own ``sender_address`` (Orange sends from it, whatever the message says)."""
    if sender.removeprefix("tel:").lstrip("+") == sender_address:
        return
    if is_number(sender):
        raise InvalidSender(
            f"Orange sends from tel:+{sender_address}; a message sender must be a sender "
            f"name, not the number {sender!r}"
        )
    if not SENDER_NAME_RE.match(sender):
        raise InvalidSender(f"sender name {sender!r} must be 1-11 letters, digits or spaces")


def infer_country(sender_address: str) -> str:
    """The alpha-3 country of a sender address: Orange's table, else its calling code."""
    found = country_for_sender(sender_address)
    if found:
        return found
    for size in (1, 2, 3):
        region = phonenumbers.region_code_for_country_code(int(sender_address[:size]))
        if region and region != "ZZ":
            return country_alpha3(region)
    raise ValueError(f"cannot infer the country of sender_address {sender_address}: set country")

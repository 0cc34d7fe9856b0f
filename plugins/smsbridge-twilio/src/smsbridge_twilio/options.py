"""Options of the Twilio phone, and the sender rules they share with the phone."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from smsbridge.errors import InvalidRecipient
from smsbridge.numbers import normalize
from smsbridge.phone import PhoneOptions

__all__ = ["TWILIO_API", "TwilioOptions", "sender_problem"]

TWILIO_API = "https://api.twilio.com"
# Alphanumeric sender IDs: up to 11 of these characters, at least one letter.
ALPHA_SENDER_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 +\-_&]{1,11}$")
SHORT_CODE_RE = re.compile(r"^[0-9]{3,8}$")


def sender_problem(sender: str) -> str | None:
    """Why Twilio cannot send as ``sender`` (E.164, short code, alphanumeric ID), or None."""
    if sender.startswith("+"):
        try:
            normalize(sender)
        except InvalidRecipient:
            return f"sender {sender!r} is not a valid E.164 number"
        return None
    if sender.isdigit():
        if SHORT_CODE_RE.match(sender):
            return None
        return f"sender {sender!r}: write numbers in E.164 (+...); short codes have 3-8 digits"
    if ALPHA_SENDER_RE.match(sender):
        return None
    return (
        f"sender ID {sender!r} must be 1-11 letters, digits, spaces or + - _ & "
        "with at least one letter"
    )


class TwilioOptions(PhoneOptions):
    """Options of a Twilio phone (YAML keys; ``from`` is the Python ``from_``)."""

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$", description="Account SID (AC...).")
    auth_token: SecretStr | None = Field(
        default=None, description="Auth token: API calls and webhook signature checks."
    )
    api_key: str | None = Field(
        default=None, pattern=r"^SK[0-9a-fA-F]{32}$", description="API key SID (SK...)."
    )
    api_secret: SecretStr | None = Field(default=None, description="Secret of `api_key`.")
    from_: str | None = Field(
        default=None, alias="from", description="E.164 number, short code or sender ID."
    )
    messaging_service_sid: str | None = Field(
        default=None, pattern=r"^MG[0-9a-fA-F]{32}$", description="Messaging Service (MG...)."
    )
    status_callback: str | None = Field(
        default=None,
        description="Status callback URL; default {public_url}/webhooks/{phone}/status; '' = none.",
    )
    validity_period: int | None = Field(
        default=None, ge=1, le=36000, description="Seconds a message may wait in Twilio's queue."
    )
    base_url: str = Field(default=TWILIO_API, description="API host (tests, proxies).")

    def credentials(self) -> tuple[str, str]:
        """The API's Basic auth: the API key and its secret, else the account SID and token."""
        if self.api_key is not None and self.api_secret is not None:
            return self.api_key, self.api_secret.get_secret_value()
        # _credentials guarantees an auth token here
        token = self.auth_token.get_secret_value() if self.auth_token else ""
        return self.account_sid, token

    @field_validator("from_")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is not None and (problem := sender_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("base_url", "status_callback")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _credentials(self) -> TwilioOptions:
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("api_key and api_secret go together")
        if self.auth_token is None and self.api_key is None:
            raise ValueError("set auth_token, or api_key + api_secret")
        if not self.from_ and not self.messaging_service_sid:
            raise ValueError("set `from` or messaging_service_sid")
        return self

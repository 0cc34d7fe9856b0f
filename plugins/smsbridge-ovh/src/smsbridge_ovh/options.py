"""The options of an OVH phone (one OVH SMS service) and the senders OVH accepts."""

from __future__ import annotations

import re
from typing import Literal

import ovh
from pydantic import Field, SecretStr, field_validator, model_validator

from smsbridge.phone import PhoneOptions

__all__ = ["SENDER_RE", "OvhOptions"]

#: A sender name OVH can validate (1-11 letters, digits or spaces) or a number.
SENDER_RE = re.compile(r"^(?:[A-Za-z0-9 ]{1,11}|\+?[0-9]{3,16})$")


class OvhOptions(PhoneOptions):
    endpoint: str = Field(
        default="ovh-eu",
        description="OVH region (ovh-eu, ovh-ca, ovh-us...) "
        "or an API base URL such as http://127.0.0.1:8080/1.0 (tests).",
    )
    application_key: SecretStr = Field(description="Application Key (AK).")
    application_secret: SecretStr = Field(description="Application Secret (AS).")
    consumer_key: SecretStr = Field(description="Consumer Key (CK) granted on /sms/*.")
    service_name: str = Field(min_length=1, description="SMS service, e.g. sms-ab12345-1.")
    sender: str | None = Field(
        default=None,
        description="Validated sender; none: the "
        "shortcode with senderForResponse (replies for 48 h).",
    )
    no_stop_clause: bool = Field(default=False, description="noStopClause (not for marketing).")
    priority: Literal["high", "medium", "low", "veryLow"] | None = None
    validity_period: int | None = Field(default=None, ge=1, description="Minutes (OVH: 2880).")
    status_webhook: bool = Field(
        default=True,
        description="Status by OVH's callback URL "
        "(needs webhook_secret); false: poll with fetch_status only.",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value in ovh.client.ENDPOINTS or re.match(r"^https?://[^/\s]+", value):
            return value.rstrip("/")
        raise ValueError(
            f"unknown OVH endpoint {value!r}: use one of "
            f"{', '.join(ovh.client.ENDPOINTS)} or an http(s):// URL"
        )

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is not None and not SENDER_RE.match(value):
            raise ValueError(
                f"sender {value!r} must be 1-11 letters, digits or spaces, or a number"
            )
        return value

    @model_validator(mode="after")
    def _secret_for_webhook(self) -> OvhOptions:
        if self.status_webhook and self.webhook_secret is None:
            raise ValueError(
                "webhook_secret is required for OVH status callbacks (OVH does not "
                "sign them); set it, or set status_webhook: false to poll statuses"
            )
        return self

"""SNS phone options, the AWS sender rules and the SMS message attributes of a publish."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from smsbridge.errors import InvalidRecipient, InvalidSender
from smsbridge.numbers import normalize
from smsbridge.phone import PhoneOptions

__all__ = ["SENDER_ID_RE", "SnsOptions", "check_sender", "message_attributes"]

# AWS: 1-11 alphanumeric characters, at least one letter, no spaces.
SENDER_ID_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")


class SnsOptions(PhoneOptions):
    region: str | None = Field(default=None, description="AWS region, e.g. eu-west-1.")
    aws_access_key_id: SecretStr | None = Field(default=None, description="Else boto3's chain.")
    aws_secret_access_key: SecretStr | None = Field(default=None, description="Else boto3's chain.")
    aws_session_token: SecretStr | None = Field(default=None, description="Temporary credentials.")
    profile: str | None = Field(default=None, description="Named profile in ~/.aws/config.")
    endpoint_url: str | None = Field(default=None, description="Override (tests, VPC endpoints).")
    sender_id: str | None = Field(default=None, description="Default AWS.SNS.SMS.SenderID.")
    sms_type: Literal["Transactional", "Promotional"] = Field(default="Transactional")
    origination_number: str | None = Field(default=None, description="AWS.MM.SMS.OriginationNumber")
    max_price: Decimal | None = Field(default=None, gt=0, description="USD per message.")
    check_opt_out: bool = Field(default=False, description="Refuse opted-out numbers first.")
    delivery_log_group: str | None = Field(
        default=None, description="CloudWatch Logs group of SMS delivery status (enables status)."
    )
    delivery_log_lookback_hours: float = Field(default=96.0, gt=0)
    topic_arns: list[str] | None = Field(
        default=None, description="Only accept inbound notifications from these topics."
    )
    confirm_subscriptions: bool = Field(default=True, description="Confirm signed subscriptions.")

    @field_validator("sender_id")
    @classmethod
    def _sender_id(cls, value: str | None) -> str | None:
        if value is not None and not SENDER_ID_RE.match(value):
            raise ValueError("sender_id must be 1-11 letters/digits with at least one letter")
        return value

    @field_validator("sms_type", mode="before")
    @classmethod
    def _sms_type(cls, value: Any) -> Any:
        return value.strip().capitalize() if isinstance(value, str) else value

    @field_validator("origination_number")
    @classmethod
    def _origination(cls, value: str | None) -> str | None:
        return normalize(value) if value else value


def check_sender(sender: str) -> None:
    """An E.164 origination number, or an AWS sender ID (1-11 alphanumerics, a letter);
    else :class:`InvalidSender`."""
    if sender.startswith("+"):
        try:
            normalize(sender)
        except InvalidRecipient:
            raise InvalidSender(f"sender {sender!r} is not a valid E.164 number") from None
        return
    if not SENDER_ID_RE.match(sender):
        raise InvalidSender(
            f"SNS sender ID {sender!r} must be 1-11 letters or digits, at least one letter,"
            " no spaces"
        )


def message_attributes(options: SnsOptions, sender: str | None) -> dict[str, dict[str, str]]:
    """The ``MessageAttributes`` of one publish: SMS type, sender ID or origination number
    (a ``+`` sender is a number, else a sender ID; both default to the options), max price."""
    attrs = {"AWS.SNS.SMS.SMSType": string(options.sms_type)}
    sender_id, origination = options.sender_id, options.origination_number
    if sender:
        if sender.startswith("+"):
            origination = normalize(sender)
        else:
            sender_id = sender
    if sender_id:
        attrs["AWS.SNS.SMS.SenderID"] = string(sender_id)
    if origination:
        attrs["AWS.MM.SMS.OriginationNumber"] = string(origination)
    if options.max_price is not None:
        attrs["AWS.SNS.SMS.MaxPrice"] = {
            "DataType": "Number",
            "StringValue": str(options.max_price),
        }
    return attrs


def string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}

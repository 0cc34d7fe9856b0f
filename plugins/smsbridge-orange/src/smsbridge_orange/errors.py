"""Orange error bodies → the smsbridge error tree.

Orange answers errors in three body families (see docs/providers/orange.md):

1. gateway errors ``{"code": 42, "message": "...", "description": "..."}``;
2. OneAPI errors ``{"requestError": {"serviceException"|"policyException":
   {"messageId": "SVC0004", "text": "... %1 ...", "variables": [...]}}}``;
3. OAuth errors ``{"error": "invalid_client", "error_description": "..."}``.

:func:`parse_error` reads any of them into an :class:`OrangeError` (code, the provider's
own text with ``%1`` variables substituted, Retry-After); :func:`to_exception` maps it
through the phone's :meth:`~smsbridge.phone.Phone.provider_error` (:data:`ERROR_CODES`,
then the HTTP status). Orange's exact SVC/POL identifiers are not all published, so the
generic ones (SVC0001, SVC0002, POL0001...) are classified by the words of their
variables/text instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import requests

from smsbridge.errors import (
    AuthError,
    InsufficientCredit,
    InvalidRecipient,
    InvalidSender,
    MessageError,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SendError,
    SmsBridgeError,
    UnsupportedFeature,
)
from smsbridge.http import parse_retry_after
from smsbridge.phone import ErrorRule, Phone, PreparedMessage, Submission

__all__ = [
    "ERROR_CODES",
    "EXPIRED_TOKEN",
    "ErrorMapper",
    "OrangeError",
    "parse_error",
    "to_exception",
]

EXPIRED_TOKEN = 42

#: Orange codes (gateway codes, OneAPI ids, OAuth errors) that settle the error class.
ERROR_CODES: dict[str, ErrorRule] = {
    "1": ProviderUnavailable,  # gateway: internal error
    "5": ProviderUnavailable,  # gateway: service unavailable
    "40": AuthError,  # missing credentials
    "41": AuthError,  # invalid credentials
    str(EXPIRED_TOKEN): AuthError,  # expired credentials (refreshed once first)
    "50": AuthError,  # access denied
    "53": RateLimited,  # too many requests
    "SVC0004": InvalidRecipient,  # no valid addresses
    "invalid_client": AuthError,
    "invalid_grant": AuthError,
    "unauthorized_client": AuthError,
    "access_denied": AuthError,
}

#: Seconds to wait on a throttling answer without Retry-After.
DEFAULT_RETRY_AFTER = 1.0

_CREDIT = re.compile(
    r"credit|units?\b|bundle|balance|contract|expired|no valid|insufficient|solde", re.I
)
_THROTTLE = re.compile(r"too many|throttl|rate.?limit|tps|spike|quota", re.I)
_SENDER = re.compile(r"sender ?name|sendername|sender", re.I)
_ADDRESS = re.compile(r"address|msisdn|recipient|destination|number", re.I)


@dataclass(frozen=True)
class OrangeError:
    """One parsed error response."""

    status: int
    family: str  # "gateway" | "service" | "policy" | "oauth" | "http"
    code: str | None
    text: str
    detail: str  # variables only (what classification reads for generic OneAPI ids)
    retry_after: float | None = None
    raw: Any = None

    def describe(self) -> str:
        return (
            f"Orange HTTP {self.status}: {self.text}" if self.text else f"Orange HTTP {self.status}"
        )


def _substitute(text: str, variables: list[Any]) -> str:
    for i, value in reversed(list(enumerate(variables, start=1))):
        text = text.replace(f"%{i}", str(value))
    return text


def parse_error(response: requests.Response) -> OrangeError:
    """Read an Orange error response of any family (or a bare HTTP status)."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    try:
        data: Any = response.json()
    except ValueError:
        text = (response.text or "").strip()[:200]
        return OrangeError(status, "http", None, text or response.reason or "", "", retry_after)
    if isinstance(data, dict) and isinstance(data.get("requestError"), dict):
        request_error = data["requestError"]
        for family in ("policyException", "serviceException"):
            exc = request_error.get(family)
            if isinstance(exc, dict):
                variables = exc.get("variables") or []
                if not isinstance(variables, list):
                    variables = [variables]
                text = _substitute(str(exc.get("text") or ""), variables)
                message_id = exc.get("messageId")
                prefix = f"{message_id}: " if message_id else ""
                return OrangeError(
                    status,
                    family.removesuffix("Exception"),
                    str(message_id) if message_id else None,
                    prefix + text,
                    " ".join(str(v) for v in variables),
                    retry_after,
                    data,
                )
    if isinstance(data, dict) and "code" in data and ("message" in data or "description" in data):
        parts = [str(data.get("message") or ""), str(data.get("description") or "")]
        text = " – ".join(p for p in parts if p)
        return OrangeError(status, "gateway", str(data["code"]), text, "", retry_after, data)
    if isinstance(data, dict) and "error" in data:
        parts = [str(data.get("error") or ""), str(data.get("error_description") or "")]
        text = ": ".join(p for p in parts if p)
        return OrangeError(status, "oauth", str(data["error"]), text, "", retry_after, data)
    return OrangeError(status, "http", None, str(data)[:200], "", retry_after, data)


def _by_words(err: OrangeError) -> tuple[type[SendError] | type[MessageError], str]:
    """The class of a generic OneAPI id from its variables (else its text), and the text."""
    words, text = err.detail or err.text, err.describe()
    policy = err.family == "policy"
    if policy and _THROTTLE.search(err.detail):
        return RateLimited, text
    if policy and _CREDIT.search(words):
        return InsufficientCredit, text
    if _SENDER.search(words):
        return InvalidSender, f"{text}; is the sender name approved for this Orange account?"
    if _ADDRESS.search(words):
        return InvalidRecipient, text
    return Rejected, text


def _special(
    err: OrangeError, codes: Mapping[Any, ErrorRule]
) -> tuple[type[SendError] | type[MessageError], str] | None:
    """The class where Orange's answer says more than its code and HTTP status, and the
    text; None where ``codes``, then the HTTP status, decide (``Phone.provider_error``)."""
    rule = codes.get(err.code) if err.code is not None else None
    listed = rule if rule is None or isinstance(rule, type) else rule[0]
    text, status = err.describe(), err.status
    if status == 429 and listed not in (None, RateLimited):
        return RateLimited, text  # throttling wins over the code
    if status >= 500 and listed is not None and issubclass(listed, MessageError):
        return ProviderUnavailable, text  # an outage is no verdict on the message
    if listed is None and err.family == "oauth" and status == 400:
        return AuthError, text  # a refused token request (invalid_request...)
    if listed is None and err.family == "gateway" and status in (401, 403):
        return SendError, text  # not one of Orange's credential codes
    if listed is None and err.family in ("service", "policy") and status < 500 and status != 429:
        return _by_words(err)
    return None


class ErrorMapper(Phone):
    """A phone that sends nothing: Orange's mapping where no configured phone is at hand
    (:func:`to_exception` given a phone's name)."""

    plugin: ClassVar[str] = "orange"
    ERROR_CODES: ClassVar[Mapping[Any, ErrorRule]] = ERROR_CODES

    def submit(self, message: PreparedMessage) -> Submission:
        raise UnsupportedFeature(f"{self.name}: an ErrorMapper sends nothing")


def to_exception(err: OrangeError, phone: Phone | str | None = None) -> SmsBridgeError:
    """The smsbridge exception for an Orange error (keeps Orange's text and code), built by
    ``phone``'s ``provider_error``; a phone name (or None) maps with :data:`ERROR_CODES`.

    Orange's own rules come first: a 429 is :class:`RateLimited` and a 5xx
    :class:`ProviderUnavailable` whatever the code says about the message, an OAuth
    refusal on 400 is an :class:`AuthError`, a gateway code not listed on 401/403 a plain
    :class:`SendError`, a generic OneAPI id on a 4xx goes by its words. Throttling without
    Retry-After waits one second.
    """
    if not isinstance(phone, Phone):
        phone = ErrorMapper(phone or "orange")
    retry_after = err.retry_after or DEFAULT_RETRY_AFTER
    special = _special(err, phone.ERROR_CODES)
    if special is None:
        return phone.provider_error(
            err.describe(),
            code=err.code,
            http_status=err.status,
            retry_after=retry_after,
            raw=err.raw,
        )
    # provider_error cannot be told the class: the same fields, built here
    kind, text = special
    if issubclass(kind, MessageError):
        return kind(phone.redact(f"{text} (Orange error {err.code})"), provider_code=err.code)
    fields: dict[str, Any] = {"phone": phone.name, "provider_code": err.code, "raw": err.raw}
    if issubclass(kind, RateLimited):
        return kind(phone.redact(text), retry_after=retry_after, **fields)
    return kind(phone.redact(text), **fields)

"""Orange error bodies → the smsbridge error tree.

Orange answers errors in three body families (see docs/providers/orange.md):

1. gateway errors ``{"code": 42, "message": "...", "description": "..."}``;
2. OneAPI errors ``{"requestError": {"serviceException"|"policyException":
   {"messageId": "SVC0004", "text": "... %1 ...", "variables": [...]}}}``;
3. OAuth errors ``{"error": "invalid_client", "error_description": "..."}``.

:func:`parse_error` reads any of them into an :class:`OrangeError` (code + the provider's
own text, ``%1`` variables substituted); :func:`to_exception` picks the smsbridge class.
Orange's exact SVC/POL identifiers are not all published, so OneAPI errors are classified
by identifier first and then by the words of their variables/text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
)

__all__ = ["EXPIRED_TOKEN", "OrangeError", "parse_error", "to_exception"]

EXPIRED_TOKEN = 42
AUTH_CODES = {40, 41, 42, 50}
UNAVAILABLE_CODES = {1, 5}
THROTTLE_CODES = {53}
AUTH_OAUTH_ERRORS = {"invalid_client", "invalid_grant", "unauthorized_client", "access_denied"}

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


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def parse_error(response: requests.Response) -> OrangeError:
    """Read an Orange error response of any family (or a bare HTTP status)."""
    status = response.status_code
    retry_after = _retry_after(response)
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


def _int(code: str | None) -> int | None:
    try:
        return int(code) if code is not None else None
    except ValueError:
        return None


def to_exception(err: OrangeError, phone: str | None = None) -> SendError | MessageError:
    """The smsbridge exception for an Orange error (keeps Orange's text and code)."""
    message = err.describe()
    kw: dict[str, Any] = {"phone": phone, "provider_code": err.code, "raw": err.raw}
    code = _int(err.code) if err.family == "gateway" else None
    if err.status == 429 or code in THROTTLE_CODES:
        return RateLimited(message, retry_after=err.retry_after or 1.0, **kw)
    if err.family == "oauth" and (err.code in AUTH_OAUTH_ERRORS or err.status in (400, 401, 403)):
        return AuthError(message, **kw)
    if code in AUTH_CODES or (err.family in ("http", "oauth") and err.status in (401, 403)):
        return AuthError(message, **kw)
    if err.status >= 500 or code in UNAVAILABLE_CODES:
        return ProviderUnavailable(message, **kw)
    if err.family in ("service", "policy"):
        # Generic ids (SVC0001/SVC0002/POL0001) put the useful part in the variables.
        words = err.detail or err.text
        if err.code == "SVC0004":
            return InvalidRecipient(message, provider_code=err.code)
        if err.family == "policy" and _THROTTLE.search(err.detail or ""):
            return RateLimited(message, retry_after=err.retry_after or 1.0, **kw)
        if err.family == "policy" and _CREDIT.search(words):
            return InsufficientCredit(message, **kw)
        if _SENDER.search(words):
            return InvalidSender(
                f"{message}; is the sender name approved for this Orange account?",
                provider_code=err.code,
            )
        if _ADDRESS.search(words):
            return InvalidRecipient(message, provider_code=err.code)
        return Rejected(message, **kw)
    # gateway 22/27/60/61/62/68, bodiless 404s...: a client or configuration problem,
    # not a verdict on this message.
    return SendError(message, **kw)

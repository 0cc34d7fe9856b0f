"""Twilio error codes, and what an SDK exception says (code, HTTP status, text)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from smsbridge.errors import AuthError, InvalidRecipient, InvalidSender, RateLimited, Rejected
from smsbridge.phone import ErrorRule

__all__ = ["ERROR_CODES", "TWILIO_ERRORS", "TwilioError", "describe"]

#: What the SDK raises for an error answer: legacy bodies and RFC 9457 problems.
TwilioError: TypeAlias = TwilioRestException | TwilioServiceException
TWILIO_ERRORS = (TwilioRestException, TwilioServiceException)

#: Twilio error code -> smsbridge error (see :meth:`Phone.provider_error`). Unlisted codes:
#: HTTP status decides (401/403 auth, 429 rate limit, 5xx unavailable), else :class:`SendError`.
ERROR_CODES: Mapping[int, ErrorRule] = {
    21211: InvalidRecipient,  # invalid 'To' number
    21614: InvalidRecipient,  # 'To' is not a mobile number
    21212: InvalidSender,  # invalid 'From' number
    21606: InvalidSender,  # 'From' is not a valid, SMS-capable number of the account
    21659: InvalidSender,  # 'From' is not a Twilio number
    21610: (Rejected, {"opt_out": True}),  # recipient replied STOP
    20003: AuthError,  # authentication failed
    20005: AuthError,  # account not active
    20429: RateLimited,  # too many requests
}


def describe(exc: TwilioError, body: Any) -> tuple[int | None, int, str]:
    """``(code, http_status, text)`` of an SDK error; ``body`` is the parsed answer, used
    when the SDK found no message in it. The text starts with "Twilio: " (not redacted)."""
    status = int(exc.status or 0)
    code = int(exc.code) if exc.code else None
    if isinstance(exc, TwilioServiceException):
        return code, status, f"Twilio: {exc.detail or exc.title}"
    text = str(exc.msg).removeprefix("Unable to create record: ")
    if ": " not in str(exc.msg):  # no "message" in the body: say what came back
        found = body.get("detail") or body.get("title") if isinstance(body, dict) else None
        text = f"{text} (HTTP {status}{': ' + str(found) if found else ''})"
    return code, status, f"Twilio: {text}"

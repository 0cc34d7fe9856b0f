"""What OVH's answers mean: status codes (DLR ids, ptt) and errors from the ``ovh`` SDK.

Sources: OVH's guide "Tout savoir sur les utilisateurs SMS" (ptt and DLR id tables),
the ``ovh`` SDK's exception mapping (``Client.call``), and DESIGN §4 / §5.
"""

from __future__ import annotations

import re
from typing import Any

import requests
from ovh import exceptions as ox  # type: ignore[import-untyped]

from smsbridge.errors import (
    AmbiguousSend,
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
from smsbridge.status import Status

__all__ = ["DLR_STATUS", "PTT_STATUS", "PTT_TEXT", "map_error", "ptt_status", "to_int"]

# DLR ids (``dlr`` / ``description``) and ptt codes, per DESIGN §4 / provider-apis §2.4, §5.
DLR_STATUS = {
    "0": Status.queued,
    "4": Status.queued,
    "8": Status.sent,
    "1": Status.delivered,
    "2": Status.failed,
    "16": Status.failed,
}
PTT_TEXT = {
    1: "intermediate: phone problem, retrying",
    2: "intermediate: operator problem, retrying",
    3: "accepted by the operator",
    4: "delivered",
    5: "undelivered",
    6: "cannot be determined",
    8: "expired in the SMSC",
    20: "undeliverable in its current form",
    21: "insufficient subscriber credit",
    23: "invalid, blacklisted or barred number",
    24: "subscriber absent",
    25: "temporary network error",
    26: "temporary phone error",
    27: "handset incompatible",
    28: "suspected spam",
    29: "content not permitted",
    33: "parental lock",
    39: "new operator failure",
    73: "ported number unreachable",
    74: "roaming",
    76: "ported combination blocked",
    202: "ported combination blocked",
}
PTT_STATUS = {
    1: Status.sent,
    2: Status.sent,
    3: Status.sent,
    4: Status.delivered,
    5: Status.failed,
    6: Status.unknown,
    8: Status.failed,
}
PTT_STATUS.update({code: Status.failed for code in PTT_TEXT if code >= 20})

_AUTH_EXC = (ox.InvalidKey, ox.InvalidCredential, ox.NotCredential, ox.NotGrantedCall, ox.Forbidden)
_AUTH_CODES = {
    "INVALID_SIGNATURE",
    "QUERY_TIME_OUT",
    "INVALID_KEY",
    "INVALID_CREDENTIAL",
    "NOT_CREDENTIAL",
    "NOT_GRANTED_CALL",
    "FORBIDDEN",
    "NOT_AUTHENTICATED",
}


def to_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def ptt_status(ptt: Any) -> Status:
    code = to_int(ptt)
    if code is None:
        return Status.unknown
    return PTT_STATUS.get(code, Status.failed if code >= 20 else Status.unknown)


def map_error(exc: Any, *, phone: str, service: str, sending: bool) -> SendError | MessageError:
    """The smsbridge error for an ``ovh`` SDK exception (``sending``: during a POST)."""
    response = getattr(exc, "response", None)
    status = response.status_code if response is not None else None
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = body.get("errorCode") or body.get("class") or status
    text = str(body.get("message") or (exc.args[0] if exc.args else type(exc).__name__))
    raw = {"http_status": status, "body": body, "query_id": getattr(exc, "query_id", None)}
    kw: dict[str, Any] = {"phone": phone, "provider_code": code, "raw": raw}
    low = text.lower()
    if isinstance(exc, ox.HTTPError):
        return _network_error(exc, sending, kw)
    if isinstance(exc, ox.InvalidResponse):
        if sending:
            return AmbiguousSend(
                "OVH answered the send with an unreadable body; the SMS "
                "may or may not have gone out",
                **kw,
            )
        return ProviderUnavailable("OVH answered with an unreadable body", **kw)
    if re.search(r"\bcredits?\b", low) or status == 402:
        return InsufficientCredit(f"OVH: not enough SMS credits ({text})", **kw)
    if isinstance(exc, ox.ResourceExpiredError):
        return InsufficientCredit(f"OVH service expired: {text}", **kw)
    if isinstance(exc, _AUTH_EXC) or status in (401, 403) or code in _AUTH_CODES:
        return AuthError(f"OVH refused the credentials: {text}", **kw)
    if isinstance(exc, ox.ResourceNotFoundError):
        return AuthError(
            f"OVH: {text} (check service_name {service!r} and the key's rights)",
            **kw,
        )
    if status == 429:
        after = response.headers.get("Retry-After") if response is not None else None
        return RateLimited(
            f"OVH rate limit: {text}",
            **kw,
            retry_after=float(after) if after and after.isdigit() else None,
        )
    if status is not None and status >= 500:
        return ProviderUnavailable(f"OVH failed ({status}): {text}", **kw)
    if isinstance(exc, (ox.BadParametersError, ox.ResourceConflictError)):
        if "sender" in low:
            return InvalidSender(f"OVH refused the sender: {text}")
        if "receiver" in low:
            return InvalidRecipient(f"OVH refused the receiver: {text}")
        return Rejected(f"OVH refused the message: {text}", **kw)
    return SendError(f"OVH error ({status}): {text}", **kw)


def _network_error(exc: Any, sending: bool, kw: dict[str, Any]) -> SendError:
    cause = exc.args[1] if len(exc.args) > 1 else None
    kw["provider_code"] = None
    name = type(cause).__name__ if cause is not None else "network error"
    after_send = isinstance(cause, requests.ReadTimeout) or (
        isinstance(cause, requests.ConnectionError)
        and not isinstance(cause, requests.ConnectTimeout)
        and "aborted" in str(cause).lower()
    )
    if sending and after_send:
        return AmbiguousSend(
            f"no answer from OVH after the send was posted ({name}); the "
            "SMS may or may not have gone out",
            **kw,
        )
    return ProviderUnavailable(f"cannot reach OVH ({name})", **kw)

"""What OVH's answers mean: status codes (DLR ids, ptt) and errors from the ``ovh`` SDK.

Sources: OVH's guide "Tout savoir sur les utilisateurs SMS" (ptt and DLR id tables),
the ``ovh`` SDK's exception mapping (``Client.call``), and DESIGN §4 / §5.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import requests
from ovh import exceptions as ox

from smsbridge.errors import (
    AmbiguousSend,
    AuthError,
    InsufficientCredit,
    InvalidRecipient,
    InvalidSender,
    ProviderUnavailable,
    Rejected,
    SendError,
    SmsBridgeError,
)
from smsbridge.http import parse_retry_after
from smsbridge.phone import ErrorRule, Phone
from smsbridge.status import Status, map_status

__all__ = [
    "DLR_STATUS",
    "ERROR_CODES",
    "PTT_STATUS",
    "PTT_TEXT",
    "STATUS_MAP",
    "Delivery",
    "delivery",
    "map_error",
    "ptt_status",
    "to_int",
]

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

#: ``raw_status`` keys: ``dlr:<id>`` and ``ptt:<code>``.
STATUS_MAP: Mapping[str, Status] = {
    **{f"dlr:{k}": v for k, v in DLR_STATUS.items()},
    **{f"ptt:{k}": v for k, v in PTT_STATUS.items()},
}

AUTH_CODES = (
    "INVALID_SIGNATURE",
    "QUERY_TIME_OUT",
    "INVALID_KEY",
    "INVALID_CREDENTIAL",
    "NOT_CREDENTIAL",
    "NOT_GRANTED_CALL",
    "FORBIDDEN",
    "NOT_AUTHENTICATED",
)
#: OVH's ``errorCode`` → error, else the HTTP status (as the SDK's exception classes
#: tell them apart); other 401/403 → AuthError, 429 → RateLimited, 5xx →
#: ProviderUnavailable (the base's fallbacks). ``provider_code`` stays OVH's
#: ``errorCode`` or ``class`` (``Client::BadRequest``...).
ERROR_CODES: Mapping[Any, ErrorRule] = {
    **dict.fromkeys(AUTH_CODES, AuthError),
    400: Rejected,  # an InvalidSender/InvalidRecipient when about the sender/receiver
    402: InsufficientCredit,  # also any answer about credits (see map_error)
    404: AuthError,  # the service: a wrong service_name, or no rights on it
    409: Rejected,
    460: InsufficientCredit,  # the service expired
}
AUTH_EXC = (ox.InvalidKey, ox.InvalidCredential, ox.NotCredential, ox.NotGrantedCall, ox.Forbidden)
CREDITS_RE = re.compile(r"\bcredits?\b", re.IGNORECASE)


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


class Delivery(NamedTuple):
    """What a DLR id and a ptt code say together (a StatusReport's fields)."""

    status: Status
    raw_status: str
    error_code: str | None
    error_message: str | None


def delivery(dlr: Any, ptt: Any, text: str | None = None) -> Delivery:
    """A final state wins (the DLR id first), else the more advanced one. ``text``:
    OVH's ``descriptionDlr``, else the ptt meaning, for failures."""
    parts = [f"{k}:{v}" for k, v in (("dlr", dlr), ("ptt", ptt)) if v not in (None, "")]
    by_dlr = map_status(STATUS_MAP, parts[0]) if dlr not in (None, "") else Status.unknown
    by_ptt = ptt_status(ptt)
    finals = [s for s in (by_dlr, by_ptt) if s.is_final]
    status = finals[0] if finals else max(by_dlr, by_ptt, key=lambda s: s.rank)
    code = message = None
    if status is Status.failed:
        code = f"ptt:{ptt}" if by_ptt is Status.failed else parts[0]
        message = text or (PTT_TEXT.get(to_int(ptt) or -1) if ptt is not None else None)
    return Delivery(status, ",".join(parts), code, message)


def map_error(phone: Phone, exc: Any, *, service: str, sending: bool) -> SmsBridgeError:
    """The smsbridge error for an ``ovh`` SDK exception (``sending``: during a POST).

    OVH's answers go through ``phone.provider_error`` (:data:`ERROR_CODES`); answers
    about credits, senders and receivers are told by their wording.
    """
    response = getattr(exc, "response", None)
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    status = response.status_code if response is not None else None
    code = body.get("errorCode") or body.get("class") or status
    message = str(body.get("message") or (exc.args[0] if exc.args else type(exc).__name__))
    raw = {"http_status": status, "body": body, "query_id": getattr(exc, "query_id", None)}
    if response is None:
        return _no_answer(phone, exc, message, sending=sending, raw=raw)
    low = message.lower()
    if status in (402, 460) or CREDITS_RE.search(message):  # no credits, service expired
        key: Any = status if status in (402, 460) else 402
    else:
        key = code if code in ERROR_CODES else status
    if ERROR_CODES.get(key) is Rejected:  # 400, 409: the SDK's BadParameters, Conflict
        for word, kind in (("sender", InvalidSender), ("receiver", InvalidRecipient)):
            if word in low:
                return kind(phone.redact(f"OVH refused the {word}: {message}"), provider_code=code)
    hint = f" (check service_name {service!r} and the key's rights)" if status == 404 else ""
    error = phone.provider_error(
        f"OVH ({status}): {message}{hint}",
        code=key,
        http_status=status,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        raw=raw,
    )
    if key != code and isinstance(error, SendError):  # the wording or the status told
        error.provider_code = str(code)
    return error


def _no_answer(
    phone: Phone, exc: Any, message: str, *, sending: bool, raw: dict[str, Any]
) -> SendError:
    """No answer from OVH: the network failed, the body was unreadable, or the SDK
    refused to sign (an empty key)."""
    kw: dict[str, Any] = {"phone": phone.name, "raw": raw}
    if isinstance(exc, ox.HTTPError):
        cause = exc.args[1] if len(exc.args) > 1 else None
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
    if isinstance(exc, ox.InvalidResponse):
        if sending:
            return AmbiguousSend(
                "OVH answered the send with an unreadable body; the SMS "
                "may or may not have gone out",
                **kw,
            )
        return ProviderUnavailable("OVH answered with an unreadable body", **kw)
    if isinstance(exc, AUTH_EXC):
        return AuthError(phone.redact(f"OVH refused the credentials: {message}"), **kw)
    return SendError(phone.redact(f"OVH error: {message}"), **kw)

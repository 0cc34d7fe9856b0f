"""OVHcloud SMS phone for smsbridge, through the official ``ovh`` SDK.

Send: ``POST /sms/{service}/jobs`` (one job, one receiver). Status: OVH's service-level
callback (a GET with ``id``, ``ptt``, ``dlr``/``description``) on
``/webhooks/{phone}/status?token=...``, or polling ``/sms/{service}/outgoing/{id}``.
Inbound (replies to a shortcode, 48 hours): polled from ``/sms/{service}/incoming`` and
deleted at OVH only after the bridge took them. Balance: the service's ``creditsLeft``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

import ovh  # type: ignore[import-untyped]
from ovh import exceptions as ox
from pydantic import Field, SecretStr, field_validator, model_validator

from smsbridge.capabilities import Capabilities
from smsbridge.errors import (
    AuthError,
    InvalidRecipient,
    InvalidSender,
    MessageError,
    Rejected,
    SendError,
    WebhookAuthError,
    WebhookParseError,
)
from smsbridge.http import WebhookRequest
from smsbridge.message import Balance, IncomingMessage, StatusReport
from smsbridge.numbers import normalize
from smsbridge.phone import Phone, PhoneOptions, PreparedMessage, Submission
from smsbridge.status import Status

from .codes import DLR_STATUS, PTT_STATUS, PTT_TEXT, map_error, ptt_status, to_int

__all__ = ["OvhOptions", "OvhPhone"]
__version__ = "0.1.0"

log = logging.getLogger("smsbridge.ovh")

SENDER_RE = re.compile(r"^(?:[A-Za-z0-9 ]{1,11}|\+?[0-9]{3,16})$")
OVH_TZ = ZoneInfo("Europe/Paris")  # OVH's API answers in Paris time when it omits an offset


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


class OvhPhone(Phone):
    """One OVH SMS service (``sms-xx12345-1``): shortcode or validated sender name."""

    plugin: ClassVar[str] = "ovh"
    capabilities: ClassVar[Capabilities] = Capabilities(
        send=True,
        receive=True,
        receive_mode="poll",
        status=True,
        status_mode="webhook",
        mms_send=False,
        mms_receive=False,
        flash=False,
        sender_name=True,
        unicode=True,
        long_messages=True,
        max_segments=6,
        balance=True,
        default_rate_limit=None,
    )
    Options: ClassVar[type[PhoneOptions]] = OvhOptions
    STATUS_MAP: ClassVar[Mapping[str, Status]] = {
        **{f"dlr:{k}": v for k, v in DLR_STATUS.items()},
        **{f"ptt:{k}": v for k, v in PTT_STATUS.items()},
    }
    HANDLED_MEMORY: ClassVar[int] = 1024  # inbound ids remembered to skip re-delivery

    options: OvhOptions

    def __init__(self, name: str, options: Any = None, **kw: Any) -> None:
        super().__init__(name, options, **kw)
        opts = self.options
        custom = opts.endpoint not in ovh.client.ENDPOINTS
        self.client = ovh.Client(
            endpoint="ovh-eu" if custom else opts.endpoint,
            application_key=opts.application_key.get_secret_value(),
            application_secret=opts.application_secret.get_secret_value(),
            consumer_key=opts.consumer_key.get_secret_value(),
            timeout=opts.timeout,
        )
        if custom:  # the SDK only knows region names; its base URL lives in ``_endpoint``
            self.client._endpoint = opts.endpoint
        if self._session is not None:
            self.client._session = self._session
        self._base = f"/sms/{opts.service_name}"
        self._handled: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def caps(self) -> Capabilities:
        caps = super().caps
        return caps if self.options.status_webhook else caps.replace(status_mode="poll")

    # ------------------------------------------------------------------ calls
    def call(self, method: str, path: str, **params: Any) -> Any:
        """One signed OVH call; failures become smsbridge errors."""
        try:  # learn the clock delta (GET /auth/time) apart, so a timeout there is no send
            _ = self.client.time_delta
        except ox.APIError as exc:
            raise self._error(exc, sending=False) from None
        try:
            return getattr(self.client, method.lower())(self._base + path, **params)
        except ox.APIError as exc:
            raise self._error(exc, sending=method == "POST") from None

    def _error(self, exc: Any, *, sending: bool) -> SendError | MessageError:
        return map_error(exc, phone=self.name, service=self.options.service_name, sending=sending)

    # ------------------------------------------------------------------ sending
    def validate_sender(self, sender: str) -> None:
        if not SENDER_RE.match(sender):
            raise InvalidSender(
                f"OVH sender {sender!r} must be 1-11 letters, digits or "
                "spaces, or a number, and validated in the OVH manager"
            )

    def submit(self, message: PreparedMessage) -> Submission:
        opts = self.options
        sender = message.sender or opts.sender
        payload: dict[str, Any] = {
            "message": message.body,
            "receivers": [message.to],
            "charset": "UTF-8",
            "noStopClause": opts.no_stop_clause,
        }
        if sender:
            payload["sender"], payload["senderForResponse"] = sender, False
        else:
            payload["senderForResponse"] = True
        if opts.priority:
            payload["priority"] = opts.priority
        if opts.validity_period:
            payload["validityPeriod"] = opts.validity_period
        if message.tag:
            payload["tag"] = message.tag
        report = self.call("POST", "/jobs", **payload) or {}
        ids = report.get("ids") or []
        if not ids:
            if message.to in (report.get("invalidReceivers") or []):
                raise InvalidRecipient(
                    f"OVH refused receiver {message.to} (invalidReceivers)", recipient=message.to
                )
            raise Rejected("OVH created no SMS for this job", phone=self.name, raw=report)
        return Submission(provider_id=str(ids[0]), status=Status.queued, raw=report)

    # ------------------------------------------------------------------ status
    def _report(
        self,
        sms_id: str,
        dlr: Any,
        ptt: Any,
        *,
        text: str | None = None,
        at: datetime | None = None,
        raw: Any = None,
    ) -> StatusReport:
        parts = [f"{k}:{v}" for k, v in (("dlr", dlr), ("ptt", ptt)) if v not in (None, "")]
        by_dlr = self.map_status(parts[0]) if dlr not in (None, "") else Status.unknown
        by_ptt = ptt_status(ptt)
        finals = [s for s in (by_dlr, by_ptt) if s.is_final]
        status = finals[0] if finals else max(by_dlr, by_ptt, key=lambda s: s.rank)
        code = message = None
        if status is Status.failed:
            code = f"ptt:{ptt}" if by_ptt is Status.failed else parts[0]
            message = text or (PTT_TEXT.get(to_int(ptt) or -1) if ptt is not None else None)
        return StatusReport(
            provider_id=sms_id,
            phone=self.name,
            status=status,
            raw_status=",".join(parts),
            error_code=code,
            error_message=message,
            at=at or self.clock(),
            raw=raw,
        )

    def verify_webhook(self, request: WebhookRequest) -> None:
        if self.options.webhook_secret is None:
            raise WebhookAuthError(
                f"phone '{self.name}' has no webhook_secret: OVH callbacks "
                "are refused (status_webhook is false)"
            )
        super().verify_webhook(request)

    def parse_status_callback(self, request: WebhookRequest) -> list[StatusReport]:
        params = request.params()
        sms_id = params.get("id", "").strip()
        if not sms_id:
            raise WebhookParseError("OVH status callback without 'id'")
        dlr = params.get("dlr") or params.get("description")
        ptt = params.get("ptt")
        if not dlr and not ptt:
            raise WebhookParseError("OVH status callback needs 'dlr', 'description' or 'ptt'")
        raw = {k: v for k, v in params.items() if k != "token"}
        return [
            self._report(
                sms_id,
                dlr,
                ptt,
                text=params.get("descriptionDlr") or None,
                at=_when(params.get("date")),
                raw=raw,
            )
        ]

    def fetch_status(self, provider_id: str) -> StatusReport:
        try:
            data = self.call("GET", f"/outgoing/{provider_id}")
        except AuthError as exc:  # 404: not sent yet? It may still wait in /jobs
            if (exc.raw or {}).get("http_status") != 404:
                raise
            try:
                job = self.call("GET", f"/jobs/{provider_id}")
            except AuthError:
                self.check()  # a missing service (not a missing SMS) raises AuthError here
                return StatusReport(
                    provider_id=provider_id,
                    phone=self.name,
                    status=Status.unknown,
                    raw_status="not-found",
                    error_message="no such outgoing SMS or job at OVH",
                    at=self.clock(),
                )
            return StatusReport(
                provider_id=provider_id,
                phone=self.name,
                status=Status.queued,
                raw_status="job",
                at=self.clock(),
                raw=job,
            )
        return self._report(provider_id, data.get("deliveryReceipt"), data.get("ptt"), raw=data)

    # ------------------------------------------------------------------ inbound
    def fetch_incoming(
        self, handle: Callable[[IncomingMessage], object] | None = None
    ) -> list[IncomingMessage]:
        """Read replies; each goes to ``handle`` and is deleted at OVH only once it returned.

        If ``handle`` raises, the message stays at OVH and the exception propagates: the
        next poll delivers it again. Without ``handle`` nothing is deleted (a peek).
        """
        received: list[IncomingMessage] = []
        for raw_id in sorted(self.call("GET", "/incoming") or [], key=lambda i: to_int(i) or 0):
            sms_id = str(raw_id)
            with self._lock:
                seen = sms_id in self._handled
            if not seen:
                data = self.call("GET", f"/incoming/{sms_id}")
                msg = self._incoming(sms_id, data)
                if handle is None:
                    received.append(msg)
                    continue
                handle(msg)
                received.append(msg)
                with self._lock:
                    self._handled[sms_id] = None
                    while len(self._handled) > self.HANDLED_MEMORY:
                        self._handled.popitem(last=False)
            elif handle is None:
                continue
            try:
                self.call("DELETE", f"/incoming/{sms_id}")
            except SendError as exc:  # handled already: the next poll retries the delete
                if (exc.raw or {}).get("http_status") != 404:
                    log.warning(
                        "phone %s: could not delete reply %s at OVH: %s", self.name, sms_id, exc
                    )
        return received

    def _incoming(self, sms_id: str, data: Mapping[str, Any]) -> IncomingMessage:
        sender = str(data.get("sender") or "")
        try:
            sender = normalize(sender, self.default_region)
        except MessageError:
            pass  # shortcodes and names stay as OVH wrote them
        return IncomingMessage(
            phone=self.name,
            sender=sender,
            recipient=None,
            body=str(data.get("message") or ""),
            received_at=_when(data.get("creationDatetime")) or self.clock(),
            provider_id=sms_id,
            raw=dict(data),
        )

    # ------------------------------------------------------------------ admin
    def balance(self) -> Balance:
        data = self.call("GET", "")
        keys = ("creditsHoldByQuota", "status", "name", "description", "smsResponse")
        return Balance(
            phone=self.name,
            units=data.get("creditsLeft"),
            details={k: data[k] for k in keys if k in data},
        )

    def check(self) -> None:
        self.call("GET", "")

    def close(self) -> None:
        self.client._session.close()
        super().close()


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=OVH_TZ)).astimezone(UTC)

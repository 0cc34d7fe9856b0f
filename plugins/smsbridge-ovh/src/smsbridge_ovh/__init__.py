"""OVHcloud SMS phone for smsbridge, through the official ``ovh`` SDK.

Send: ``POST /sms/{service}/jobs`` (one job, one receiver). Status: OVH's service-level
callback (a GET with ``id``, ``ptt``, ``dlr``/``description``) on
``/webhooks/{phone}/status?token=...``, or polling ``/sms/{service}/outgoing/{id}``.
Inbound (replies to a shortcode, 48 hours): polled from ``/sms/{service}/incoming`` and
deleted at OVH only after the bridge took them. Balance: the service's ``creditsLeft``.

Options: :mod:`.options`; the SDK client: :mod:`.client`; codes and errors: :mod:`.codes`;
bodies: :mod:`.payloads`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from ovh import exceptions as ox

from smsbridge.capabilities import Capabilities
from smsbridge.errors import (
    AuthError,
    InvalidRecipient,
    InvalidSender,
    Rejected,
    SendError,
    SmsBridgeError,
    WebhookAuthError,
)
from smsbridge.http import WebhookRequest
from smsbridge.message import Balance, IncomingMessage, StatusReport
from smsbridge.phone import ErrorRule, Phone, PhoneOptions, PreparedMessage, Submission
from smsbridge.status import Status

from .client import close_client, make_client
from .codes import ERROR_CODES, STATUS_MAP, delivery, map_error, to_int
from .options import SENDER_RE, OvhOptions
from .payloads import callback_fields, job, reply_sender, when

__all__ = ["OvhOptions", "OvhPhone"]
__version__ = "0.1.0"

log = logging.getLogger("smsbridge.ovh")


class OvhPhone(Phone):
    """One OVH SMS service (``sms-xx12345-1``): shortcode or validated sender name."""

    plugin: ClassVar[str] = "ovh"
    provider_name: ClassVar[str] = "OVH"
    capabilities: ClassVar[Capabilities] = Capabilities(
        receive=True,
        receive_mode="poll",
        status=True,
        status_mode="webhook",
        sender_name=True,
        max_segments=6,
        balance=True,
    )
    Options: ClassVar[type[PhoneOptions]] = OvhOptions
    STATUS_MAP: ClassVar[Mapping[str, Status]] = STATUS_MAP
    ERROR_CODES: ClassVar[Mapping[Any, ErrorRule]] = ERROR_CODES
    HANDLED_MEMORY: ClassVar[int] = 1024  # inbound ids remembered to skip re-delivery

    options: OvhOptions

    def __init__(self, name: str, options: Any = None, **kw: Any) -> None:
        super().__init__(name, options, **kw)
        self.client = make_client(self.options, self._session)
        self._base = f"/sms/{self.options.service_name}"
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

    def _error(self, exc: Any, *, sending: bool) -> SmsBridgeError:
        return map_error(self, exc, service=self.options.service_name, sending=sending)

    # ------------------------------------------------------------------ sending
    def validate_sender(self, sender: str) -> None:
        if not SENDER_RE.match(sender):
            raise InvalidSender(
                f"OVH sender {sender!r} must be 1-11 letters, digits or "
                "spaces, or a number, and validated in the OVH manager"
            )

    def submit(self, message: PreparedMessage) -> Submission:
        report = self.call("POST", "/jobs", **job(message, self.options)) or {}
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
        found = delivery(dlr, ptt, text)
        return self.report(
            sms_id,
            found.raw_status,
            status=found.status,
            error_code=found.error_code,
            error_message=found.error_message,
            at=at,
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
        params = self.callback_params(request)
        sms_id, dlr, ptt = callback_fields(params)
        text = params.get("descriptionDlr") or None
        return [self._report(sms_id, dlr, ptt, text=text, at=when(params.get("date")), raw=params)]

    def fetch_status(self, provider_id: str) -> StatusReport:
        try:
            data = self.call("GET", f"/outgoing/{provider_id}")
        except AuthError as exc:  # 404: not sent yet? It may still wait in /jobs
            if (exc.raw or {}).get("http_status") != 404:
                raise
            try:
                job_data = self.call("GET", f"/jobs/{provider_id}")
            except AuthError:
                self.check()  # a missing service (not a missing SMS) raises AuthError here
                return self.report(
                    provider_id,
                    "not-found",
                    status=Status.unknown,
                    error_message="no such outgoing SMS or job at OVH",
                )
            return self.report(provider_id, "job", status=Status.queued, raw=job_data)
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
                msg = self._incoming(sms_id, self.call("GET", f"/incoming/{sms_id}"))
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
        return IncomingMessage(
            phone=self.name,
            sender=reply_sender(data.get("sender"), self.default_region),
            recipient=None,
            body=str(data.get("message") or ""),
            received_at=when(data.get("creationDatetime")) or self.clock(),
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
        close_client(self.client)
        super().close()

"""The dummy phone: full capabilities, no network, simulates reality on demand.

It keeps what it sent (in memory, and in a JSON-lines file when ``outbox_file`` is set).
Delivery reports and simulated inbound messages go through the same
``Bridge.handle_webhook`` path as real providers' callbacks, with a JSON body::

    status:  {"provider_id": "...", "status": "delivered", "error_code": null}
    inbound: {"from": "+225...", "to": "+225...", "body": "...", "id": "..."}
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..capabilities import Capabilities
from ..errors import (
    AmbiguousSend,
    AuthError,
    InsufficientCredit,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SendError,
    WebhookParseError,
)
from ..http import WebhookRequest
from ..message import Balance, IncomingMessage, StatusReport, new_id
from ..numbers import normalize
from ..phone import Phone, PhoneOptions, PreparedMessage, Submission
from ..status import Status

__all__ = ["DummyPhone"]

ERRORS: dict[str, type[SendError]] = {
    "SendError": SendError,
    "AuthError": AuthError,
    "RateLimited": RateLimited,
    "InsufficientCredit": InsufficientCredit,
    "ProviderUnavailable": ProviderUnavailable,
    "AmbiguousSend": AmbiguousSend,
    "Rejected": Rejected,
}


class DummyOptions(PhoneOptions):
    fail_for: list[str] = Field(
        default_factory=list, description="Recipients (E.164) whose sends raise `error`."
    )
    error: Literal[
        "SendError",
        "AuthError",
        "RateLimited",
        "InsufficientCredit",
        "ProviderUnavailable",
        "AmbiguousSend",
        "Rejected",
    ] = Field(default="ProviderUnavailable", description="Which SendError to raise.")
    fail_all: bool = Field(default=False, description="Every send raises `error`.")
    delivery: Literal["delivered", "failed", "sent", "unknown", "none"] = Field(
        default="delivered", description="Final status reported after `delivery_delay`."
    )
    delivery_delay: float = Field(default=0.05, ge=0, description="Seconds before the report.")
    latency: float = Field(default=0.0, ge=0, description="Seconds each send takes.")
    outbox_file: str | None = Field(default=None, description="JSON-lines file of sent messages.")
    units: float | None = Field(default=None, description="Balance to report (None: unlimited).")
    post_reports: bool = Field(
        default=False,
        description="POST delivery reports over HTTP to this phone's callback URL "
        "(needs webhooks.public_url) instead of dispatching them in process.",
    )


class DummyPhone(Phone):
    """A phone that sends nowhere. Use it in development, demos and tests."""

    plugin: ClassVar[str] = "dummy"
    capabilities: ClassVar[Capabilities] = Capabilities(
        send=True,
        receive=True,
        receive_mode="webhook",
        status=True,
        status_mode="webhook",
        mms_send=True,
        mms_receive=True,
        flash=True,
        sender_name=True,
        unicode=True,
        long_messages=True,
        max_segments=10,
        balance=True,
        default_rate_limit=None,
        countries=None,
    )
    Options: ClassVar[type[PhoneOptions]] = DummyOptions
    STATUS_MAP: ClassVar[Mapping[str, Status]] = {s.value: s for s in Status}

    options: DummyOptions

    def __init__(self, name: str, options: Any = None, **kw: Any) -> None:
        super().__init__(name, options, **kw)
        self.sent: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._units = self.options.units

    def submit(self, message: PreparedMessage) -> Submission:
        opts = self.options
        if opts.latency:
            time.sleep(opts.latency)
        if opts.fail_all or message.to in {normalize(n) for n in opts.fail_for}:
            cls = ERRORS[opts.error]
            raise cls(f"simulated {opts.error} for {message.to}", phone=self.name)
        provider_id = "dummy-" + new_id()[:16]
        record = {
            "provider_id": provider_id,
            "message_id": message.message_id,
            "to": message.to,
            "body": message.body,
            "sender": message.sender,
            "tag": message.tag,
            "flash": message.flash,
            "media": list(message.media),
            "segments": message.segments.segments,
            "encoding": message.segments.encoding,
        }
        with self._lock:
            if self._units is not None:
                if self._units < message.segments.segments:
                    raise InsufficientCredit("simulated: no units left", phone=self.name)
                self._units -= message.segments.segments
            self.sent.append(record)
            if opts.outbox_file:
                path = Path(opts.outbox_file)
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        if opts.delivery != "none":
            self._schedule_report(provider_id, opts.delivery)
        return Submission(provider_id=provider_id, status=Status.queued, raw=record)

    # -- simulated provider callbacks, through the connected webhook handler (the bridge's)
    def _schedule_report(self, provider_id: str, status: str) -> None:
        if self.webhook_handler is None:
            return
        timer = threading.Timer(
            self.options.delivery_delay, self.simulate_status, args=(provider_id, status)
        )
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
        timer.start()

    def wait_reports(self, timeout: float = 5.0) -> None:
        """Wait until every scheduled delivery report was dispatched."""
        deadline = time.monotonic() + timeout
        with self._lock:
            timers = list(self._timers)
        for timer in timers:
            timer.join(max(0.0, deadline - time.monotonic()))

    def _request(self, kind: str, payload: Mapping[str, Any]) -> WebhookRequest:
        url = self.callback_url(kind) or self.callback_url(kind, base="http://localhost")
        assert url is not None
        return WebhookRequest(
            method="POST",
            url=url,
            headers={"Content-Type": "application/json"},
            body=json.dumps(payload).encode("utf-8"),
            remote_addr="127.0.0.1",
        )

    def simulate_status(self, provider_id: str, status: str, error_code: str | None = None) -> Any:
        """Post a delivery report for ``provider_id`` through the bridge's webhook path."""
        request = self._request(
            "status", {"provider_id": provider_id, "status": status, "error_code": error_code}
        )
        if self.options.post_reports and self.public_url:
            import requests

            resp = requests.post(
                request.url, data=request.body, headers=dict(request.headers), timeout=10
            )
            return resp.status_code
        if self.webhook_handler is None:
            return self.parse_status_callback(request)
        return self.webhook_handler(self.name, "status", request)

    def simulate_inbound(self, sender: str, body: str, recipient: str | None = None) -> Any:
        """Post an inbound SMS through the bridge's webhook path (as a provider would)."""
        request = self._request(
            "inbound", {"from": sender, "to": recipient, "body": body, "id": new_id()}
        )
        if self.webhook_handler is None:
            return self.parse_inbound(request)
        return self.webhook_handler(self.name, "inbound", request)

    # -- webhook parsing (the dummy's own JSON format)
    def _payload(self, request: WebhookRequest, *required: str) -> dict[str, Any]:
        data = request.json()
        if not isinstance(data, dict):
            raise WebhookParseError("expected a JSON object")
        missing = [k for k in required if not data.get(k)]
        if missing:
            raise WebhookParseError(f"missing field(s): {', '.join(missing)}")
        return data

    def parse_status_callback(self, request: WebhookRequest) -> list[StatusReport]:
        data = self._payload(request, "provider_id", "status")
        return [
            StatusReport(
                provider_id=str(data["provider_id"]),
                phone=self.name,
                status=self.map_status(data["status"]),
                raw_status=str(data["status"]),
                error_code=data.get("error_code"),
                at=self.clock(),
                raw=data,
            )
        ]

    def parse_inbound(self, request: WebhookRequest) -> list[IncomingMessage]:
        data = self._payload(request, "from")
        try:
            sender = normalize(str(data["from"]), self.default_region)
        except ValueError as exc:
            raise WebhookParseError(f"bad sender: {exc}") from None
        return [
            IncomingMessage(
                phone=self.name,
                sender=sender,
                recipient=data.get("to"),
                body=str(data.get("body") or ""),
                received_at=self.clock(),
                provider_id=data.get("id"),
                raw=data,
            )
        ]

    def balance(self) -> Balance:
        return Balance(phone=self.name, units=self._units, details={"simulated": True})

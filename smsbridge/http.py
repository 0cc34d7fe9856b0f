"""HTTP value types: the framework-agnostic webhook request and response, and the small
HTTP helpers every provider needs (Retry-After)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import WebhookParseError

__all__ = ["WebhookRequest", "WebhookResponse", "parse_retry_after"]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3), or None.

    Takes delay-seconds (``"2"``, and leniently ``"1.5"``) or an HTTP-date (a date in the
    past gives 0). Anything else, or no header, gives None: the caller's own backoff applies.
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


@dataclass(frozen=True)
class WebhookRequest:
    """One HTTP request from a provider, as every adapter hands it to the dispatcher.

    ``url`` is the full URL the provider called (scheme, host, path and query) as seen
    from outside: signature checks (Twilio) need it. ``remote_addr`` is the peer address
    (already resolved from ``X-Forwarded-For`` by the adapter only when trusted).
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    remote_addr: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "headers", _lower_keys(self.headers))

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query_lists(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query, keep_blank_values=True)

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, first value of each."""
        return {k: v[0] for k, v in self.query_lists.items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookParseError(f"body is not UTF-8: {exc}") from None

    def json(self) -> Any:
        """The body parsed as JSON, or :class:`WebhookParseError`."""
        if not self.body.strip():
            raise WebhookParseError("empty body where JSON was expected")
        try:
            return json.loads(self.text())
        except ValueError as exc:
            raise WebhookParseError(f"body is not valid JSON: {exc}") from None

    def form_lists(self) -> dict[str, list[str]]:
        return parse_qs(self.text(), keep_blank_values=True)

    def form(self) -> dict[str, str]:
        """URL-encoded form body, first value of each field."""
        return {k: v[0] for k, v in self.form_lists().items()}

    def params(self) -> dict[str, str]:
        """Query parameters merged with form fields (form wins): for GET-or-POST callbacks."""
        data = self.query
        if self.body and self.content_type in ("application/x-www-form-urlencoded", ""):
            try:
                data.update(self.form())
            except WebhookParseError:
                raise
        return data


@dataclass(frozen=True)
class WebhookResponse:
    """What the dispatcher answers; adapters turn it into their framework's response."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, status: int, text: str) -> WebhookResponse:
        return cls(status=status, body=text.encode("utf-8"))

    @classmethod
    def json(cls, status: int, data: Any) -> WebhookResponse:
        return cls(
            status=status,
            body=json.dumps(data).encode("utf-8"),
            content_type="application/json",
        )

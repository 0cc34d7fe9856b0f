"""The phone base classes: the shared send lifecycle every plugin inherits.

A plugin implements :meth:`Phone.submit` (one provider call for one validated message)
and, where the provider has them, the webhook parsers and polling methods. The base class
does the rest, so that a provider module stays small:

validate (number, sender, length, features vs capabilities) → ``before_submit`` hook (the
outbox consumers record the hand-over there) → rate-limit (per phone, counted in
segments) → :meth:`submit` → retries with exponential backoff and jitter on retryable
errors only (honouring ``retry_after``) → :class:`SendResult`.

The plumbing every provider shares lives here too: :meth:`Phone.provider_error` maps a
provider's error code (the plugin's :attr:`Phone.ERROR_CODES`) or HTTP status to the error
tree; :func:`~smsbridge.http.parse_retry_after` reads Retry-After; :meth:`Phone.report`
builds a :class:`StatusReport` through :attr:`Phone.STATUS_MAP`;
:meth:`Phone.callback_params` gives a callback's fields without the ``?token=`` secret;
:func:`~smsbridge.numbers.lenient_number` normalises the numbers providers send back.

Collaborators are handed in, never looked up: ``session`` (HTTP), ``clock``, ``sleep``,
``limiter``, ``cache`` (a :class:`~smsbridge.cache.KeyValueCache`) and, for phones that
simulate or poll callbacks, a ``webhook_handler`` (see :meth:`Phone.connect`).

Libraries used: ``tenacity`` for retries, ``pyrate-limiter`` for the rate limiter,
``pydantic`` for typed options, ``requests`` for HTTP.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol, TypeAlias
from urllib.parse import quote, urlencode, urlsplit

import requests
import tenacity
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .cache import KeyValueCache
from .capabilities import Capabilities
from .encoding import SegmentInfo
from .errors import (
    AmbiguousSend,
    AuthError,
    InvalidRecipient,
    InvalidSender,
    MessageError,
    MessageTooLong,
    ProviderUnavailable,
    RateLimited,
    SendError,
    SmsBridgeError,
    UnsupportedFeature,
    WebhookAuthError,
)
from .folding import EncodingError, encode_for_phone
from .http import WebhookRequest, WebhookResponse
from .limits import TokenBucketLimiter
from .message import (
    Balance,
    IncomingMessage,
    OutgoingMessage,
    SendResult,
    StatusReport,
    new_id,
    utcnow,
)
from .numbers import country_of, normalize, normalize_country
from .status import Status, map_status

__all__ = [
    "BeforeSubmit",
    "ErrorRule",
    "HttpPhone",
    "PausableLimiter",
    "Phone",
    "PhoneOptions",
    "PreparedMessage",
    "RateLimiter",
    "Submission",
    "TokenBucketLimiter",
    "WebhookHandler",
    "redact",
]

log = logging.getLogger("smsbridge.phone")

#: The share of rate_headroom's margin the limiter spends on catching up late wake-ups.
_TOLERANCE_SHARE = 0.25

SENDER_NAME_RE = re.compile(r"^[A-Za-z0-9 ]{1,11}$")


class PhoneOptions(BaseModel):
    """Options every phone accepts. Plugins subclass this with their own fields.

    Unknown keys are refused (the config loader suggests the closest known key).
    Secrets are :class:`pydantic.SecretStr`: never shown in reprs, logs or errors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    encoding: Literal["auto", "gsm7", "ucs2"] = Field(
        default="auto", description="SMS encoding: auto, gsm7 (fold or refuse), ucs2."
    )
    fold_accents: bool = Field(
        default=False,
        description="Fold characters outside GSM-7 (ê→e, ’→') when it saves segments.",
    )
    rate_limit: float | None = Field(
        default=None, gt=0, description="Segments per second; default from capabilities."
    )
    rate_headroom: float = Field(
        default=0.02,
        ge=0,
        lt=0.5,
        description="Pace this fraction under rate_limit: providers count on their own clock, "
        "after network jitter, so sending at exactly the limit draws the odd 429.",
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds per provider request.")
    retries: int = Field(default=2, ge=0, le=20, description="Retries on retryable errors.")
    max_backoff: float = Field(default=30.0, ge=0, description="Longest wait between retries.")
    max_segments: int | None = Field(default=None, ge=1, description="Overrides capabilities.")
    countries: list[str] | None = Field(
        default=None, description="Restrict this phone to these countries (alpha-2 or alpha-3)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Secret expected as ?token= on callback URLs."
    )
    allow_ips: list[str] | None = Field(
        default=None, description="IP addresses or networks allowed to call the webhooks."
    )

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [normalize_country(c) for c in value]

    @field_validator("allow_ips")
    @classmethod
    def _ips(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r}") from None
        return value


@dataclass(frozen=True)
class PreparedMessage:
    """A message that passed validation for one phone: what :meth:`Phone.submit` gets."""

    message_id: str
    to: str  # E.164
    body: str
    country: str | None  # ISO alpha-2 of ``to``
    segments: SegmentInfo
    sender: str | None = None
    tag: str | None = None
    flash: bool = False
    media: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    original: OutgoingMessage | None = None


@dataclass(frozen=True)
class Submission:
    """What a provider answered to one accepted message."""

    provider_id: str | None
    status: Status = Status.queued
    raw: Any = None


#: One row of a plugin's ``ERROR_CODES``: the error class, or the class and the keyword
#: arguments it is built with (e.g. ``(Rejected, {"opt_out": True})``).
ErrorRule: TypeAlias = type[SmsBridgeError] | tuple[type[SmsBridgeError], Mapping[str, Any]]

#: Called by :meth:`Phone.deliver` before each provider call of a message (after
#: validation, before the rate-limit wait): the outbox consumers record the hand-over
#: there, and raise to stop the call.
BeforeSubmit: TypeAlias = Callable[["PreparedMessage"], None]


class WebhookHandler(Protocol):
    """Where a phone hands provider callbacks it makes up itself (the dummy phone's
    simulated reports): ``Bridge.handle_webhook``'s signature."""

    def __call__(self, phone: str, kind: str, request: WebhookRequest) -> WebhookResponse: ...


class RateLimiter(Protocol):
    """Blocks until ``weight`` units may go. Injectable (shared limiters, tests)."""

    def acquire(self, weight: int = 1) -> None: ...


class PausableLimiter(RateLimiter, Protocol):
    """A limiter that can hold every sender of the phone (after a provider's 429)."""

    def pause(self, seconds: float) -> None: ...


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret in ``text`` by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class Phone(ABC):
    """Base class of every phone plugin. See the module docstring for the lifecycle."""

    plugin: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    Options: ClassVar[type[PhoneOptions]] = PhoneOptions
    STATUS_MAP: ClassVar[Mapping[str, Status]] = {}
    #: Provider error code → :data:`ErrorRule`; codes not listed fall back on the HTTP
    #: status (see :meth:`provider_error`).
    ERROR_CODES: ClassVar[Mapping[Any, ErrorRule]] = {}
    #: The provider's name in error messages (default: the plugin name, capitalised).
    provider_name: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        options: PhoneOptions | Mapping[str, Any] | None = None,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        public_url: str | None = None,
        default_region: str | None = None,
        limiter: RateLimiter | None = None,
        cache: KeyValueCache | None = None,
    ) -> None:
        self.name = name
        if isinstance(options, PhoneOptions):
            self.options = options
        else:
            self.options = self.Options.model_validate(dict(options or {}))
        self.clock = clock or utcnow
        self.sleep = sleep or time.sleep
        self.public_url = public_url.rstrip("/") if public_url else None
        self.default_region = default_region
        self._session = session
        self.cache: KeyValueCache | None = cache
        #: Where callbacks this phone makes up itself go (see :meth:`connect`).
        self.webhook_handler: WebhookHandler | None = None
        rate = self.pacing_rate
        self.limiter: RateLimiter | None = limiter or (
            TokenBucketLimiter(rate, name, tolerance=self.pacing_tolerance) if rate else None
        )

    # ------------------------------------------------------------------ description
    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} plugin={self.plugin!r}>"

    @property
    def caps(self) -> Capabilities:
        """This phone's capabilities: the plugin's, narrowed by its options."""
        caps = self.capabilities
        if self.options.countries is not None:
            allowed = frozenset(self.options.countries)
            if caps.countries is not None:
                allowed &= caps.countries
            caps = caps.replace(countries=allowed)
        if self.options.max_segments is not None:
            caps = caps.replace(max_segments=self.options.max_segments)
        if self.options.rate_limit is not None:
            caps = caps.replace(default_rate_limit=self.options.rate_limit)
        return caps

    @property
    def rate_limit(self) -> float | None:
        return self.options.rate_limit or self.capabilities.default_rate_limit

    @property
    def pacing_rate(self) -> float | None:
        """The rate the limiter actually paces at: ``rate_limit`` less ``rate_headroom``."""
        rate = self.rate_limit
        return rate * (1 - self.options.rate_headroom) if rate else None

    @property
    def pacing_tolerance(self) -> float:
        """Seconds a unit may be taken late without delaying the next (see limits.py).

        Pacing at ``r = (1 - h) × rate_limit`` with a catch-up tolerance ``τ`` lets at most
        ``r × (1 s + τ)`` units through in any rolling second (plus the one at its edge),
        which stays under ``rate_limit`` while ``τ < h / (1 - h)``. A quarter of that goes
        to catching up late wake-ups (≈ 5 ms at the default 2 %); the rest is left for the
        jitter between the limiter's decision and the request's arrival at the provider
        (the measurements behind the share: docs/scaling.md).
        No headroom, no tolerance.
        """
        headroom = self.options.rate_headroom
        return headroom / (1 - headroom) * _TOLERANCE_SHARE

    def secrets(self) -> list[str]:
        """Every secret value of this phone's options (for redaction)."""
        found: list[str] = []
        for value in self.options.__dict__.values():
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
        return found

    def redact(self, text: str) -> str:
        return redact(text, self.secrets())

    # ------------------------------------------------------------------ validation
    def validate_sender(self, sender: str) -> None:
        """Raise :class:`InvalidSender` when this phone cannot send as ``sender``.

        Default: an E.164 number, or (on phones with ``sender_name``) 1-11 letters,
        digits or spaces.
        """
        if sender.startswith("+") or sender.isdigit():
            try:
                normalize(sender if sender.startswith("+") else "+" + sender)
            except InvalidRecipient:
                raise InvalidSender(f"sender {sender!r} is not a valid number") from None
            return
        if not self.caps.sender_name:
            raise InvalidSender(f"phone '{self.name}' cannot send with a sender name ({sender!r})")
        if not SENDER_NAME_RE.match(sender):
            raise InvalidSender(f"sender name {sender!r} must be 1-11 letters, digits or spaces")

    def check_message(self, message: OutgoingMessage, to: str | None = None) -> MessageError | None:
        """Why this phone cannot carry ``message`` (an error to raise), or None.

        ``to`` is the already normalised recipient when the caller has it. The router
        uses this to skip phones; :meth:`prepare` raises what it returns.
        """
        caps = self.caps
        if (not message.body or not message.body.strip()) and not message.media:
            return MessageError("message body is empty")
        if to is None:
            try:
                to = normalize(message.to, self.default_region)
            except InvalidRecipient as exc:
                return exc
        if caps.countries is not None:
            country = country_of(to)
            if country not in caps.countries:
                return InvalidRecipient(
                    f"phone '{self.name}' does not serve {country or 'this country'} "
                    f"(serves {', '.join(sorted(caps.countries))})",
                    recipient=to,
                )
        if message.media and not caps.mms_send:
            return UnsupportedFeature(f"phone '{self.name}' cannot send media (no mms_send)")
        if message.flash and not caps.flash:
            return UnsupportedFeature(f"phone '{self.name}' cannot send flash messages")
        if message.sender:
            try:
                self.validate_sender(message.sender)
            except InvalidSender as exc:
                return exc
        try:
            info = encode_for_phone(self, message).info
        except EncodingError as exc:
            return exc
        if info.encoding == "ucs2" and not caps.unicode:
            return UnsupportedFeature(f"phone '{self.name}' cannot send characters outside GSM-7")
        limit = caps.max_segments if caps.long_messages else 1
        if info.segments > limit:
            return MessageTooLong(
                f"message needs {info.segments} {info.encoding} segments ({info.units} units), "
                f"more than the {limit} phone '{self.name}' allows",
                segments=info.segments,
                max_segments=limit,
            )
        return None

    def prepare(self, message: OutgoingMessage, message_id: str | None = None) -> PreparedMessage:
        """Validate ``message`` for this phone; raise a :class:`MessageError` if it can't go."""
        to = normalize(message.to, self.default_region)
        problem = self.check_message(message, to)
        if problem is not None:
            raise problem
        encoded = encode_for_phone(self, message)
        return PreparedMessage(
            message_id=message_id or new_id(),
            to=to,
            body=encoded.text,
            country=country_of(to),
            segments=encoded.info,
            sender=message.sender,
            tag=message.tag,
            flash=message.flash,
            media=tuple(message.media),
            metadata=dict(message.metadata),
            original=message,
        )

    # ------------------------------------------------------------------ sending
    def send(self, message: OutgoingMessage, *, message_id: str | None = None) -> SendResult:
        """Send one message through this phone (no routing, no failover).

        Raises :class:`MessageError` before any network call when the message cannot go,
        and :class:`SendError` when the provider refused it after retries.
        """
        prepared = self.prepare(message, message_id)
        submission, _ = self.deliver(prepared)
        return self.result(prepared, submission)

    def deliver(
        self, prepared: PreparedMessage, *, before_submit: BeforeSubmit | None = None
    ) -> tuple[Submission, int]:
        """Rate-limit and submit with retries. Returns the submission and retries used.

        ``before_submit(prepared)`` runs before each provider call, ahead of the
        rate-limit wait (so the wait stays the last thing before the request and the
        provider sees the limiter's spacing); what it raises stops the send.
        """
        attempt_no = 0

        def before_each() -> Submission:
            nonlocal attempt_no
            attempt_no += 1
            if before_submit is not None:
                before_submit(prepared)
            if self.limiter is not None:
                self.limiter.acquire(prepared.segments.segments)
            try:
                return self.submit(prepared)
            except SendError as exc:
                if exc.phone is None:
                    exc.phone = self.name
                exc.message = self.redact(exc.message)
                if isinstance(exc, RateLimited) and exc.retry_after:
                    pause = getattr(self.limiter, "pause", None)
                    if pause is not None:  # slow down every sender of this phone
                        pause(min(exc.retry_after, self.options.max_backoff))
                raise

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, SendError) and e.retryable),
            stop=tenacity.stop_after_attempt(self.options.retries + 1),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
            before_sleep=self._log_retry,
        )
        submission = retrying(before_each)
        return submission, attempt_no - 1

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential backoff with full jitter, at least the provider's ``retry_after``."""
        backoff = min(self.options.max_backoff, 0.5 * 2 ** (state.attempt_number - 1))
        wait = random.uniform(backoff / 2, backoff)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after:
            wait = max(wait, min(exc.retry_after, max(self.options.max_backoff, 1.0)))
        return wait

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "phone %s: attempt %d failed (%s), retrying",
            self.name,
            state.attempt_number,
            exc,
        )

    def result(self, prepared: PreparedMessage, submission: Submission) -> SendResult:
        return SendResult(
            message_id=prepared.message_id,
            status=submission.status,
            phone=self.name,
            provider_id=submission.provider_id,
            to=prepared.to,
            segments=prepared.segments.segments,
            encoding=prepared.segments.encoding,
            raw=submission.raw,
            template=prepared.original.template if prepared.original else None,
            locale=prepared.original.locale if prepared.original else None,
        )

    @abstractmethod
    def submit(self, message: PreparedMessage) -> Submission:
        """One provider call for one message. Raise a :class:`SendError` subclass on failure."""

    # ------------------------------------------------------------------ status mapping
    def map_status(self, raw: object) -> Status:
        return map_status(self.STATUS_MAP, raw)

    def report(
        self,
        provider_id: str | None,
        raw_status: object,
        *,
        status: Status | None = None,
        **fields: Any,
    ) -> StatusReport:
        """A :class:`StatusReport` from this phone: ``raw_status`` mapped through
        :attr:`STATUS_MAP` (unless ``status`` is given), ``at`` defaulting to the clock.

        ``fields``: the other :class:`StatusReport` fields (``error_code``,
        ``error_message``, ``at``, ``raw``, ``recipient``, ``message_id``); empty error
        fields become None.
        """
        text = None if raw_status is None else str(raw_status)
        for key in ("error_code", "error_message"):
            value = fields.get(key)
            fields[key] = str(value) if value not in (None, "") else None
        if fields.get("at") is None:
            fields["at"] = self.clock()
        return StatusReport(
            provider_id=provider_id or None,
            phone=self.name,
            status=status if status is not None else self.map_status(raw_status),
            raw_status=text,
            **fields,
        )

    def provider_error(
        self,
        text: str,
        *,
        code: Any = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        raw: Any = None,
        recipient: str | None = None,
    ) -> SmsBridgeError:
        """The smsbridge error for a provider's refusal (its text redacted, never raised).

        ``code`` is looked up in :attr:`ERROR_CODES`; a code not listed falls back on the
        HTTP status: 401/403 → :class:`AuthError`, 429 → :class:`RateLimited`, 5xx →
        :class:`ProviderUnavailable`, anything else → a plain :class:`SendError`.
        :class:`MessageError` rows (invalid number, sender...) name the code in their
        message; :class:`SendError` rows carry ``phone``, ``provider_code`` (the code, else
        the HTTP status) and ``raw``.
        """
        text = self.redact(text)
        rule = self.ERROR_CODES.get(code) if code is not None else None
        if rule is None and code is not None and not isinstance(code, str):
            rule = self.ERROR_CODES.get(str(code))
        kind, extra = (rule, {}) if isinstance(rule, type) else (rule or (None, {}))
        if kind is None:
            if http_status in (401, 403):
                kind = AuthError
            elif http_status == 429:
                kind = RateLimited
            elif http_status is not None and http_status >= 500:
                kind = ProviderUnavailable
            else:
                kind = SendError
        if issubclass(kind, MessageError):
            where = f" ({self.provider_name or self.plugin.capitalize()} error {code})"
            extra = {"provider_code": code, **extra}
            if issubclass(kind, InvalidRecipient):
                extra.setdefault("recipient", recipient)
            return kind(text + where, **extra)
        if not issubclass(kind, SendError):
            kind = SendError
        extra = dict(extra)
        if issubclass(kind, RateLimited):
            extra.setdefault("retry_after", retry_after)
        provider_code = code if code is not None else http_status
        return kind(text, phone=self.name, provider_code=provider_code, raw=raw, **extra)

    # ------------------------------------------------------------------ webhooks
    def callback_url(self, kind: str, *, base: str | None = None) -> str | None:
        """The URL to register at the provider for ``kind`` (``status`` or ``inbound``).

        ``base`` replaces ``webhooks.public_url`` (None when neither is known).
        """
        root = (base or "").rstrip("/") or self.public_url
        if not root:
            return None
        url = f"{root}/webhooks/{quote(self.name, safe='')}/{kind}"
        if self.options.webhook_secret is not None:
            url += "?" + urlencode({"token": self.options.webhook_secret.get_secret_value()})
        return url

    @property
    def webhook_protected(self) -> bool:
        """Whether webhooks are authenticated (secret, signature or IP allow-list)."""
        return self.options.webhook_secret is not None or bool(self.options.allow_ips)

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Default check: the ``?token=`` secret (constant time) and the IP allow-list.

        Providers that sign their callbacks override this (and may call it for the IPs).
        """
        self.check_allowed_ip(request)
        secret = self.options.webhook_secret
        if secret is not None:
            given = request.query.get("token", "")
            if not hmac.compare_digest(
                given.encode("utf-8"), secret.get_secret_value().encode("utf-8")
            ):
                raise WebhookAuthError("missing or wrong webhook token")

    def check_allowed_ip(self, request: WebhookRequest) -> None:
        allowed = self.options.allow_ips
        if not allowed:
            return
        try:
            addr = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            raise WebhookAuthError("caller address unknown; allow_ips is set") from None
        if not any(addr in ipaddress.ip_network(n, strict=False) for n in allowed):
            raise WebhookAuthError(f"caller {addr} is not in allow_ips")

    def callback_params(self, request: WebhookRequest) -> dict[str, str]:
        """A callback's fields (query and form, first value each) without ``token``: the
        ``?token=`` secret must not reach a report's ``raw``, the store or a log."""
        data = request.params()
        data.pop("token", None)
        return data

    def parse_status_callback(self, request: WebhookRequest) -> list[StatusReport]:
        raise UnsupportedFeature(f"phone '{self.name}' ({self.plugin}) has no status callbacks")

    def parse_inbound(self, request: WebhookRequest) -> list[IncomingMessage]:
        raise UnsupportedFeature(f"phone '{self.name}' ({self.plugin}) has no inbound webhook")

    def webhook_response(self, kind: str, request: WebhookRequest) -> tuple[int, bytes, str]:
        """What the provider expects back after a handled callback."""
        return 200, b"", "text/plain; charset=utf-8"

    def handle_webhook_extra(self, kind: str, request: WebhookRequest) -> bool:
        """Hook for provider protocol messages (e.g. SNS subscription confirmation).

        Return True when the request was fully handled and carries no report.
        """
        return False

    # ------------------------------------------------------------------ polling & admin
    def fetch_status(self, provider_id: str) -> StatusReport:
        raise UnsupportedFeature(f"phone '{self.name}' ({self.plugin}) cannot poll statuses")

    def fetch_incoming(
        self, handle: Callable[[IncomingMessage], None] | None = None
    ) -> list[IncomingMessage]:
        """Poll inbound messages. Each one is passed to ``handle`` before it is removed
        at the provider, so a crash in between duplicates rather than loses."""
        raise UnsupportedFeature(f"phone '{self.name}' ({self.plugin}) cannot poll inbound")

    def balance(self) -> Balance:
        raise UnsupportedFeature(f"phone '{self.name}' ({self.plugin}) cannot tell its balance")

    def check(self) -> None:
        """Check that the credentials work (one inexpensive call). Default: nothing to do."""

    def use_cache(self, cache: KeyValueCache) -> None:
        """Hand the phone a cache shared by every process of the deployment (the bridge
        does, when its message store is one). A plugin may override it to move state
        there (e.g. Orange's access tokens). Default: kept as :attr:`cache`."""
        self.cache = cache

    def connect(self, handler: WebhookHandler) -> None:
        """Where callbacks the phone makes up itself go (the bridge connects its
        ``handle_webhook``): the dummy phone's simulated reports use it."""
        self.webhook_handler = handler

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


class HttpPhone(Phone):
    """Base for plugins speaking HTTP with ``requests``.

    One :class:`requests.Session` per phone (keep-alive), the phone's ``timeout`` on
    every call, and network failures mapped into the error tree: a connection that
    could not be made → :class:`ProviderUnavailable` (retryable, nothing was sent);
    a read timeout after a non-idempotent request → :class:`AmbiguousSend`.
    """

    user_agent: ClassVar[str] = "smsbridge"

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
            self._session.headers["User-Agent"] = self.user_agent
        return self._session

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Make one HTTP call; network errors become :class:`SendError` subclasses."""
        kwargs.setdefault("timeout", self.options.timeout)
        try:
            return self.session.request(method, url, **kwargs)
        except requests.ConnectTimeout:
            raise ProviderUnavailable(
                f"cannot connect to {_host(url)} within {self.options.timeout}s",
                phone=self.name,
            ) from None
        except requests.ConnectionError as exc:
            if "aborted" in str(exc).lower():
                # The connection dropped after the request went out.
                raise self._read_timeout(method, exc) from None
            raise ProviderUnavailable(
                f"cannot reach {_host(url)}: {type(exc).__name__}",
                phone=self.name,
            ) from None
        except requests.Timeout as exc:
            raise self._read_timeout(method, exc) from None

    def _read_timeout(self, method: str, exc: Exception) -> SendError:
        if method.upper() in ("GET", "HEAD", "DELETE", "PUT", "OPTIONS"):
            return ProviderUnavailable(
                f"provider did not answer within {self.options.timeout}s", phone=self.name
            )
        return AmbiguousSend(
            f"no answer within {self.options.timeout}s after the request was sent; "
            "the message may or may not have gone out",
            phone=self.name,
        )


def _host(url: str) -> str:
    return urlsplit(url).netloc or url

"""Orange SMS API ("SMS Africa and Middle East", developer.orange.com) phone for smsbridge.

Plain ``requests``: OAuth v3 client_credentials token (shared, cached, single-flight,
see :mod:`smsbridge_orange.auth`), ``smsmessaging/v1`` to send and manage delivery-receipt
subscriptions, ``sms/admin/v1`` for contracts (balance), statistics and purchase orders.
Delivery receipts and inbound SMS arrive as JSON webhooks authenticated by ``?token=``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import phonenumbers
import requests
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from requests.adapters import HTTPAdapter

from smsbridge.capabilities import Capabilities
from smsbridge.errors import (
    AmbiguousSend,
    AuthError,
    ConfigError,
    InvalidRecipient,
    InvalidSender,
    ProviderUnavailable,
    SendError,
    WebhookParseError,
)
from smsbridge.http import WebhookRequest
from smsbridge.message import Balance, IncomingMessage, StatusReport
from smsbridge.numbers import country_alpha3, normalize, normalize_country
from smsbridge.phone import (
    SENDER_NAME_RE,
    HttpPhone,
    PhoneOptions,
    PreparedMessage,
    Submission,
)
from smsbridge.status import Status

from .admin import (
    Contract,
    PurchaseOrder,
    Subscription,
    UsageStat,
    parse_contracts,
    parse_datetime,
    parse_purchase_orders,
    parse_statistics,
    parse_subscriptions,
    resource_id,
)
from .auth import (
    FileTokenCache,
    StoreTokenCache,
    Token,
    TokenCache,
    credentials_key,
    shared_token,
)
from .countries import SENDER_NUMBERS, country_for_sender
from .errors import EXPIRED_TOKEN, parse_error, to_exception

if TYPE_CHECKING:
    from smsbridge.cache import KeyValueCache

__all__ = ["OrangeOptions", "OrangePhone", "SenderNameError"]
__version__ = "0.1.0"

log = logging.getLogger("smsbridge.orange")

DEFAULT_BASE_URL = "https://api.orange.com"
ON_NET = {"resource_type_parameter_management": "SMS_OCB2"}


class SenderNameError(InvalidSender, ConfigError):
    """An invalid ``sender_name`` option: both an :class:`InvalidSender` and a config error."""

    def __init__(self, message: str, *, key: str = "sender_name") -> None:
        InvalidSender.__init__(self, message)
        self.key = key


class OrangeOptions(PhoneOptions):
    client_id: str | None = Field(default=None, description="Client ID (portal, MyApps).")
    client_secret: SecretStr | None = Field(default=None, description="Client secret.")
    authorization_header: SecretStr | None = Field(
        default=None, description='The ready "Basic ..." header the portal shows (instead).'
    )
    sender_address: str | None = Field(
        default=None, description="country_sender_number, digits (e.g. 2250000); from country."
    )
    sender_name: str | None = Field(
        default=None, description="Approved sender name, <= 11 letters, digits or spaces."
    )
    country: str | None = Field(
        default=None, description="ISO alpha-3 (CIV); inferred from sender_address."
    )
    on_net: bool = Field(default=False, description="Orange-only offer (SMS_OCB2 units).")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="API host.")
    token_url: str | None = Field(default=None, description="Default: {base_url}/oauth/v3/token.")
    token_cache: bool = Field(default=True, description="Persist tokens across processes.")
    token_cache_dir: str | None = Field(default=None, description="Default: user cache dir.")
    low_units_warning: float = Field(default=50, ge=0, description="Warn at or below this.")
    expiry_warning_days: float = Field(default=7, ge=0, description="Warn this close to expiry.")

    @field_validator("sender_address", mode="before")
    @classmethod
    def _sender_address(cls, value: object) -> str | None:
        if value is None:
            return None
        text = str(value).strip().removeprefix("tel:").replace(" ", "")
        text = text.removeprefix("+") if text.startswith("+") else text.removeprefix("00")
        if not text.isdigit() or not 4 <= len(text) <= 15:
            raise ValueError(f"sender_address must be digits like 2250000, got {value!r}")
        return text

    @field_validator("sender_name")
    @classmethod
    def _sender_name(cls, value: str | None) -> str | None:
        if value is not None and not SENDER_NAME_RE.match(value):
            raise SenderNameError(
                f"sender_name {value!r} must be 1-11 letters, digits or spaces", key="sender_name"
            )
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return country_alpha3(value) if value else None

    @model_validator(mode="after")
    def _complete(self) -> OrangeOptions:
        if self.authorization_header is None and not (self.client_id and self.client_secret):
            raise ValueError("set client_id and client_secret, or authorization_header")
        if (
            self.authorization_header is not None
            and not self.authorization_header.get_secret_value().startswith("Basic ")
        ):
            raise ValueError('authorization_header must start with "Basic "')
        if self.sender_address is None:
            if self.country is None:
                raise ValueError("set sender_address or country")
            if self.country not in SENDER_NUMBERS:
                raise ValueError(f"no known sender number for {self.country}: set sender_address")
            object.__setattr__(self, "sender_address", SENDER_NUMBERS[self.country])
        if self.country is None:
            object.__setattr__(self, "country", _infer_country(self.sender_address or ""))
        return self


def _infer_country(sender_address: str) -> str:
    found = country_for_sender(sender_address)
    if found:
        return found
    for size in (1, 2, 3):
        region = phonenumbers.region_code_for_country_code(int(sender_address[:size]))
        if region and region != "ZZ":
            return country_alpha3(region)
    raise ValueError(f"cannot infer the country of sender_address {sender_address}: set country")


class OrangePhone(HttpPhone):
    """A phone on the Orange SMS API (one country contract)."""

    plugin: ClassVar[str] = "orange"
    user_agent: ClassVar[str] = "smsbridge-orange"
    capabilities: ClassVar[Capabilities] = Capabilities(
        send=True,
        receive=True,
        receive_mode="webhook",
        status=True,
        status_mode="webhook",
        sender_name=True,
        unicode=True,
        long_messages=True,
        max_segments=6,
        balance=True,
        default_rate_limit=5,
        countries=frozenset(normalize_country(c) for c in SENDER_NUMBERS),
    )
    Options: ClassVar[type[PhoneOptions]] = OrangeOptions
    STATUS_MAP: ClassVar[Mapping[str, Status]] = {
        "MessageWaiting": Status.queued,
        "DeliveredToNetwork": Status.sent,
        "DeliveredToTerminal": Status.delivered,
        "DeliveryImpossible": Status.failed,
        "DeliveryUncertain": Status.unknown,
        "DeliveryNotificationNotSupported": Status.unknown,
    }

    options: OrangeOptions

    def __init__(
        self, name: str, options: Any = None, *, token_cache: TokenCache | None = None, **kw: Any
    ) -> None:
        try:
            super().__init__(name, options, **kw)
        except ValidationError as exc:
            for error in exc.errors():
                if isinstance(error.get("ctx", {}).get("error"), InvalidSender):
                    raise error["ctx"]["error"] from None
            raise
        opts = self.options
        self.base_url = opts.base_url.rstrip("/")
        self.token_url = opts.token_url or f"{self.base_url}/oauth/v3/token"
        self.sender = f"tel:+{opts.sender_address}"
        self.country = opts.country or ""
        if opts.authorization_header is not None:
            self._basic = opts.authorization_header.get_secret_value()
        else:
            pair = f"{opts.client_id}:{opts.client_secret.get_secret_value()}"  # type: ignore[union-attr]
            self._basic = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
        self.token_key = credentials_key(self.token_url, self._basic)
        self.shared_token = shared_token(self.token_key)
        self.token_cache: TokenCache | None = token_cache
        if token_cache is None and opts.token_cache:
            self.token_cache = FileTokenCache(opts.token_cache_dir)
        # the user chose the cache (an object, token_cache: false, a directory): a
        # bridge's message store does not replace it (see use_cache)
        self._token_cache_chosen = (
            token_cache is not None or not opts.token_cache or opts.token_cache_dir is not None
        )
        if self._session is None:  # created now: sends from many threads share it
            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session = session

    @property
    def caps(self) -> Capabilities:
        """One Orange contract serves one country: the phone's."""
        allowed = frozenset({normalize_country(self.country)})
        if self.options.countries is not None:
            allowed &= frozenset(self.options.countries)
        return super().caps.replace(countries=allowed)

    def secrets(self) -> list[str]:
        found = [*super().secrets(), self._basic]
        token = self.shared_token._token
        return [*found, token.access_token] if token is not None else found

    def use_token_cache(self, cache: TokenCache | None) -> None:
        """Swap the persistent token cache (e.g. for one kept in the message store)."""
        self.token_cache = cache
        self._token_cache_chosen = True

    def use_cache(self, cache: KeyValueCache) -> None:
        """Keep tokens in the deployment's shared cache (the bridge's message store)
        instead of a file, unless the user chose the cache: every process using the store
        then shares one token."""
        super().use_cache(cache)
        if not self._token_cache_chosen:
            self.token_cache = StoreTokenCache(cache)

    # ------------------------------------------------------------------ token & calls
    def token(self) -> Token:
        """A valid access token (shared with other phones on the same credentials)."""
        try:
            return self.shared_token.get(self._fetch_token, self.token_cache, self._now)
        except SendError as exc:  # possibly another phone's failure, shared: name this one
            exc.phone = self.name
            raise

    def _now(self) -> float:
        return self.clock().timestamp()

    def _fetch_token(self) -> Token:
        headers = {"Authorization": self._basic, "Accept": "application/json"}
        try:
            response = self.request(
                "POST", self.token_url, data={"grant_type": "client_credentials"}, headers=headers
            )
        except AmbiguousSend as exc:  # a token request is harmless to repeat
            raise ProviderUnavailable(exc.message, phone=self.name) from None
        if response.status_code == 200:
            try:
                token = Token.from_response(response.json(), self._now())
            except (ValueError, AttributeError) as exc:
                raise ProviderUnavailable(
                    f"Orange token endpoint answered an unusable body ({exc})", phone=self.name
                ) from None
            log.info("phone %s: new Orange access token", self.name)
            return token
        error = to_exception(parse_error(response), self.name)
        if not isinstance(error, SendError):
            error = AuthError(str(error), phone=self.name)
        error.message = f"token request refused: {error.message}"
        raise error

    def call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One authenticated API call. An expired token (401 code 42) is refreshed once
        and the call retried once; any other error becomes a smsbridge exception."""
        for attempt in (1, 2):
            token = self.token()
            headers = {
                "Authorization": f"Bearer {token.access_token}",
                "Accept": "application/json",
            }
            response = self.request(method, url, headers=headers, **kwargs)
            if response.status_code < 300:
                return response
            error = parse_error(response)
            if response.status_code == 401:
                self.shared_token.invalidate(token.access_token, self.token_cache)
                if error.family == "gateway" and error.code == str(EXPIRED_TOKEN) and attempt == 1:
                    log.info("phone %s: Orange token expired, refreshing once", self.name)
                    continue
            raise to_exception(error, self.name)
        raise AssertionError("unreachable")  # pragma: no cover

    def _outbound(self, suffix: str) -> str:
        return f"{self.base_url}/smsmessaging/v1/outbound/{quote(self.sender, safe='')}/{suffix}"

    def _admin(self, what: str, **params: str | None) -> Any:
        query = {k: v for k, v in params.items() if v}
        return self.call("GET", f"{self.base_url}/sms/admin/v1/{what}", params=query).json()

    # ------------------------------------------------------------------ sending
    def validate_sender(self, sender: str) -> None:
        digits = sender.removeprefix("tel:").lstrip("+")
        if digits == self.options.sender_address:
            return  # the phone's own sender address: nothing to change
        if digits.isdigit():
            raise InvalidSender(
                f"Orange sends from {self.sender}; a message sender must be a sender name, "
                f"not the number {sender!r}"
            )
        if not SENDER_NAME_RE.match(sender):
            raise InvalidSender(f"sender name {sender!r} must be 1-11 letters, digits or spaces")

    def submit(self, message: PreparedMessage) -> Submission:
        name = self.options.sender_name
        if message.sender and not message.sender.removeprefix("tel:").lstrip("+").isdigit():
            name = message.sender
        request: dict[str, Any] = {
            "address": f"tel:{message.to}",
            "senderAddress": self.sender,
            "outboundSMSTextMessage": {"message": message.body},
        }
        if name:
            request["senderName"] = name
        params = ON_NET if self.options.on_net else None
        response = self.call(
            "POST",
            self._outbound("requests"),
            json={"outboundSMSMessageRequest": request},
            params=params,
        )
        try:
            data = response.json()
        except ValueError:
            data = {}
        body = data.get("outboundSMSMessageRequest") if isinstance(data, dict) else None
        provider_id = resource_id((body or {}).get("resourceURL")) or resource_id(
            response.headers.get("Location")
        )
        if provider_id is None:
            log.warning("phone %s: Orange accepted a message without a resourceURL", self.name)
        return Submission(provider_id=provider_id, status=Status.queued, raw=data)

    # ------------------------------------------------------------------ webhooks
    def _address(self, value: object) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return None
        text = value.strip().removeprefix("tel:").replace(" ", "")
        if not text.startswith("+"):
            text = "+" + text.removeprefix("00")
        try:
            return normalize(text)
        except InvalidRecipient:
            return text  # short codes and numbers libphonenumber does not know: kept as given

    def _notification(self, request: WebhookRequest, key: str, item: str) -> list[Any]:
        data = request.json()
        note = data.get(key) if isinstance(data, dict) else None
        if not isinstance(note, dict):
            raise WebhookParseError(f"expected an Orange {key} JSON body")
        items = note.get(item)
        items = items if isinstance(items, list) else [items]
        if not items or not all(isinstance(i, dict) for i in items):
            raise WebhookParseError(f"{key}.{item} is missing or not an object")
        return [note, data, *items]

    def parse_status_callback(self, request: WebhookRequest) -> list[StatusReport]:
        note, data, *infos = self._notification(request, "deliveryInfoNotification", "deliveryInfo")
        callback = note.get("callbackData")
        provider_id = str(callback).strip() or None if callback is not None else None
        reports = []
        for info in infos:
            raw = info.get("deliveryStatus")
            if not isinstance(raw, str) or not raw:
                raise WebhookParseError("deliveryInfo.deliveryStatus is missing")
            reports.append(
                StatusReport(
                    provider_id=provider_id,
                    phone=self.name,
                    status=self.map_status(raw),
                    raw_status=raw,
                    at=self.clock(),
                    raw=data,
                    recipient=self._address(info.get("address")),
                )
            )
        return reports

    def parse_inbound(self, request: WebhookRequest) -> list[IncomingMessage]:
        _, data, *items = self._notification(
            request, "inboundSMSMessageNotification", "inboundSMSMessage"
        )
        messages = []
        for item in items:
            sender = self._address(item.get("senderAddress"))
            if sender is None:
                raise WebhookParseError("inboundSMSMessage.senderAddress is missing")
            message_id = item.get("messageId")
            messages.append(
                IncomingMessage(
                    phone=self.name,
                    sender=sender,
                    recipient=self._address(item.get("destinationAddress")),
                    body=str(item.get("message") or ""),
                    received_at=parse_datetime(item.get("dateTime")) or self.clock(),
                    provider_id=str(message_id) if message_id else None,
                    raw=data,
                )
            )
        return messages

    # ------------------------------------------------------------------ DR subscriptions
    def subscribe(self, notify_url: str | None = None) -> Subscription:
        """Register a delivery-receipt URL (default: this phone's status webhook)."""
        url = notify_url or self.callback_url("status")
        if not url:
            raise ConfigError("no notify URL: set webhooks.public_url or pass one")
        body = {"deliveryReceiptSubscription": {"callbackReference": {"notifyURL": url}}}
        response = self.call("POST", self._outbound("subscriptions"), json=body)
        found = parse_subscriptions(response.json(), self.redact)
        return found[0] if found else Subscription(None, self.redact(url), self.sender)

    def subscriptions(self) -> list[Subscription]:
        """The delivery-receipt subscriptions of this phone's sender address."""
        return parse_subscriptions(
            self.call("GET", self._outbound("subscriptions")).json(), self.redact
        )

    def unsubscribe(self, subscription_id: str) -> None:
        self.call("DELETE", self._outbound(f"subscriptions/{quote(subscription_id, safe='')}"))

    def is_own_subscription(self, subscription: Subscription) -> bool:
        own = self.callback_url("status")
        return own is not None and subscription.notify_url == self.redact(own)

    # ------------------------------------------------------------------ admin API
    def contracts(self, *, all_countries: bool = False) -> list[Contract]:
        country = None if all_countries else self.country
        return parse_contracts(self._admin("contracts", country=country))

    def statistics(
        self, *, all_countries: bool = False, appid: str | None = None
    ) -> list[UsageStat]:
        country = None if all_countries else self.country
        return parse_statistics(self._admin("statistics", country=country, appid=appid))

    def purchase_orders(self, *, all_countries: bool = False) -> list[PurchaseOrder]:
        country = None if all_countries else self.country
        return parse_purchase_orders(self._admin("purchaseorders", country=country))

    def balance(self) -> Balance:
        """Units left and the nearest expiry for this phone's country and offer; logs a
        warning when units are low or the contract expires soon."""
        contracts = [c for c in self.contracts() if c.country in (None, self.country)]
        offer = "SMS_OCB2" if self.options.on_net else "SMS_OCB"
        matching = [c for c in contracts if c.offer == offer] or contracts
        active = [c for c in matching if c.active]
        units = sum(c.units or 0 for c in active)
        expiries = [c.expires_at for c in active if c.expires_at is not None]
        expires_at = min(expiries) if expiries else None
        opts = self.options
        if units <= opts.low_units_warning:
            log.warning("phone %s: only %g Orange units left (%s)", self.name, units, offer)
        if expires_at is not None and expires_at - self.clock() <= timedelta(
            days=opts.expiry_warning_days
        ):
            log.warning("phone %s: Orange contract expires %s", self.name, expires_at.isoformat())
        details = {
            "country": self.country,
            "offer": offer,
            "contracts": [c.to_dict() for c in matching],
        }
        return Balance(phone=self.name, units=units, expires_at=expires_at, details=details)

    def check(self) -> None:
        """Get a token: proves the credentials (a cached valid token is enough)."""
        self.token()

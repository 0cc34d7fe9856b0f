"""Orange SMS API ("SMS Africa and Middle East", developer.orange.com) phone for smsbridge.

Plain ``requests``: OAuth v3 client_credentials token (shared, cached, single-flight,
see :mod:`smsbridge_orange.auth`), ``smsmessaging/v1`` to send and manage delivery-receipt
subscriptions, ``sms/admin/v1`` for contracts (balance), statistics and purchase orders.
Delivery receipts and inbound SMS arrive as JSON webhooks authenticated by ``?token=``.
Options: :mod:`~smsbridge_orange.options`; errors: :mod:`~smsbridge_orange.errors`; wire
bodies: :mod:`~smsbridge_orange.payloads`; admin API: :mod:`~smsbridge_orange.admin`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import requests
from pydantic import ValidationError
from requests.adapters import HTTPAdapter

from smsbridge.cache import KeyValueCache
from smsbridge.capabilities import Capabilities
from smsbridge.errors import ConfigError, SendError
from smsbridge.http import WebhookRequest
from smsbridge.message import Balance, IncomingMessage, StatusReport
from smsbridge.numbers import normalize_country
from smsbridge.phone import ErrorRule, HttpPhone, PhoneOptions, PreparedMessage, Submission
from smsbridge.status import Status

from . import admin, auth, payloads
from .admin import Contract, PurchaseOrder, Subscription, UsageStat
from .auth import Token, TokenCache
from .countries import SENDER_NUMBERS
from .errors import ERROR_CODES, EXPIRED_TOKEN, parse_error, to_exception
from .options import OrangeOptions, SenderNameError, check_sender, is_number, sender_name_error

__all__ = ["ERROR_CODES", "OrangeOptions", "OrangePhone", "SenderNameError"]
__version__ = "0.1.0"

log = logging.getLogger("smsbridge.orange")
JSON = {"Accept": "application/json"}


class OrangePhone(HttpPhone):
    """A phone on the Orange SMS API (one country contract)."""

    plugin: ClassVar[str] = "orange"
    user_agent: ClassVar[str] = "smsbridge-orange"
    capabilities: ClassVar[Capabilities] = Capabilities(
        receive=True,
        receive_mode="webhook",
        status=True,
        status_mode="webhook",
        sender_name=True,
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
    ERROR_CODES: ClassVar[Mapping[Any, ErrorRule]] = ERROR_CODES

    options: OrangeOptions

    def __init__(
        self, name: str, options: Any = None, *, token_cache: TokenCache | None = None, **kw: Any
    ) -> None:
        if kw.get("session") is None:  # sends from many threads share one pool
            kw["session"] = session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        try:
            super().__init__(name, options, **kw)
        except ValidationError as exc:
            raise (sender_name_error(exc) or exc) from None
        opts = self.options
        self.base_url = opts.base_url.rstrip("/")
        self.token_url = opts.token_url or f"{self.base_url}/oauth/v3/token"
        self.sender = f"tel:+{opts.sender_address}"
        self.country = opts.country or ""
        self._basic = opts.basic_header()
        self.token_key = auth.credentials_key(self.token_url, self._basic)
        self.shared_token = auth.shared_token(self.token_key)
        self.token_cache: TokenCache | None
        self.token_cache, self._token_cache_chosen = auth.choose_token_cache(
            token_cache, opts.token_cache, opts.token_cache_dir
        )

    @property
    def caps(self) -> Capabilities:
        """One Orange contract serves one country: the phone's."""
        allowed = frozenset({normalize_country(self.country)})
        if self.options.countries is not None:
            allowed &= frozenset(self.options.countries)
        return super().caps.replace(countries=allowed)

    def secrets(self) -> list[str]:
        token = self.shared_token.current
        found = [*super().secrets(), self._basic]
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
            self.token_cache = auth.StoreTokenCache(cache)

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
        return auth.fetch_token(self, self.token_url, self._basic, self._now)

    def call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One authenticated API call. An expired token (401 code 42) is refreshed once
        and the call retried once; any other error becomes a smsbridge exception."""
        for attempt in (1, 2):
            token = self.token()
            bearer = {"Authorization": f"Bearer {token.access_token}"}
            response = self.request(method, url, headers=bearer | JSON, **kwargs)
            if response.status_code < 300:
                return response
            error = parse_error(response)
            if response.status_code == 401:
                self.shared_token.invalidate(token.access_token, self.token_cache)
                if error.family == "gateway" and error.code == str(EXPIRED_TOKEN) and attempt == 1:
                    log.info("phone %s: Orange token expired, refreshing once", self.name)
                    continue
            raise to_exception(error, self)
        raise AssertionError("unreachable")  # pragma: no cover

    def _outbound(self, suffix: str) -> str:
        return f"{self.base_url}/smsmessaging/v1/outbound/{quote(self.sender, safe='')}/{suffix}"

    def _admin(self, what: str, all_countries: bool, **params: str | None) -> Any:
        params = {"country": None if all_countries else self.country, **params}
        query = {k: v for k, v in params.items() if v}
        return self.call("GET", f"{self.base_url}/sms/admin/v1/{what}", params=query).json()

    # ------------------------------------------------------------------ sending
    def validate_sender(self, sender: str) -> None:
        """A sender name, or the phone's own sender address (Orange sends from it)."""
        check_sender(sender, self.options.sender_address)

    def submit(self, message: PreparedMessage) -> Submission:
        name = self.options.sender_name
        if message.sender and not is_number(message.sender):
            name = message.sender
        body = payloads.send_request(message.to, self.sender, message.body, name)
        params = payloads.ON_NET if self.options.on_net else None
        response = self.call("POST", self._outbound("requests"), json=body, params=params)
        provider_id, data = payloads.provider_id(response)
        if provider_id is None:
            log.warning("phone %s: Orange accepted a message without a resourceURL", self.name)
        return Submission(provider_id=provider_id, status=Status.queued, raw=data)

    # ------------------------------------------------------------------ webhooks
    def parse_status_callback(self, request: WebhookRequest) -> list[StatusReport]:
        provider_id, data, infos = payloads.delivery_infos(request)
        return [self.report(provider_id, raw, raw=data, recipient=to) for raw, to in infos]

    def parse_inbound(self, request: WebhookRequest) -> list[IncomingMessage]:
        return payloads.inbound_messages(request, self.name, self.clock)

    # ------------------------------------------------------------------ DR subscriptions
    def subscribe(self, notify_url: str | None = None) -> Subscription:
        """Register a delivery-receipt URL (default: this phone's status webhook)."""
        url = notify_url or self.callback_url("status")
        if not url:
            raise ConfigError("no notify URL: set webhooks.public_url or pass one")
        body = payloads.subscription_request(url)
        response = self.call("POST", self._outbound("subscriptions"), json=body)
        found = admin.parse_subscriptions(response.json(), self.redact)
        return found[0] if found else Subscription(None, self.redact(url), self.sender)

    def subscriptions(self) -> list[Subscription]:
        """The delivery-receipt subscriptions of this phone's sender address."""
        return admin.parse_subscriptions(
            self.call("GET", self._outbound("subscriptions")).json(), self.redact
        )

    def unsubscribe(self, subscription_id: str) -> None:
        self.call("DELETE", self._outbound(f"subscriptions/{quote(subscription_id, safe='')}"))

    def is_own_subscription(self, subscription: Subscription) -> bool:
        own = self.callback_url("status")
        return own is not None and subscription.notify_url == self.redact(own)

    # ------------------------------------------------------------------ admin API
    def contracts(self, *, all_countries: bool = False) -> list[Contract]:
        return admin.parse_contracts(self._admin("contracts", all_countries))

    def statistics(
        self, *, all_countries: bool = False, appid: str | None = None
    ) -> list[UsageStat]:
        return admin.parse_statistics(self._admin("statistics", all_countries, appid=appid))

    def purchase_orders(self, *, all_countries: bool = False) -> list[PurchaseOrder]:
        return admin.parse_purchase_orders(self._admin("purchaseorders", all_countries))

    def balance(self) -> Balance:
        """Units left and the nearest expiry for this phone's country and offer; logs a
        warning when units are low or the contract expires soon."""
        offer = "SMS_OCB2" if self.options.on_net else "SMS_OCB"
        units, expires_at, matching = admin.contract_balance(self.contracts(), self.country, offer)
        opts = self.options
        if units <= opts.low_units_warning:
            log.warning("phone %s: only %g Orange units left (%s)", self.name, units, offer)
        soon = timedelta(days=opts.expiry_warning_days)
        if expires_at is not None and expires_at - self.clock() <= soon:
            log.warning("phone %s: Orange contract expires %s", self.name, expires_at.isoformat())
        contracts = [c.to_dict() for c in matching]
        details = {"country": self.country, "offer": offer, "contracts": contracts}
        return Balance(phone=self.name, units=units, expires_at=expires_at, details=details)

    def check(self) -> None:
        """Get a token: proves the credentials (a cached valid token is enough)."""
        self.token()

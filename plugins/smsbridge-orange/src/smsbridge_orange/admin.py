"""Parsers for Orange's admin API (``/sms/admin/v1``) and DR subscription bodies.

Two shapes of ``/contracts`` exist in Orange's documents, both accepted:

- the current guide: a JSON array, one object per country, with ``country``,
  ``offerName``, ``availableUnits``, ``status`` and ``expirationDate``;
- the older one: ``{"partnerContracts": {"contracts": [{"service": "SMS_OCB",
  "serviceContracts": [{"country", "service", "availableUnits", "expires"}]}]}}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

__all__ = [
    "Contract",
    "PurchaseOrder",
    "Subscription",
    "UsageStat",
    "contract_balance",
    "parse_contracts",
    "parse_datetime",
    "parse_purchase_orders",
    "parse_statistics",
    "parse_subscriptions",
    "resource_id",
]


def parse_datetime(value: object) -> datetime | None:
    """ISO 8601 (``2023-01-07T15:04:20.653Z``) → aware UTC datetime; junk → None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def resource_id(url: object) -> str | None:
    """Last path segment of a ``resourceURL`` (encoded or not)."""
    if not isinstance(url, str) or not url.strip():
        return None
    last = unquote(url.strip().split("?")[0].rstrip("/")).rsplit("/", 1)[-1]
    return last or None


class _Plain:
    def to_dict(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in asdict(self).items()  # type: ignore[call-overload]
            if k != "raw"
        }


@dataclass(frozen=True)
class Contract(_Plain):
    country: str | None
    offer: str | None  # SMS_OCB (all networks) or SMS_OCB2 (Orange only)
    units: float | None
    expires_at: datetime | None
    status: str | None = None
    id: str | None = None
    raw: Any = None

    @property
    def active(self) -> bool:
        return (self.status or "ACTIVE").upper() == "ACTIVE"


@dataclass(frozen=True)
class UsageStat(_Plain):
    service: str | None
    country: str | None
    appid: str | None
    usage: float | None
    enforcements: float | None
    raw: Any = None


@dataclass(frozen=True)
class PurchaseOrder(_Plain):
    id: str | None
    country: str | None
    offer: str | None
    description: str | None
    price: float | None
    currency: str | None
    purchased_at: datetime | None
    units_before: float | None
    units_after: float | None
    expires_at: datetime | None
    raw: Any = None


@dataclass(frozen=True)
class Subscription(_Plain):
    """A delivery-receipt subscription. ``notify_url`` has any ``token=`` value masked."""

    id: str | None
    notify_url: str | None
    sender: str | None = None
    raw: Any = None


def parse_contracts(data: Any) -> list[Contract]:
    found: list[Contract] = []
    if isinstance(data, dict) and "partnerContracts" in data:
        partner = data.get("partnerContracts") or {}
        for contract in partner.get("contracts") or []:
            service = contract.get("service")
            for sc in contract.get("serviceContracts") or []:
                found.append(
                    Contract(
                        country=sc.get("country"),
                        offer=sc.get("service") or service,
                        units=_number(sc.get("availableUnits")),
                        expires_at=parse_datetime(sc.get("expires") or sc.get("expirationDate")),
                        status=sc.get("status"),
                        id=sc.get("contractId") or sc.get("id"),
                        raw=sc,
                    )
                )
        return found
    items = data if isinstance(data, list) else (data or {}).get("contracts") or []
    for item in items:
        if not isinstance(item, dict):
            continue
        found.append(
            Contract(
                country=item.get("country"),
                offer=item.get("offerName") or item.get("service"),
                units=_number(item.get("availableUnits")),
                expires_at=parse_datetime(item.get("expirationDate") or item.get("expires")),
                status=item.get("status"),
                id=item.get("id"),
                raw=item,
            )
        )
    return found


def contract_balance(
    contracts: list[Contract], country: str, offer: str
) -> tuple[float, datetime | None, list[Contract]]:
    """Units left and the nearest expiry of the active contracts of ``country`` (or of no
    country) on ``offer`` (on any offer when none is), and the contracts counted from."""
    mine = [c for c in contracts if c.country in (None, country)]
    matching = [c for c in mine if c.offer == offer] or mine
    active = [c for c in matching if c.active]
    units = sum(c.units or 0 for c in active)
    expiries = [c.expires_at for c in active if c.expires_at is not None]
    return units, (min(expiries) if expiries else None), matching


def parse_statistics(data: Any) -> list[UsageStat]:
    found: list[UsageStat] = []
    partner = (data or {}).get("partnerStatistics") if isinstance(data, dict) else None
    for stat in (partner or {}).get("statistics") or []:
        service = stat.get("service")
        for per_country in stat.get("serviceStatistics") or []:
            country = per_country.get("country")
            for row in per_country.get("countryStatistics") or []:
                found.append(
                    UsageStat(
                        service=service,
                        country=country,
                        appid=row.get("appid") or row.get("applicationId"),
                        usage=_number(row.get("usage")),
                        enforcements=_number(row.get("nbEnforcements")),
                        raw=row,
                    )
                )
    return found


def parse_purchase_orders(data: Any) -> list[PurchaseOrder]:
    if isinstance(data, dict):
        data = data.get("purchaseOrders", [])
        if isinstance(data, dict):  # {"purchaseOrders": {"orders": [...]}} tolerated
            data = data.get("orders") or data.get("purchaseOrders") or []
    found: list[PurchaseOrder] = []
    for item in data or []:
        if not isinstance(item, dict):
            continue
        found.append(
            PurchaseOrder(
                id=item.get("id") or item.get("purchaseOrderId"),
                country=item.get("country"),
                offer=item.get("offerName") or item.get("service"),
                description=item.get("bundleDescription"),
                price=_number(item.get("price")),
                currency=item.get("currency"),
                purchased_at=parse_datetime(item.get("purchaseDate")),
                units_before=_number(item.get("oldAvailableUnits")),
                units_after=_number(item.get("newAvailableUnits")),
                expires_at=parse_datetime(item.get("newExpirationDate")),
                raw=item,
            )
        )
    return found


def _subscription(item: dict[str, Any], mask: Any) -> Subscription:
    body = item.get("deliveryReceiptSubscription", item)
    ref = body.get("callbackReference") or {}
    url = ref.get("notifyURL") or body.get("notifyURL")
    return Subscription(
        id=resource_id(body.get("resourceURL")) or body.get("id"),
        notify_url=mask(url) if isinstance(url, str) else None,
        sender=body.get("senderAddress"),
        raw=None,
    )


def parse_subscriptions(data: Any, mask: Any = lambda s: s) -> list[Subscription]:
    """Accept a single subscription, an array, or a OneAPI subscription list."""
    if isinstance(data, dict):
        if "deliveryReceiptSubscriptionList" in data:
            data = (data["deliveryReceiptSubscriptionList"] or {}).get(
                "deliveryReceiptSubscription", []
            )
        elif "deliveryReceiptSubscriptions" in data:
            data = data["deliveryReceiptSubscriptions"]
        elif "deliveryReceiptSubscription" in data:
            inner = data["deliveryReceiptSubscription"]
            data = inner if isinstance(inner, list) else [inner]
        else:
            data = [data]
    if not isinstance(data, list):
        return []
    return [_subscription(item, mask) for item in data if isinstance(item, dict)]

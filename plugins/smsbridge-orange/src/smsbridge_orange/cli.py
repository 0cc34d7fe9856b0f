"""``smsbridge orange ...``: Orange-only commands, plugged in through ``smsbridge.commands``.

::

    smsbridge orange subscribe PHONE [--url URL]     register the phone's status webhook for DRs
    smsbridge orange subscriptions PHONE             list DR subscriptions of the sender address
    smsbridge orange unsubscribe PHONE [ID ...]      delete them (default: those of this phone)
    smsbridge orange stats PHONE [--all-countries] [--appid ID]
    smsbridge orange purchases PHONE [--all-countries]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from smsbridge.errors import ConfigError

from . import OrangePhone

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``orange`` sub-command (with its own sub-commands) to the main CLI."""
    parser = subparsers.add_parser("orange", help="Orange SMS API: DR subscriptions, admin API")
    commands = parser.add_subparsers(dest="orange_command", metavar="COMMAND", required=True)

    def command(name: str, help: str, func: Any) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(name, help=help)
        sub.add_argument("phone", metavar="PHONE", help="name of an orange phone in the config")
        sub.set_defaults(func=func)
        return sub

    sub = command(
        "subscribe", "subscribe the phone's status webhook to delivery receipts", _subscribe
    )
    sub.add_argument("--url", help="notify URL (default: the phone's status webhook URL)")
    command("subscriptions", "list delivery-receipt subscriptions", _subscriptions)
    sub = command("unsubscribe", "delete delivery-receipt subscriptions", _unsubscribe)
    sub.add_argument(
        "ids",
        nargs="*",
        metavar="ID",
        help="subscription ids (default: those pointing at this phone)",
    )
    sub.add_argument("--all", action="store_true", help="delete every subscription")
    sub = command("stats", "SMS usage statistics (admin API)", _stats)
    sub.add_argument("--all-countries", action="store_true", help="no country filter")
    sub.add_argument("--appid", help="filter on one application id")
    sub = command("purchases", "bundle purchase history (admin API)", _purchases)
    sub.add_argument("--all-countries", action="store_true", help="no country filter")


def _phone(args: argparse.Namespace, bridge: Any) -> OrangePhone:
    try:
        phone = bridge.phones[args.phone]
    except KeyError:
        known = ", ".join(sorted(bridge.phones)) or "none"
        raise ConfigError(f"no phone named {args.phone!r} (configured: {known})") from None
    if not isinstance(phone, OrangePhone):
        raise ConfigError(f"phone {args.phone!r} is not an orange phone ({phone.plugin})")
    return phone


def _emit(args: argparse.Namespace, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> int:
    if getattr(args, "json", False):
        print(json.dumps(list(rows), indent=2, ensure_ascii=False, default=str))
        return 0
    if not rows:
        print("(none)")
        return 0
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0


def _subscribe(args: argparse.Namespace, bridge: Any) -> int:
    sub = _phone(args, bridge).subscribe(args.url)
    return _emit(args, [sub.to_dict()], ["id", "notify_url"])


def _subscriptions(args: argparse.Namespace, bridge: Any) -> int:
    phone = _phone(args, bridge)
    rows = [
        dict(s.to_dict(), this_phone=phone.is_own_subscription(s)) for s in phone.subscriptions()
    ]
    return _emit(args, rows, ["id", "notify_url", "this_phone"])


def _unsubscribe(args: argparse.Namespace, bridge: Any) -> int:
    phone = _phone(args, bridge)
    ids = list(args.ids)
    if not ids:
        ids = [
            s.id
            for s in phone.subscriptions()
            if s.id and (args.all or phone.is_own_subscription(s))
        ]
    for sub_id in ids:
        phone.unsubscribe(sub_id)
    return _emit(args, [{"id": i, "deleted": True} for i in ids], ["id", "deleted"])


def _stats(args: argparse.Namespace, bridge: Any) -> int:
    stats = _phone(args, bridge).statistics(all_countries=args.all_countries, appid=args.appid)
    return _emit(
        args, [s.to_dict() for s in stats], ["service", "country", "appid", "usage", "enforcements"]
    )


def _purchases(args: argparse.Namespace, bridge: Any) -> int:
    orders = _phone(args, bridge).purchase_orders(all_countries=args.all_countries)
    return _emit(
        args,
        [o.to_dict() for o in orders],
        [
            "purchased_at",
            "country",
            "offer",
            "description",
            "price",
            "currency",
            "units_after",
            "expires_at",
        ],
    )

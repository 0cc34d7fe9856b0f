"""The core commands: ``send``, ``route``, ``phones``, ``capabilities``, ``plugins``,
``check``, ``balance``, ``demo``. Registered like every command group, through the
``smsbridge.commands`` entry points (see :mod:`smsbridge.cli`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..bridge import Bridge
from ..errors import ConfigError, SendError
from ..message import SendResult
from ..registry import available
from .messaging import add_var_argument, parse_vars
from .output import capability_rows, emit_json, print_table

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the core subcommands."""

    def add(
        name: str, func: Callable[..., int], help: str, needs_bridge: bool = True
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=help)
        p.set_defaults(func=func, needs_bridge=needs_bridge)
        return p

    p = add("send", cmd_send, "send one SMS")
    p.add_argument("to", help="recipient, E.164 (+225...) or national with default_region")
    p.add_argument("text", nargs="?", help="message body (or --template)")
    p.add_argument("--template", help="send this template instead of TEXT")
    add_var_argument(p)
    p.add_argument("--locale", help="template locale (fr_CI falls back to fr, then default)")
    p.add_argument("--phone", help="send through this phone (bypasses routing)")
    p.add_argument("--sender", help="sender number or name")
    p.add_argument("--tag", help="tag (routes may match on it)")
    p.add_argument("--media", action="append", help="media URL (MMS); repeatable")
    p.add_argument("--flash", action="store_true", help="flash SMS")
    p.add_argument("--idempotency-key", help="a repeated send with this key sends nothing")

    p = add("route", cmd_route, "show the phones a message would be tried on, in order")
    p.add_argument("to")
    p.add_argument("--tag")
    p.add_argument("--sender")

    add("phones", cmd_phones, "list the configured phones and their webhook URLs")
    add("capabilities", cmd_capabilities, "the capability matrix: phones x capabilities")
    add("plugins", cmd_plugins, "list installed phone plugins", needs_bridge=False)
    add("check", cmd_check, "validate the config and each phone's credentials")
    p = add("balance", cmd_balance, "units left on phones that can tell")
    p.add_argument("phone", nargs="?")
    add(
        "demo",
        cmd_demo,
        "run the built-in demo: dummy phones, no file, no credentials",
        needs_bridge=False,
    )


def cmd_send(args: argparse.Namespace, bridge: Bridge) -> int:
    fields: dict[str, Any] = {}
    for key in ("phone", "sender", "tag"):
        if getattr(args, key, None):
            fields[key] = getattr(args, key)
    if args.media:
        fields["media"] = tuple(args.media)
    if args.flash:
        fields["flash"] = True
    if args.idempotency_key:
        fields["idempotency_key"] = args.idempotency_key
    try:
        if args.template:
            result = bridge.send_template(
                args.to, args.template, parse_vars(args.var), locale=args.locale, **fields
            )
        elif args.text is None:
            raise ConfigError("send needs TEXT or --template SLUG")
        else:
            result = bridge.send(args.to, args.text, **fields)
    except SendError as exc:
        failed = getattr(exc, "result", None)
        if args.json and isinstance(failed, SendResult):
            emit_json(failed.to_dict())
        elif isinstance(failed, SendResult):
            _print_attempts(failed)
        raise
    if args.json:
        emit_json(result.to_dict())
    else:
        print(
            f"sent via {result.phone}: {result.status.value}, provider id {result.provider_id}, "
            f"message id {result.message_id}, {result.segments} {result.encoding} segment(s)"
        )
        if len(result.attempts) > 1:
            _print_attempts(result)
    return 0


def _print_attempts(result: SendResult) -> None:
    print_table([[a.phone, a.error or "ok"] for a in result.attempts], ["phone tried", "outcome"])


def cmd_route(args: argparse.Namespace, bridge: Bridge) -> int:
    fields = {k: getattr(args, k) for k in ("tag", "sender") if getattr(args, k, None)}
    phones = bridge.route(args.to, **fields)
    if args.json:
        emit_json({"to": args.to, "phones": phones})
    else:
        print(" -> ".join(phones))
    return 0


def cmd_phones(args: argparse.Namespace, bridge: Bridge) -> int:
    rows = []
    for name, phone in bridge.phones.items():
        urls = bridge.callback_urls()[name]
        rows.append(
            [
                name,
                phone.plugin,
                phone.rate_limit or "-",
                "yes" if phone.webhook_protected else "no",
                _hide_token(urls["status"]) or "-",
                _hide_token(urls["inbound"]) or "-",
            ]
        )
    if args.json:
        emit_json(
            [
                dict(
                    zip(
                        [
                            "name",
                            "plugin",
                            "rate_limit",
                            "webhooks_protected",
                            "status_url",
                            "inbound_url",
                        ],
                        r,
                    )
                )
                for r in rows
            ]
        )
    else:
        print_table(rows, ["phone", "plugin", "rate/s", "protected", "status url", "inbound url"])
    return 0


def cmd_capabilities(args: argparse.Namespace, bridge: Bridge) -> int:
    caps = bridge.capabilities()
    if args.json:
        emit_json({name: c.to_dict() for name, c in caps.items()})
    else:
        rows, headers = capability_rows(caps)
        print_table(rows, headers)
    return 0


def cmd_plugins(args: argparse.Namespace, bridge: Bridge | None) -> int:
    plugins = available()
    if args.json:
        emit_json([p.to_dict() for p in plugins.values()])
    else:
        print_table(
            [[p.name, p.distribution, p.version, p.value] for p in plugins.values()],
            ["plugin", "distribution", "version", "class"],
        )
    return 0


def cmd_check(args: argparse.Namespace, bridge: Bridge) -> int:
    results = bridge.check()
    if args.json:
        emit_json({n: (None if e is None else str(e)) for n, e in results.items()})
    else:
        print(f"config {bridge.config.path or '(in memory)'}: valid, {len(results)} phone(s)")
        print_table(
            [[n, "ok" if e is None else f"FAILED: {e}"] for n, e in results.items()],
            ["phone", "credentials"],
        )
    return 0 if all(e is None for e in results.values()) else 1


def cmd_balance(args: argparse.Namespace, bridge: Bridge) -> int:
    names = [args.phone] if args.phone else [n for n, p in bridge.phones.items() if p.caps.balance]
    balances = [bridge.balance(n) for n in names]
    if args.json:
        emit_json([b.to_dict() for b in balances])
    else:
        print_table(
            [
                [
                    b.phone,
                    b.units if b.units is not None else "unlimited",
                    b.expires_at.isoformat() if b.expires_at else "-",
                ]
                for b in balances
            ],
            ["phone", "units", "expires"],
        )
    return 0


def cmd_demo(args: argparse.Namespace, bridge: Bridge | None) -> int:
    from ..demo import run_demo

    return run_demo(as_json=args.json)


def _hide_token(url: str | None) -> str | None:
    if url and "token=" in url:
        return url.split("token=")[0] + "token=***"
    return url

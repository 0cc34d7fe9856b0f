"""The ``smsbridge`` command.

Errors are one clear line on stderr and a non-zero exit (2 for configuration and usage,
1 for a failed send or check), never a traceback. Plugins add subcommands through the
``smsbridge.commands`` entry-point group: each entry point is ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .bridge import Bridge
from .capabilities import Capabilities
from .cli_extras import parse_vars, var_arg
from .config import resolve_path
from .errors import ConfigError, MessageError, RoutingError, SendError, SmsBridgeError
from .message import SendResult
from .registry import COMMANDS_GROUP, available

__all__ = ["main", "print_table"]

log = logging.getLogger("smsbridge.cli")

# Core modules that contribute subcommands (each has ``register(subparsers)``); a module
# that is absent is skipped so the CLI keeps working while features are optional.
CORE_COMMAND_MODULES = ("smsbridge.cli_store", "smsbridge.webhooks.cli", "smsbridge.cli_extras")


# ---------------------------------------------------------------------- output helpers
def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Print rows as an aligned plain-text table."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _mark(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False or value is None:
        return "-"
    if isinstance(value, (list, tuple, frozenset, set)):
        return ",".join(sorted(str(v) for v in value)) or "-"
    return str(value)


def capability_rows(caps: dict[str, Capabilities]) -> tuple[list[list[str]], list[str]]:
    names = Capabilities.names()
    rows = [[name, *(_mark(getattr(c, f)) for f in names)] for name, c in caps.items()]
    return rows, ["phone", *names]


# ---------------------------------------------------------------------- commands
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


def _hide_token(url: str | None) -> str | None:
    if url and "token=" in url:
        return url.split("token=")[0] + "token=***"
    return url


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
    from .demo import run_demo

    return run_demo(as_json=args.json)


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    def common_options(suppress: bool) -> argparse.ArgumentParser:
        # Subcommands repeat the global options; their defaults are suppressed so that
        # `smsbridge --config X send ...` keeps X.
        default: Any = argparse.SUPPRESS if suppress else None
        flag: Any = argparse.SUPPRESS if suppress else False
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument(
            "--config",
            "-c",
            default=default,
            help="YAML file (default: $SMSBRIDGE_CONFIG, then ./smsbridge.yaml)",
        )
        common.add_argument(
            "--json", action="store_true", default=flag, help="machine-readable output"
        )
        common.add_argument(
            "-v", "--verbose", action="store_true", default=flag, help="log what happens"
        )
        return common

    common = common_options(suppress=True)
    parser = argparse.ArgumentParser(
        prog="smsbridge",
        parents=[common_options(suppress=False)],
        description="Send and receive SMS through many providers.",
    )
    parser.add_argument("--version", action="version", version=f"smsbridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(
        name: str, func: Callable[..., int], help: str, needs_bridge: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func, needs_bridge=needs_bridge)
        return p

    p = add("send", cmd_send, "send one SMS")
    p.add_argument("to", help="recipient, E.164 (+225...) or national with default_region")
    p.add_argument("text", nargs="?", help="message body (or --template)")
    p.add_argument("--template", help="send this template instead of TEXT")
    p.add_argument(
        "--var",
        action="append",
        type=var_arg,
        metavar="KEY=VALUE",
        help="template variable; repeatable",
    )
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

    _load_extensions(sub, common)
    return parser


class _SubParsers:
    """Wraps the subparsers action so extensions get the common options for free."""

    def __init__(self, sub: Any, common: argparse.ArgumentParser) -> None:
        self._sub = sub
        self._common = common

    def add_parser(self, name: str, **kw: Any) -> argparse.ArgumentParser:
        parents = [*kw.pop("parents", []), self._common]
        parser: argparse.ArgumentParser = self._sub.add_parser(name, parents=parents, **kw)
        parser.set_defaults(needs_bridge=True)
        return parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sub, name)


def _load_extensions(sub: Any, common: argparse.ArgumentParser) -> None:
    wrapped = _SubParsers(sub, common)
    for module_name in CORE_COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                log.warning("cannot load %s: %s", module_name, exc)
            continue
        module.register(wrapped)
    from importlib.metadata import entry_points

    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            register = ep.load()
            register(wrapped)
        except Exception as exc:  # a broken plugin must not break the CLI
            dist = ep.dist.name if ep.dist else "?"
            print(
                f"smsbridge: warning: commands of plugin '{ep.name}' ({dist}) unavailable: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )


# ---------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    bridge: Bridge | None = None
    try:
        if args.needs_bridge:
            bridge = Bridge.from_yaml(resolve_path(args.config))
        code: int = args.func(args, bridge)
        return code
    except (ConfigError, RoutingError) as exc:
        print(f"smsbridge: error: {exc}", file=sys.stderr)
        return 2
    except (MessageError, SendError, SmsBridgeError) as exc:
        print(f"smsbridge: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if bridge is not None:
            bridge.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

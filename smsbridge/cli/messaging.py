"""CLI commands for templates and the opt-out list (loaded by :mod:`smsbridge.cli`).

::

    smsbridge templates                              # list slugs, locales, variables
    smsbridge templates verification --locale fr --var code=123456 --var minutes=10
    smsbridge optouts [list] [--limit N]
    smsbridge optouts add +2250701020304 [--keyword STOP]
    smsbridge optouts remove +2250701020304
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ..folding import encode_text
from ..optouts import MemoryOptOutStore, OptOutList, optouts_for
from ..templates import templates_for
from .output import emit_json, print_table

__all__ = ["optouts_of", "parse_vars", "register", "var_arg"]


def add_var_argument(parser: argparse.ArgumentParser) -> None:
    """``--var KEY=VALUE`` (repeatable): template variables, for every command rendering one."""
    parser.add_argument(
        "--var",
        action="append",
        type=var_arg,
        metavar="KEY=VALUE",
        help="template variable; repeatable",
    )


def var_arg(text: str) -> tuple[str, str]:
    """argparse ``type=`` for ``--var KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def parse_vars(items: list[tuple[str, str]] | None) -> dict[str, str]:
    """``--var`` pairs (from :func:`var_arg`) into a template context."""
    return dict(items or [])


def register(subparsers: Any) -> None:
    """Add the ``templates`` and ``optouts`` subcommands."""
    p = subparsers.add_parser(
        "templates",
        help="list message templates, or render one",
        description="List the templates (built-in, folder, YAML), or render SLUG "
        "with --var values to preview its text, encoding and segments.",
    )
    p.add_argument("slug", nargs="?", help="render this template instead of listing")
    p.add_argument("--locale", help="locale to render (falls back fr_CI -> fr -> default)")
    add_var_argument(p)
    p.add_argument(
        "--fold-accents",
        action="store_true",
        help="show the text folded to GSM-7 where that saves segments",
    )
    p.set_defaults(func=cmd_templates, needs_bridge=True)

    p = subparsers.add_parser(
        "optouts",
        help="list, add or remove opted-out numbers (STOP list)",
        description="The opt-out list kept in the store: numbers that sent STOP (or that a "
        "provider reported as unsubscribed) and to which sends are refused.",
    )
    p.add_argument("action", nargs="?", default="list", choices=["list", "add", "remove"])
    p.add_argument("number", nargs="?", help="number (E.164, or national with default_region)")
    p.add_argument("--keyword", help="with add: the keyword to record (default: manual)")
    p.add_argument("--limit", type=int, default=None, help="with list: at most N entries")
    p.set_defaults(func=cmd_optouts, needs_bridge=True)


def cmd_templates(args: argparse.Namespace, bridge: Any) -> int:
    library = templates_for(bridge)
    if args.slug:
        rendered = library.render(args.slug, parse_vars(args.var), args.locale)
        encoded = encode_text(rendered.text, "auto", args.fold_accents)
        data = {
            **rendered.to_dict(),
            "text": encoded.text,
            "encoding": encoded.encoding,
            "segments": encoded.segments,
            "folded": encoded.folded,
        }
        if args.json:
            emit_json(data)
        else:
            print(encoded.text)
            print(
                f"-- {rendered.slug} ({rendered.locale}): {encoded.segments} "
                f"{encoded.encoding} segment(s){', folded' if encoded.folded else ''}"
            )
        return 0
    templates = sorted(library, key=lambda t: t.slug)
    if args.json:
        emit_json(
            [
                {
                    "slug": t.slug,
                    "locales": list(t.locales),
                    "default": library.default_of(t),
                    "variables": library.variables(t.slug),
                    "source": t.source,
                    "description": t.description,
                }
                for t in templates
            ]
        )
    else:
        print_table(
            [
                [
                    t.slug,
                    ",".join(t.locales),
                    library.default_of(t),
                    ",".join(library.variables(t.slug)) or "-",
                    t.source or "-",
                ]
                for t in templates
            ],
            ["template", "locales", "default", "variables", "source"],
        )
    return 0


def optouts_of(bridge: Any) -> OptOutList:
    """The bridge's opt-out list in its store's database (an in-memory list would die
    with this command, so a bridge without a store is an error)."""
    engine = getattr(getattr(bridge, "store", None), "engine", None)
    if engine is None:
        raise ConfigError(
            "the opt-out list lives in the store: set 'store:' in the config", key="store"
        )
    optouts = optouts_for(bridge)
    if optouts is not None and not isinstance(optouts.store, MemoryOptOutStore):
        return optouts
    from ..store.features import SqlOptOutStore

    config = getattr(bridge, "config", None)
    region = getattr(config, "default_region", None)
    return OptOutList(SqlOptOutStore(engine), default_region=region)


def cmd_optouts(args: argparse.Namespace, bridge: Any) -> int:
    optouts = optouts_of(bridge)
    if args.action in ("add", "remove") and not args.number:
        raise ConfigError(f"optouts {args.action} needs a NUMBER")
    if args.action == "add":
        entry = optouts.add(args.number, keyword=args.keyword, source="manual")
        if args.json:
            emit_json(entry.to_dict())
        else:
            print(f"{entry.number} added to the opt-out list")
        return 0
    if args.action == "remove":
        removed = optouts.remove(args.number)
        if args.json:
            emit_json({"number": args.number, "removed": removed})
        else:
            print(f"{args.number} removed" if removed else f"{args.number} was not on the list")
        return 0 if removed else 1
    entries = optouts.entries(limit=args.limit)
    if args.json:
        emit_json([e.to_dict() for e in entries])
    else:
        print_table(
            [
                [
                    e.number,
                    e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.keyword or "-",
                    e.phone or "-",
                    e.source,
                ]
                for e in entries
            ],
            ["number", "opted out (UTC)", "keyword", "phone", "source"],
        )
    return 0

"""The ``smsbridge`` command (DESIGN §10): one entry point, ``--config`` and ``--json``.

Every command group — the core's (:mod:`.core`, :mod:`.messaging`, :mod:`.store`,
:mod:`.serve`) and each plugin's — is a ``register(subparsers)`` function published in
the ``smsbridge.commands`` entry-point group, so the CLI never imports a provider by
name. Output goes through :mod:`.output` (tables, JSON). Errors are one clear line and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from .. import __version__
from ..bridge import Bridge
from ..config import resolve_path
from ..errors import ConfigError, MessageError, RoutingError, SendError, SmsBridgeError
from ..registry import COMMANDS_GROUP
from .output import emit_json, print_table

__all__ = ["build_parser", "emit_json", "main", "print_table"]

log = logging.getLogger("smsbridge.cli")

#: The core's own command groups, first (a plugin cannot shadow them).
CORE_GROUPS = ("core", "messaging", "store", "serve")


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
    found = {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}
    core = [found.pop(name) for name in CORE_GROUPS if name in found]
    for ep in [*core, *sorted(found.values(), key=lambda e: e.name)]:
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

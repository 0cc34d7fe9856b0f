"""``smsbridge serve``: registered into the main CLI by ``register(subparsers)``."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..bridge import Bridge

__all__ = ["cmd_serve", "register"]


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    help_text = "serve the webhooks (delivery reports, inbound SMS) over HTTP with uvicorn"
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help=help_text, description=help_text
    )
    p.add_argument(
        "--host",
        default=os.environ.get("SMSBRIDGE_HOST", "127.0.0.1"),
        help="interface to listen on (default 127.0.0.1, $SMSBRIDGE_HOST; 0.0.0.0 for all)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SMSBRIDGE_PORT", "8000")),
        help="TCP port (default 8000, $SMSBRIDGE_PORT; 0 picks a free one)",
    )
    p.add_argument(
        "--show-secrets",
        action="store_true",
        help="print callback URLs with their ?token= secret instead of ***",
    )
    p.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads running callbacks and store writes (default: Python's default pool)",
    )
    p.set_defaults(func=cmd_serve, needs_bridge=True)


def cmd_serve(args: argparse.Namespace, bridge: Bridge) -> int:
    from ..webhooks.server import serve

    serve(
        bridge,
        args.host,
        args.port,
        show_secrets=args.show_secrets,
        access_log=not args.no_access_log,
        as_json=bool(getattr(args, "json", False)),
        threads=args.threads,
        log_level="debug" if getattr(args, "verbose", False) else "info",
    )
    return 0

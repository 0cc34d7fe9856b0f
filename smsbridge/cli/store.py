"""Store and outbox commands: ``outbox``, ``inbox``, ``status ID``, ``worker``, ``purge``.

Registered by :mod:`smsbridge.cli` through ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, SmsBridgeError
from ..status import Status
from ..store.sql import SqlStore
from .output import emit_json, print_table

if TYPE_CHECKING:
    from ..bridge import Bridge
    from ..store.records import StoredMessage

__all__ = ["parse_since", "parse_statuses", "register"]

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str) -> datetime:
    """``30m``, ``2h``, ``7d`` (an age) or an ISO 8601 date/time (UTC when naive)."""
    match = _AGE.match(value)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither an age (30m, 2h, 7d) nor an ISO date/time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "outbox",
        help="list outgoing messages, newest first",
        description="List outgoing messages (sent and enqueued), newest first.",
    )
    p.add_argument(
        "--status",
        action="append",
        choices=[s.value for s in Status],
        help="only this status (repeatable)",
    )
    p.add_argument("--phone", help="only messages of this phone")
    p.add_argument("--since", type=parse_since, help="age (30m, 2h, 7d) or ISO date/time")
    p.add_argument("--enqueued", action="store_true", help="only messages from the outbox")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.set_defaults(func=cmd_outbox, needs_bridge=True)

    p = subparsers.add_parser(
        "inbox", help="list received messages, newest first", description="List inbound SMS."
    )
    p.add_argument("--phone", help="only messages received by this phone")
    p.add_argument("--since", type=parse_since, help="age (30m, 2h, 7d) or ISO date/time")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.set_defaults(func=cmd_inbox, needs_bridge=True)

    p = subparsers.add_parser(
        "status",
        help="one outgoing message with its status history and attempts",
        description="Show one outgoing message: status, history, phones tried.",
    )
    p.add_argument("id", help="message id (or a unique prefix of at least 6 characters)")
    p.set_defaults(func=cmd_status, needs_bridge=True)

    p = subparsers.add_parser(
        "worker",
        help="send enqueued messages (the embedded outbox worker)",
        description="Drain the outbox: a few threads per phone, each phone at its rate "
        "limit, with retries and failover. SIGTERM or Ctrl-C finishes the message in "
        "flight and exits.",
    )
    p.add_argument("--once", action="store_true", help="send what is due, then exit")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=60.0,
        help="seconds between polls of polling phones (default 60)",
    )
    p.add_argument(
        "--idle-interval",
        type=float,
        default=0.5,
        help="seconds between looks at an empty outbox (default 0.5)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per phone (default: rate limit / 5, 2 to 16; 4 without a limit)",
    )
    p.add_argument(
        "--lease",
        type=float,
        default=30.0,
        help="seconds before a lost worker's messages are taken over (default 30)",
    )
    p.set_defaults(func=cmd_worker, needs_bridge=True)

    p = subparsers.add_parser(
        "purge",
        help="delete old messages (retention): outgoing with history, and inbound",
        description="Delete outgoing messages created before --before (with their status "
        "history and attempts; never a pending one) and inbound messages received before it. "
        "With --status, only outgoing messages in those statuses (inbound kept).",
    )
    p.add_argument(
        "--before",
        required=True,
        type=parse_since,
        help="age (90d, 12h) or ISO date/time: older than this goes",
    )
    p.add_argument(
        "--status",
        type=parse_statuses,
        help="only these statuses, comma-separated (e.g. delivered,failed)",
    )
    p.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    p.set_defaults(func=cmd_purge, needs_bridge=True)


def parse_statuses(value: str) -> list[Status]:
    """``delivered,failed`` → statuses; ``pending`` is refused (it may still go out)."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    try:
        statuses = [Status(name) for name in names]
    except ValueError:
        known = ", ".join(s.value for s in Status if s is not Status.pending)
        raise argparse.ArgumentTypeError(f"statuses are {known}") from None
    if not statuses or Status.pending in statuses:
        raise argparse.ArgumentTypeError(
            "give one or more of delivered, failed, sent, ...; pending messages are never purged"
        )
    return statuses


def cmd_purge(args: argparse.Namespace, bridge: Bridge) -> int:
    counts = _store(bridge).delete_before(args.before, statuses=args.status, dry_run=args.dry_run)
    if args.json:
        emit_json({"dry_run": args.dry_run, "before": args.before.isoformat(), **counts.tables})
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    rows = [[name, n] for name, n in counts.tables.items()]
    print(f"{verb} rows older than {_when(args.before)} UTC:")
    print_table(rows, ["table", "rows"])
    return 0


# ---------------------------------------------------------------------- helpers
def _store(bridge: Bridge) -> SqlStore:
    store = bridge.store
    if store is None:
        raise ConfigError(
            "no message store configured: add e.g. 'store: sqlite:///smsbridge.db'",
            file=bridge.config.path,
            key="store",
        )
    if not isinstance(store, SqlStore):
        raise ConfigError(f"the configured store ({type(store).__name__}) cannot be listed")
    return store


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _note(m: StoredMessage) -> str:
    if m.status is Status.pending and m.send_at and m.send_at > datetime.now(UTC):
        return f"scheduled {_when(m.send_at)}"
    if m.status is Status.pending and m.claimed_by:
        return "sending"
    if m.error:
        return str(m.error.get("type") or "error")
    return ""


# ---------------------------------------------------------------------- commands
#: How long a due outbox message may wait before ``smsbridge outbox`` points it out.
WAITING_NOTE_AFTER = timedelta(minutes=5)


def cmd_outbox(args: argparse.Namespace, bridge: Bridge) -> int:
    store = _store(bridge)
    messages = store.list_outgoing(
        status=args.status,
        phone=args.phone,
        since=args.since,
        outbox=True if args.enqueued else None,
        limit=args.limit,
    )
    if args.json:
        emit_json([m.to_dict() for m in messages])
        return 0
    rows = [
        [
            m.message_id[:12],
            _when(m.created_at),
            m.to,
            m.phone or (f"({m.lane})" if m.lane else "-"),
            m.status.value,
            m.segments,
            m.tag or "",
            _note(m),
        ]
        for m in messages
    ]
    print_table(rows, ["id", "created (UTC)", "to", "phone", "status", "segs", "tag", "note"])
    waiting = store.count_waiting(older_than=WAITING_NOTE_AFTER.total_seconds())
    if waiting:
        print(
            f"note: {waiting} outbox message(s) due for more than "
            f"{int(WAITING_NOTE_AFTER.total_seconds() // 60)} min and held by no worker: "
            "is a worker running (smsbridge worker, or Celery workers consuming their queue)?"
        )
    return 0


def cmd_inbox(args: argparse.Namespace, bridge: Bridge) -> int:
    messages = _store(bridge).list_incoming(phone=args.phone, since=args.since, limit=args.limit)
    if args.json:
        emit_json([m.to_dict() for m in messages])
        return 0
    rows = [
        [_when(m.received_at), m.phone, m.sender, _short(m.body, 50), m.provider_id or "-"]
        for m in messages
    ]
    print_table(rows, ["received (UTC)", "phone", "from", "body", "provider id"])
    return 0


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_status(args: argparse.Namespace, bridge: Bridge) -> int:
    store = _store(bridge)
    wanted = args.id.strip()
    message = store.get_message(wanted)
    if message is None and len(wanted) >= 6:
        found = store.find_ids(wanted)
        if len(found) > 1:
            raise SmsBridgeError(f"message id prefix '{wanted}' is ambiguous; give more of it")
        if found:
            message = store.get_message(found[0])
    if message is None:
        raise SmsBridgeError(f"no outgoing message '{wanted}' in the store")
    if args.json:
        emit_json(message.to_dict())
        return 0
    fields = [
        ("message id", message.message_id),
        ("to", message.to),
        ("status", f"{message.status.value} (since {_when(message.status_at)} UTC)"),
        ("phone", message.phone or "-"),
        ("provider id", message.provider_id or "-"),
        ("segments", f"{message.segments} {message.encoding}"),
        ("created", f"{_when(message.created_at)} UTC" + (" (outbox)" if message.outbox else "")),
    ]
    if message.send_at:
        fields.append(("send at", f"{_when(message.send_at)} UTC"))
    if message.tag:
        fields.append(("tag", message.tag))
    if message.idempotency_key:
        fields.append(("idempotency key", message.idempotency_key))
    if message.error:
        fields.append(("error", f"{message.error.get('type')}: {message.error.get('message')}"))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")
    print()
    print_table(
        [
            [
                _when(h.at),
                h.status.value,
                h.source,
                h.raw_status or "",
                " ".join(x for x in (h.error_code, h.error_message) if x),
            ]
            for h in message.history
        ],
        ["at (UTC)", "status", "source", "raw status", "error"],
    )
    if message.attempts:
        print()
        print_table(
            [[_when(a.at), a.phone, a.error or "ok", a.retries] for a in message.attempts],
            ["tried (UTC)", "phone", "outcome", "retries"],
        )
    return 0


def cmd_worker(args: argparse.Namespace, bridge: Bridge) -> int:
    from ..worker import Worker

    _store(bridge)
    try:
        worker = Worker(
            bridge,
            threads_per_phone=args.threads,
            lease=args.lease,
            idle_interval=args.idle_interval,
            poll_interval=args.poll_interval,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    worker.install_signal_handlers()
    mode = "sending what is due" if args.once else "Ctrl-C or SIGTERM to stop"
    print(f"smsbridge worker {worker.worker_id}: {mode}", file=sys.stderr, flush=True)
    stats = worker.run(once=args.once)
    if args.json:
        emit_json(stats.to_dict())
    else:
        data = stats.to_dict()
        print_table([[k, v] for k, v in data.items() if v], ["outcome", "count"])
    return 0

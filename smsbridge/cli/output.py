"""CLI output: aligned tables for people, JSON for machines (``--json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..capabilities import Capabilities

__all__ = ["capability_rows", "emit_json", "mark", "print_table"]


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


def mark(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False or value is None:
        return "-"
    if isinstance(value, (list, tuple, frozenset, set)):
        return ",".join(sorted(str(v) for v in value)) or "-"
    return str(value)


def capability_rows(caps: dict[str, Capabilities]) -> tuple[list[list[str]], list[str]]:
    names = Capabilities.names()
    rows = [[name, *(mark(getattr(c, f)) for f in names)] for name, c in caps.items()]
    return rows, ["phone", *names]


# ---------------------------------------------------------------------- commands

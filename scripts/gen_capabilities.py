#!/usr/bin/env python3
"""Generate docs/capabilities.md from the installed plugins' ``Capabilities``.

python scripts/gen_capabilities.py           # rewrite the page
python scripts/gen_capabilities.py --check   # exit 1 when the committed page drifted
"""

from __future__ import annotations

import sys
from pathlib import Path

from smsbridge.docs import render_capability_page

PAGE = Path(__file__).resolve().parent.parent / "docs" / "capabilities.md"


def main(argv: list[str]) -> int:
    text = render_capability_page()
    if "--check" in argv:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE} is out of date: run python scripts/gen_capabilities.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

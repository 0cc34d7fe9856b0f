"""Generated docs stay in sync with the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsbridge.docs import render_capability_page
from smsbridge.registry import available

ROOT = Path(__file__).resolve().parent.parent


def test_capability_page_matches_installed_plugins() -> None:
    plugin_dirs = sorted(
        p.name.removeprefix("smsbridge-")
        for p in (ROOT / "plugins").glob("smsbridge-*")
        if (p / "pyproject.toml").exists()
    )
    missing = [p for p in plugin_dirs if p not in available()]
    if missing:
        pytest.skip(f"plugins not installed here: {', '.join(missing)} (run scripts/bootstrap.sh)")
    committed = (ROOT / "docs" / "capabilities.md").read_text(encoding="utf-8")
    assert committed == render_capability_page(), (
        "docs/capabilities.md drifted from the plugins' Capabilities: "
        "run python scripts/gen_capabilities.py"
    )


def test_page_lists_every_capability_and_plugin() -> None:
    page = render_capability_page()
    assert "| `max_segments` |" in page and "`dummy`" in page
    for name in available():
        assert f"- `{name}`:" in page

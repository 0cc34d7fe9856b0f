"""Shared fixtures of the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import smsbridge
from smsbridge.config import load_yaml, parse_config


def make_bridge(yaml_text: str, **kw: Any) -> smsbridge.Bridge:
    """A Bridge from YAML text (dummy phones), without touching the file system."""
    return smsbridge.Bridge.from_config(
        parse_config(load_yaml(yaml_text, "test.yaml"), file="test.yaml"), **kw
    )


@pytest.fixture
def bridge_factory() -> Iterator[Any]:
    made: list[smsbridge.Bridge] = []

    def factory(yaml_text: str, **kw: Any) -> smsbridge.Bridge:
        bridge = make_bridge(yaml_text, **kw)
        made.append(bridge)
        return bridge

    yield factory
    for bridge in made:
        bridge.close()


@pytest.fixture
def config_file(tmp_path: Path) -> Any:
    def write(text: str, name: str = "smsbridge.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write

"""Shared fixtures of the core tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
# Where PostgreSQL, Redis and RabbitMQ are (or why not): one lookup for every test.
import services  # noqa: E402

# One definition each, shared with the store tests: make_bridge, the bridges fixture and
# pg_url (a throw-away PostgreSQL schema, or a skip with the reason).
from conftest_store import bridges, make_bridge, pg_url  # noqa: E402

__all__ = ["bridges", "make_bridge", "pg_url"]


@pytest.fixture
def bridge_factory(bridges: Any) -> Any:
    """Build bridges from YAML text (dummy phones); all closed at the end of the test."""
    return bridges


@pytest.fixture
def config_file(tmp_path: Path) -> Any:
    def write(text: str, name: str = "smsbridge.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Which services the run found, and which test groups skip for lack of one."""
    return services.header()


@pytest.fixture
def redis_url() -> str:
    return services.url_or_skip(services.REDIS)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Any]:
    """An engine on a fresh PostgreSQL schema (dropped afterwards), or skip."""
    from smsbridge.store.sql import make_engine

    engine = make_engine(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()

"""Shared fixtures of the core tests."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
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


def service_url(env: str, default: str, host: str, port: int, what: str) -> str:
    """URL of a service for tests: from ``env``, else ``default`` when reachable.

    Unreachable → skip with a reason on a laptop; fail under CI (CI=true), where the
    services are part of the machine and a skip would hide a broken setup.
    """
    url = os.environ.get(env) or default
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        message = f"{what} is not reachable on {host}:{port} (set {env})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def redis_url() -> str:
    return service_url(
        "SMSBRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15", "127.0.0.1", 6379, "Redis"
    )


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Any]:
    """An engine on a fresh PostgreSQL schema (dropped afterwards), or skip."""
    from smsbridge.store.sql import make_engine

    engine = make_engine(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()

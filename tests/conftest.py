"""Shared fixtures of the core tests."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import smsbridge
from smsbridge.config import load_yaml, parse_config

PG_ENV = "SMSBRIDGE_TEST_POSTGRES_URL"


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


def service_url(env: str, default: str, host: str, port: int, what: str) -> str:
    """URL of a service for tests: from ``env``, else ``default`` when reachable.

    Unreachable → skip with a reason on a laptop; fail under CI (CI=true), where the
    services are part of the machine and a skip would hide a broken setup.
    """
    import os
    import socket

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
def pg_engine() -> Iterator[Any]:
    """An engine on a fresh PostgreSQL schema (dropped afterwards), or skip."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL tests need {PG_ENV} "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    from sqlalchemy.engine import make_url

    from smsbridge.store.sql import make_engine

    parsed = make_url(url)
    try:
        socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), 2).close()
    except OSError:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable ({PG_ENV} is set)")
        pytest.skip(f"PostgreSQL is not reachable ({PG_ENV} is set)")
    schema = "smsbridge_extras_" + uuid.uuid4().hex[:10]
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(
        parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    )
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()

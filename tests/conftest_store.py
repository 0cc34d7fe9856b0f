"""Shared fixtures and helpers of the store, outbox and worker tests.

pytest does not load this module by itself (it is not ``conftest.py``): the test modules
put this directory on ``sys.path`` and import what they use by name, fixtures included.

Every test runs on SQLite; ``store_url`` also runs it on PostgreSQL when
``SMSBRIDGE_TEST_POSTGRES_URL`` is set (in a schema of its own, dropped afterwards).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import services  # tests/services.py (conftest.py puts tests/ on sys.path)

import smsbridge
from smsbridge.config import load_yaml, parse_config

ROOT = Path(__file__).resolve().parent.parent
PG_ENV = services.POSTGRES.env


def postgres_base_url() -> str:
    """The PostgreSQL test URL ($PG_ENV, else the local default when it answers), or skip.

    Unreachable → skip with the reason; fail under CI (CI=true).
    """
    return services.url_or_skip(services.POSTGRES)


def _pg_admin(url: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    from smsbridge.store.engine import normalise_url

    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema (dropped afterwards)."""
    from sqlalchemy.engine import make_url

    base = postgres_base_url()
    schema = "smsbridge_test_" + uuid.uuid4().hex[:12]
    _pg_admin(base, f'CREATE SCHEMA "{schema}"')
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _pg_admin(base, f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def make_bridge(yaml_text: str, **kw: Any) -> smsbridge.Bridge:
    return smsbridge.Bridge.from_config(
        parse_config(load_yaml(yaml_text, "test.yaml"), file="test.yaml"), **kw
    )


@pytest.fixture
def bridges() -> Iterator[Callable[..., smsbridge.Bridge]]:
    """Build bridges from YAML text; all closed at the end of the test."""
    made: list[smsbridge.Bridge] = []

    def factory(yaml_text: str, **kw: Any) -> smsbridge.Bridge:
        bridge = make_bridge(yaml_text, **kw)
        made.append(bridge)
        return bridge

    yield factory
    for bridge in made:
        bridge.close()


def config_text(store_url: str, phones: str, routes: str = "") -> str:
    text = f"default_region: CI\nstore: '{store_url}'\nphones:\n{phones}"
    if routes:
        text += f"routes:\n{routes}"
    return text


def write_config(directory: Path, store_url: str, phones: str, routes: str = "") -> Path:
    """A YAML config file (dummy phones usually write their sends to ``*.jsonl``)."""
    path = directory / "smsbridge.yaml"
    path.write_text(config_text(store_url, phones, routes), encoding="utf-8")
    return path


def sent_lines(directory: Path) -> list[dict[str, Any]]:
    """Every real send the dummy phones recorded (``*.jsonl`` files in ``directory``)."""
    lines: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                lines.append(json.loads(line))
    return lines


def send_counts(directory: Path) -> Counter[str]:
    """How many times each message id reached a (dummy) provider."""
    return Counter(line["message_id"] for line in sent_lines(directory))


def smsbridge_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "smsbridge.cli", "--config", str(config), *args]


def popen(cmd: list[str], *, stdin: bool = False) -> subprocess.Popen[str]:
    """A real subprocess with this checkout importable (``stdin``: a pipe to it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )


def start_together(codes: list[str]) -> list[tuple[int, str, str]]:
    """Run Python snippets in subprocesses that start their real work at the same moment.

    Each snippet runs after its process imported smsbridge and was told to go; returns
    (exit code, stdout, stderr) per process.
    """
    prelude = "import sys, smsbridge, smsbridge.store\nprint('ready', flush=True)\n"
    prelude += "sys.stdin.readline()\n"
    procs = [popen([sys.executable, "-c", prelude + code], stdin=True) for code in codes]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.communicate(timeout=30)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append((proc.returncode, out, err))
    return results


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy (fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(every)

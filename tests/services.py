"""Where the test services are: PostgreSQL, Redis and RabbitMQ.

Each service has an environment variable (it wins) and a local default address; the URL is
used when the service answers there: a TCP connection with a short timeout, and for
PostgreSQL also a real login (``SELECT 1``). Otherwise a test that needs it skips with the
reason, or fails under ``CI=true``, where the services are part of the machine and a skip
would hide a broken setup.

The single lookup behind ``tests/conftest.py`` (the ``redis_url`` fixture and the header of
the run), ``tests/conftest_store.py`` (``pg_url``) and ``tests/celery_support.py`` (brokers
and the worker store). Probes are remembered for the run, keyed by URL.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

TIMEOUT = 1.0
DEFAULT_PORTS = {"postgresql": 5432, "redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}


@dataclass(frozen=True)
class Service:
    name: str
    env: str
    default: str
    groups: str  # the tests that skip without it


POSTGRES = Service(
    "PostgreSQL",
    "SMSBRIDGE_TEST_POSTGRES_URL",
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "the PostgreSQL cases of the store, outbox, opt-out and verification tests",
)
REDIS = Service(
    "Redis",
    "SMSBRIDGE_TEST_REDIS_URL",
    "redis://127.0.0.1:6379/15",
    "the Redis rate-limiter tests",
)
CELERY_REDIS = Service(
    "Redis",
    "SMSBRIDGE_TEST_CELERY_REDIS_URL",
    "redis://127.0.0.1:6379/14",
    "the celery worker tests",
)
RABBITMQ = Service(
    "RabbitMQ",
    "SMSBRIDGE_TEST_AMQP_URL",
    "amqp://guest:guest@127.0.0.1:5672//",
    "the celery RabbitMQ broker tests",
)
ALL = (POSTGRES, REDIS, CELERY_REDIS, RABBITMQ)


@dataclass(frozen=True)
class Found:
    service: Service
    url: str
    configured: bool  # from the environment variable, not the default
    problem: str | None  # None: reachable

    @property
    def address(self) -> str:
        host, port = address(self.url)
        return f"{host}:{port}"

    @property
    def reason(self) -> str:
        """Why a test needing this service cannot run."""
        origin = f"{self.service.env} is set" if self.configured else f"set {self.service.env}"
        return f"{self.service.name} on {self.address}: {self.problem} ({origin})"


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    return parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS.get(scheme, 0)


def probe(url: str, timeout: float = TIMEOUT) -> str | None:
    """None when the service at ``url`` answers, else what went wrong ("not reachable (…)",
    or "login failed (…)" when PostgreSQL answers but refuses the connection)."""
    host, port = address(url)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"not reachable ({exc.strerror or exc or type(exc).__name__})"
    if url.startswith("postgresql"):
        return _postgres_login(url, timeout)
    return None


def _postgres_login(url: str, timeout: float) -> str | None:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        with psycopg.connect(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            dbname=parsed.database,
            connect_timeout=max(1, round(timeout)),
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"login failed ({detail})"
    return None


@functools.cache
def _probe_once(url: str) -> str | None:
    return probe(url)


def forget() -> None:
    """Forget the remembered probes (for the tests of this module)."""
    _probe_once.cache_clear()


def find(service: Service) -> Found:
    """The service's URL (the variable, else the default) and whether it answers there."""
    configured = os.environ.get(service.env)
    url = configured or service.default
    return Found(service, url, bool(configured), _probe_once(url))


def url_or_skip(service: Service) -> str:
    """The URL of a reachable service; else skip with the reason (fail under CI=true)."""
    import pytest

    found = find(service)
    if found.problem is None:
        return found.url
    if os.environ.get("CI"):
        pytest.fail(found.reason)
    pytest.skip(found.reason)


def header() -> list[str]:
    """What the run found, for ``pytest_report_header``: one line, plus one per missing."""
    seen: dict[tuple[str, str], list[Found]] = {}
    for found in map(find, ALL):
        seen.setdefault((found.service.name, found.address), []).append(found)
    parts, missing = [], []
    for (name, where), group in seen.items():
        problems = [f.problem for f in group if f.problem is not None]
        if not problems:
            parts.append(f"{name} {where} (found)")
            continue
        parts.append(f"{name} {where} — {problems[0].split(' (')[0]}")
        action = "fail (CI=true)" if os.environ.get("CI") else "skip"
        groups = " and ".join(f.service.groups for f in group)
        envs = ", ".join(f.service.env for f in group)
        missing.append(f"  without {name}: {groups} will {action}; set {envs}")
    return ["services: " + ", ".join(parts), *missing]

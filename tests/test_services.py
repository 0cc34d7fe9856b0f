"""The lookup of the test services (tests/services.py): a probe of the address, the
environment variable over the default, and the header line of the run."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import services


@pytest.fixture(autouse=True)
def fresh_probes() -> Iterator[None]:
    """Probes are remembered by URL for the run; these tests reuse ports: forget them."""
    services.forget()
    yield
    services.forget()


@pytest.fixture
def listening() -> Iterator[int]:
    """The port of a TCP server listening on 127.0.0.1 for the duration of the test."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def fake(port: int, name: str = "Redis") -> services.Service:
    return services.Service(
        name, f"SMSBRIDGE_TEST_FAKE_{port}", f"redis://127.0.0.1:{port}/0", "the fake tests"
    )


def test_probe_finds_a_listening_server(listening: int) -> None:
    assert services.probe(f"redis://127.0.0.1:{listening}/0") is None
    found = services.find(fake(listening))
    assert found.problem is None and found.address == f"127.0.0.1:{listening}"


def test_probe_reports_a_closed_port_as_missing(closed_port: int) -> None:
    problem = services.probe(f"amqp://guest:guest@127.0.0.1:{closed_port}//", timeout=0.5)
    assert problem and problem.startswith("not reachable")
    found = services.find(fake(closed_port, "RabbitMQ"))
    assert found.problem and not found.configured
    assert f"RabbitMQ on 127.0.0.1:{closed_port}: not reachable" in found.reason
    assert f"set SMSBRIDGE_TEST_FAKE_{closed_port}" in found.reason


def test_missing_service_skips_or_fails_under_ci(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        services.url_or_skip(fake(closed_port))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not reachable"):
        services.url_or_skip(fake(closed_port))


def test_the_variable_wins_over_the_default(
    listening: int, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = fake(closed_port)  # the default address is closed...
    monkeypatch.setenv(service.env, f"redis://127.0.0.1:{listening}/3")  # ...the variable is not
    found = services.find(service)
    assert found.configured and found.problem is None
    assert services.url_or_skip(service) == f"redis://127.0.0.1:{listening}/3"
    # And a configured but unreachable address is reported as such, default or not.
    monkeypatch.setenv(service.env, f"redis://127.0.0.1:{closed_port}/3")
    assert services.find(service).problem
    assert f"{service.env} is set" in services.find(service).reason


def test_postgres_default_is_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(services.POSTGRES.env, raising=False)
    found = services.find(services.POSTGRES)
    assert found.url == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert found.address == "127.0.0.1:5432"


def test_header_names_each_service(
    listening: int, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    pg, redis, celery_redis, amqp = services.ALL
    # Redis answers (a listening socket); PostgreSQL and RabbitMQ do not (a closed port).
    monkeypatch.setenv(pg.env, f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/test")
    monkeypatch.setenv(redis.env, f"redis://127.0.0.1:{listening}/15")
    monkeypatch.setenv(celery_redis.env, f"redis://127.0.0.1:{listening}/14")
    monkeypatch.setenv(amqp.env, f"amqp://guest:guest@127.0.0.1:{closed_port}//")
    first, *missing = services.header()
    assert first.startswith("services: ")
    assert f"PostgreSQL 127.0.0.1:{closed_port} — not reachable" in first
    assert f"Redis 127.0.0.1:{listening} (found)" in first
    assert first.count("Redis") == 1  # both Redis variables, one address: one entry
    assert f"RabbitMQ 127.0.0.1:{closed_port} — not reachable" in first
    text = "\n".join(missing)
    assert "without PostgreSQL" in text and pg.groups in text and "will skip" in text
    assert "without RabbitMQ" in text and amqp.groups in text
    assert "without Redis" not in text
    monkeypatch.setenv("CI", "true")
    assert "will fail (CI=true)" in "\n".join(services.header())

"""The store commands: outbox, inbox, status ID, worker --once (tables and --json)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import smsbridge
from smsbridge.cli import main
from smsbridge.cli.store import parse_since

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url, bridges
from conftest_store import write_config  # noqa: E402

TO = "+2250701020304"
PHONES = (
    "  dev: {plugin: dummy, delivery: none}\n  bad: {plugin: dummy, fail_all: true, retries: 0}\n"
)
ROUTES = "  - match: {tags: [bad]}\n    phones: [bad]\n  - phones: [dev]\n"


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def config(tmp_path: Path) -> str:
    return str(write_config(tmp_path, f"sqlite:///{tmp_path / 'cli.db'}", PHONES, ROUTES))


def test_outbox_worker_status_round_trip(config: str, capsys: Any) -> None:
    bridge = smsbridge.Bridge.from_yaml(config)
    try:
        ok = bridge.enqueue(TO, "Bonjour", tag="otp")
        bad = bridge.enqueue(TO, "Echec", tag="bad")
        later = bridge.enqueue(TO, "Plus tard", send_at=datetime.now(UTC) + timedelta(hours=2))
    finally:
        bridge.close()

    code, out, _ = run(capsys, "--config", config, "outbox")
    assert code == 0 and out.count("pending") == 3 and "scheduled" in out

    code, out, err = run(capsys, "--config", config, "worker", "--once", "--json")
    assert code == 0 and "smsbridge worker" in err
    stats = json.loads(out)
    assert stats["sent"] == 1 and stats["failed"] == 1

    code, out, _ = run(capsys, "--config", config, "worker", "--once")
    assert code == 0 and "outcome" in out

    code, out, _ = run(capsys, "--config", config, "outbox", "--status", "failed", "--json")
    assert [m["message_id"] for m in json.loads(out)] == [bad]
    code, out, _ = run(capsys, "--config", config, "outbox", "--phone", "dev", "--since", "1h")
    assert ok[:12] in out and bad[:12] not in out and later[:12] in out
    code, out, _ = run(capsys, "--config", config, "outbox", "--enqueued", "--limit", "1")
    assert later[:12] in out and ok[:12] not in out

    code, out, _ = run(capsys, "--config", config, "status", ok[:10])
    assert code == 0 and "queued" in out and "enqueue" in out and "tried" in out
    code, out, _ = run(capsys, "--config", config, "status", bad, "--json")
    data = json.loads(out)
    assert data["status"] == "failed" and data["error"]["type"] == "ProviderUnavailable"
    assert [h["status"] for h in data["history"]] == ["pending", "failed"]
    code, out, _ = run(capsys, "--config", config, "status", later)
    assert "send at" in out


def test_inbox(config: str, capsys: Any) -> None:
    bridge = smsbridge.Bridge.from_yaml(config)
    try:
        bridge.phone("dev").simulate_inbound(TO, "Bonjour à vous, une réponse un peu longue " * 3)  # type: ignore[attr-defined]
    finally:
        bridge.close()
    code, out, _ = run(capsys, "--config", config, "inbox")
    assert code == 0 and TO in out and "…" in out
    code, out, _ = run(capsys, "--config", config, "inbox", "--phone", "dev", "--json")
    assert json.loads(out)[0]["sender"] == TO
    code, out, _ = run(capsys, "--config", config, "inbox", "--since", "2000-01-01")
    assert TO in out


def test_errors(config: str, tmp_path: Path, capsys: Any) -> None:
    code, _, err = run(capsys, "--config", config, "status", "0123456789abcdef")
    assert code == 1 and "no outgoing message" in err
    no_store = tmp_path / "nostore.yaml"
    no_store.write_text("phones:\n  dev: {plugin: dummy}\n", encoding="utf-8")
    for command in ("outbox", "inbox", "worker"):
        code, _, err = run(capsys, "--config", str(no_store), command)
        assert code == 2 and "store" in err
    code, _, err = run(capsys, "--config", config, "worker", "--lease", "0")
    assert code == 2


def test_ambiguous_prefix(config: str, capsys: Any) -> None:
    bridge = smsbridge.Bridge.from_yaml(config)
    store: Any = bridge.store
    try:
        for message_id in ("abcdef01", "abcdef02"):
            message = smsbridge.OutgoingMessage(to=TO, body="x")
            store.begin_send(message_id, message, to=TO, segments=1, encoding="gsm7")
    finally:
        bridge.close()
    code, _, err = run(capsys, "--config", config, "status", "abcdef")
    assert code == 1 and "ambiguous" in err
    code, out, _ = run(capsys, "--config", config, "status", "abcdef02")
    assert code == 0 and "abcdef02" in out


def test_parse_since() -> None:
    now = datetime.now(UTC)
    assert abs((now - parse_since("2h")) - timedelta(hours=2)) < timedelta(seconds=5)
    assert parse_since("2026-01-02T03:04:05").tzinfo is UTC
    assert parse_since("2026-01-02T03:04:05+01:00").utcoffset() == timedelta(hours=1)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_since("yesterday")


def test_purge(config: str, capsys: Any) -> None:
    bridge = smsbridge.Bridge.from_yaml(config)
    try:
        done = bridge.send(TO, "Bonjour").message_id
        waiting = bridge.enqueue(TO, "pas encore")
    finally:
        bridge.close()
    code, out, _ = run(capsys, "--config", config, "purge", "--before", "1d", "--dry-run")
    assert code == 0 and "would delete" in out  # nothing is a day old yet
    assert [line.split() for line in out.splitlines() if line.startswith("outgoing")] == [
        ["outgoing", "0"]
    ]
    code, out, _ = run(
        capsys, "--config", config, "--json", "purge", "--before", "2030-01-01", "--dry-run"
    )
    counts = json.loads(out)
    assert code == 0 and counts["dry_run"] is True and counts["outgoing"] == 1
    code, out, _ = run(capsys, "--config", config, "purge", "--before", "2030-01-01")
    assert code == 0 and "deleted" in out and "outgoing" in out
    with pytest.raises(SystemExit):
        run(capsys, "--config", config, "purge", "--before", "1d", "--status", "pending")
    assert "never purged" in capsys.readouterr().err
    bridge = smsbridge.Bridge.from_yaml(config)
    try:
        assert bridge.store.get_result(done) is None  # type: ignore[union-attr]
        assert bridge.store.get_result(waiting) is not None  # type: ignore[union-attr]
    finally:
        bridge.close()


def test_outbox_points_out_messages_no_worker_takes(config: str, capsys: Any) -> None:
    from smsbridge.clock import FakeClock

    bridge = smsbridge.Bridge.from_yaml(config)
    try:
        bridge.store.clock = FakeClock(datetime.now(UTC) - timedelta(minutes=10))  # type: ignore[union-attr]
        bridge.enqueue(TO, "waiting since ten minutes")
        bridge.store.clock = FakeClock(datetime.now(UTC))  # type: ignore[union-attr]
        bridge.enqueue(TO, "just stored")
    finally:
        bridge.close()
    code, out, _ = run(capsys, "--config", config, "outbox")
    assert code == 0 and "note: 1 outbox message(s) due for more than 5 min" in out
    code, out, _ = run(capsys, "--config", config, "worker", "--once")
    code, out, _ = run(capsys, "--config", config, "outbox")
    assert code == 0 and "note:" not in out

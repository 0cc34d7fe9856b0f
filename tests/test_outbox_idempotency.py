"""Idempotency keys across processes: one SMS, one stored message, the same id for all.

The processes start on an empty database, so this also checks that processes opening a
new store at the same moment create its schema exactly once (the migration lock).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from smsbridge.store import migrate, open_store

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url, bridges
from conftest_store import send_counts, start_together, write_config  # noqa: E402


def test_same_key_in_concurrent_processes(tmp_path: Path, store_url: str) -> None:
    out = tmp_path / "dev.jsonl"
    config = write_config(
        tmp_path, store_url, f"  dev: {{plugin: dummy, delivery: none, outbox_file: '{out}'}}\n"
    )
    code = (
        f"bridge = smsbridge.Bridge.from_yaml({str(config)!r})\n"
        "print(bridge.send('+2250701020304', 'Code 1234', idempotency_key='otp-42').message_id)\n"
        "print(bridge.enqueue('+2250701020304', 'Later', idempotency_key='news-7'))\n"
        "bridge.close()\n"
    )
    results = start_together([code] * 3)
    assert [r[0] for r in results] == [0, 0, 0], [r[2] for r in results]
    outputs = {tuple(r[1].split()[-2:]) for r in results}
    assert len(outputs) == 1  # every process got the same two ids
    sent_id, queued_id = outputs.pop()
    store = open_store(store_url)
    try:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        assert store.counts() == {"queued": 1, "pending": 1}
        assert store.get_result(sent_id).status.value == "queued"  # type: ignore[union-attr]
        assert store.get_message(queued_id).outbox  # type: ignore[union-attr]
    finally:
        store.close()
    assert send_counts(tmp_path) == {sent_id: 1}  # one SMS reached the provider

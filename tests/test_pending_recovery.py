"""Nothing stays ``pending`` forever: a process killed during a direct ``send()`` leaves a
``pending`` row that the workers' and the Celery sweep's recovery settle as ``unknown``
(it may have reached the provider) once the store's ``pending_grace`` has passed.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import smsbridge
from smsbridge import OutgoingMessage, Status
from smsbridge.clock import FakeClock
from smsbridge.store import open_store
from smsbridge.worker import Worker

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url, bridges
from conftest_store import popen, wait_for, write_config  # noqa: E402

TO = "+2250701020304"

SENDER = """\
import sys
import smsbridge
from smsbridge.store import open_store

store = open_store(sys.argv[2], pending_grace=60)
bridge = smsbridge.Bridge.from_yaml(sys.argv[1], store=store)
print("sending", flush=True)
bridge.send("+2250701020304", "lost in flight")
"""


def test_a_direct_send_killed_mid_call_becomes_unknown(store_url: str, tmp_path: Path) -> None:
    outbox_file = tmp_path / "a.jsonl"
    phone = f"  a: {{plugin: dummy, delivery: none, latency: 60, outbox_file: '{outbox_file}'}}\n"
    config = write_config(tmp_path, store_url, phone)
    child = popen([sys.executable, "-c", SENDER, str(config), store_url])
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "sending"
        bridge = smsbridge.Bridge.from_yaml(config)
        store: Any = bridge.store
        pending = wait_for(lambda: store.list_outgoing(status=[Status.pending]))
        [message] = pending
        assert message.claimed_by.startswith("send:")  # owned by the sending process
    finally:
        child.kill()
        child.wait(10)
    try:
        # within the grace period the recovery leaves it alone (its sender may be alive)
        assert Worker(bridge).run(once=True).lost_unknown == 0
        assert store.get_result(message.message_id).status is Status.pending
        store.clock = FakeClock(datetime.now(UTC) + timedelta(seconds=61))
        stats = Worker(bridge).run(once=True)
        assert stats.lost_unknown == 1 and stats.lost_requeued == 0
        stored = store.get_message(message.message_id)
        assert stored.status is Status.unknown and stored.claimed_by is None
        assert stored.error["type"] == "AmbiguousSend"
        assert "process (send:" in stored.history[-1].error_message
        assert [m.message_id for m in store.list_outgoing(status=[Status.unknown])] == [
            message.message_id
        ]
    finally:
        bridge.close()


def test_a_direct_send_is_never_resent_even_where_the_route_allows(
    bridges: Any, store_url: str, tmp_path: Path
) -> None:
    from conftest_store import config_text

    bridge = bridges(
        config_text(
            store_url,
            "  a: {plugin: dummy, delivery: none}\n",
            "  - phones: [a]\n    resend_ambiguous: true\n",
        )
    )
    store: Any = bridge.store
    clock = store.clock = FakeClock(datetime.now(UTC))
    message = OutgoingMessage(to=TO, body="x")
    assert store.begin_send("m1", message, to=TO, segments=1, encoding="gsm7") is None
    clock.advance(store.pending_grace + 1)
    stats = Worker(bridge).run(once=True)
    assert stats.lost_unknown == 1 and stats.lost_requeued == 0
    assert store.get_result("m1").status is Status.unknown


def test_a_finished_send_is_not_touched_and_a_late_outcome_wins(store_url: str) -> None:
    store = open_store(store_url, pending_grace=5)
    try:
        clock = store.clock = FakeClock(datetime.now(UTC))
        message = OutgoingMessage(to=TO, body="x")
        store.begin_send("done", message, to=TO, segments=1, encoding="gsm7")
        store.begin_send("slow", message, to=TO, segments=1, encoding="gsm7")
        store.finish_send(_result("done", Status.queued))
        clock.advance(6)
        lost = store.lost_claims()
        assert [c.message_id for c in lost] == ["slow"] and not lost[0].outbox
        assert store.resolve_lost(lost[0], resend=True)  # resend ignored: not an outbox row
        assert store.get_result("slow").status is Status.unknown
        store.finish_send(_result("slow", Status.queued))  # the sender was alive after all
        assert store.get_result("slow").status is Status.queued
    finally:
        store.close()


def _result(message_id: str, status: Status) -> smsbridge.SendResult:
    return smsbridge.SendResult(
        message_id=message_id,
        status=status,
        phone="a",
        provider_id=f"p-{message_id}",
        to=TO,
        segments=1,
        encoding="gsm7",
    )

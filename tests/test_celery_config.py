"""smsbridge.celery without a broker: the ``queue:`` config, the ready-made app, dispatch
(over kombu's in-memory transport), and what a task does with each state of the store
(a real SQLite store; the task body runs in this process)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from smsbridge import ConfigError, InvalidRecipient, Status
from smsbridge.celery import QueueSettings, SmsbridgeTasks, app_from_yaml, load_config
from smsbridge.clock import FakeClock
from smsbridge.message import utcnow

PHONES = """
phones:
  a:
    plugin: dummy
    outbox_file: {outbox}
    delivery: none
    webhook_secret: hush-hush-secret
  b:
    plugin: dummy
    outbox_file: {outbox}
    delivery: none
routes:
  - match: {{prefixes: ["+44"]}}
    phones: [b]
    resend_ambiguous: true
  - phones: [a]
"""


def write(tmp_path: Path, queue: str, phones: str = PHONES) -> Path:
    path = tmp_path / "smsbridge.yaml"
    outbox = tmp_path / "sent.jsonl"
    store = f"sqlite:///{tmp_path / 'outbox.db'}"
    path.write_text(f"store: {store}\n{queue}\n" + phones.format(outbox=outbox), encoding="utf-8")
    return path


QUEUE = """queue:
  backend: celery
  broker: memory://
  queues: per_phone
  prefix: sbt
  lease: 1
"""


@pytest.fixture
def tasks(tmp_path: Path) -> Iterator[SmsbridgeTasks]:
    app = app_from_yaml(write(tmp_path, QUEUE))
    tasks: SmsbridgeTasks = app.smsbridge
    yield tasks
    tasks.close()


def sent(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "sent.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- config
def test_queue_section_is_read_with_env_interpolation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKER_PASSWORD", "s3cr3t-pass")
    path = write(
        tmp_path,
        "queue:\n  broker: amqp://app:${BROKER_PASSWORD}@mq:5672//\n"
        "  redis_url: redis://:${BROKER_PASSWORD}@cache:6379/2\n  queues: single\n",
    )
    config, settings = load_config(path)
    assert settings is not None
    assert settings.broker == "amqp://app:s3cr3t-pass@mq:5672//"
    assert settings.limiter_url == "redis://:s3cr3t-pass@cache:6379/2"
    assert settings.queues == "single" and settings.lease == 60.0
    assert "s3cr3t-pass" not in repr(settings) and "app:***@mq" in repr(settings)
    assert list(config.phones) == ["a", "b"]


def test_redis_broker_doubles_as_the_limiter_store() -> None:
    assert QueueSettings(broker="redis://r:6379/1").limiter_url == "redis://r:6379/1"
    assert QueueSettings(broker="amqp://mq//").limiter_url is None


@pytest.mark.parametrize(
    ("queue", "key", "line", "words"),
    [
        (
            "queue:\n  broker: redis://x\n  queus: single\n",
            "queue.queus",
            4,
            "did you mean 'queues'",
        ),
        ("queue:\n  broker: redis://x\n  queues: many\n", "queue.queues", 4, "per_phone"),
        ("queue:\n  backend: celery\n", "queue.broker", 2, "needs a broker"),
        ("queue:\n  broker: localhost\n", "queue.broker", 3, "must be a URL"),
        ("queue:\n  broker: redis://x\n  lease: -1\n", "queue.lease", 4, "positive"),
        ("queue:\n  broker: redis://x\n  backend: kafka\n", "queue.backend", 4, "celery"),
        ("queue: redis://x\n", "queue", 2, "mapping"),
    ],
)
def test_queue_errors_name_the_file_line_and_key(
    tmp_path: Path, queue: str, key: str, line: int, words: str
) -> None:
    path = write(tmp_path, queue)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert info.value.line == line
    assert info.value.file == str(path)
    assert words in str(info.value)


def test_app_from_yaml_needs_a_queue_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no 'queue:' section"):
        app_from_yaml(write(tmp_path, ""))


def test_ready_made_app(tasks: SmsbridgeTasks) -> None:
    app = tasks.app
    assert tasks.queue_names == ["sbt", "sbt.a", "sbt.b"]
    assert [q.name for q in app.conf.task_queues] == tasks.queue_names
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    assert tasks.send.name == "sbt.send" and tasks.send.acks_late
    assert app.conf.beat_schedule["sbt-sweep"]["task"] == "sbt.sweep"
    assert tasks.queue_for("a") == "sbt.a" and tasks.queue_for(None) == "sbt"


def test_celery_dash_a_finds_the_app_from_smsbridge_config(tmp_path: Path) -> None:
    path = write(tmp_path, QUEUE)
    code = (
        "from celery.app.utils import find_app\n"
        "app = find_app('smsbridge.celery')\n"
        "print(app.main, sorted(t for t in app.tasks if t.startswith('sbt.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"SMSBRIDGE_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.strip() == "sbt ['sbt.send', 'sbt.sweep']"


# --------------------------------------------------------------------------- dispatch
def _published(tasks: SmsbridgeTasks, queue: str) -> list[Any]:
    with tasks.app.connection_for_read() as conn, conn.SimpleQueue(queue) as q:
        got = []
        while True:
            try:
                message = q.get(block=False)
            except q.Empty:
                return got
            got.append(message)
            message.ack()


def test_enqueue_stores_then_dispatches_ids_to_the_lane_queue(tasks: SmsbridgeTasks) -> None:
    send_at = utcnow() + timedelta(hours=1)
    ids = tasks.enqueue_many(
        [
            {"to": "+33612345678", "body": "fr"},
            {"to": "+447911123456", "body": "uk", "send_at": send_at},
            {"to": "+33612345679", "body": "again", "idempotency_key": "k1"},
            {"to": "+33612345679", "body": "again", "idempotency_key": "k1"},
        ]
    )
    assert ids[2] == ids[3]
    on_a = _published(tasks, "sbt.a")
    on_b = _published(tasks, "sbt.b")
    assert [m.headers["argsrepr"] for m in on_a] == [repr((ids[0],)), repr((ids[2],))]
    (uk,) = on_b
    assert uk.headers["argsrepr"] == repr((ids[1],))  # the task carries only the id
    assert uk.headers["eta"] == send_at.isoformat()
    assert tasks.bridge.store.get_result(ids[0]).status is Status.pending


def test_enqueue_refuses_bad_messages_before_storing(tasks: SmsbridgeTasks) -> None:
    with pytest.raises(InvalidRecipient) as info:
        tasks.enqueue_many([{"to": "+33612345678", "body": "ok"}, {"to": "12", "body": "x"}])
    assert getattr(info.value, "index", None) == 1
    assert _published(tasks, "sbt.a") == []


# --------------------------------------------------------------------------- the task body
def _enqueue(tasks: SmsbridgeTasks, to: str = "+33612345678", **kw: Any) -> str:
    message_id = tasks.enqueue(to, "hello", **kw)
    _published(tasks, tasks.queue_for("a"))
    _published(tasks, tasks.queue_for("b"))
    return message_id


def test_run_sends_once_and_a_redelivered_task_does_nothing(
    tasks: SmsbridgeTasks, tmp_path: Path
) -> None:
    message_id = _enqueue(tasks)
    first = tasks.run(message_id)
    assert (first.action, first.status, first.phone) == ("sent", "queued", "a")
    again = tasks.run(message_id)
    assert (again.action, again.detail) == ("skipped", "done")
    assert [s["message_id"] for s in sent(tmp_path)] == [message_id]
    assert tasks.run("0" * 32).detail == "missing"


def test_run_waits_for_send_at(tasks: SmsbridgeTasks, tmp_path: Path) -> None:
    message_id = _enqueue(tasks, send_at=utcnow() + timedelta(seconds=30))
    outcome = tasks.run(message_id)
    assert (outcome.action, outcome.detail) == ("later", "not_due")
    assert outcome.retry_in is not None and 25 < outcome.retry_in <= 30
    assert sent(tmp_path) == []


def test_run_leaves_a_message_another_worker_holds(tasks: SmsbridgeTasks, tmp_path: Path) -> None:
    message_id = _enqueue(tasks)
    store = tasks.bridge.store
    assert store.claim_one(message_id, owner="elsewhere", lease=30).state == "claimed"
    outcome = tasks.run(message_id)
    assert (outcome.action, outcome.detail) == ("later", "busy")
    assert outcome.retry_in is not None and outcome.retry_in > 20
    assert sent(tmp_path) == []


def _lost(tasks: SmsbridgeTasks, message_id: str, *, handed_over: bool) -> None:
    """As if a worker claimed the message and died (before/after the provider call)."""
    store = tasks.bridge.store
    clock = store.clock = FakeClock(datetime.now(UTC))
    assert store.claim_one(message_id, owner="dead", lease=0.2).state == "claimed"
    if handed_over:
        assert store.mark_sending(message_id, "dead", lease=0.2)
    clock.advance(0.3)


def test_lost_before_the_provider_call_is_sent(tasks: SmsbridgeTasks, tmp_path: Path) -> None:
    message_id = _enqueue(tasks)
    _lost(tasks, message_id, handed_over=False)
    assert tasks.run(message_id).action == "sent"
    assert len(sent(tmp_path)) == 1


def test_lost_mid_send_becomes_unknown_never_resent(tasks: SmsbridgeTasks, tmp_path: Path) -> None:
    message_id = _enqueue(tasks)
    _lost(tasks, message_id, handed_over=True)
    outcome = tasks.run(message_id)
    assert (outcome.action, outcome.status) == ("skipped", "unknown")
    assert tasks.bridge.store.get_result(message_id).status is Status.unknown
    assert sent(tmp_path) == []


def test_lost_mid_send_is_resent_when_the_route_says_so(
    tasks: SmsbridgeTasks, tmp_path: Path
) -> None:
    message_id = _enqueue(tasks, to="+447911123456")  # route with resend_ambiguous: true
    _lost(tasks, message_id, handed_over=True)
    assert tasks.run(message_id).action == "sent"
    assert [s["message_id"] for s in sent(tmp_path)] == [message_id]


def test_marks_sending_before_the_provider_call(tasks: SmsbridgeTasks) -> None:
    message_id = _enqueue(tasks)
    store = tasks.bridge.store
    seen: list[Any] = []
    phone = tasks.bridge.phone("a")
    original = phone.submit

    def submit(prepared: Any) -> Any:  # look at the store from inside the provider call
        seen.append(store.claim_one(message_id, owner="other", lease=1))
        return original(prepared)

    phone.submit = submit  # type: ignore[method-assign]
    assert tasks.run(message_id).action == "sent"
    assert [s.state for s in seen] == ["busy"]


def test_sweep_settles_lost_messages_and_redispatches_orphans(tasks: SmsbridgeTasks) -> None:
    lost = _enqueue(tasks)
    orphan = _enqueue(tasks, to="+33612345670")
    _lost(tasks, lost, handed_over=True)
    assert tasks.run_sweep(orphan_after=0) == {
        "settled": 1,
        "resent": 0,
        "dispatched": 1,
        "unconsumed": 0,
    }
    assert tasks.bridge.store.get_result(lost).status is Status.unknown
    (task,) = _published(tasks, "sbt.a")
    assert task.headers["argsrepr"] == repr((orphan,))
    # A queue that still holds tasks is left alone: the backlog comes in turn.
    tasks.dispatch(orphan, lane="a")
    assert tasks.run_sweep(orphan_after=0)["dispatched"] == 0


def test_failures_are_logged_with_the_id_never_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    phones = PHONES.replace(
        "delivery: none\n    webhook_secret",
        "fail_all: true\n    error: Rejected\n    webhook_secret",
    )
    app = app_from_yaml(write(tmp_path, QUEUE, phones))
    tasks: SmsbridgeTasks = app.smsbridge
    try:
        message_id = _enqueue(tasks)
        with caplog.at_level(logging.INFO):
            result = tasks.send.apply(args=(message_id,)).get()
        assert result["action"] == "failed"
        assert message_id in caplog.text
        assert "hush-hush-secret" not in caplog.text
    finally:
        tasks.close()


def test_install_on_your_own_app(tmp_path: Path) -> None:
    from celery import Celery

    import smsbridge
    from smsbridge.celery import enqueue, install, tasks_for

    bridge = smsbridge.Bridge.from_config(load_config(write(tmp_path, ""))[0])
    app = Celery("mine", broker="memory://")
    tasks = install(app, bridge, queues="per_phone", prefix="mine")
    try:
        assert tasks_for(bridge) is tasks
        message_id = enqueue(bridge, "+33612345678", "hi")
        (task,) = _published(tasks, "mine.a")
        assert task.headers["task"] == "mine.send"
        assert tasks.run(message_id).action == "sent"
        other = smsbridge.Bridge.from_config(load_config(write(tmp_path, ""))[0])
        with pytest.raises(ConfigError, match="install"):
            tasks_for(other)
        other.close()
    finally:
        tasks.close()
        bridge.close()


def test_a_task_that_cannot_run_fails_with_one_clean_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from smsbridge.celery import TaskFailed

    path = tmp_path / "nostore.yaml"
    path.write_text(
        QUEUE + "phones:\n  a:\n    plugin: dummy\n    webhook_secret: hush-hush-secret\n",
        encoding="utf-8",
    )
    tasks: SmsbridgeTasks = app_from_yaml(path).smsbridge
    try:
        with caplog.at_level(logging.INFO), pytest.raises(TaskFailed) as info:
            tasks.send.apply(args=("f" * 32,)).get()
        assert str(info.value).startswith(f"message {'f' * 32}: ConfigError: ")
        assert "store" in str(info.value)
        assert "hush-hush-secret" not in caplog.text
    finally:
        tasks.close()


def test_broker_down_the_message_is_still_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from smsbridge.testing import free_port

    queue = QUEUE.replace("memory://", f"redis://127.0.0.1:{free_port()}/0")
    tasks: SmsbridgeTasks = app_from_yaml(write(tmp_path, queue)).smsbridge
    try:
        with caplog.at_level(logging.WARNING):
            message_id = tasks.enqueue("+33612345678", "kept")
        assert tasks.bridge.store.get_result(message_id).status is Status.pending
        assert "stored but not dispatched" in caplog.text
    finally:
        tasks.close()


def test_the_sweep_settles_a_direct_send_whose_process_died(tasks: SmsbridgeTasks) -> None:
    """A send() that never recorded its outcome is unknown after the grace, never resent."""
    from smsbridge import OutgoingMessage

    store = tasks.bridge.store
    clock = store.clock = FakeClock(datetime.now(UTC))
    message = OutgoingMessage(to="+33612345678", body="x")
    store.begin_send("direct", message, to="+33612345678", segments=1, encoding="gsm7")
    assert tasks.run_sweep()["settled"] == 0  # still within its grace
    clock.advance(store.pending_grace + 1)
    result = tasks.run_sweep()
    assert (result["settled"], result["resent"]) == (1, 0)
    assert store.get_result("direct").status is Status.unknown

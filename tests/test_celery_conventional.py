"""Celery started the usual way, with real workers on a real Redis broker.

The documented Django-style set-up — ``smsbridge.celery.install(app, factory, ...)`` on the
user's own app, then ``celery -A proj worker`` with no ``-Q`` and no ``celery beat`` — must
send every message, and recover a worker killed with SIGKILL mid-drain on its own: every
message ends sent or ``unknown`` within the lease and a sweep interval, none twice. A
worker started with an explicit ``-Q`` keeps the user's choice, and the workers' sweep says
which queue nobody consumes.

The phones are dummy phones that append every real send to a JSON-lines file: what "the
provider" received.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import celery_support as cs

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[1]
TO = "+33612345678"

PROJ = """\
# proj.py: the user's own Celery app, as in docs/scaling.md (Django-style)
import os

from celery import Celery

import smsbridge
import smsbridge.celery
from smsbridge.config import QueueSettings

app = Celery("proj", broker=os.environ["PROJ_BROKER"])
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1)
# (the tests give each run its own default queue, "celery" otherwise: runs sharing a
# broker must not take each other's tasks)
app.conf.task_default_queue = os.environ.get("PROJ_DEFAULT_QUEUE", "celery")
sms = smsbridge.celery.install(
    app,
    lambda: smsbridge.load(os.environ["SMSBRIDGE_CONFIG"]),
    settings=QueueSettings(
        broker=os.environ["PROJ_BROKER"],
        queues=os.environ.get("PROJ_QUEUES", "per_phone"),
        redis_url=os.environ["PROJ_BROKER"],
        prefix=os.environ["PROJ_PREFIX"],
        lease=2,
        sweep_interval=1,
    ),
)
"""


class Project:
    """A temporary project: smsbridge.yaml (two dummy phones), proj.py, workers."""

    def __init__(self, tmp: Path, broker: str, queues: str, latency: float = 0.05) -> None:
        self.tmp = tmp
        self.broker = broker
        self.prefix = "sbconv-" + uuid.uuid4().hex[:8]
        self.sent_file = tmp / "sent.jsonl"
        options = f"delivery: none, latency: {latency}, outbox_file: '{self.sent_file}'"
        phone = "{plugin: dummy, " + options + "}"
        self.config = tmp / "smsbridge.yaml"
        self.config.write_text(
            f"store: sqlite:///{tmp / 'store.db'}\n"
            f"phones:\n  a: {phone}\n  b: {phone}\n"
            "routes:\n  - match: {tags: [b]}\n    phones: [b]\n  - phones: [a]\n",
            encoding="utf-8",
        )
        (tmp / "proj.py").write_text(PROJ, encoding="utf-8")
        self.env = dict(os.environ)
        self.env.update(
            SMSBRIDGE_CONFIG=str(self.config),
            PROJ_BROKER=broker,
            PROJ_PREFIX=self.prefix,
            PROJ_QUEUES=queues,
            PROJ_DEFAULT_QUEUE=f"{self.prefix}-default",
            PYTHONPATH=os.pathsep.join(
                [str(tmp), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        )
        os.environ.update({k: self.env[k] for k in ("SMSBRIDGE_CONFIG", "PROJ_BROKER")})
        os.environ.update(
            PROJ_PREFIX=self.prefix, PROJ_QUEUES=queues, PROJ_DEFAULT_QUEUE=f"{self.prefix}-default"
        )
        spec = importlib.util.spec_from_file_location(f"proj_{self.prefix}", tmp / "proj.py")
        assert spec is not None and spec.loader is not None
        self.module: Any = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        self.sms = self.module.sms
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # ---------------------------------------------------------------- workers
    def start(self, name: str, *args: str) -> None:
        """``celery -A proj worker`` (plus ``args``, e.g. ``-Q``), ready to consume."""
        log = (self.tmp / f"{name}.log").open("wb")
        cmd = [
            sys.executable, "-m", "celery", "-A", "proj", "worker",
            "-n", f"{name}-{self.prefix}@%h", "-P", "prefork", "-c", "1", "-l", "INFO",
            "--without-gossip", "--without-mingle",
            *args,
        ]  # fmt: skip
        self.procs[name] = subprocess.Popen(
            cmd, env=self.env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        cs.wait_until(lambda: " ready." in self.log(name), 30, f"worker {name} to start")

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(30)

    # ---------------------------------------------------------------- what happened
    def sent(self) -> Counter[str]:
        """How many times each body reached "the provider"."""
        if not self.sent_file.exists():
            return Counter()
        lines = self.sent_file.read_text(encoding="utf-8").splitlines()
        return Counter(json.loads(line)["body"] for line in lines if line.strip())

    def statuses(self, ids: list[str]) -> Counter[str]:
        store = self.sms.bridge.store
        return Counter(store.get_result(i).status.value for i in ids)

    def close(self) -> None:
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        try:
            cs.delete_queues(self.broker, self.sms.queue_names)
        finally:
            cs.forget_redis_keys(self.broker, self.prefix)
            self.sms.close()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Any]:
    try:
        broker = cs.redis_broker()
    except cs.Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    made: list[Project] = []
    saved = dict(os.environ)

    def make(queues: str = "per_phone", **kw: Any) -> Project:
        made.append(Project(tmp_path, broker, queues, **kw))
        return made[-1]

    try:
        yield make
    finally:
        for p in made:
            p.close()
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("queues", ["single", "per_phone"])
def test_a_worker_started_without_q_sends_everything(project: Any, queues: str) -> None:
    proj = project(queues)
    if queues == "single":  # the app's default queue ("celery" unless configured)
        assert proj.sms.queue_for("a") == proj.module.app.conf.task_default_queue
    proj.start("w1")  # celery -A proj worker: no -Q, no beat
    ids = [proj.sms.enqueue(TO, f"m{n}", tag="b" if n % 2 else None) for n in range(20)]
    cs.wait_until(lambda: proj.statuses(ids) == Counter({"queued": 20}), 30, "all sent")
    assert proj.sent() == Counter({f"m{n}": 1 for n in range(20)})


def test_an_explicit_q_is_kept_and_the_sweep_names_the_unconsumed_queue(project: Any) -> None:
    proj = project("per_phone")
    default = proj.module.app.conf.task_default_queue
    proj.start("w1", "-Q", default)  # the user's choice: only the default queue
    ids = [proj.sms.enqueue(TO, "to b", tag="b"), proj.sms.enqueue(TO, "to a")]
    waiting = f"{proj.prefix}.b"
    cs.wait_until(
        lambda: f"in queue '{waiting}', which no running worker consumes" in proj.log("w1"),
        30,
        "the sweep to name the unconsumed queue",
    )
    assert proj.statuses(ids) == Counter({"pending": 2})  # -Q celery: nothing consumed them
    assert proj.sent() == Counter()


def test_sigkill_mid_drain_recovers_without_beat(project: Any) -> None:
    proj = project("per_phone", latency=0.2)
    proj.start("victim")
    proj.start("survivor")
    ids = [proj.sms.enqueue(TO, f"m{n}") for n in range(40)]
    cs.wait_until(lambda: sum(proj.sent().values()) >= 6, 30, "the drain to start")
    proj.kill("victim")
    killed_at = time.monotonic()
    # lease 2 s + sweep interval 1 s, plus the sweep's own wait for orphaned tasks (the
    # longer of the two) and the survivor's time to drain the rest at 0.2 s a message
    cs.wait_until(lambda: "pending" not in proj.statuses(ids), 60, "every message to leave pending")
    statuses = proj.statuses(ids)
    assert set(statuses) <= {"queued", "unknown"}, statuses
    assert statuses["unknown"] <= 1  # at most the one the victim was handing over
    sent = proj.sent()
    assert all(n == 1 for n in sent.values()), sent  # none twice
    assert len(sent) >= statuses["queued"]
    assert time.monotonic() - killed_at < 60

"""One rate budget per phone for every embedded worker on a store: the lane leases.

Real ``smsbridge worker`` processes drain a dummy phone with a rate limit; what "the
provider" received is the dummy's ``outbox_file``. The dummy writes no time into it, so
:class:`Arrivals` stamps each line as it lands (polling the file every millisecond), and
the rate is judged from those stamps: never more than the limit in any rolling second.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import smsbridge
from smsbridge import Status
from smsbridge.worker import Worker

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url, bridges
from conftest_store import (  # noqa: E402
    config_text,
    popen,
    sent_lines,
    smsbridge_cmd,
    wait_for,
    write_config,
)

TO = "+2250701020304"
RATE = 20  # per second: fast enough for short tests, slow enough to tell 1 process from 2


def phone(directory: Path, name: str = "p", rate: float | None = RATE) -> str:
    limit = f", rate_limit: {rate}" if rate else ""
    return (
        f"  {name}: {{plugin: dummy, delivery: none{limit}, "
        f"outbox_file: '{directory / (name + '.jsonl')}'}}\n"
    )


class Arrivals:
    """The time each line of a dummy phone's ``outbox_file`` appeared (monotonic)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.times: list[float] = []
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        offset, partial = 0, b""
        while not self._stop.is_set():
            try:
                with self.path.open("rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
            except FileNotFoundError:
                data = b""
            if data:
                now = time.monotonic()
                offset += len(data)
                *lines, partial = (partial + data).split(b"\n")
                for line in lines:
                    self.ids.append(json.loads(line)["message_id"])
                    self.times.append(now)
            time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def max_in_one_second(self, jitter: float = 0.01) -> int:
        """The most arrivals in any rolling second: in any window [t, t + 1 s - jitter).

        A stamp comes after the worker's write, late by up to the poll and by scheduling
        on a busy machine; ``jitter`` forgives that much of it (two processes sharing a
        phone send twice the limit, far beyond it).
        """
        times, best, j = sorted(self.times), 0, 0
        for i, start in enumerate(times):
            while j < len(times) and times[j] < start + 1.0 - jitter:
                j += 1
            best = max(best, j - i)
        return best


def enqueue(config: Path, count: int) -> list[str]:
    bridge = smsbridge.Bridge.from_yaml(config)
    try:
        return bridge.enqueue_many([{"to": TO, "body": f"m{n}"} for n in range(count)])
    finally:
        bridge.close()


def started(proc: Any) -> None:
    """Wait for the worker's start-up line."""
    seen: list[str] = []
    for _ in range(50):
        line = proc.stderr.readline()
        if not line:
            break
        if "smsbridge worker" in line:
            return
        seen.append(line)
    raise AssertionError("worker did not start:\n" + "".join(seen))


def workers(config: Path, count: int, *args: str) -> list[Any]:
    procs = [
        popen(smsbridge_cmd(config, "worker", "--json", "--idle-interval", "0.05", *args))
        for _ in range(count)
    ]
    for proc in procs:
        started(proc)
    return procs


def stop(procs: list[Any]) -> list[dict[str, int]]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    outputs = [proc.communicate(timeout=30) for proc in procs]
    stats = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode == -signal.SIGKILL:
            continue
        assert proc.returncode == 0, err
        stats.append(json.loads(out))
    return stats


def pid_of(worker_id: str) -> int:
    return int(worker_id.split(":")[-2])  # host:pid:random


@pytest.mark.parametrize("count", [2, 4])
def test_workers_share_one_rate_budget_per_phone(
    tmp_path: Path, store_url: str, count: int
) -> None:
    config = write_config(tmp_path, store_url, phone(tmp_path))
    enqueue(config, 0)  # the schema, before the workers start
    arrivals = Arrivals(tmp_path / "p.jsonl")
    procs = workers(config, count)
    try:
        ids = enqueue(config, 50)
        wait_for(lambda: len(arrivals.times) >= 50, timeout=30)
        time.sleep(0.2)  # a 51st send would show now
    finally:
        stats = stop(procs)
        arrivals.stop()
    counts = Counter(line["message_id"] for line in sent_lines(tmp_path))
    assert sorted(counts) == sorted(ids) and set(counts.values()) == {1}
    assert sum(s["sent"] for s in stats) == 50
    assert arrivals.max_in_one_second() <= RATE, "the phone's rate limit was exceeded"
    # one process drained the phone: the one holding its lane (when it stops, another
    # one may take the lane over before its own SIGTERM, with nothing left to send)
    assert [s["sent"] > 0 for s in stats].count(True) == 1
    assert all(s["lanes_lost"] == 0 for s in stats)
    # ... at the phone's rate (the slowest run allowed is twice the limit's time)
    spent = max(arrivals.times) - min(arrivals.times)
    assert spent < 2 * 49 / RATE


def test_a_killed_holder_loses_the_lane_after_the_lease(tmp_path: Path, store_url: str) -> None:
    lease = 1.0
    config = write_config(tmp_path, store_url, phone(tmp_path))
    enqueue(config, 0)
    arrivals = Arrivals(tmp_path / "p.jsonl")
    procs = workers(config, 2, "--lease", str(lease))
    bridge = smsbridge.Bridge.from_yaml(config)
    store: Any = bridge.store
    try:
        ids = enqueue(config, 60)
        wait_for(lambda: len(arrivals.times) >= 15, timeout=30)
        holder, _ = store.lease_holder("lane:p")
        [victim] = [p for p in procs if p.pid == pid_of(holder)]
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _, until = store.lease_holder("lane:p")  # the victim's last renewal
        expires_at = killed_at + (until - datetime.now(UTC)).total_seconds()
        victim.communicate(timeout=30)
        [survivor] = [p for p in procs if p is not victim]

        def new_holder() -> str | None:
            found = store.lease_holder("lane:p")
            return found[0] if found and found[0] != holder else None

        taken = wait_for(new_holder)
        took = time.monotonic() - killed_at
        assert pid_of(taken) == survivor.pid
        assert took < lease + 1.0  # the lease, the survivor's next look, a slow machine
        wait_for(lambda: "pending" not in store.counts(), timeout=30)
        results = {i: store.get_result(i).status for i in ids}
    finally:
        stats = stop(procs)
        arrivals.stop()
        bridge.close()
    assert victim.returncode == -signal.SIGKILL
    counts = Counter(line["message_id"] for line in sent_lines(tmp_path))
    assert max(counts.values()) == 1, "a message reached the provider twice"
    unknown = [i for i, s in results.items() if s is Status.unknown]
    assert len(unknown) <= 4  # in flight when the holder died (its threads)
    assert all(counts[i] == 1 for i, s in results.items() if s is Status.queued)
    assert set(results.values()) <= {Status.queued, Status.unknown}
    [survived] = stats
    assert survived["lanes_taken"] == 1 and survived["sent"] >= 60 - 15 - len(unknown) - 4
    # nobody sent before the victim's lease ran out (lines landing just after the kill
    # are the victim's last sends)
    after = [t for t in arrivals.times if t > killed_at + 0.05]
    assert after and min(after) >= expires_at - 0.02
    assert arrivals.max_in_one_second() <= RATE


def test_one_worker_at_a_time_holds_a_lane(bridges: Any, store_url: str) -> None:
    """Two Worker objects on one store (two bridges: two limiters, as two processes)."""
    text = config_text(
        store_url,
        f"  p: {{plugin: dummy, delivery: none, rate_limit: {RATE}}}\n"
        "  free: {plugin: dummy, delivery: none}\n",
    )
    a, b = bridges(text), bridges(text)
    store: Any = a.store
    ids = a.enqueue_many([{"to": TO, "body": f"m{n}"} for n in range(30)])
    lease = 5.0  # long: the take-over below must come from the release at stop
    first, second = (Worker(x, lease=lease, idle_interval=0.02) for x in (a, b))
    overlaps: list[tuple[list[str], list[str]]] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            held = first.lanes_held, second.lanes_held
            if "p" in held[0] and "p" in held[1]:
                overlaps.append(held)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=first.run, daemon=True)]
    threads[0].start()
    try:
        wait_for(lambda: first.lanes_held == ["p"])
        threads.append(threading.Thread(target=second.run, daemon=True))
        threads[1].start()
        wait_for(lambda: len(a.phone("p").sent) >= 10)  # type: ignore[attr-defined]
        assert second.lanes_held == [] and b.phone("p").sent == []  # type: ignore[attr-defined]
        assert store.lease_holder("lane:p")[0] == first.worker_id
        assert store.lease_holder("lane:free") is None  # no limit, no lane lease
        first.stop()
        stopped_at = time.monotonic()
        threads[0].join(10)
        wait_for(lambda: second.lanes_held == ["p"], timeout=lease)
        assert time.monotonic() - stopped_at < lease / 2  # given up at stop, not expired
        assert store.lease_holder("lane:p")[0] == second.worker_id
        wait_for(lambda: "pending" not in store.counts(), timeout=20)
    finally:
        first.stop()
        second.stop()
        for thread in threads:
            thread.join(10)
        sampling.set()
        sampler.join(5)
    assert overlaps == []
    sent = [r["message_id"] for x in (a, b) for r in x.phone("p").sent]  # type: ignore[attr-defined]
    assert sorted(sent) == sorted(ids)
    assert first.stats.lanes_taken == second.stats.lanes_taken == 1
    assert first.stats.sent + second.stats.sent == 30 and second.stats.sent > 0
    assert store.lease_holder("lane:p") is None  # both gave it up

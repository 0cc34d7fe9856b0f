"""Real components for the Celery tests and benchmarks.

- :class:`FakeHttpPhone`: a small HTTP phone plugin (``plugin: fakehttp``) whose provider is
  :class:`FakeProvider`, a local HTTP server that records every send it receives (time,
  route, smsbridge message id) so the tests judge what the *provider* saw.
- :func:`plugin_site`: registers the plugin through a real ``.dist-info`` entry point on a
  directory put on ``PYTHONPATH``, so ``celery worker`` subprocesses load it from the same
  YAML as the producer, exactly as they load an installed provider plugin.
- :class:`Workers`: real ``celery -A smsbridge.celery worker`` subprocesses.
- Service URLs (Redis, RabbitMQ, PostgreSQL): from the environment, else the local
  defaults when reachable; otherwise skip with a reason (fail under ``CI=true``).

The test modules put this directory on ``sys.path`` and import this module by name, which
is also how the worker subprocesses import the plugin.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import services  # tests/services.py, next to this module
from pydantic import Field

from smsbridge.capabilities import Capabilities
from smsbridge.errors import ProviderUnavailable, RateLimited, Rejected
from smsbridge.phone import HttpPhone, PhoneOptions, PreparedMessage, Submission
from smsbridge.status import Status
from smsbridge.testing import FakeServer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


# --------------------------------------------------------------------------- the plugin
class FakeHttpOptions(PhoneOptions):
    base_url: str = Field(description="Where the fake provider listens, with the route path.")


class FakeHttpPhone(HttpPhone):
    """POST ``{base_url}/send`` with JSON; 200 → queued, 429 → RateLimited, 5xx → outage."""

    plugin: ClassVar[str] = "fakehttp"
    capabilities: ClassVar[Capabilities] = Capabilities(
        send=True, sender_name=True, unicode=True, long_messages=True, max_segments=10
    )
    Options: ClassVar[type[PhoneOptions]] = FakeHttpOptions
    options: FakeHttpOptions

    def submit(self, message: PreparedMessage) -> Submission:
        resp = self.request(
            "POST",
            self.options.base_url.rstrip("/") + "/send",
            json={"id": message.message_id, "to": message.to, "body": message.body},
            headers={"X-Worker-Pid": str(os.getpid()), "X-Sent-At": repr(time.time())},
        )
        if resp.status_code == 200:
            return Submission(provider_id=resp.json()["id"], status=Status.queued)
        if resp.status_code == 429:
            retry = float(resp.headers.get("Retry-After") or 1)
            raise RateLimited("throttled by the fake provider", retry_after=retry)
        if resp.status_code >= 500:
            raise ProviderUnavailable(f"fake provider answered {resp.status_code}")
        raise Rejected(f"fake provider refused the message ({resp.status_code})")


# --------------------------------------------------------------------------- the provider
@dataclass(frozen=True)
class Hit:
    at: float  # time.time() on arrival
    route: str
    message_id: str
    pid: str
    status: int
    sent_at: float = 0.0  # time.time() in the worker, right before the request


@dataclass
class RouteBehaviour:
    status: int = 200
    latency: float = 0.0  # seconds before answering (after the hit was recorded)
    retry_after: float | None = None
    limit: float | None = None  # the provider's own throttle (answers 429 above it)


@dataclass
class ProviderState:
    routes: dict[str, RouteBehaviour] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    recent: dict[str, list[float]] = field(default_factory=dict)
    in_flight: dict[str, str] = field(default_factory=dict)  # message id → worker pid

    def accepted(self, route: str | None = None) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.status == 200 and route in (None, h.route)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        state: ProviderState = self.server.state  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length) or b"{}")
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        route = parts[0] if len(parts) == 2 and parts[1] == "send" else ""
        behaviour = state.routes.get(route)
        if behaviour is None:
            self._answer(404, {"error": "no such route"})
            return
        now = time.time()
        status = behaviour.status
        with state.lock:
            if status == 200 and behaviour.limit:
                # The provider's own throttle: more than `limit` accepted in the last
                # second → 429 (a sliding one-second window, as strict as they come).
                recent = state.recent.setdefault(route, [])
                while recent and recent[0] <= now - 1.0:
                    recent.pop(0)
                if len(recent) >= behaviour.limit:
                    status = 429
                else:
                    recent.append(now)
            state.hits.append(
                Hit(
                    now,
                    route,
                    str(data.get("id")),
                    self.headers.get("X-Worker-Pid", ""),
                    status,
                    float(self.headers.get("X-Sent-At") or 0.0),
                )
            )
        if behaviour.latency:
            with state.lock:
                state.in_flight[str(data.get("id"))] = self.headers.get("X-Worker-Pid", "")
            time.sleep(behaviour.latency)
            with state.lock:
                state.in_flight.pop(str(data.get("id")), None)
        headers = {}
        if status == 429 and behaviour.retry_after is not None:
            headers["Retry-After"] = str(behaviour.retry_after)
        self._answer(status, {"id": "fp-" + uuid.uuid4().hex[:16]}, headers)

    def _answer(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] = {}
    ) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)


class FakeProvider:
    """The local provider: one HTTP server, one route per phone (``/{route}/send``)."""

    def __init__(self) -> None:
        self.state = ProviderState()
        self.server = FakeServer(_Handler, self.state)

    def route(self, name: str, **behaviour: Any) -> str:
        self.state.routes[name] = RouteBehaviour(**behaviour)
        return f"{self.server.url}/{name}"

    def __enter__(self) -> FakeProvider:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def sends_per_message(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for hit in self.state.accepted():
            counts[hit.message_id] = counts.get(hit.message_id, 0) + 1
        return counts


# --------------------------------------------------------------------------- plugin registration
@contextmanager
def plugin_site(tmp: Path) -> Iterator[Path]:
    """A directory holding a ``.dist-info`` that registers ``fakehttp`` as an entry point.

    Put on ``sys.path`` for the duration (and on workers' ``PYTHONPATH``), then removed so
    the plugin never leaks into other tests (the plugin list, the capability docs).
    """
    site = tmp / "site"
    info = site / "smsbridge_celery_fakes-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: smsbridge-celery-fakes\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[smsbridge.phones]\nfakehttp = celery_support:FakeHttpPhone\n", encoding="utf-8"
    )
    added = [str(site), str(HERE)]
    for p in added:
        if p not in sys.path:
            sys.path.append(p)
    try:
        yield site
    finally:
        for p in added:
            while p in sys.path:
                sys.path.remove(p)


# --------------------------------------------------------------------------- services
class Unavailable(Exception):
    """A service the test needs is not reachable."""


def service(which: services.Service) -> str:
    """URL of a service (its variable, else the local default) when it answers, else raise."""
    found = services.find(which)
    if found.problem is not None:
        raise Unavailable(found.reason)
    return found.url


def redis_broker() -> str:
    return service(services.CELERY_REDIS)


def amqp_broker() -> str:
    return service(services.RABBITMQ)


def postgres_url() -> str | None:
    """The PostgreSQL server URL when configured or found locally (else None: SQLite).

    Raises :class:`Unavailable` when SMSBRIDGE_TEST_POSTGRES_URL is set but unreachable.
    """
    found = services.find(services.POSTGRES)
    if found.problem is None:
        return found.url
    if found.configured:
        raise Unavailable(found.reason)
    return None


@contextmanager
def store_url(tmp: Path) -> Iterator[str]:
    """A fresh store: a database of its own on PostgreSQL when configured, else SQLite."""
    server = postgres_url()
    if server is None:
        yield f"sqlite:///{tmp / 'outbox.db'}"
        return
    import sqlalchemy as sa

    name = "smsbridge_celery_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --------------------------------------------------------------------------- workers
class Workers:
    """``celery -A smsbridge.celery worker`` subprocesses on one YAML file."""

    def __init__(self, config: Path, site: Path, logs: Path, extra_env: Mapping[str, str] = {}):
        self.config = config
        self.logs = logs
        self.env = dict(os.environ)
        self.env.update(extra_env)
        self.env["SMSBRIDGE_CONFIG"] = str(config)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(site), str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        self.env.pop("CELERY_RDB_HOST", None)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._files: list[Any] = []

    def start(
        self,
        name: str,
        *,
        queues: list[str] | None = None,
        pool: str = "prefork",
        concurrency: int = 1,
        wait: bool = True,
    ) -> subprocess.Popen[bytes]:
        log_path = self.logs / f"{name}.log"
        fh = log_path.open("wb")
        self._files.append(fh)
        cmd = [
            sys.executable, "-m", "celery", "-A", "smsbridge.celery", "worker",
            # a fresh node name: a killed worker's exclusive pidbox queue may linger
            "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "-P", pool, "-c", str(concurrency), "-l", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if queues:
            cmd += ["-Q", ",".join(queues)]
        # A session of its own: SIGKILL goes to the whole worker (main process and pool
        # children), as when its machine or container dies.
        proc = subprocess.Popen(
            cmd, env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        if wait:
            self.wait_ready(name)
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log(name):
                return
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"worker {name} exited:\n{self.log(name)[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker {name} not ready in {timeout}s:\n{self.log(name)[-3000:]}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the worker's main process and its pool children."""
        proc = self.procs[name]
        os.killpg(proc.pid, sig)
        proc.wait(30)

    def owns(self, name: str, pid: str | int) -> bool:
        """Whether ``pid`` (e.g. from a provider hit) is one of the worker's processes."""
        try:
            return os.getpgid(int(pid)) == self.procs[name].pid
        except (ProcessLookupError, ValueError):
            return False

    def stop(self) -> None:
        """Kill every worker (tests settle what they check before; no warm shutdown)."""
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        for fh in self._files:
            fh.close()


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def max_in_window(stamps: list[float], window: float = 1.0) -> int:
    """The most events found in any ``window``-second interval."""
    stamps = sorted(stamps)
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def route_figures(hits: list[Hit], limit: float) -> dict[str, Any]:
    """What one provider route saw under its own ``limit`` (benchmarks' per-phone rows).

    ``achieved``: accepted arrivals per second between the first and the last accepted;
    ``per_process``: how the accepted requests split between sender processes (the shared
    limiter's fairness); ``throttled_windows``: for each 429, the accepted requests of its
    rolling second spanned on the senders' clocks and on the provider's — a sent span over
    1 s with an arrival span under it is transit jitter, not the limiter.
    """
    ok = [h for h in hits if h.status == 200]
    achieved = (len(ok) - 1) / (ok[-1].at - ok[0].at)
    spans = []
    for h in hits:
        window = [x for x in ok if h.at - 1.0 < x.at <= h.at] if h.status == 429 else []
        if window:
            spans.append(
                {
                    "sent_ms": round((h.sent_at - window[0].sent_at) * 1000, 1),
                    "arrived_ms": round((h.at - window[0].at) * 1000, 1),
                }
            )
    return {
        "limit": limit,
        "sent": len(ok),
        "achieved": round(achieved, 2),
        "ratio": round(achieved / limit, 3),
        "max_in_any_second": max_in_window([h.at for h in ok]),
        "throttled_429": len(hits) - len(ok),
        "per_process": sorted(Counter(h.pid for h in ok).values(), reverse=True),
        "throttled_windows": spans,
    }


def print_route_figures(phones: Mapping[str, Mapping[str, Any]]) -> None:
    """One line per phone (and one per 429) of :func:`route_figures` rows."""
    for name, row in phones.items():
        print(
            f"  {name}: limit {row['limit']:5g}/s achieved {row['achieved']:6.2f}/s "
            f"(x{row['ratio']:.3f}), max {row['max_in_any_second']} in any second, "
            f"429s {row['throttled_429']}, per process {row['per_process']}"
        )
        for span in row["throttled_windows"]:
            print(
                f"    a 429's rolling second: {span['sent_ms']} ms on the senders' clocks, "
                f"{span['arrived_ms']} ms at the provider"
            )


# --------------------------------------------------------------------------- one test's world
class Cluster:
    """Fake provider routes, a YAML file, a store, the ready-made Celery app and workers.

    ``phones``: name → options (``route`` keys the provider behaviour; ``base_url`` is
    filled in). ``queue``: extra ``queue:`` keys. Queues and limiter keys get a unique
    prefix, so runs sharing a broker never see each other's tasks.
    """

    def __init__(
        self,
        tmp: Path,
        site: Path,
        provider: FakeProvider,
        *,
        broker: str,
        store: str,
        phones: Mapping[str, Mapping[str, Any]],
        routes: list[dict[str, Any]] | None = None,
        queue: Mapping[str, Any] | None = None,
        redis_url: str | None = None,
    ) -> None:
        import yaml

        self.tmp = tmp
        self.broker = broker
        self.provider = provider
        self.prefix = "sbtest-" + uuid.uuid4().hex[:8]
        phone_cfg: dict[str, Any] = {}
        for name, opts in phones.items():
            opts = dict(opts)
            behaviour = opts.pop("provider", {})
            phone_cfg[name] = {
                "plugin": "fakehttp",
                "base_url": provider.route(f"{self.prefix}-{name}", **behaviour),
                "retries": 0,
                **opts,
            }
        queue_cfg: dict[str, Any] = {
            "backend": "celery",
            "broker": broker,
            "queues": "per_phone",
            "prefix": self.prefix,
            "lease": 2,
            "visibility_timeout": 5,
            **(queue or {}),
        }
        if redis_url:
            queue_cfg["redis_url"] = redis_url
        doc = {
            "store": store,
            "queue": queue_cfg,
            "phones": phone_cfg,
            "routes": routes or [{"phones": list(phones)}],
        }
        self.config = tmp / "smsbridge.yaml"
        self.config.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        from smsbridge.celery import app_from_yaml

        self.app = app_from_yaml(self.config)
        self.tasks = self.app.smsbridge
        self.queues = self.tasks.queue_names
        self.workers = Workers(self.config, site, tmp)
        self.redis_url = redis_url

    @property
    def store(self) -> Any:
        return self.tasks.bridge.store

    def provider_hits(self, phone: str, *, accepted: bool = True) -> list[Hit]:
        """What the provider received for ``phone`` (only what it accepted, by default)."""
        route = f"{self.prefix}-{phone}"
        with self.provider.state.lock:
            hits = [h for h in self.provider.state.hits if h.route == route]
        return [h for h in hits if h.status == 200] if accepted else hits

    def start(self, *names: str, queues: Mapping[str, list[str]] = {}, **kw: Any) -> None:
        """Start workers in parallel (``queues``: per worker, its ``-Q``) and wait for them."""
        for name in names:
            self.workers.start(name, wait=False, queues=queues.get(name), **kw)
        for name in names:
            self.workers.wait_ready(name)

    def statuses(self, ids: list[str]) -> dict[str, str]:
        out = {}
        for message_id in ids:
            result = self.store.get_result(message_id)
            out[message_id] = result.status.value if result else "missing"
        return out

    def wait_settled(self, ids: list[str], timeout: float = 30.0) -> dict[str, str]:
        """Wait until no message is pending; returns the statuses."""

        def settled() -> bool:
            return "pending" not in self.statuses(ids).values()

        try:
            wait_until(settled, timeout, "every message to leave the outbox", every=0.3)
        except AssertionError:
            logs = "\n".join(f"--- {n}\n{self.workers.log(n)[-2000:]}" for n in self.workers.procs)
            raise AssertionError(f"messages still pending: {self.statuses(ids)}\n{logs}") from None
        return self.statuses(ids)

    def close(self) -> None:
        self.workers.stop()
        try:
            delete_queues(self.broker, self.queues)
        finally:
            for url in {u for u in (self.redis_url, self.broker) if u.startswith("redis")}:
                forget_redis_keys(url, self.prefix)
            self.tasks.close()


def forget_redis_keys(url: str, prefix: str) -> None:
    """Remove what a test left in Redis: queues, kombu bindings, unacked tasks, limits."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for tag, raw in client.hgetall("unacked").items():
            try:
                routing_key = json.loads(raw)[2]
            except (ValueError, IndexError, TypeError):
                continue
            if str(routing_key).startswith(prefix):
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        patterns = [
            f"{prefix}*",
            f"_kombu.binding.{prefix}*",
            f"_kombu.binding_permanent.{prefix}*",
        ]
        keys = [k for pattern in patterns for k in client.scan_iter(pattern)]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def delete_queues(broker: str, names: list[str]) -> None:
    """Remove a test's queues from the broker."""
    from kombu import Connection

    with Connection(broker) as conn:
        for name in names:
            try:
                conn.default_channel.queue_delete(name)
            except Exception:
                conn.close()  # the queue never existed; the channel is gone on AMQP

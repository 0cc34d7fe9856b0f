"""The STOP list: keywords → refused send → START → allowed; provider opt-out errors feed
the list; exemptions; the store (memory, SQLite, PostgreSQL, the bridge's own store);
the outbox worker; the ``optouts`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import smsbridge
from smsbridge.cli import main
from smsbridge.config import load_yaml, parse_config
from smsbridge.keywords import REPLY_TAG
from smsbridge.optouts import (
    MemoryOptOutStore,
    OptOut,
    OptOutList,
    install,
    open_optout_store,
    parse_settings,
)
from smsbridge.phone import PreparedMessage, Submission
from smsbridge.phones.dummy import DummyPhone
from smsbridge.templates import Template, TemplateLibrary
from smsbridge.templates import install as install_templates

USER = "+2250701020304"
OTHER = "+2250701020305"


class OptedOutPhone(DummyPhone):
    """A dummy phone whose provider says the recipient unsubscribed (Twilio 21610)."""

    def submit(self, message: PreparedMessage) -> Submission:
        if message.to in self.options.fail_for:
            self.sent.append({"to": message.to, "refused": True})
            raise smsbridge.Rejected(
                "Attempt to send to unsubscribed recipient", opt_out=True, provider_code=21610
            )
        return super().submit(message)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optouts.db'}"
    return request.getfixturevalue("pg_engine")


Factory = Callable[..., smsbridge.Bridge]


def _factory(target: Any, made: list[smsbridge.Bridge]) -> Factory:
    def factory(settings: Any = None, **phone_options: Any) -> smsbridge.Bridge:
        phones = {
            "sms": OptedOutPhone("sms", {"delivery": "none", "retries": 0, **phone_options}),
            "backup": DummyPhone("backup", {"delivery": "none"}),
        }
        bridge = smsbridge.Bridge(phones)
        made.append(bridge)
        install(bridge, settings or {}, store=target, clock=Clock())
        return bridge

    return factory


@pytest.fixture
def make(target: Any) -> Iterator[Factory]:
    """Bridges whose opt-out list is in each kind of store."""
    made: list[smsbridge.Bridge] = []
    yield _factory(target, made)
    for bridge in made:
        bridge.close()


@pytest.fixture
def mem() -> Iterator[Factory]:
    """Bridges with an in-memory opt-out list (for the keyword rules)."""
    made: list[smsbridge.Bridge] = []
    yield _factory(None, made)
    for bridge in made:
        bridge.close()


def phone(bridge: smsbridge.Bridge, name: str = "sms") -> DummyPhone:
    p = bridge.phones[name]
    assert isinstance(p, DummyPhone)
    return p


def optouts(bridge: smsbridge.Bridge) -> OptOutList:
    lst = getattr(bridge, "optouts", None)
    assert isinstance(lst, OptOutList)
    return lst


# ---------------------------------------------------------------------- the cycle
def test_stop_refuses_then_start_allows(make: Factory) -> None:
    bridge = make()
    sms = phone(bridge)
    assert bridge.send(USER, "Promo -20 %").ok
    assert sms.simulate_inbound(USER, "Arrêt SMS", recipient="+2250500").status == 200
    entry = optouts(bridge).get(USER)
    assert entry is not None
    assert (entry.number, entry.keyword, entry.phone, entry.source) == (
        USER,
        "ARRET",
        "sms",
        "keyword",
    )
    assert entry.at.tzinfo is not None and entry.at.year == 2025

    count = len(sms.sent)
    with pytest.raises(smsbridge.Rejected) as info:
        bridge.send(USER, "Promo -30 %")
    assert info.value.opt_out is True and "opted out" in str(info.value)
    assert len(sms.sent) == count and phone(bridge, "backup").sent == []  # no provider call
    result = info.value.result  # type: ignore[attr-defined]
    assert result.status is smsbridge.Status.failed and result.attempts == ()
    assert bridge.send(OTHER, "Promo -30 %").ok  # others unaffected

    sms.simulate_inbound(USER, "start")
    assert optouts(bridge).get(USER) is None
    assert bridge.send(USER, "Promo -40 %").ok


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        "Stop.",
        "STOP SMS",
        "stop-sms",
        "Arrêt",
        "ARRETER",
        "unsubscribe",
        "Désinscription",
        "désabonner svp",
        "STOPALL",
        "opt out",
        "Arrêtez de m'écrire",
    ],
)
def test_stop_synonyms(mem: Factory, body: str) -> None:
    bridge = mem()
    phone(bridge).simulate_inbound(USER, body)
    assert USER in optouts(bridge)


@pytest.mark.parametrize("body", ["stopper", "please stop", "non merci", "merci, stop !"])
def test_not_stop(mem: Factory, body: str) -> None:
    bridge = mem()
    phone(bridge).simulate_inbound(USER, body)
    assert USER not in optouts(bridge) and len(optouts(bridge)) == 0


def test_configured_keywords_replace_the_defaults(mem: Factory) -> None:
    bridge = mem({"stop": ["FIN", "STOP PUB"], "start": ["REPRISE"]})
    sms = phone(bridge)
    sms.simulate_inbound(USER, "stop")
    assert USER not in optouts(bridge)
    sms.simulate_inbound(USER, "Stop pub")
    assert optouts(bridge).get(USER).keyword == "STOP PUB"  # type: ignore[union-attr]
    sms.simulate_inbound(USER, "start")
    assert USER in optouts(bridge)
    sms.simulate_inbound(USER, "reprise")
    assert USER not in optouts(bridge)


def test_repeated_stop_is_one_entry(mem: Factory) -> None:
    bridge = mem()
    for body in ("STOP", "stop", "ARRET"):
        phone(bridge).simulate_inbound(USER, body)
    assert len(optouts(bridge)) == 1
    assert optouts(bridge).get(USER).keyword == "ARRET"  # type: ignore[union-attr]


# ---------------------------------------------------------------------- exemptions
def test_allowed_tags_and_disabled_list(mem: Factory) -> None:
    bridge = mem({"allow_tags": ["transactional"]})
    optouts(bridge).add(USER, keyword="STOP")
    assert bridge.send(USER, "Votre colis est arrivé", tag="transactional").ok
    with pytest.raises(smsbridge.Rejected):
        bridge.send(USER, "Promo", tag="marketing")
    with pytest.raises(smsbridge.Rejected):
        optouts(bridge).check(USER)
    optouts(bridge).check(USER, tag="transactional")

    off = mem({"enabled": False})
    phone(off).simulate_inbound(USER, "STOP")
    assert USER in optouts(off)  # still recorded
    assert off.send(USER, "Promo").ok  # but not enforced


def test_confirmations_are_sent_despite_the_opt_out(mem: Factory) -> None:
    bridge = mem({"confirm_stop": "bye", "confirm_start": "welcome-back"})
    install_templates(
        bridge,
        TemplateLibrary(
            [
                Template(
                    "bye",
                    {"fr": "Vous ne recevrez plus nos SMS ({{ keyword }}). START pour revenir."},
                ),
                Template("welcome-back", {"fr": "Re-bonjour !"}),
            ]
        ),
    )
    sms = phone(bridge)
    sms.simulate_inbound(USER, "stop")
    sms.simulate_inbound(USER, "start")
    assert [(m["body"], m["tag"]) for m in sms.sent] == [
        ("Vous ne recevrez plus nos SMS (STOP). START pour revenir.", REPLY_TAG),
        ("Re-bonjour !", REPLY_TAG),
    ]


# ---------------------------------------------------------------------- provider errors
def test_provider_opt_out_errors_feed_the_list(make: Factory) -> None:
    bridge = make(fail_for=[USER])
    sms = phone(bridge)
    with pytest.raises(smsbridge.Rejected) as info:
        bridge.send(USER, "hello")
    assert info.value.opt_out and info.value.phone == "sms"
    entry = optouts(bridge).get(USER)
    assert entry is not None
    assert (entry.source, entry.keyword, entry.phone) == ("provider", "21610", "sms")
    calls = len(sms.sent)
    with pytest.raises(smsbridge.Rejected):
        bridge.send(USER, "hello again")
    assert len(sms.sent) == calls  # refused before the provider this time


def test_plain_rejections_do_not_opt_out(target: Any) -> None:
    rejecting = DummyPhone("r", {"fail_all": True, "error": "Rejected", "delivery": "none"})
    with smsbridge.Bridge({"r": rejecting}) as bridge:
        install(bridge, store=target)
        with pytest.raises(smsbridge.Rejected) as info:
            bridge.send(USER, "hello")
        assert info.value.opt_out is False
        assert len(optouts(bridge)) == 0
        lst = optouts(bridge)
        assert lst.record_error(info.value, USER) is None
        assert (
            lst.record_error(
                smsbridge.Rejected("OptedOut", opt_out=True, phone="sns", provider_code="OptedOut"),
                USER,
            )
            is not None
        )
        assert lst.get(USER).keyword == "OptedOut"  # type: ignore[union-attr]


def test_send_many_reports_refusals_per_message(mem: Factory) -> None:
    bridge = mem()
    optouts(bridge).add(USER)
    results = bridge.send_many([{"to": USER, "body": "a"}, {"to": OTHER, "body": "b"}])
    assert isinstance(results[0].error, smsbridge.Rejected) and results[0].error.opt_out
    assert results[1].ok


# ---------------------------------------------------------------------- stores
def test_store_operations(target: Any) -> None:
    store = open_optout_store(target)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    assert store.add(OptOut(USER, t0, "STOP", "sms", "keyword")) is True
    assert store.add(OptOut(OTHER, t0 + timedelta(hours=1), None, None, "manual")) is True
    assert store.add(OptOut(USER, t0 + timedelta(hours=2), "ARRET", "sms", "keyword")) is False
    assert store.count() == 2
    assert [e.number for e in store.entries()] == [USER, OTHER]  # newest first
    assert [e.number for e in store.entries(limit=1, offset=1)] == [OTHER]
    got = store.get(USER)
    assert got is not None and got.at == t0 + timedelta(hours=2) and got.keyword == "ARRET"
    assert store.remove(USER) is True and store.remove(USER) is False
    assert store.get(USER) is None and store.count() == 1


def test_processes_starting_together_create_the_tables_once(pg_engine: Any) -> None:
    """Real processes opening the list at once all succeed: on PostgreSQL, concurrent
    CREATE TABLEs collide (SQLite's BEGIN IMMEDIATE serialises them)."""
    target = pg_engine
    url = target.url.render_as_string(False)
    script = (
        "import sys\n"
        "from smsbridge.optouts import OptOut\n"
        "from smsbridge.store.features import SqlOptOutStore\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"  # all processes go at once
        "SqlOptOutStore(sys.argv[1]).add(OptOut('+22507010203' + sys.argv[2].zfill(2)))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, str(i)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    codes = [proc.wait(timeout=60) for proc in procs]
    errors = []
    for proc in procs:
        assert proc.stdout is not None and proc.stderr is not None
        errors.append(proc.stderr.read())
        proc.stdout.close()
        proc.stderr.close()
    assert codes == [0] * 3, errors
    assert open_optout_store(target).count() == 3


def test_the_bridge_store_database_is_used(tmp_path: Path) -> None:
    db = tmp_path / "bridge.db"
    config = parse_config(
        load_yaml(
            f"store: 'sqlite:///{db}'\nphones:\n  dev: {{plugin: dummy, delivery: none}}\n",
            "smsbridge.yaml",
        ),
        file="smsbridge.yaml",
    )
    with smsbridge.Bridge.from_config(config) as bridge:
        lst = install(bridge)
        assert not isinstance(lst.store, MemoryOptOutStore)
        phone(bridge, "dev").simulate_inbound(USER, "STOP")
        with pytest.raises(smsbridge.Rejected) as info:
            bridge.send(USER, "hi")
        stored = bridge.store.get_result(info.value.result.message_id)  # type: ignore
        assert stored is not None and stored.status is smsbridge.Status.failed
    from sqlalchemy import create_engine, inspect

    engine = create_engine(f"sqlite:///{db}")
    assert "smsbridge_optouts" in inspect(engine).get_table_names()
    engine.dispose()
    with smsbridge.Bridge.from_config(config) as again:  # survives a restart
        assert USER in install(again)


def test_outbox_worker_refuses_opted_out_messages(tmp_path: Path) -> None:
    from smsbridge.worker import Worker

    config = parse_config(
        load_yaml(
            f"store: 'sqlite:///{tmp_path / 'outbox.db'}'\n"
            "phones:\n  dev: {plugin: dummy, delivery: none}\n",
            "smsbridge.yaml",
        ),
        file="smsbridge.yaml",
    )
    with smsbridge.Bridge.from_config(config) as bridge:
        install(bridge).add(USER, keyword="STOP")
        refused = bridge.enqueue(USER, "promo")
        allowed = bridge.enqueue(OTHER, "promo")
        Worker(bridge, idle_interval=0.05).run(once=True)
        assert bridge.store is not None
        result = bridge.store.get_result(refused)
        assert result is not None and result.status is smsbridge.Status.failed
        assert isinstance(result.error, smsbridge.SendError)
        assert "opted out" in str(result.error)
        ok = bridge.store.get_result(allowed)
        assert ok is not None and ok.status is smsbridge.Status.queued
        assert [m["to"] for m in phone(bridge, "dev").sent] == [OTHER]


def test_settings_errors() -> None:
    def parse(text: str) -> Any:
        return parse_settings(load_yaml(text, "s.yaml")["optouts"], file="s.yaml")

    assert parse("optouts:\n  allow_tags: [otp]\n").allow_tags == ("otp",)
    with pytest.raises(smsbridge.ConfigError) as info:
        parse("optouts:\n  enabeld: false\n")
    assert (info.value.line, info.value.key) == (2, "optouts.enabeld")
    assert "did you mean 'enabled'" in str(info.value)
    with pytest.raises(smsbridge.ConfigError, match=r"optouts\.stop"):
        parse("optouts:\n  stop: 3\n")


# ---------------------------------------------------------------------- CLI
def test_optouts_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "smsbridge.yaml"
    config.write_text(
        f"default_region: CI\nstore: 'sqlite:///{tmp_path / 'cli.db'}'\n"
        "phones:\n  dev: {plugin: dummy}\n",
        encoding="utf-8",
    )
    base = ["--config", str(config)]
    assert main([*base, "optouts", "add", "07 01 02 03 04", "--keyword", "STOP"]) == 0
    assert f"{USER} added" in capsys.readouterr().out
    assert main([*base, "optouts"]) == 0
    out = capsys.readouterr().out
    assert USER in out and "STOP" in out and "manual" in out
    assert main([*base, "--json", "optouts", "list"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["number"] == USER and rows[0]["keyword"] == "STOP"
    assert main([*base, "optouts", "remove", USER]) == 0
    assert main([*base, "optouts", "remove", USER]) == 1
    assert "was not on the list" in capsys.readouterr().out
    assert main([*base, "optouts", "add"]) == 2
    assert "needs a NUMBER" in capsys.readouterr().err

    no_store = tmp_path / "nostore.yaml"
    no_store.write_text("phones:\n  dev: {plugin: dummy}\n", encoding="utf-8")
    assert main(["--config", str(no_store), "optouts"]) == 2
    assert "set 'store:'" in capsys.readouterr().err


# ---------------------------------------------------------------------- through the Bridge
def test_wired_bridge_hooks_and_yaml(tmp_path: Path) -> None:
    text = (
        f"store: 'sqlite:///{tmp_path / 'wired.db'}'\n"
        "phones:\n  dev: {plugin: dummy, delivery: none}\n"
        "optouts:\n  allow_tags: [otp]\n"
    )
    config = parse_config(load_yaml(text, "smsbridge.yaml"), file="smsbridge.yaml")
    with smsbridge.Bridge.from_config(config) as bridge:
        phone(bridge, "dev").simulate_inbound(USER, "STOP")
        with pytest.raises(smsbridge.Rejected) as info:
            bridge.send(USER, "promo")
        assert info.value.opt_out
        assert bridge.send(USER, "code 1234", tag="otp").ok
        phone(bridge, "dev").simulate_inbound(USER, "START")
        assert bridge.send(USER, "promo").ok
    with smsbridge.Bridge({"p": OptedOutPhone("p", {"fail_for": [USER], "retries": 0})}) as b:
        with pytest.raises(smsbridge.Rejected):
            b.send(USER, "hello")
        assert USER in optouts(b)


def test_every_new_engine_gets_its_tables_and_collected_engines_are_forgotten(
    tmp_path: Path,
) -> None:
    """ensure_tables remembers engines weakly: once an engine is gone it is forgotten, and
    a new one creates its tables. CPython usually allocates some of these 30 engines at an
    address a collected one had (the same id()); keyed by id(), that engine skipped its
    tables — this loop failed on the old code — but whether an address comes back is the
    allocator's choice, so it is not asserted."""
    import gc

    import sqlalchemy as sa

    from smsbridge.store.features import _created, ensure_tables

    seen: set[int] = set()
    reused = False
    for i in range(30):
        engine = sa.create_engine(f"sqlite:///{tmp_path / f'db{i}.sqlite'}")
        reused = reused or id(engine) in seen
        seen.add(id(engine))
        ensure_tables(engine)
        assert "smsbridge_optouts" in sa.inspect(engine).get_table_names(), (i, reused)
        engine.dispose()
        del engine
        gc.collect()
    assert not any(id(e) in seen for e in list(_created))  # forgotten once collected

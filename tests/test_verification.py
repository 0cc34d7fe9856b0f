"""Verification codes: single use, expiry, bounded attempts (also under concurrency),
resend cooldown, hashes at rest, keys, settings — on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import re
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import smsbridge
from smsbridge.config import load_yaml
from smsbridge.phone import PreparedMessage, Submission
from smsbridge.phones.dummy import DummyPhone
from smsbridge.verification import (
    MemoryVerificationStore,
    VerificationThrottled,
    Verifier,
    check_verification,
    install,
    parse_settings,
    send_verification,
)

TO = "+2250701020304"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingPhone(DummyPhone):
    def __init__(self, name: str, options: Any = None, **kw: Any) -> None:
        super().__init__(name, options, **kw)
        self.prepared: list[PreparedMessage] = []

    def submit(self, message: PreparedMessage) -> Submission:
        self.prepared.append(message)
        return super().submit(message)


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Where records live: None (memory), an SQLite file URL, or a PostgreSQL engine."""
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'verify.db'}"
    return request.getfixturevalue("pg_engine")


@pytest.fixture
def bridge() -> Iterator[smsbridge.Bridge]:
    phones = {
        "p": RecordingPhone("p", {"delivery": "none"}),
        "down": DummyPhone("down", {"fail_all": True, "retries": 0, "delivery": "none"}),
        "lost": DummyPhone(
            "lost", {"fail_all": True, "error": "AmbiguousSend", "delivery": "none"}
        ),
    }
    with smsbridge.Bridge(phones) as b:
        yield b


@pytest.fixture
def clock() -> Clock:
    return Clock()


Make = Callable[..., Verifier]


@pytest.fixture
def make(bridge: smsbridge.Bridge, target: Any, clock: Clock) -> Make:
    def factory(**settings: Any) -> Verifier:
        settings.setdefault("secret", "a-test-secret-of-some-length")
        return install(bridge, settings, store=target, clock=clock)

    return factory


def last_body(bridge: smsbridge.Bridge) -> str:
    phone = bridge.phones["p"]
    assert isinstance(phone, RecordingPhone)
    return phone.prepared[-1].body


def last_code(bridge: smsbridge.Bridge) -> str:
    match = re.search(r"(?:code is|code de vérification est) (\S+?)\.", last_body(bridge))
    assert match, last_body(bridge)
    return match.group(1)


# ---------------------------------------------------------------------- the basics
def test_code_is_valid_once(bridge: smsbridge.Bridge, make: Make) -> None:
    make()
    result = send_verification(bridge, TO, locale="fr_CI")
    assert result.status is smsbridge.Status.queued
    code = last_code(bridge)
    assert re.fullmatch(r"\d{6}", code)
    assert last_body(bridge).startswith("Bonjour, votre code de vérification est")
    wrong = "000000" if code != "000000" else "111111"
    assert check_verification(bridge, TO, wrong) is False
    assert check_verification(bridge, "07 01 02 03 04", code) is False  # national: no region
    assert check_verification(bridge, TO, code) is True
    assert check_verification(bridge, TO, code) is False  # single use


def test_codes_expire(bridge: smsbridge.Bridge, make: Make, clock: Clock) -> None:
    make(ttl=300)
    send_verification(bridge, TO)
    assert "expires in 5 min" in last_body(bridge)
    clock.advance(300)
    assert check_verification(bridge, TO, last_code(bridge)) is False


def test_attempts_are_bounded(bridge: smsbridge.Bridge, make: Make) -> None:
    verifier = make(max_attempts=3)
    send_verification(bridge, TO)
    code = last_code(bridge)
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    assert [check_verification(bridge, TO, wrong) for _ in range(3)] == [False] * 3
    assert check_verification(bridge, TO, code) is False  # locked out, even with the code
    record = verifier.store.get(TO, "default")
    assert record is not None and record.attempts == 3


def test_resend_cooldown_and_replacement(
    bridge: smsbridge.Bridge, make: Make, clock: Clock
) -> None:
    make(cooldown=60)
    send_verification(bridge, TO)
    first = last_code(bridge)
    clock.advance(10)
    with pytest.raises(VerificationThrottled) as info:
        send_verification(bridge, TO)
    assert (info.value.reason, info.value.retry_after) == ("cooldown", 50)
    clock.advance(50)
    send_verification(bridge, TO)
    second = last_code(bridge)
    if first != second:
        assert check_verification(bridge, TO, first) is False  # replaced
    assert check_verification(bridge, TO, second) is True


def test_sends_per_window_are_bounded(bridge: smsbridge.Bridge, make: Make, clock: Clock) -> None:
    make(cooldown=0, max_sends=2, send_window=3600)
    send_verification(bridge, TO)
    send_verification(bridge, TO)
    with pytest.raises(VerificationThrottled) as info:
        send_verification(bridge, TO)
    assert info.value.reason == "too_many" and info.value.retry_after == 3600
    clock.advance(3600)
    send_verification(bridge, TO)


def test_purposes_are_independent(bridge: smsbridge.Bridge, make: Make) -> None:
    make()
    send_verification(bridge, TO, purpose="login")
    login = last_code(bridge)
    send_verification(bridge, TO, purpose="reset")  # no cooldown across purposes
    reset = last_code(bridge)
    assert check_verification(bridge, TO, login, purpose="reset") is (login == reset)
    assert check_verification(bridge, TO, login, purpose="login") is True


def test_hash_at_rest(bridge: smsbridge.Bridge, make: Make, target: Any) -> None:
    verifier = make()
    send_verification(bridge, TO)
    code = last_code(bridge)
    record = verifier.store.get(TO, "default")
    assert record is not None
    assert re.fullmatch(r"[0-9a-f]{64}", record.digest) and len(record.salt) == 32
    assert code not in repr(record) and "digest" not in repr(record)
    if target is None:
        values = [str(v) for v in vars(record).values()]
    else:
        from sqlalchemy import select

        from smsbridge.store.features import verifications_table

        store_engine = verifier.store.engine  # type: ignore[attr-defined]
        with store_engine.connect() as conn:
            rows = conn.execute(select(verifications_table)).all()
        values = [str(v) for row in rows for v in row]
    assert values and not any(code in v for v in values)


def test_failed_send_forgets_the_code(bridge: smsbridge.Bridge, make: Make) -> None:
    verifier = make(cooldown=600)
    with pytest.raises(smsbridge.ProviderUnavailable):
        send_verification(bridge, TO, phone="down")
    assert verifier.store.get(TO, "default") is None
    send_verification(bridge, TO, phone="p")  # no cooldown: nothing was sent
    with pytest.raises(smsbridge.AmbiguousSend):
        send_verification(bridge, "+2250701020305", phone="lost")
    with pytest.raises(VerificationThrottled):  # it may have arrived: cooldown holds
        send_verification(bridge, "+2250701020305", phone="p")


def test_concurrent_checks_succeed_once_and_respect_the_bound(
    bridge: smsbridge.Bridge, make: Make, clock: Clock
) -> None:
    verifier = make(max_attempts=5, cooldown=0)
    send_verification(bridge, TO)
    code = last_code(bridge)
    results: list[bool] = []
    lock = threading.Lock()

    def check(value: str) -> None:
        ok = check_verification(bridge, TO, value)
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=check, args=(code,)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1

    send_verification(bridge, TO)
    code = last_code(bridge)
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    threads = [threading.Thread(target=check, args=(wrong,)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record = verifier.store.get(TO, "default")
    assert record is not None and record.attempts == 5
    assert check_verification(bridge, TO, code) is False


# ---------------------------------------------------------------------- codes & context
def test_alphabet_length_and_lenient_input(bridge: smsbridge.Bridge, make: Make) -> None:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    verifier = make(alphabet=alphabet, length=8)
    codes = {verifier.generate_code() for _ in range(300)}
    assert len(codes) > 290
    assert all(len(c) == 8 and set(c) <= set(alphabet) for c in codes)
    send_verification(bridge, TO)
    code = last_code(bridge)
    assert check_verification(bridge, TO, f" {code[:4].lower()}-{code[4:]} ") is True


def test_context_tag_and_sensitive_metadata(bridge: smsbridge.Bridge, make: Make) -> None:
    make(context={"signature": "MonService"})
    send_verification(bridge, TO, locale="fr", context={"greeting": "Salut Awa", "code": "x"})
    body = last_body(bridge)
    assert body.startswith("Salut Awa, votre code") and body.endswith("MonService")
    assert "est x." not in body  # the context cannot replace the code
    phone = bridge.phones["p"]
    assert isinstance(phone, RecordingPhone)
    prepared = phone.prepared[-1]
    assert prepared.tag == "verification" and prepared.metadata["sensitive"] is True


def test_unknown_template_sends_nothing_and_keeps_no_cooldown(
    bridge: smsbridge.Bridge, make: Make
) -> None:
    make()
    with pytest.raises(smsbridge.MessageError):
        send_verification(bridge, TO, template="nope")
    send_verification(bridge, TO)


# ---------------------------------------------------------------------- keys
def test_same_secret_checks_across_instances_other_secret_does_not(
    bridge: smsbridge.Bridge, tmp_path: Path, clock: Clock
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    install(bridge, {"secret": "s" * 20}, store=url, clock=clock)
    send_verification(bridge, TO)
    code = last_code(bridge)
    other = install(bridge, {"secret": "t" * 20}, store=url, clock=clock)
    assert other.check(TO, code) is False
    same = install(bridge, {"secret": "s" * 20}, store=url, clock=clock)
    assert same.check(TO, code) is True


def test_generated_key_file(bridge: smsbridge.Bridge, tmp_path: Path, clock: Clock) -> None:
    url = f"sqlite:///{tmp_path / 'keyed.db'}"
    key_file = tmp_path / "keys" / "verification.key"
    install(bridge, {"key_file": str(key_file)}, store=url, clock=clock)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", key_file.read_text())
    send_verification(bridge, TO)
    restarted = install(bridge, {"key_file": str(key_file)}, store=url, clock=clock)
    assert restarted.check(TO, last_code(bridge)) is True


def test_memory_store_without_secret_uses_a_process_key(bridge: smsbridge.Bridge) -> None:
    verifier = Verifier(bridge, store=MemoryVerificationStore())
    bridge.verifier = verifier  # type: ignore[attr-defined]
    send_verification(bridge, TO)
    assert check_verification(bridge, TO, last_code(bridge)) is True
    assert "secret" not in repr(verifier)


# ---------------------------------------------------------------------- settings
def settings_of(text: str) -> Any:
    return parse_settings(load_yaml(text, "smsbridge.yaml")["verification"], file="smsbridge.yaml")


def test_settings_defaults_and_values() -> None:
    s = settings_of("verification:\n  length: 8\n  ttl: 120\n")
    assert (s.length, s.ttl, s.max_attempts, s.alphabet) == (8, 120, 5, "0123456789")


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("verification:\n  length: 2\n", 2, "verification.length", "greater than or equal"),
        ("verification:\n  lenght: 8\n", 2, "verification.lenght", "did you mean 'length'"),
        ("verification:\n  alphabet: '1123'\n", 2, "verification.alphabet", "distinct"),
        ("verification:\n  secret: tooshort-x\n", 2, "verification.secret", "16 characters"),
    ],
)
def test_settings_errors_name_line_and_key(text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(smsbridge.ConfigError) as info:
        settings_of(text)
    assert (info.value.file, info.value.line, info.value.key) == ("smsbridge.yaml", line, key)
    assert message in str(info.value)
    assert "tooshort-x" not in str(info.value)


# ---------------------------------------------------------------------- through the Bridge
def test_wired_bridge_methods_and_yaml(tmp_path: Path) -> None:
    from smsbridge.config import parse_config

    text = (
        f"store: 'sqlite:///{tmp_path / 'wired.db'}'\n"
        "phones:\n  dev: {plugin: dummy, delivery: none}\n"
        "verification:\n  length: 4\n  secret: a-wired-secret-value\n"
        "  context: {signature: MonService}\n"
    )
    config = parse_config(load_yaml(text, "smsbridge.yaml"), file="smsbridge.yaml")
    with smsbridge.Bridge.from_config(config) as bridge:
        bridge.send_verification(TO, locale="fr")  # type: ignore[attr-defined]
        body = bridge.phones["dev"].sent[-1]["body"]  # type: ignore[attr-defined]
        code = re.search(r"est (\d{4})\.", body).group(1)  # type: ignore[union-attr]
        assert body.endswith("MonService")
        assert bridge.check_verification(TO, code) is True  # type: ignore[attr-defined]
        assert bridge.check_verification(TO, code) is False  # type: ignore[attr-defined]

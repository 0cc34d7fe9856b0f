"""Token lifecycle: reuse, single-flight, sharing, expiry, persistent cache, auth failures."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from smsbridge_orange import OrangePhone
from smsbridge_orange.auth import (
    FileTokenCache,
    MemoryTokenCache,
    Token,
    credentials_key,
    parse_expires_in,
)
from smsbridge_orange.testing import FakeOrange, gateway

from smsbridge.errors import AuthError, ProviderUnavailable
from smsbridge.message import OutgoingMessage

from .conftest import RECIPIENT

FAST = 100_000  # rate_limit high enough to take the limiter out of the way


def msg(body: str = "hello") -> OutgoingMessage:
    return OutgoingMessage(to=RECIPIENT, body=body)


def test_1000_sends_16_threads_one_token_request(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(rate_limit=FAST)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: phone.send(msg(f"m{i}")), range(1000)))
    assert fake.token_requests == 1
    assert len(fake.sent) == 1000
    assert len({r.provider_id for r in results}) == 1000
    assert len({s["token"] for s in fake.sent}) == 1


def test_expiry_mid_batch_exactly_one_refresh(make_phone: Any) -> None:
    with FakeOrange(expire_tokens_after_sends=150) as fake:
        phone = make_phone(server=fake, rate_limit=FAST)
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda i: phone.send(msg(f"m{i}")), range(400)))
        assert all(r.provider_id for r in results)
        assert len(fake.sent) == 400
        assert fake.token_requests == 2
        assert len({s["token"] for s in fake.sent}) == 2


def test_token_reused_until_shortly_before_expiry(fake: FakeOrange, make_phone: Any) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    phone = make_phone(rate_limit=FAST, clock=lambda: now[0])
    phone.send(msg())
    now[0] += timedelta(seconds=3500)  # still more than 60 s left
    phone.send(msg())
    assert fake.token_requests == 1
    now[0] += timedelta(seconds=45)  # 55 s left: refreshed proactively, no 401 needed
    phone.send(msg())
    assert fake.token_requests == 2


@pytest.mark.parametrize("kind", ["str", "int"])
def test_expires_in_string_or_integer(kind: str, make_phone: Any) -> None:
    with FakeOrange(ttl=1200, expires_in_as=kind) as fake:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        phone = make_phone(server=fake, clock=lambda: now)
        token = phone.token()
        assert token.expires_at == now.timestamp() + 1200
        assert token.refresh_at == now.timestamp() + 1140


def test_parse_expires_in() -> None:
    assert parse_expires_in("3600") == 3600
    assert parse_expires_in(3600) == 3600
    assert parse_expires_in(" 7200 ") == 7200
    assert parse_expires_in(None) == 3600
    assert parse_expires_in("soon") == 3600
    assert parse_expires_in(True) == 3600
    assert parse_expires_in(-5) == 3600


def test_phones_with_same_credentials_share_one_token(fake: FakeOrange, make_phone: Any) -> None:
    first = make_phone("orange-a", rate_limit=FAST)
    second = make_phone("orange-b", rate_limit=FAST, sender_name="MonService")
    first.send(msg())
    second.send(msg())
    assert fake.token_requests == 1
    assert first.shared_token is second.shared_token


def test_different_credentials_do_not_share(fake: FakeOrange, make_phone: Any) -> None:
    first = make_phone("a")
    other = make_phone("b", client_id="someone-else")
    assert first.token_key != other.token_key
    assert fake.client_secret not in first.token_key


def test_401_code_42_refreshes_once_and_retries(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(rate_limit=FAST)
    phone.send(msg())
    fake.expire_tokens()
    result = phone.send(msg("after expiry"))
    assert result.provider_id
    assert fake.token_requests == 2
    assert fake.sent[-1]["message"] == "after expiry"


def test_401_code_42_twice_is_auth_error_without_loop(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(rate_limit=FAST, retries=3)
    body = gateway(42, "Expired credentials", "The ones provided were out-of-date.")
    fake.fail_next(401, body, times=5)
    with pytest.raises(AuthError) as info:
        phone.send(msg())
    assert info.value.provider_code == "42"
    assert "Expired credentials" in str(info.value)
    sends = [r for r in fake.requests if r["path"].endswith("/requests")]
    assert len(sends) == 2  # the first try and the one retry, no more
    assert fake.token_requests == 2


def test_code_40_and_41_are_auth_errors_and_drop_the_token(
    fake: FakeOrange, make_phone: Any
) -> None:
    phone = make_phone(rate_limit=FAST)
    phone.send(msg())
    fake.revoke_tokens()  # the API now answers 41
    with pytest.raises(AuthError) as info:
        phone.send(msg())
    assert info.value.provider_code == "41"
    assert fake.token_requests == 1  # no refresh loop on 41
    phone.send(msg())  # the refused token was forgotten: the next send gets a new one
    assert fake.token_requests == 2
    fake.fail_next(401, gateway(40, "Missing credentials", "none were provided"))
    with pytest.raises(AuthError) as info:
        phone.send(msg())
    assert info.value.provider_code == "40"


def test_invalid_client_is_auth_error_no_loop(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(client_secret="wrong-secret", retries=3, rate_limit=FAST)
    with pytest.raises(AuthError) as info:
        phone.send(msg())
    assert info.value.provider_code == "invalid_client"
    assert "provided were invalid" in str(info.value)
    assert "wrong-secret" not in str(info.value)
    assert fake.token_requests == 1
    with ThreadPoolExecutor(16) as pool:  # 16 threads: the refusal is shared, not repeated
        errors = list(pool.map(lambda _: _raises(lambda: phone.send(msg())), range(16)))
    assert all(isinstance(e, AuthError) for e in errors)
    assert fake.token_requests == 1


def _raises(fn: Any) -> BaseException | None:
    try:
        fn()
    except BaseException as exc:
        return exc
    return None


def test_undecodable_basic_header(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(client_id=None, client_secret=None, authorization_header="Basic ***not-b64")
    with pytest.raises(AuthError, match="Unable to decode"):
        phone.check()


def test_authorization_header_option(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(
        client_id=None, client_secret=None, authorization_header=fake.authorization_header
    )
    phone.check()
    assert phone.send(msg()).provider_id


def test_token_endpoint_outage_is_retryable(fake: FakeOrange, make_phone: Any) -> None:
    waits: list[float] = []
    phone = make_phone(rate_limit=FAST, retries=2, sleep=waits.append)
    fake.fail_next(503, gateway(5, "Service unavailable", "temporary"), endpoint="token")
    assert phone.send(msg()).provider_id
    assert len(waits) == 1
    fake.fail_next(503, gateway(5, "Service unavailable", "temporary"), endpoint="token")
    other = make_phone(rate_limit=FAST, retries=0, client_id="other-app")
    with pytest.raises(ProviderUnavailable):
        other.send(msg())


def test_token_endpoint_timeout_is_not_ambiguous(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(retries=0, timeout=0.2)
    fake.fail_next(0, endpoint="token", delay=0.5)
    with pytest.raises(ProviderUnavailable):
        phone.check()


def test_token_request_wire_format(fake: FakeOrange, make_phone: Any) -> None:
    make_phone().check()
    token_calls = [r for r in fake.requests if r["path"] == "/oauth/v3/token"]
    assert token_calls[0]["method"] == "POST"
    assert token_calls[0]["content_type"] == "application/x-www-form-urlencoded"


def test_token_repr_hides_value() -> None:
    token = Token("fake-token-value", 10.0, 5.0)
    assert "fake-token-value" not in repr(token)


# ---------------------------------------------------------------- persistent cache
def test_file_cache_is_0600_and_reused_by_another_process(
    fake: FakeOrange, make_phone: Any, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "tokens"
    phone = make_phone(token_cache=True, token_cache_dir=str(cache_dir))
    phone.send(msg())
    files = list(cache_dir.iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    assert fake.client_secret not in files[0].read_text() + files[0].name
    script = (
        "import sys\n"
        "from smsbridge.message import OutgoingMessage\n"
        "from smsbridge_orange import OrangePhone\n"
        f"opts = dict(client_id={fake.client_id!r}, client_secret={fake.client_secret!r},\n"
        f"    sender_address='2250000', base_url={fake.url!r},\n"
        f"    token_cache_dir={str(cache_dir)!r})\n"
        "OrangePhone('cron', opts).send(OutgoingMessage(to=sys.argv[1], body='from cron'))\n"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "unused"))
    subprocess.run([sys.executable, "-c", script, RECIPIENT], check=True, env=env, timeout=60)
    assert fake.sent[-1]["message"] == "from cron"
    assert fake.token_requests == 1  # the second process reused the cached token


def test_default_cache_dir_is_user_cache_dir(fake: FakeOrange, tmp_path: Path) -> None:
    phone = OrangePhone("p", fake.phone_options(token_cache=True))
    assert isinstance(phone.token_cache, FileTokenCache)
    phone.check()
    assert (tmp_path / "xdg-cache" / "smsbridge" / "orange-tokens").is_dir()
    phone.close()


def test_cache_opt_out(fake: FakeOrange, tmp_path: Path) -> None:
    phone = OrangePhone("p", fake.phone_options(token_cache=False))
    phone.check()
    assert phone.token_cache is None
    assert not (tmp_path / "xdg-cache").exists()
    phone.close()


def test_pluggable_cache_and_stale_entry_dropped(fake: FakeOrange) -> None:
    cache = MemoryTokenCache()
    phone = OrangePhone("p", fake.phone_options(), token_cache=cache)
    key = phone.token_key
    far = datetime.now(UTC).timestamp() + 3000
    cache.save(key, Token("revoked-elsewhere", far + 60, far))
    with pytest.raises(AuthError):  # fake never issued it: 41
        phone.send(msg())
    assert cache.load(key) is None  # the refused token left the cache
    phone.send(msg())
    loaded = cache.load(key)
    assert loaded is not None and loaded.access_token.startswith("fake-token-")
    phone.close()


def test_file_cache_ignores_garbage(tmp_path: Path) -> None:
    cache = FileTokenCache(tmp_path)
    key = credentials_key("http://x/token", "Basic abc")
    cache.path(key).write_text("{not json")
    assert cache.load(key) is None
    cache.save(key, Token("t", 2.0, 1.0))
    assert cache.load(key) == Token("t", 2.0, 1.0)
    cache.delete(key)
    assert cache.load(key) is None


def test_concurrent_first_use_is_single_flight(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone()
    barrier = threading.Barrier(16)

    def grab(_: int) -> str:
        barrier.wait()
        return phone.token().access_token

    with ThreadPoolExecutor(16) as pool:
        tokens = set(pool.map(grab, range(16)))
    assert len(tokens) == 1 and fake.token_requests == 1

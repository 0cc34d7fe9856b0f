"""The Orange token kept in the bridge's message store (table ``smsbridge_cache``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from smsbridge_orange import OrangePhone
from smsbridge_orange.auth import FileTokenCache, MemoryTokenCache, StoreTokenCache, Token
from smsbridge_orange.testing import FakeOrange
from sqlalchemy import select

import smsbridge
from smsbridge.store import open_store
from smsbridge.store.schema import cache

RECIPIENT = "+2250701020304"


def write_config(tmp_path: Path, fake: FakeOrange, **options: Any) -> Path:
    """A config file (JSON is YAML) with one Orange phone and an SQLite store."""
    phone = {"plugin": "orange", **fake.phone_options(token_cache=True), **options}
    config = {
        "default_region": "CI",
        "store": f"sqlite:///{tmp_path / 'store.db'}",
        "phones": {"orange": phone},
    }
    path = tmp_path / "smsbridge.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def test_two_processes_on_one_store_make_one_token_request(
    fake: FakeOrange, tmp_path: Path
) -> None:
    config = write_config(tmp_path, fake)
    bridge = smsbridge.Bridge.from_yaml(config)
    try:
        phone = bridge.phone("orange")
        assert isinstance(phone, OrangePhone) and isinstance(phone.token_cache, StoreTokenCache)
        bridge.send(RECIPIENT, "first process")
        store = bridge.store
        with store.engine.connect() as conn:  # type: ignore[union-attr]
            rows = conn.execute(select(cache)).all()
        assert [(r.namespace, r.key) for r in rows] == [("orange-token", phone.token_key)]
        # the key is a digest; the credentials are nowhere in the row
        assert not any(s in str(tuple(rows[0])) for s in (fake.client_id, fake.client_secret))
    finally:
        bridge.close()
    assert fake.token_requests == 1
    assert not (tmp_path / "xdg-cache" / "smsbridge").exists()  # no token file was written

    # Another process, with its own (empty) cache directory: only the store can help it.
    script = (
        "import sys, smsbridge\n"
        "bridge = smsbridge.Bridge.from_yaml(sys.argv[1])\n"
        "bridge.send(sys.argv[2], 'second process')\n"
        "bridge.close()\n"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "other-cache"))
    subprocess.run(
        [sys.executable, "-c", script, str(config), RECIPIENT], check=True, env=env, timeout=60
    )
    assert [s["message"] for s in fake.sent] == ["first process", "second process"]
    assert fake.token_requests == 1
    assert not (tmp_path / "other-cache" / "smsbridge").exists()


def test_the_users_choice_of_cache_is_kept(fake: FakeOrange, tmp_path: Path) -> None:
    chosen = MemoryTokenCache()
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    phones = {
        "default": OrangePhone("default", fake.phone_options(token_cache=True)),
        "off": OrangePhone("off", fake.phone_options(token_cache=False)),
        "dir": OrangePhone(
            "dir", fake.phone_options(token_cache=True, token_cache_dir=str(tmp_path / "t"))
        ),
        "object": OrangePhone("object", fake.phone_options(), token_cache=chosen),
        "swapped": OrangePhone("swapped", fake.phone_options(token_cache=True)),
    }
    phones["swapped"].use_token_cache(chosen)
    bridge = smsbridge.Bridge(phones, store=store)
    try:
        assert isinstance(phones["default"].token_cache, StoreTokenCache)
        assert phones["off"].token_cache is None
        assert isinstance(phones["dir"].token_cache, FileTokenCache)
        assert phones["object"].token_cache is chosen
        assert phones["swapped"].token_cache is chosen
    finally:
        bridge.close()
    # no store: the file cache stays
    phone = OrangePhone("alone", fake.phone_options(token_cache=True))
    smsbridge.Bridge({"alone": phone}).close()
    assert isinstance(phone.token_cache, FileTokenCache)


def test_store_errors_never_show_the_token(tmp_path: Path) -> None:
    # a store whose schema was never created: every cache call fails in SQL
    broken = open_store(f"sqlite:///{tmp_path / 'empty.db'}", migrate_schema=False)
    token_cache = StoreTokenCache(broken)
    token = Token("secret-token-value", 2_000_000_000.0, 1_999_999_000.0)
    try:
        assert token_cache.load("k") is None
        with pytest.raises(OSError) as caught:
            token_cache.save("k", token)
        assert "secret-token-value" not in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        with pytest.raises(OSError):
            token_cache.delete("k")
    finally:
        broken.close()


def test_expired_token_rows_are_not_loaded(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    token_cache = StoreTokenCache(store)
    try:
        token_cache.save("k", Token("old", 1_000.0, 900.0))  # expired in 1970
        assert token_cache.load("k") is None
        fresh = Token("new", 2_000_000_000.0, 1_999_999_000.0)
        token_cache.save("k", fresh)
        assert token_cache.load("k") == fresh
        token_cache.delete("k")
        assert token_cache.load("k") is None
    finally:
        store.close()

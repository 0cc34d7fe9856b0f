"""Orange OAuth v3 token lifecycle: one shared, cached, single-flight token per credentials.

- Phones with the same credentials (same token URL and Basic header) share one
  :class:`SharedToken` in this process; concurrent callers wait for the one in-flight
  token request instead of each asking for their own (single-flight, failures included).
- A token is reused until shortly before ``expires_in`` (string ``"3600"`` or integer
  ``3600``): the margin is a tenth of the lifetime, at most 60 s.
- A :class:`TokenCache` persists tokens across processes (CLI calls, cron jobs,
  serverless functions). :class:`FileTokenCache` keeps one 0600 JSON file per
  credentials in the user cache directory (``platformdirs``); :class:`StoreTokenCache`
  keeps them in the message store's key-value cache (table ``smsbridge_cache``), which a
  bridge with a store uses instead (see ``OrangePhone.use_cache``).

Cache keys are salted SHA-256 digests of the token URL and credentials: neither the
key nor a log line ever contains the secret.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import platformdirs

from smsbridge.cache import KeyValueCache
from smsbridge.errors import (
    AmbiguousSend,
    AuthError,
    ProviderUnavailable,
    SendError,
    SmsBridgeError,
)
from smsbridge.phone import HttpPhone

from .errors import parse_error, to_exception

__all__ = [
    "FileTokenCache",
    "MemoryTokenCache",
    "SharedToken",
    "StoreTokenCache",
    "Token",
    "TokenCache",
    "choose_token_cache",
    "credentials_key",
    "fetch_token",
    "forget_shared_tokens",
    "parse_expires_in",
    "shared_token",
]

log = logging.getLogger("smsbridge.orange")

DEFAULT_TTL = 3600.0
AUTH_FAILURE_HOLD = 5.0  # seconds a refused-credentials answer is reused instead of asking again


@dataclass(frozen=True)
class Token:
    """An access token and when to stop using it (epoch seconds)."""

    access_token: str
    expires_at: float
    refresh_at: float
    token_type: str = "Bearer"

    @classmethod
    def from_json(cls, text: str) -> Token:
        """A token saved by a cache (``asdict`` as JSON); ValueError/KeyError/TypeError
        when the text is not one."""
        data = json.loads(text)
        return cls(
            access_token=str(data["access_token"]),
            expires_at=float(data["expires_at"]),
            refresh_at=float(data["refresh_at"]),
            token_type=str(data.get("token_type", "Bearer")),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def __repr__(self) -> str:  # never show the token itself
        return f"Token(expires_at={self.expires_at:.0f}, token_type={self.token_type!r})"

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at

    @classmethod
    def from_response(cls, data: dict[str, Any], now: float) -> Token:
        """Build a token from the token endpoint's JSON (``expires_in`` str or int)."""
        value = data.get("access_token")
        if not isinstance(value, str) or not value:
            raise ValueError("token response has no access_token")
        ttl = parse_expires_in(data.get("expires_in"))
        margin = min(60.0, ttl / 10)
        return cls(
            access_token=value,
            expires_at=now + ttl,
            refresh_at=now + ttl - margin,
            token_type=str(data.get("token_type") or "Bearer"),
        )


def parse_expires_in(value: object) -> float:
    """``"3600"``, ``3600`` or ``3600.0`` → 3600.0; missing or junk → one hour."""
    if isinstance(value, bool):
        return DEFAULT_TTL
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            return DEFAULT_TTL
    else:
        return DEFAULT_TTL
    return seconds if seconds > 0 else DEFAULT_TTL


def fetch_token(phone: HttpPhone, url: str, basic: str, now: Callable[[], float]) -> Token:
    """A new token from Orange's token endpoint ``url`` for ``phone`` (``basic``: its
    ``Authorization`` header; ``now``: epoch seconds).

    A refusal raises its smsbridge error (an :class:`AuthError` where the mapping gives a
    message error); a timeout or an unusable body raises :class:`ProviderUnavailable`
    (a token request is harmless to repeat).
    """
    headers = {"Authorization": basic, "Accept": "application/json"}
    try:
        response = phone.request(
            "POST", url, data={"grant_type": "client_credentials"}, headers=headers
        )
    except AmbiguousSend as exc:
        raise ProviderUnavailable(exc.message, phone=phone.name) from None
    if response.status_code != 200:
        error = to_exception(parse_error(response), phone)
        if not isinstance(error, SendError):
            error = AuthError(str(error), phone=phone.name)
        error.message = f"token request refused: {error.message}"
        raise error
    try:
        token = Token.from_response(response.json(), now())
    except (ValueError, AttributeError) as exc:
        raise ProviderUnavailable(
            f"Orange token endpoint answered an unusable body ({exc})", phone=phone.name
        ) from None
    log.info("phone %s: new Orange access token", phone.name)
    return token


def credentials_key(token_url: str, authorization: str) -> str:
    """A stable, non-reversible key for one set of credentials at one token URL."""
    digest = hashlib.sha256(b"smsbridge-orange-token-v1\0")
    digest.update(token_url.encode("utf-8") + b"\0" + authorization.encode("utf-8"))
    return digest.hexdigest()[:40]


class TokenCache(Protocol):
    """Where tokens outlive the process. Implementations must never raise on I/O errors
    in ``load`` (return None) and may raise nothing but ``OSError`` in ``save``/``delete``."""

    def load(self, key: str) -> Token | None: ...

    def save(self, key: str, token: Token) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryTokenCache:
    """A process-local cache (tests, or a store adapter's model)."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> Token | None:
        with self._lock:
            return self._tokens.get(key)

    def save(self, key: str, token: Token) -> None:
        with self._lock:
            self._tokens[key] = token

    def delete(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)


class FileTokenCache:
    """One JSON file per credentials, mode 0600, in a 0700 directory.

    Default directory: ``platformdirs.user_cache_dir("smsbridge")/orange-tokens``.
    Writes are atomic (temporary file + rename), so concurrent processes never read
    half a file.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        base = directory or Path(platformdirs.user_cache_dir("smsbridge")) / "orange-tokens"
        self.directory = Path(base)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str) -> Token | None:
        try:
            return Token.from_json(self.path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.debug("ignoring unreadable token cache %s: %s", self.path(key), type(exc).__name__)
            return None

    def save(self, key: str, token: Token) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.path(key)
        tmp = target.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(token.to_json())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


class StoreTokenCache:
    """Tokens in the message store's key-value cache (namespace ``orange-token``), shared
    by every process using the store; a row expires with its token.

    The key is :func:`credentials_key` (a digest, never the credentials); the value is
    the token itself, in the user's own database like the messages. Store errors never
    escape with their SQL parameters: ``load`` answers None, ``save``/``delete`` raise a
    bare :class:`OSError` (logged by :class:`SharedToken` by its type only).
    """

    namespace = "orange-token"

    def __init__(self, store: KeyValueCache) -> None:
        self.store = store

    def load(self, key: str) -> Token | None:
        try:
            found = self.store.cache_get(self.namespace, key)
            return None if found is None else Token.from_json(found[0])
        except Exception as exc:  # the store's errors may carry the token in their text
            log.debug("ignoring the store's Orange token cache: %s", type(exc).__name__)
            return None

    def save(self, key: str, token: Token) -> None:
        expires_at = datetime.fromtimestamp(token.expires_at, UTC)
        try:
            self.store.cache_set(self.namespace, key, token.to_json(), expires_at)
        except Exception as exc:
            raise OSError(f"message store error ({type(exc).__name__})") from None

    def delete(self, key: str) -> None:
        try:
            self.store.cache_delete(self.namespace, key)
        except Exception as exc:
            raise OSError(f"message store error ({type(exc).__name__})") from None


def choose_token_cache(
    given: TokenCache | None, enabled: bool, directory: str | None
) -> tuple[TokenCache | None, bool]:
    """A phone's persistent token cache (``given``, else a file cache unless disabled) and
    whether the user chose it (an object, ``token_cache: false``, a directory): a chosen
    cache is never replaced by the bridge's message store."""
    cache = given if given is not None or not enabled else FileTokenCache(directory)
    return cache, given is not None or not enabled or directory is not None


class SharedToken:
    """The token of one set of credentials, shared by every phone using them."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._fetches = 0  # completed token requests (successful or not)
        self._last_error: SmsBridgeError | None = None
        self._failed_at = 0.0  # time.monotonic() of the last failed token request
        self.requests = 0  # token requests made by this process (observability)

    @property
    def current(self) -> Token | None:
        """The token held in this process (fresh or not), if any."""
        return self._token

    def get(
        self,
        fetch: Callable[[], Token],
        cache: TokenCache | None = None,
        now: Callable[[], float] = time.time,
    ) -> Token:
        """A fresh token: the shared one, else the persistent cache's, else a new one.

        Callers that waited while another thread's token request failed get that
        failure too, instead of repeating the request; refused credentials
        (:class:`AuthError`) are not asked for again for a few seconds.
        """
        token = self._token
        if token is not None and token.fresh(now()):
            return token
        seen = self._fetches
        with self._lock:
            token = self._token
            if token is not None and token.fresh(now()):
                return token
            error = self._last_error
            if error is not None and (
                self._fetches != seen
                or (
                    isinstance(error, AuthError)
                    and time.monotonic() - self._failed_at < AUTH_FAILURE_HOLD
                )
            ):
                raise copy.copy(error)
            if cache is not None:
                cached = cache.load(self.key)
                if cached is not None and cached.fresh(now()):
                    self._token = cached
                    return cached
            self.requests += 1
            try:
                token = fetch()
            except SmsBridgeError as exc:
                self._fetches += 1
                self._last_error = exc
                self._failed_at = time.monotonic()
                raise
            self._fetches += 1
            self._last_error = None
            self._token = token
            if cache is not None:
                try:
                    cache.save(self.key, token)
                except OSError as exc:
                    log.warning("cannot write the Orange token cache: %s", type(exc).__name__)
            return token

    def invalidate(self, access_token: str, cache: TokenCache | None = None) -> None:
        """Forget ``access_token`` (refused by the API). A newer token is kept, so that
        many threads failing with the same expired token cause one refresh, not many."""
        with self._lock:
            if self._token is not None and self._token.access_token == access_token:
                self._token = None
            if cache is not None:
                cached = cache.load(self.key)
                if cached is not None and cached.access_token == access_token:
                    try:
                        cache.delete(self.key)
                    except OSError:
                        pass


_registry: dict[str, SharedToken] = {}
_registry_lock = threading.Lock()


def shared_token(key: str) -> SharedToken:
    """The process-wide :class:`SharedToken` for ``key`` (created on first use)."""
    with _registry_lock:
        found = _registry.get(key)
        if found is None:
            found = _registry[key] = SharedToken(key)
        return found


def forget_shared_tokens() -> None:
    """Drop every in-process shared token (tests: a new fake server may reuse a port)."""
    with _registry_lock:
        _registry.clear()

"""Verification codes sent by SMS, stored only as keyed hashes.

::

    smsbridge.verification.send_verification(bridge, "+2250701020304", locale="fr")
    ...
    ok = smsbridge.verification.check_verification(bridge, "+2250701020304", "482913")

``send`` generates a code with :mod:`secrets` (``length`` characters of ``alphabet``),
renders it with the ``verification`` template (English and French ship with smsbridge;
``code``, ``minutes`` and any ``context`` are available) and sends it through the normal
send lifecycle. Only an HMAC of the code is stored, with its expiry.

``check`` is True once per code: the code must be the latest one sent to that number
(for that ``purpose``), not expired, not used, and within ``max_attempts`` wrong tries
(counted atomically before comparing, so parallel guesses cannot exceed the bound).
The comparison is constant-time (:func:`hmac.compare_digest`).

A new code for the same number replaces the previous one, at most once per ``cooldown``
and ``max_sends`` times per ``send_window`` (SMS pumping protection); otherwise
:class:`VerificationThrottled` is raised with ``retry_after`` seconds.

Why HMAC-SHA256 with a secret key rather than a slow hash (scrypt, PBKDF2)? A 6-digit
code has a million values: a slow hash of it is still brute-forced in minutes by whoever
reads the database. What protects codes at rest is a key that is *not* in the database
(a "pepper"): ``verification.secret`` in the config (use one value for every process
sharing the database), else a random key file created once per install (mode 0600) in
smsbridge's data directory, else, with an in-memory store, a random key per process.
Each record also has a random salt, and the number and purpose are bound into the MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .config import validate_section
from .errors import AmbiguousSend, ConfigError, MessageError, SendError, SmsBridgeError
from .message import SendResult, new_id, utcnow
from .numbers import normalize
from .store.records import Throttle, VerificationRecord, plan_issue

__all__ = [
    "MemoryVerificationStore",
    "Throttle",
    "VerificationRecord",
    "VerificationSettings",
    "VerificationStore",
    "VerificationThrottled",
    "Verifier",
    "check_verification",
    "install",
    "load_or_create_key",
    "plan_issue",
    "send_verification",
    "verifier_for",
]

log = logging.getLogger("smsbridge.verification")

_DOMAIN = b"smsbridge-verification-v1"


class VerificationSettings(BaseModel):
    """The ``verification:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    length: int = Field(default=6, ge=4, le=16, description="Characters in a code.")
    alphabet: str = Field(default="0123456789", description="Characters codes are made of.")
    ttl: float = Field(default=600, gt=0, description="Seconds a code stays valid.")
    max_attempts: int = Field(default=5, ge=1, le=100, description="Wrong tries per code.")
    cooldown: float = Field(default=60, ge=0, description="Seconds before a code is resent.")
    max_sends: int = Field(default=5, ge=1, description="Codes per number per send_window.")
    send_window: float = Field(default=3600, gt=0, description="Seconds, for max_sends.")
    template: str = Field(default="verification", description="Template slug.")
    tag: str = Field(default="verification", description="Tag of verification messages.")
    secret: SecretStr | None = Field(default=None, description="HMAC key (>= 16 chars).")
    key_file: str | None = Field(default=None, description="Where the generated key lives.")
    context: dict[str, Any] = Field(
        default_factory=dict, description="Extra template variables (e.g. signature)."
    )

    @field_validator("alphabet")
    @classmethod
    def _alphabet(cls, value: str) -> str:
        if len(set(value)) != len(value) or len(value) < 2:
            raise ValueError("alphabet needs at least 2 distinct characters, no repeats")
        if any(c.isspace() or c == "-" for c in value):
            raise ValueError("alphabet may not contain spaces or '-' (stripped from input)")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("secret must be at least 16 characters")
        return value


@runtime_checkable
class VerificationStore(Protocol):
    """Persistence of verification records: one per (number, purpose)."""

    def issue(
        self,
        record: VerificationRecord,
        *,
        cooldown: timedelta,
        window: timedelta,
        max_sends: int,
    ) -> Throttle | None:
        """Atomically replace the number's record per :func:`plan_issue`; the throttle
        when refused (also when another process issued a code at the same moment)."""

    def get(self, number: str, purpose: str) -> VerificationRecord | None: ...

    def attempt(self, record_id: str, max_attempts: int) -> bool:
        """Atomically count one try if fewer than ``max_attempts`` were made and the
        code is unused; False when no try is left."""

    def consume(self, record_id: str, at: datetime) -> bool:
        """Atomically mark the code used; True only for the call that did it."""

    def discard(self, record_id: str) -> None:
        """Forget a record (its SMS could not be sent)."""

    def close(self) -> None: ...


class MemoryVerificationStore:
    """In-process records (lost on restart): tests, development, single process."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], VerificationRecord] = {}
        self._lock = threading.Lock()

    def issue(
        self,
        record: VerificationRecord,
        *,
        cooldown: timedelta,
        window: timedelta,
        max_sends: int,
    ) -> Throttle | None:
        key = (record.number, record.purpose)
        with self._lock:
            planned = plan_issue(
                self._records.get(key),
                record,
                cooldown=cooldown,
                window=window,
                max_sends=max_sends,
            )
            if isinstance(planned, Throttle):
                return planned
            self._records[key] = planned
            return None

    def _find(self, record_id: str) -> tuple[tuple[str, str], VerificationRecord] | None:
        for key, record in self._records.items():
            if record.record_id == record_id:
                return key, record
        return None

    def get(self, number: str, purpose: str) -> VerificationRecord | None:
        with self._lock:
            return self._records.get((number, purpose))

    def attempt(self, record_id: str, max_attempts: int) -> bool:
        with self._lock:
            found = self._find(record_id)
            if found is None:
                return False
            key, record = found
            if record.used_at is not None or record.attempts >= max_attempts:
                return False
            self._records[key] = replace(record, attempts=record.attempts + 1)
            return True

    def consume(self, record_id: str, at: datetime) -> bool:
        with self._lock:
            found = self._find(record_id)
            if found is None or found[1].used_at is not None:
                return False
            self._records[found[0]] = replace(found[1], used_at=at)
            return True

    def discard(self, record_id: str) -> None:
        with self._lock:
            found = self._find(record_id)
            if found is not None:
                del self._records[found[0]]

    def close(self) -> None:
        return None


class VerificationThrottled(SmsBridgeError):
    """A code was sent to this number too recently (``reason`` = ``cooldown``) or too
    often (``too_many``); ``retry_after`` seconds until the next one may go."""

    def __init__(self, message: str, *, reason: str, retry_after: float) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(message)


def default_key_file() -> Path:
    import platformdirs

    return platformdirs.user_data_path("smsbridge") / "verification.key"


def load_or_create_key(path: str | os.PathLike[str]) -> bytes:
    """A 32-byte key from ``path``, created (mode 0600) on first use."""
    target = Path(path)
    try:
        text = target.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            return load_or_create_key(target)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key.hex() + "\n")
        log.info("created verification key file %s", target)
        return key
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError("verification key file is not hex", file=str(target)) from None
    if len(key) < 16:
        raise ConfigError("verification key file holds fewer than 16 bytes", file=str(target))
    return key


class Verifier:
    """Sends and checks verification codes for one bridge (see the module docstring)."""

    def __init__(
        self,
        bridge: Any,
        settings: VerificationSettings | Mapping[str, Any] | None = None,
        *,
        store: VerificationStore | None = None,
        key: bytes | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.bridge = bridge
        if isinstance(settings, VerificationSettings):
            self.settings = settings
        else:
            self.settings = VerificationSettings.model_validate(dict(settings or {}))
        self.store: VerificationStore = store if store is not None else MemoryVerificationStore()
        self.clock = clock or utcnow
        self._key = key if key is not None else self._resolve_key()

    def _resolve_key(self) -> bytes:
        if self.settings.secret is not None:
            return self.settings.secret.get_secret_value().encode("utf-8")
        if isinstance(self.store, MemoryVerificationStore):
            return secrets.token_bytes(32)
        path = Path(self.settings.key_file) if self.settings.key_file else default_key_file()
        return load_or_create_key(path)

    def __repr__(self) -> str:
        return f"<Verifier store={type(self.store).__name__}>"

    # -- helpers
    def _number(self, to: str) -> str:
        config = getattr(self.bridge, "config", None)
        return normalize(to, getattr(config, "default_region", None))

    def generate_code(self) -> str:
        alphabet = self.settings.alphabet
        return "".join(secrets.choice(alphabet) for _ in range(self.settings.length))

    def _digest(self, number: str, purpose: str, salt: bytes, code: str) -> str:
        message = b"\0".join(
            (_DOMAIN, number.encode(), purpose.encode(), salt, code.encode("utf-8"))
        )
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _clean(self, code: object) -> str:
        text = "".join(str(code).split()).replace("-", "")
        alphabet = self.settings.alphabet
        if alphabet.upper() == alphabet and alphabet.lower() != alphabet:
            text = text.upper()
        elif alphabet.lower() == alphabet and alphabet.upper() != alphabet:
            text = text.lower()
        return text

    # -- API
    def send(
        self,
        to: str,
        *,
        locale: str | None = None,
        template: str | None = None,
        purpose: str = "default",
        context: Mapping[str, Any] | None = None,
        **message_fields: Any,
    ) -> SendResult:
        """Generate, store (hashed) and send a new code to ``to``.

        Raises :class:`VerificationThrottled` (cooldown / too many codes), template
        errors, and whatever :meth:`Bridge.send` raises (the code is then forgotten,
        except after :class:`~smsbridge.AmbiguousSend` where it may have arrived).
        """
        from .templates import send_template

        settings = self.settings
        number = self._number(to)
        code = self.generate_code()
        salt = secrets.token_bytes(16)
        now = self.clock()
        record = VerificationRecord(
            number=number,
            purpose=purpose,
            record_id=new_id(),
            digest=self._digest(number, purpose, salt, code),
            salt=salt.hex(),
            sent_at=now,
            expires_at=now + timedelta(seconds=settings.ttl),
            window_started_at=now,
        )
        throttle = self.store.issue(
            record,
            cooldown=timedelta(seconds=settings.cooldown),
            window=timedelta(seconds=settings.send_window),
            max_sends=settings.max_sends,
        )
        if throttle is not None:
            wait = max(1, math.ceil(throttle.retry_after))
            what = (
                "a code was sent to this number moments ago"
                if throttle.reason == "cooldown"
                else "too many codes were sent to this number"
            )
            raise VerificationThrottled(
                f"{what}; retry in {wait} s", reason=throttle.reason, retry_after=wait
            )
        values = {
            **settings.context,
            **(context or {}),
            "code": code,
            "minutes": max(1, math.ceil(settings.ttl / 60)),
        }
        message_fields.setdefault("tag", settings.tag)
        metadata = dict(message_fields.get("metadata") or {})
        metadata["sensitive"] = True  # the body holds a secret: stores should not keep it
        message_fields["metadata"] = metadata
        try:
            return send_template(
                self.bridge,
                number,
                template or settings.template,
                values,
                locale,
                **message_fields,
            )
        except (MessageError, SendError) as exc:
            if not isinstance(exc, AmbiguousSend):
                self.store.discard(record.record_id)
            raise

    def check(self, to: str, code: object, *, purpose: str = "default") -> bool:
        """True when ``code`` is the valid, unused, unexpired code of ``to`` (once)."""
        try:
            number = self._number(to)
        except MessageError:
            return False
        record = self.store.get(number, purpose)
        now = self.clock()
        cleaned = self._clean(code)
        if record is None:
            # Same work as a real check, so timing does not tell whether a code exists.
            self._digest(number, purpose, b"\0" * 16, cleaned)
            return False
        if record.used_at is not None or now >= record.expires_at:
            return False
        if not self.store.attempt(record.record_id, self.settings.max_attempts):
            return False
        expected = record.digest.encode("ascii")
        given = self._digest(number, purpose, bytes.fromhex(record.salt), cleaned)
        if not hmac.compare_digest(given.encode("ascii"), expected):
            return False
        return self.store.consume(record.record_id, now)

    def close(self) -> None:
        self.store.close()


# ---------------------------------------------------------------------- bridge layer
def parse_settings(node: Any, *, file: str | None = None) -> VerificationSettings:
    """Validate the ``verification:`` YAML section (errors name file, line and key)."""
    return validate_section(VerificationSettings, node, file=file, key="verification")


def open_verification_store(target: Any = None) -> VerificationStore:
    """None → memory; an SQLAlchemy URL, engine or a store with ``engine`` → SQL."""
    if target is None:
        return MemoryVerificationStore()
    if isinstance(target, VerificationStore):
        return target
    from .store.features import SqlVerificationStore, engine_for

    return SqlVerificationStore(engine_for(target))


def install(
    bridge: Any,
    settings: VerificationSettings | Mapping[str, Any] | None = None,
    *,
    store: VerificationStore | Any = None,
    key: bytes | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Verifier:
    """Attach a :class:`Verifier` to ``bridge`` (``bridge.verifier``).

    ``settings`` default to the config's ``verification:``; ``store`` to the bridge's
    message store database (its ``engine``), else memory.
    """
    config = getattr(bridge, "config", None)
    if settings is None:
        settings = parse_settings(
            getattr(config, "verification", None), file=getattr(config, "path", None)
        )
    if store is None:
        store = getattr(getattr(bridge, "store", None), "engine", None)
    verifier = Verifier(
        bridge, settings, store=open_verification_store(store), key=key, clock=clock
    )
    bridge.verifier = verifier
    return verifier


def verifier_for(bridge: Any) -> Verifier:
    """The bridge's :class:`Verifier`, installed from its config on first use."""
    verifier = getattr(bridge, "verifier", None)
    if isinstance(verifier, Verifier):
        return verifier
    return install(bridge)


def send_verification(
    bridge: Any,
    to: str,
    locale: str | None = None,
    template: str | None = None,
    **kw: Any,
) -> SendResult:
    """``bridge.send_verification``: see :meth:`Verifier.send`."""
    return verifier_for(bridge).send(to, locale=locale, template=template, **kw)


def check_verification(bridge: Any, to: str, code: object, *, purpose: str = "default") -> bool:
    """``bridge.check_verification``: see :meth:`Verifier.check`."""
    return verifier_for(bridge).check(to, code, purpose=purpose)

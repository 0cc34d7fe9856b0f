"""The STOP / opt-out list.

- An inbound message starting with a STOP keyword (``STOP``, ``ARRET``, ``STOP SMS``,
  ``UNSUBSCRIBE``..., accent- and case-insensitive) adds its sender to the list, with the
  phone that received it, the time and the keyword. A START keyword removes it.
- A send to a number on the list is refused with :class:`~smsbridge.Rejected`
  (``opt_out=True``) before any provider call, unless its tag is in ``allow_tags``
  (e.g. ``transactional``) or it is a keyword reply (:data:`~smsbridge.keywords.REPLY_TAG`).
- A provider's own opt-out error (Twilio 21610, SNS ``OptedOut``: a ``Rejected`` with
  ``opt_out=True``) adds the number too.

Entries live in an :class:`OptOutStore`: :class:`MemoryOptOutStore`, or
:class:`smsbridge.store.features.SqlOptOutStore` in the message store's database.

YAML (every key optional)::

    optouts:
      enabled: true
      stop: [STOP, STOP SMS, ARRET, UNSUBSCRIBE]     # replaces the default list
      start: [START, UNSTOP]
      allow_tags: [transactional, verification]
      confirm_stop: optout-confirmation               # template slug sent after STOP
      confirm_start: optin-confirmation
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from .config import validate_section
from .encoding import count_segments
from .errors import MessageError, Rejected, SendError
from .keywords import REPLY_TAG, KeywordMessage, keywords_for
from .message import OutgoingMessage, SendResult, new_id, utcnow
from .numbers import normalize
from .status import Status
from .store.records import OptOut

__all__ = [
    "DEFAULT_START",
    "DEFAULT_STOP",
    "MemoryOptOutStore",
    "OptOut",
    "OptOutList",
    "OptOutSettings",
    "OptOutStore",
    "install",
    "open_optout_store",
    "optouts_for",
]

log = logging.getLogger("smsbridge.optouts")

DEFAULT_STOP = (
    "STOP",
    "STOP SMS",
    "STOPALL",
    "STOP ALL",
    "ARRET",
    "ARRETE",
    "ARRETER",
    "ARRETEZ",
    "DESABONNER",
    "DESABONNEMENT",
    "DESINSCRIRE",
    "DESINSCRIPTION",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "OPT OUT",
    "REVOKE",
)
DEFAULT_START = ("START", "UNSTOP")

Source = Literal["keyword", "provider", "manual"]


@runtime_checkable
class OptOutStore(Protocol):
    """Persistence of the opt-out list (one row per number)."""

    def add(self, entry: OptOut) -> bool:
        """Insert or refresh ``entry``; True when the number was not on the list."""

    def remove(self, number: str) -> bool:
        """Delete the number; True when it was on the list."""

    def get(self, number: str) -> OptOut | None: ...

    def entries(self, *, limit: int | None = None, offset: int = 0) -> list[OptOut]:
        """Newest first."""

    def count(self) -> int: ...

    def close(self) -> None: ...


class MemoryOptOutStore:
    """An in-process opt-out list (lost on restart): tests and development."""

    def __init__(self) -> None:
        self._items: dict[str, OptOut] = {}
        self._lock = threading.Lock()

    def add(self, entry: OptOut) -> bool:
        with self._lock:
            new = entry.number not in self._items
            self._items[entry.number] = entry
            return new

    def remove(self, number: str) -> bool:
        with self._lock:
            return self._items.pop(number, None) is not None

    def get(self, number: str) -> OptOut | None:
        with self._lock:
            return self._items.get(number)

    def entries(self, *, limit: int | None = None, offset: int = 0) -> list[OptOut]:
        with self._lock:
            items = sorted(self._items.values(), key=lambda e: e.at, reverse=True)
        end = None if limit is None else offset + limit
        return items[offset:end]

    def count(self) -> int:
        with self._lock:
            return len(self._items)

    def close(self) -> None:
        return None


def open_optout_store(target: Any = None) -> OptOutStore:
    """A store for ``target``: None → memory; an SQLAlchemy URL, engine, or a message
    store with an ``engine`` → :class:`~smsbridge.store.features.SqlOptOutStore`."""
    if target is None:
        return MemoryOptOutStore()
    if isinstance(target, OptOutStore):
        return target
    from .store.features import SqlOptOutStore, engine_for

    return SqlOptOutStore(engine_for(target))


class OptOutSettings(BaseModel):
    """The ``optouts:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Refuse sends to opted-out numbers.")
    stop: tuple[str, ...] = Field(default=DEFAULT_STOP, description="Opt-out keywords.")
    start: tuple[str, ...] = Field(default=DEFAULT_START, description="Opt-in keywords.")
    allow_tags: tuple[str, ...] = Field(
        default=(), description="Tags sent even to opted-out numbers (e.g. transactional)."
    )
    confirm_stop: str | None = Field(default=None, description="Template sent after STOP.")
    confirm_start: str | None = Field(default=None, description="Template sent after START.")


class OptOutList:
    """The opt-out list and its rules (see the module docstring)."""

    def __init__(
        self,
        store: OptOutStore | None = None,
        settings: OptOutSettings | Mapping[str, Any] | None = None,
        *,
        default_region: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store: OptOutStore = store if store is not None else MemoryOptOutStore()
        if isinstance(settings, OptOutSettings):
            self.settings = settings
        else:
            self.settings = OptOutSettings.model_validate(dict(settings or {}))
        self.default_region = default_region
        self.clock = clock or utcnow

    def _number(self, number: str) -> str:
        return normalize(number, self.default_region)

    # -- the list
    def add(
        self,
        number: str,
        *,
        keyword: str | None = None,
        phone: str | None = None,
        source: str = "manual",
    ) -> OptOut:
        entry = OptOut(self._number(number), self.clock(), keyword, phone, source)
        if self.store.add(entry):
            log.info("opt-out: %s added (%s %s via %s)", entry.number, source, keyword, phone)
        return entry

    def remove(self, number: str) -> bool:
        removed = self.store.remove(self._number(number))
        if removed:
            log.info("opt-out: %s removed", number)
        return removed

    def get(self, number: str) -> OptOut | None:
        return self.store.get(self._number(number))

    def __contains__(self, number: object) -> bool:
        return isinstance(number, str) and self.get(number) is not None

    def __iter__(self) -> Iterator[OptOut]:
        return iter(self.store.entries())

    def __len__(self) -> int:
        return self.store.count()

    def entries(self, *, limit: int | None = None, offset: int = 0) -> list[OptOut]:
        return self.store.entries(limit=limit, offset=offset)

    # -- hooks for the send lifecycle
    def exempt(self, message: OutgoingMessage) -> bool:
        tag = message.tag
        return tag is not None and (tag == REPLY_TAG or tag in self.settings.allow_tags)

    def refusal(self, message: OutgoingMessage, to: str) -> Rejected | None:
        """The error to refuse ``message`` to ``to`` (E.164) with, or None to let it go.

        Called by the bridge before any provider call.
        """
        if not self.settings.enabled or self.exempt(message):
            return None
        entry = self.store.get(to)
        if entry is None:
            return None
        how = f"{entry.keyword} " if entry.keyword else ""
        return Rejected(
            f"{to} opted out ({how}{entry.source}, {entry.at:%Y-%m-%d %H:%M} UTC); not sent",
            opt_out=True,
        )

    def check(self, to: str, *, tag: str | None = None) -> None:
        """Raise the :class:`Rejected` refusal for ``to``, if any."""
        number = self._number(to)
        refused = self.refusal(OutgoingMessage(to=number, body="-", tag=tag), number)
        if refused is not None:
            raise refused

    def observe(self, result: SendResult) -> OptOut | None:
        """Record a provider's opt-out error (``Rejected(opt_out=True)`` from a phone).

        Called by the bridge with every failed result; refusals made by :meth:`refusal`
        (no phone) are not recorded again.
        """
        error = result.error
        if not isinstance(error, Rejected) or not error.opt_out or error.phone is None:
            return None
        return self.add(
            result.to,
            keyword=error.provider_code or "provider",
            phone=error.phone,
            source="provider",
        )

    def record_error(self, error: BaseException, to: str) -> OptOut | None:
        """Like :meth:`observe` for a raised error and its recipient."""
        if isinstance(error, Rejected) and error.opt_out and error.phone is not None:
            return self.add(
                to, keyword=error.provider_code or "provider", phone=error.phone, source="provider"
            )
        return None

    # -- inbound keywords
    def on_stop(self, message: KeywordMessage) -> None:
        self.add(message.sender, keyword=message.keyword, phone=message.phone, source="keyword")
        if self.settings.confirm_stop:
            self._confirm(message, self.settings.confirm_stop)

    def on_start(self, message: KeywordMessage) -> None:
        self.remove(message.sender)
        if self.settings.confirm_start:
            self._confirm(message, self.settings.confirm_start)

    def _confirm(self, message: KeywordMessage, template: str) -> None:
        try:
            message.reply(template=template, context={"keyword": message.keyword}, tag=REPLY_TAG)
        except (SendError, MessageError) as exc:
            log.warning("opt-out confirmation to %s failed: %s", message.sender, exc)

    def close(self) -> None:
        self.store.close()


# ---------------------------------------------------------------------- bridge layer
def parse_settings(node: Any, *, file: str | None = None) -> OptOutSettings:
    """Validate the ``optouts:`` YAML section (errors name file, line and key)."""
    return validate_section(OptOutSettings, node, file=file, key="optouts")


def optouts_for(bridge: Any) -> OptOutList | None:
    """The opt-out list attached to ``bridge`` (:func:`install`), or None."""
    optouts = getattr(bridge, "optouts", None)
    return optouts if isinstance(optouts, OptOutList) else None


def install(
    bridge: Any,
    settings: OptOutSettings | Mapping[str, Any] | None = None,
    *,
    store: OptOutStore | Any = None,
    clock: Callable[[], datetime] | None = None,
) -> OptOutList:
    """Attach an opt-out list to ``bridge`` (``bridge.optouts``).

    ``settings`` default to the config's ``optouts:``; ``store`` to the bridge's message
    store database (its ``engine``), else memory. Registers the STOP/START keywords;
    ``Bridge._send`` calls
    :meth:`OptOutList.refusal` / :func:`refuse` before any provider call and
    :meth:`OptOutList.observe` after a provider's opt-out error.
    """
    config = getattr(bridge, "config", None)
    if settings is None:
        settings = parse_settings(
            getattr(config, "optouts", None), file=getattr(config, "path", None)
        )
    if store is None:
        store = getattr(getattr(bridge, "store", None), "engine", None)
    optouts = OptOutList(
        open_optout_store(store),
        settings,
        default_region=getattr(config, "default_region", None),
        clock=clock,
    )
    router = keywords_for(bridge)
    previous = optouts_for(bridge)
    if previous is not None:  # replacing a list: its STOP/START handlers go with it
        router.remove(previous.on_stop)
        router.remove(previous.on_start)
    bridge.optouts = optouts
    router.on_keyword(optouts.settings.stop, optouts.on_stop, priority=0)
    router.on_keyword(optouts.settings.start, optouts.on_start, priority=0)
    return optouts


def refuse(
    bridge: Any,
    message: OutgoingMessage,
    error: Rejected,
    *,
    to: str,
    message_id: str | None = None,
    already_stored: bool = False,
) -> SendResult:
    """The failed :class:`SendResult` of a refused message (recorded in the store)."""
    info = count_segments(message.body or "")
    message_id = message_id or new_id()
    store = getattr(bridge, "store", None)
    if store is not None and not already_stored:
        existing = store.begin_send(
            message_id, message, to=to, segments=info.segments, encoding=info.encoding
        )
        if existing is not None:
            return existing  # type: ignore[no-any-return]
    result = SendResult(
        message_id=message_id,
        status=Status.failed,
        phone=None,
        provider_id=None,
        to=to,
        segments=info.segments,
        encoding=info.encoding,
        error=error,
    )
    if store is not None:
        store.finish_send(result)
    error.result = result  # type: ignore[attr-defined]
    return result

"""Inbound keyword actions: run handlers for messages whose first word(s) match.

::

    router = smsbridge.keywords.keywords_for(bridge)      # or bridge.on_keyword(...) once wired
    @router.on_keyword(["INFO", "INFOS"])
    def info(message):                                     # a KeywordMessage
        message.reply("Horaires : 8h-18h")

    router.on_match(r"^RDV\\s+(\\d+)", book)              # regular expressions
    router.auto_reply("HELP", template="help")             # keyword -> template

Matching is on the first word(s) of the body, case- and accent-insensitive and ignoring
punctuation: ``Arrêt``, ``ARRET!`` and ``arret merci`` all match ``ARRET``; ``STOP SMS``
matches the two-word keyword ``STOP SMS`` (and ``STOP``). Patterns are searched in the
body (strings are compiled case-insensitive; pass a compiled pattern to choose flags).

Every matching registration runs, by ``priority`` then registration order (the STOP/START
opt-out handlers run first). A handler gets a :class:`KeywordMessage`: the
:class:`~smsbridge.IncomingMessage` plus ``keyword`` (as registered), ``args`` (the text
after it), ``pattern_match`` and :meth:`~KeywordMessage.reply`. A handler that raises makes
the webhook answer 500, as with ``on_receive``, so the provider retries; auto-replies
log their send failures instead.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from .config import line_of, validate_section
from .errors import ConfigError, MessageError, SendError
from .message import IncomingMessage, SendResult

__all__ = [
    "REPLY_TAG",
    "AutoReply",
    "KeywordMessage",
    "KeywordRouter",
    "install",
    "keywords_for",
    "normalize_text",
    "on_keyword",
    "on_match",
    "reply",
    "words",
]

log = logging.getLogger("smsbridge.keywords")

REPLY_TAG = "keyword-reply"
"""Tag of automatic answers (auto-replies, STOP/START confirmations). The opt-out check
lets them through: the person has just written to this number."""

_WORD = re.compile(r"[^\W_]+")
_LEADING = " \t\r\n.,;:!?-_*#'\"()"

Handler = Callable[["KeywordMessage"], Any]


def normalize_text(text: str) -> str:
    """Lower case without accents: ``Arrêt`` → ``arret``, ``DÉSABONNER`` → ``desabonner``."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


def words(text: str) -> list[str]:
    """The normalized words of ``text`` (punctuation dropped)."""
    return _WORD.findall(normalize_text(text))


@dataclass(frozen=True)
class KeywordMessage(IncomingMessage):
    """An :class:`IncomingMessage` that matched a keyword or a pattern."""

    keyword: str | None = None
    args: str = ""
    pattern_match: re.Match[str] | None = field(default=None, repr=False, compare=False)
    bridge: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, message: IncomingMessage, bridge: Any = None, **extra: Any) -> KeywordMessage:
        base = {f.name: getattr(message, f.name) for f in fields(IncomingMessage)}
        base["bridge"] = bridge if bridge is not None else base.get("bridge")
        return cls(**base, **extra)

    def reply(
        self,
        body: str | None = None,
        *,
        template: str | None = None,
        context: Mapping[str, Any] | None = None,
        locale: str | None = None,
        **message_fields: Any,
    ) -> SendResult:
        """Answer the sender through the phone that received the message."""
        if self.bridge is None:
            raise RuntimeError("this message is not attached to a bridge")
        return reply(
            self.bridge,
            self,
            body,
            template=template,
            context=context,
            locale=locale,
            **message_fields,
        )

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.pop("bridge", None)
        data["pattern_match"] = self.pattern_match.group(0) if self.pattern_match else None
        return data


def reply(
    bridge: Any,
    message: IncomingMessage,
    body: str | None = None,
    *,
    template: str | None = None,
    context: Mapping[str, Any] | None = None,
    locale: str | None = None,
    **message_fields: Any,
) -> SendResult:
    """Send ``body`` (or ``template``) to ``message.sender`` through ``message.phone``."""
    message_fields.setdefault("phone", message.phone)
    if template is not None:
        from .templates import send_template

        return send_template(bridge, message.sender, template, context, locale, **message_fields)
    if body is None:
        raise TypeError("reply() needs a body or template=")
    result: SendResult = bridge.send(message.sender, body, **message_fields)
    return result


# ---------------------------------------------------------------------- registrations
@dataclass(frozen=True)
class _Registration:
    handler: Handler
    keywords: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (label, normalized words)
    pattern: re.Pattern[str] | None = None
    priority: int = 100
    order: int = 0
    name: str = ""

    def match(
        self, message: IncomingMessage, tokens: list[tuple[str, int, int]], body: str
    ) -> dict[str, Any] | None:
        if self.pattern is not None:
            found = self.pattern.search(message.body or "")
            if found is None:
                return None
            return {"pattern_match": found, "args": (message.body or "")[found.end() :].strip()}
        best: tuple[str, int] | None = None
        for label, kw in self.keywords:
            n = len(kw)
            matches = len(tokens) >= n and all(tokens[i][0] == kw[i] for i in range(n))
            if matches and (best is None or n > best[1]):
                best = (label, n)
        if best is None:
            return None
        label, n = best
        rest = body[tokens[n - 1][2] :].lstrip(_LEADING).strip()
        return {"keyword": label, "args": rest}


def _tokens(body: str) -> tuple[str, list[tuple[str, int, int]]]:
    """NFC body and its words as (normalized, start, end) in that body."""
    text = unicodedata.normalize("NFC", body or "")
    out: list[tuple[str, int, int]] = []
    for m in _WORD.finditer(text):
        for part in _WORD.findall(normalize_text(m.group())) or [""]:
            out.append((part, m.start(), m.end()))
    return text, out


class AutoReply(BaseModel):
    """A configured answer to a keyword: a template (with locale) or a fixed text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str | None = None
    text: str | None = None
    locale: str | None = None
    context: dict[str, Any] = {}
    tag: str = REPLY_TAG

    @model_validator(mode="after")
    def _one(self) -> AutoReply:
        if (self.template is None) == (self.text is None):
            raise ValueError("an auto-reply needs exactly one of 'template' or 'text'")
        return self


class KeywordRouter:
    """Keyword and pattern handlers for inbound messages; call it with an IncomingMessage."""

    def __init__(self, bridge: Any = None) -> None:
        self.bridge = bridge
        self._registrations: list[_Registration] = []
        self._lock = threading.Lock()

    # -- registering
    def on_keyword(
        self,
        keywords: str | Iterable[str],
        handler: Handler | None = None,
        *,
        priority: int = 100,
    ) -> Any:
        """Run ``handler`` for messages starting with one of ``keywords``.

        Usable as ``router.on_keyword("STOP", fn)`` or as a decorator.
        """
        items = [keywords] if isinstance(keywords, str) else list(keywords)
        parsed: list[tuple[str, tuple[str, ...]]] = []
        for item in items:
            kw = tuple(words(str(item)))
            if not kw:
                raise ValueError(f"keyword {item!r} has no letters or digits")
            parsed.append((" ".join(str(item).split()).upper(), kw))
        if not parsed:
            raise ValueError("on_keyword needs at least one keyword")

        def register(fn: Handler) -> Handler:
            self._add(
                _Registration(
                    fn,
                    keywords=tuple(parsed),
                    priority=priority,
                    name=getattr(fn, "__name__", repr(fn)),
                )
            )
            return fn

        return register if handler is None else register(handler)

    def on_match(
        self,
        pattern: str | re.Pattern[str],
        handler: Handler | None = None,
        *,
        priority: int = 100,
    ) -> Any:
        """Run ``handler`` for messages whose body matches ``pattern`` (``re.search``)."""
        compiled = re.compile(pattern, re.IGNORECASE) if isinstance(pattern, str) else pattern

        def register(fn: Handler) -> Handler:
            self._add(
                _Registration(
                    fn, pattern=compiled, priority=priority, name=getattr(fn, "__name__", repr(fn))
                )
            )
            return fn

        return register if handler is None else register(handler)

    def auto_reply(
        self, keywords: str | Iterable[str], spec: AutoReply | str | Mapping[str, Any]
    ) -> Handler:
        """Answer ``keywords`` with a template (a slug string) or an :class:`AutoReply`."""
        if isinstance(spec, str):
            spec = AutoReply(template=spec)
        elif not isinstance(spec, AutoReply):
            spec = AutoReply.model_validate(dict(spec))
        answer = spec

        def auto_reply(message: KeywordMessage) -> None:
            try:
                message.reply(
                    answer.text,
                    template=answer.template,
                    context={**answer.context, "keyword": message.keyword, "args": message.args},
                    locale=answer.locale,
                    tag=answer.tag,
                )
            except (SendError, MessageError) as exc:
                log.warning(
                    "auto-reply to %s on %s failed: %s", message.keyword, message.phone, exc
                )

        self.on_keyword(keywords, auto_reply)
        return auto_reply

    def _add(self, registration: _Registration) -> None:
        with self._lock:
            order = len(self._registrations)
            self._registrations.append(
                _Registration(
                    registration.handler,
                    registration.keywords,
                    registration.pattern,
                    registration.priority,
                    order,
                    registration.name,
                )
            )
            self._registrations.sort(key=lambda r: (r.priority, r.order))

    def remove(self, handler: Handler) -> int:
        """Unregister every registration of ``handler``; returns how many."""
        with self._lock:
            before = len(self._registrations)
            # == rather than "is": a bound method is a new object at each attribute access
            self._registrations = [r for r in self._registrations if r.handler != handler]
            return before - len(self._registrations)

    # -- matching
    def match(self, message: IncomingMessage) -> list[tuple[Handler, KeywordMessage]]:
        """The handlers ``message`` triggers, in run order, each with its KeywordMessage."""
        body, tokens = _tokens(message.body)
        with self._lock:
            registrations = list(self._registrations)
        out = []
        for registration in registrations:
            found = registration.match(message, tokens, body)
            if found is not None:
                out.append((registration.handler, KeywordMessage.of(message, self.bridge, **found)))
        return out

    def __call__(self, message: IncomingMessage) -> int:
        """Run the matching handlers (an ``on_receive`` callback); returns how many ran."""
        matched = self.match(message)
        for handler, keyword_message in matched:
            handler(keyword_message)
        return len(matched)

    def describe(self) -> list[dict[str, Any]]:
        """Registrations as rows (for the CLI and debugging)."""
        with self._lock:
            registrations = list(self._registrations)
        return [
            {
                "keywords": [label for label, _ in r.keywords] or None,
                "pattern": r.pattern.pattern if r.pattern is not None else None,
                "handler": r.name,
                "priority": r.priority,
            }
            for r in registrations
        ]


# ---------------------------------------------------------------------- bridge layer
def parse_auto_replies(
    node: Mapping[str, Any] | None, *, file: str | None = None
) -> dict[str, AutoReply]:
    """The ``keywords:`` YAML section: ``KEYWORD: template-slug`` or ``KEYWORD: {template|text,
    locale, context, tag}``. Errors are :class:`ConfigError` with file, line and key."""

    if node is None:
        return {}
    if not isinstance(node, Mapping):
        raise ConfigError(
            "keywords must be a mapping of KEYWORD -> template or reply",
            file=file,
            line=line_of(node),
            key="keywords",
        )
    out: dict[str, AutoReply] = {}
    for keyword, spec in node.items():
        key = f"keywords.{keyword}"
        line = line_of(node, str(keyword))
        if not words(str(keyword)):
            raise ConfigError("a keyword needs letters or digits", file=file, line=line, key=key)
        if isinstance(spec, str):
            out[str(keyword)] = AutoReply(template=spec)
        elif isinstance(spec, Mapping):
            out[str(keyword)] = validate_section(AutoReply, spec, file=file, key=key)
        else:
            raise ConfigError(
                "an auto-reply is a template slug or a mapping "
                "(template or text, locale, context, tag)",
                file=file,
                line=line,
                key=key,
            )
    return out


def keywords_for(bridge: Any) -> KeywordRouter:
    """The bridge's :class:`KeywordRouter`, created and hooked to ``on_receive`` once."""
    router = getattr(bridge, "keywords", None)
    if isinstance(router, KeywordRouter):
        return router
    return install(bridge, auto_replies={})


def install(
    bridge: Any, auto_replies: Mapping[str, AutoReply | str | Mapping[str, Any]] | None = None
) -> KeywordRouter:
    """Attach a :class:`KeywordRouter` to ``bridge`` (``bridge.keywords``) and register it
    with ``bridge.on_receive``. ``auto_replies`` defaults to the config's ``keywords:``."""
    router = getattr(bridge, "keywords", None)
    if not isinstance(router, KeywordRouter):
        router = KeywordRouter(bridge)
        bridge.keywords = router
        bridge.on_receive(router)
    if auto_replies is None:
        config = getattr(bridge, "config", None)
        auto_replies = parse_auto_replies(
            getattr(config, "keywords", None), file=getattr(config, "path", None)
        )
    for keyword, spec in auto_replies.items():
        router.auto_reply(keyword, spec)
    return router


def on_keyword(
    bridge: Any,
    keywords: str | Iterable[str],
    handler: Handler | None = None,
    *,
    priority: int = 100,
) -> Any:
    """``bridge.on_keyword``: see :meth:`KeywordRouter.on_keyword`."""
    return keywords_for(bridge).on_keyword(keywords, handler, priority=priority)


def on_match(
    bridge: Any,
    pattern: str | re.Pattern[str],
    handler: Handler | None = None,
    *,
    priority: int = 100,
) -> Any:
    """``bridge.on_receive(handler, match=pattern)``: see :meth:`KeywordRouter.on_match`."""
    return keywords_for(bridge).on_match(pattern, handler, priority=priority)

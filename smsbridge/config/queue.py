"""The ``queue:`` section: how outbox messages reach workers (Celery or embedded).

Read by :func:`load_with_queue` (the YAML file's :class:`Config` and its
:class:`QueueSettings`); used by :mod:`smsbridge.celery`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from ..errors import ConfigError
from .loader import interpolate, line_of, load_yaml, read_text
from .model import Config, parse_config
from .sections import validate_section

__all__ = ["QUEUE_KEYS", "QueueSettings", "load_with_queue", "parse_queue_settings"]


def hide_password(url: str | None) -> str | None:
    """``amqp://user:***@host//``: URLs are shown without their password."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class QueueSettings(BaseModel):
    """The ``queue:`` section of the YAML (or :func:`~smsbridge.celery.install`'s arguments).

    ``lease``: seconds a worker owns a claimed message; past it, the store takes the
    message back (to the outbox if it never reached a provider, else ``unknown``).
    ``visibility_timeout``: Redis brokers only; seconds before an unacknowledged task is
    delivered again (a killed worker's task comes back after it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["celery", "embedded"] = "celery"
    broker: str | None = None
    result_backend: str | None = None
    queues: Literal["single", "per_phone"] = "single"
    redis_url: str | None = None
    prefix: str = "smsbridge"
    lease: float = 60.0
    visibility_timeout: float = 3600.0
    sweep_interval: float = 60.0

    @field_validator("broker", "result_backend", "redis_url", "prefix", mode="before")
    @classmethod
    def _text(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{info.field_name} must be a non-empty string")
        value = value.strip()
        if info.field_name != "prefix" and "://" not in value:
            raise ValueError(f"{info.field_name} must be a URL (redis://..., amqp://...)")
        if info.field_name == "prefix" and not all(c.isalnum() or c in "-_." for c in value):
            raise ValueError("prefix may hold letters, digits, '-', '_' and '.' only")
        return value

    @field_validator("lease", "visibility_timeout", "sweep_interval", mode="before")
    @classmethod
    def _seconds(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{info.field_name} must be a positive number of seconds")
        return float(value)

    @property
    def limiter_url(self) -> str | None:
        """Where the shared rate limits live: ``redis_url``, else a Redis broker."""
        if self.redis_url:
            return self.redis_url
        if self.broker and self.broker.split("://", 1)[0] in ("redis", "rediss"):
            return self.broker
        return None

    def __repr__(self) -> str:
        return (
            f"QueueSettings(backend={self.backend!r}, broker={hide_password(self.broker)!r}, "
            f"result_backend={hide_password(self.result_backend)!r}, queues={self.queues!r}, "
            f"redis_url={hide_password(self.redis_url)!r}, prefix={self.prefix!r}, "
            f"lease={self.lease!r})"
        )

    __str__ = __repr__


def parse_queue_settings(
    node: Any, *, file: str | None = None, line: int | None = None
) -> QueueSettings:
    """Validate a ``queue:`` mapping (already interpolated) into :class:`QueueSettings`.

    ``line``: where ``queue:`` is in ``file`` (errors name the file, line and key).
    """
    top_line = line or getattr(node, "line", None) or None
    if not isinstance(node, Mapping):
        raise ConfigError("queue must be a mapping", file=file, line=top_line, key="queue")
    settings = validate_section(QueueSettings, node, file=file, key="queue")
    if settings.backend == "celery" and not settings.broker:
        raise ConfigError(
            "queue.backend celery needs a broker URL (redis://... or amqp://...)",
            file=file,
            line=top_line,
            key="queue.broker",
        )
    return settings


def load_with_queue(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[Config, QueueSettings | None]:
    """Read a YAML file: the bridge's :class:`Config` and its ``queue:`` section (or None).

    ``path`` → ``$SMSBRIDGE_CONFIG`` → ``./smsbridge.yaml``. ``${VAR}`` interpolation
    applies to the ``queue:`` values too (broker passwords belong in the environment).
    """
    file, text = read_text(path)
    data = load_yaml(text, file)
    settings: QueueSettings | None = None
    if isinstance(data, dict) and "queue" in data:
        line = line_of(data, "queue")
        node = interpolate(data["queue"], os.environ if env is None else env, file, "queue", line)
        settings = parse_queue_settings(node, file=file, line=line)
        del data["queue"]  # config.py validates the rest (and may or may not know 'queue')
    return parse_config(data, file=file, env=env), settings


#: The keys of the ``queue:`` section.
QUEUE_KEYS = tuple(QueueSettings.model_fields)

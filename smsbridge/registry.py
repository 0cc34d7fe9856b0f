"""Plugin discovery through entry points.

Listing uses :func:`importlib.metadata.entry_points` and imports nothing; loading one
plugin uses :class:`stevedore.driver.DriverManager`, which imports only that plugin and
re-raises its import error (turned here into a :class:`ConfigError` naming the
distribution), so a broken plugin never breaks other phones.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from stevedore import driver

from .errors import ConfigError
from .phone import Phone

__all__ = ["COMMANDS_GROUP", "GROUP", "PluginInfo", "available", "load_plugin"]

GROUP = "smsbridge.phones"
COMMANDS_GROUP = "smsbridge.commands"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    value: str  # module:Class
    distribution: str | None
    version: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "value": self.value,
            "distribution": self.distribution,
            "version": self.version,
        }


def _info(ep: EntryPoint) -> PluginInfo:
    dist = ep.dist
    return PluginInfo(
        name=ep.name,
        value=ep.value,
        distribution=dist.name if dist is not None else None,
        version=dist.version if dist is not None else None,
    )


def available(group: str = GROUP) -> dict[str, PluginInfo]:
    """Installed plugins by name, without importing any of them."""
    found: dict[str, PluginInfo] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, _info(ep))
    return dict(sorted(found.items()))


@functools.cache
def load_plugin(name: str) -> type[Phone]:
    """Import and return the phone class registered as ``name``."""
    plugins = available()
    if name not in plugins:
        installed = ", ".join(plugins) or "none"
        close = difflib.get_close_matches(name, list(plugins), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"unknown plugin '{name}' (installed: {installed}).{hint} "
            f"Provider plugins are separate distributions, e.g. pip install smsbridge-{name}",
            key="plugin",
        )
    info = plugins[name]
    try:
        manager: driver.DriverManager[Any] = driver.DriverManager(
            namespace=GROUP,
            name=name,
            invoke_on_load=False,
            on_load_failure_callback=_reraise,
        )
    except ConfigError:
        raise
    except Exception as exc:  # stevedore wraps some failures itself
        raise _broken(info, exc) from exc
    cls = manager.driver
    if not (isinstance(cls, type) and issubclass(cls, Phone)):
        raise ConfigError(
            f"plugin '{name}' from {info.distribution} is not a smsbridge.Phone subclass "
            f"({info.value})"
        )
    return cls


def _broken(info: PluginInfo, exc: BaseException) -> ConfigError:
    return ConfigError(
        f"plugin '{info.name}' (distribution {info.distribution} {info.version}) "
        f"failed to import: {type(exc).__name__}: {exc}"
    )


def _reraise(manager: object, ep: EntryPoint, exc: BaseException) -> None:
    raise _broken(_info(ep), exc) from exc

"""Plugin discovery through entry points.

Listing uses :func:`importlib.metadata.entry_points` and imports nothing; loading one
plugin uses :class:`stevedore.driver.DriverManager`, which imports only that plugin and
re-raises its import error (turned here into a :class:`ConfigError` naming the
distribution), so a broken plugin never breaks other phones.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from stevedore import driver
from stevedore.exception import MultipleMatches, NoMatches

from .config.loader import closest
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


class _LoadFailed(Exception):
    """Carries a plugin's import error out of stevedore (which would otherwise log it)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(str(error))


@functools.cache
def load_plugin(name: str) -> type[Phone]:
    """Import and return the phone class registered as ``name``.

    Raises :class:`ConfigError` for an unknown plugin (listing the installed ones), a
    plugin whose import fails (naming its distribution and the error) and a plugin that
    is not a :class:`Phone` subclass. Only successes are cached.
    """
    plugins = available()
    if name not in plugins:
        installed = ", ".join(plugins) or "none"
        match = closest(name, plugins)
        hint = (
            f" Did you mean '{match}'?"
            if match
            else f" Provider plugins are separate distributions, e.g. pip install smsbridge-{name}"
        )
        raise ConfigError(f"unknown plugin '{name}' (installed: {installed}).{hint}", key="plugin")
    info = plugins[name]
    # stevedore keeps a process-wide list of a group's entry points from its first use:
    # drop it, so that a plugin installed since (what available() just saw) is found
    driver.DriverManager.ENTRY_POINT_CACHE.pop(GROUP, None)
    try:
        manager: driver.DriverManager[Any] = driver.DriverManager(
            namespace=GROUP,
            name=name,
            invoke_on_load=False,
            on_load_failure_callback=_reraise,
        )
        cls = manager.driver
    except _LoadFailed as failed:
        # stevedore hands the callback entry points rebuilt from its cache, without their
        # distribution: name it from importlib.metadata's listing instead
        raise _broken(info, failed.error) from failed.error
    except MultipleMatches:
        owners = sorted({f"{i.distribution} {i.version}" for i in _registrations(name)} or {"?"})
        raise ConfigError(
            f"plugin name '{name}' is registered by more than one installed distribution "
            f"({', '.join(owners)}); uninstall all but one"
        ) from None
    except NoMatches:
        # stevedore also remembers each sys.path's entry points for the life of the
        # process: a plugin installed after that is listed by importlib.metadata but
        # unknown to stevedore. Load that one entry point directly.
        cls = _load_directly(info)
    except Exception as exc:  # any other stevedore failure
        raise _broken(info, exc) from exc
    if not (isinstance(cls, type) and issubclass(cls, Phone)):
        raise ConfigError(
            f"plugin '{name}' from {_dist(info)} is not a smsbridge.Phone subclass ({info.value})"
        )
    return cls


def _load_directly(info: PluginInfo) -> Any:
    for ep in entry_points(group=GROUP):
        if ep.name == info.name and ep.value == info.value:
            try:
                return ep.load()
            except Exception as exc:
                raise _broken(info, exc) from exc
    raise ConfigError(f"plugin '{info.name}' disappeared while loading it; reinstall it")


def _registrations(name: str) -> list[PluginInfo]:
    return [_info(ep) for ep in entry_points(group=GROUP) if ep.name == name]


def _dist(info: PluginInfo) -> str:
    if info.distribution is None:
        return "an unknown distribution"
    return f"distribution {info.distribution} {info.version or ''}".rstrip()


def _broken(info: PluginInfo, exc: BaseException) -> ConfigError:
    return ConfigError(
        f"plugin '{info.name}' ({_dist(info)}) failed to import: {type(exc).__name__}: {exc}"
    )


def _reraise(manager: object, ep: EntryPoint, exc: BaseException) -> None:
    raise _LoadFailed(exc)

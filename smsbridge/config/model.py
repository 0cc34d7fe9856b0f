"""The configuration model: phones, routes, webhooks, forwarding, and the sections the
services validate themselves (``queue``, ``templates``, ``keywords``, ``optouts``,
``verification``: kept on :class:`Config` as loaded, interpolated, with their lines).

Every problem is a :class:`ConfigError` naming the file, the line and the key, raised
before anything is sent.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..numbers import normalize, normalize_country
from .loader import Node, closest, interpolate, line_of, load_yaml, read_text, suggest, to_node

__all__ = [
    "Config",
    "ForwardTarget",
    "PhoneConfig",
    "RouteConfig",
    "RouteMatch",
    "WebhooksConfig",
    "load_config",
    "parse_config",
]

# Sections that the modules using them validate (smsbridge.celery, templates, keywords,
# optouts, verification): kept on Config as loaded, ``${VAR}`` interpolated, with lines.
SECTIONS = ("queue", "templates", "keywords", "optouts", "verification")
TOP_LEVEL_KEYS = (
    "default_region",
    "store",
    "webhooks",
    "phones",
    "routes",
    "forward",
    *SECTIONS,
)
WEBHOOK_KEYS = ("public_url", "max_body_bytes", "trust_proxy", "log_bodies")
ROUTE_KEYS = ("match", "phones", "strategy", "weights", "resend_ambiguous", "name")
MATCH_KEYS = ("recipients", "prefixes", "countries", "tags")
STRATEGIES = ("failover", "round_robin", "random", "weighted")
FORWARD_KEYS = ("url", "secret", "events", "timeout", "retries")


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class PhoneConfig:
    name: str
    plugin: str
    options: Mapping[str, Any]
    line: int | None = None
    key_lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteMatch:
    recipients: frozenset[str] | None = None
    prefixes: tuple[str, ...] | None = None
    countries: frozenset[str] | None = None  # alpha-2
    tags: frozenset[str] | None = None

    @property
    def is_default(self) -> bool:
        return all(v is None for v in (self.recipients, self.prefixes, self.countries, self.tags))


@dataclass(frozen=True)
class RouteConfig:
    phones: tuple[str, ...]
    match: RouteMatch = RouteMatch()
    strategy: str = "failover"
    weights: Mapping[str, float] = field(default_factory=dict)
    resend_ambiguous: bool = False
    name: str | None = None
    line: int | None = None

    @property
    def label(self) -> str:
        return self.name or (f"route at line {self.line}" if self.line else "route")


@dataclass(frozen=True)
class WebhooksConfig:
    public_url: str | None = None
    max_body_bytes: int = 256 * 1024
    trust_proxy: bool = False
    log_bodies: bool = False


@dataclass(frozen=True)
class ForwardTarget:
    url: str
    secret: str | None = None
    events: frozenset[str] = frozenset({"status", "inbound"})
    timeout: float = 10.0
    retries: int = 5

    def __repr__(self) -> str:
        return f"ForwardTarget(url={self.url!r}, secret={'***' if self.secret else None})"


@dataclass(frozen=True)
class Config:
    phones: Mapping[str, PhoneConfig]
    routes: tuple[RouteConfig, ...] = ()
    default_region: str | None = None
    store: str | None = None
    webhooks: WebhooksConfig = WebhooksConfig()
    forward: tuple[ForwardTarget, ...] = ()
    path: str | None = None
    # raw sections (see SECTIONS): mappings/lists that remember their lines, or None
    queue: Any = None
    templates: Any = None
    keywords: Any = None
    optouts: Any = None
    verification: Any = None


# --------------------------------------------------------------------------- parsing
def _unknown_keys(data: Node, allowed: Iterable[str], file: str | None, prefix: str) -> None:
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"unknown key '{key}'{suggest(key, allowed)}",
                file=file,
                line=line_of(data, key),
                key=f"{prefix}{key}",
            )


def _expect(
    value: Any,
    kind: type | tuple[type, ...],
    what: str,
    file: str | None,
    line: int | None,
    key: str,
) -> Any:
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        names = names.replace("Node", "mapping").replace("dict", "mapping")
        names = names.replace("NodeList", "list").replace("str", "string")
        raise ConfigError(f"{what} must be a {names}", file=file, line=line, key=key)
    return value


def _str_list(value: Any, file: str | None, line: int | None, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    _expect(value, list, "value", file, line, key)
    return [str(v) for v in value]


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _bool(value: Any, file: str | None, line: int | None, key: str) -> bool:
    """A YAML boolean, or the text of one (``${VAR:-false}`` interpolates to a string)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError("must be true or false", file=file, line=line, key=key)


def _number(
    value: Any,
    file: str | None,
    line: int | None,
    key: str,
    *,
    integer: bool = False,
    minimum: float = 0.0,
    strict_minimum: bool = False,
) -> float:
    """A finite number (or its text) at or above ``minimum``; the value is never echoed."""
    kind = "an integer" if integer else "a number"
    bound = f"> {minimum:g}" if strict_minimum else f">= {minimum:g}"
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or (integer and not number.is_integer()):
        raise ConfigError(f"must be {kind} {bound}", file=file, line=line, key=key)
    if number < minimum or (strict_minimum and number == minimum):
        raise ConfigError(f"must be {kind} {bound}", file=file, line=line, key=key)
    return number


def parse_config(
    data: Any, *, file: str | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Validate a loaded YAML document (a mapping) into a :class:`Config`."""
    if data is None:
        raise ConfigError("the file is empty: it needs at least a 'phones:' section", file=file)
    if not isinstance(data, dict):
        raise ConfigError(
            "the top level must be a mapping with a 'phones:' section",
            file=file,
            line=getattr(data, "line", None) or None,
        )
    if not isinstance(data, Node):
        data = to_node(data)
    data = interpolate(data, os.environ if env is None else env, file, "", data.line)
    _unknown_keys(data, TOP_LEVEL_KEYS, file, "")

    default_region = data.get("default_region")
    if default_region is not None:
        try:
            default_region = normalize_country(str(default_region))
        except ConfigError as exc:
            raise ConfigError(
                exc.reason, file=file, line=line_of(data, "default_region"), key="default_region"
            ) from None

    store = data.get("store")
    if store is not None:
        _expect(store, str, "store", file, line_of(data, "store"), "store")

    phones_node = data.get("phones")
    if phones_node is None:
        raise ConfigError("missing 'phones:' section (at least one phone)", file=file, key="phones")
    _expect(phones_node, dict, "phones", file, line_of(data, "phones"), "phones")
    if not phones_node:
        raise ConfigError(
            "'phones:' is empty", file=file, line=line_of(data, "phones"), key="phones"
        )
    phones: dict[str, PhoneConfig] = {}
    for name, spec in phones_node.items():
        line = line_of(phones_node, name)
        key = f"phones.{name}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ConfigError(
                "phone names may use letters, digits, '-', '_' and '.'",
                file=file,
                line=line,
                key=key,
            )
        _expect(spec, dict, "a phone", file, line, key)
        if "plugin" not in spec:
            raise ConfigError(
                "phone has no 'plugin:' (e.g. plugin: dummy)",
                file=file,
                line=line,
                key=f"{key}.plugin",
            )
        plugin = spec["plugin"]
        if not isinstance(plugin, str) or not plugin.strip():
            raise ConfigError(
                "plugin must be a plugin name (e.g. plugin: dummy)",
                file=file,
                line=line_of(spec, "plugin"),
                key=f"{key}.plugin",
            )
        options = {k: v for k, v in spec.items() if k != "plugin"}
        phones[name] = PhoneConfig(
            name=name,
            plugin=plugin.strip(),
            options=options,
            line=line,
            key_lines=dict(getattr(spec, "key_lines", {})),
        )

    routes = tuple(
        _parse_routes(data.get("routes"), phones, default_region, file, line_of(data, "routes"))
    )
    webhooks = _parse_webhooks(data.get("webhooks"), file, line_of(data, "webhooks"))
    forward = tuple(_parse_forward(data.get("forward"), file, line_of(data, "forward")))
    return Config(
        phones=phones,
        routes=routes,
        default_region=default_region,
        store=store,
        webhooks=webhooks,
        forward=forward,
        path=file,
        **{section: data.get(section) for section in SECTIONS},
    )


def _parse_routes(
    node: Any,
    phones: Mapping[str, PhoneConfig],
    region: str | None,
    file: str | None,
    line: int | None,
) -> Iterable[RouteConfig]:
    if node is None:
        return
    _expect(node, list, "routes", file, line, "routes")
    for i, route in enumerate(node):
        rline = line_of(node, i)
        key = f"routes[{i}]"
        _expect(route, dict, "a route", file, rline, key)
        _unknown_keys(route, ROUTE_KEYS, file, f"{key}.")
        names = route.get("phones")
        if not names:
            raise ConfigError(
                "route has no 'phones:' list", file=file, line=rline, key=f"{key}.phones"
            )
        names = _str_list(names, file, line_of(route, "phones"), f"{key}.phones")
        for pname in names:
            if names.count(pname) > 1:
                raise ConfigError(
                    f"phone '{pname}' is listed twice in this route",
                    file=file,
                    line=line_of(route, "phones"),
                    key=f"{key}.phones",
                )
            if pname not in phones:
                near = closest(pname, phones)
                hint = f"; did you mean '{near}'?" if near else ""
                raise ConfigError(
                    f"route names unknown phone '{pname}'{hint} (phones: {', '.join(phones)})",
                    file=file,
                    line=line_of(route, "phones"),
                    key=f"{key}.phones",
                )
        strategy = route.get("strategy", "failover")
        strategy = strategy if isinstance(strategy, str) else repr(strategy)
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy '{strategy}' (one of {', '.join(STRATEGIES)})",
                file=file,
                line=line_of(route, "strategy"),
                key=f"{key}.strategy",
            )
        weights: dict[str, float] = {}
        if "weights" in route:
            wnode = _expect(
                route["weights"],
                dict,
                "weights",
                file,
                line_of(route, "weights"),
                f"{key}.weights",
            )
            if strategy != "weighted":
                raise ConfigError(
                    f"weights only apply to strategy 'weighted' (this route's strategy is "
                    f"'{strategy}'); add 'strategy: weighted' or remove 'weights:'",
                    file=file,
                    line=line_of(route, "weights"),
                    key=f"{key}.weights",
                )
            for pname, weight in wnode.items():
                if pname not in names:
                    raise ConfigError(
                        f"weight for '{pname}', which is not in this route",
                        file=file,
                        line=line_of(wnode, pname),
                        key=f"{key}.weights.{pname}",
                    )
                weights[pname] = _number(
                    weight, file, line_of(wnode, pname), f"{key}.weights.{pname}"
                )
        elif strategy == "weighted":
            raise ConfigError(
                "strategy 'weighted' needs 'weights:'", file=file, line=rline, key=f"{key}.weights"
            )
        match = _parse_match(
            route.get("match"), region, file, line_of(route, "match"), f"{key}.match"
        )
        yield RouteConfig(
            phones=tuple(names),
            match=match,
            strategy=strategy,
            weights=weights,
            resend_ambiguous=_bool(
                route.get("resend_ambiguous", False),
                file,
                line_of(route, "resend_ambiguous"),
                f"{key}.resend_ambiguous",
            ),
            name=str(route["name"]) if "name" in route else None,
            line=rline,
        )


def _parse_match(
    node: Any, region: str | None, file: str | None, line: int | None, key: str
) -> RouteMatch:
    if node is None:
        return RouteMatch()
    _expect(node, dict, "match", file, line, key)
    _unknown_keys(node, MATCH_KEYS, file, f"{key}.")
    fields: dict[str, Any] = {}
    if "recipients" in node:
        k, ln = f"{key}.recipients", line_of(node, "recipients")
        try:
            fields["recipients"] = frozenset(
                normalize(r, region) for r in _str_list(node["recipients"], file, ln, k)
            )
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, line=ln, key=k) from None
    if "prefixes" in node:
        k, ln = f"{key}.prefixes", line_of(node, "prefixes")
        prefixes = []
        for p in _str_list(node["prefixes"], file, ln, k):
            digits = p.strip().replace(" ", "")
            digits = "+" + digits[2:] if digits.startswith("00") else digits
            digits = digits if digits.startswith("+") else "+" + digits
            if not digits[1:].isdigit():
                raise ConfigError(
                    f"prefix {p!r} must be digits, like '+33'", file=file, line=ln, key=k
                )
            prefixes.append(digits)
        fields["prefixes"] = tuple(prefixes)
    if "countries" in node:
        k, ln = f"{key}.countries", line_of(node, "countries")
        try:
            fields["countries"] = frozenset(
                normalize_country(c) for c in _str_list(node["countries"], file, ln, k)
            )
        except ConfigError as exc:
            raise ConfigError(exc.reason, file=file, line=ln, key=k) from None
    if "tags" in node:
        k, ln = f"{key}.tags", line_of(node, "tags")
        fields["tags"] = frozenset(_str_list(node["tags"], file, ln, k))
    return RouteMatch(**fields)


def _parse_webhooks(node: Any, file: str | None, line: int | None) -> WebhooksConfig:
    if node is None:
        return WebhooksConfig()
    _expect(node, dict, "webhooks", file, line, "webhooks")
    _unknown_keys(node, WEBHOOK_KEYS, file, "webhooks.")
    url = node.get("public_url")
    if url is not None and not re.match(r"^https?://[^/\s]+", str(url)):
        raise ConfigError(
            "public_url must be an http(s) URL",
            file=file,
            line=line_of(node, "public_url"),
            key="webhooks.public_url",
        )
    max_body = _number(
        node.get("max_body_bytes", WebhooksConfig.max_body_bytes),
        file,
        line_of(node, "max_body_bytes"),
        "webhooks.max_body_bytes",
        integer=True,
        strict_minimum=True,
    )
    flags = {
        name: _bool(node.get(name, False), file, line_of(node, name), f"webhooks.{name}")
        for name in ("trust_proxy", "log_bodies")
    }
    return WebhooksConfig(
        public_url=str(url).rstrip("/") if url else None,
        max_body_bytes=int(max_body),
        **flags,
    )


def _parse_forward(node: Any, file: str | None, line: int | None) -> Iterable[ForwardTarget]:
    if node is None:
        return
    _expect(node, list, "forward", file, line, "forward")
    for i, item in enumerate(node):
        key, iline = f"forward[{i}]", line_of(node, i)
        _expect(item, dict, "a forward target", file, iline, key)
        _unknown_keys(item, FORWARD_KEYS, file, f"{key}.")
        url = item.get("url")
        if not url or not re.match(r"^https?://", str(url)):
            raise ConfigError(
                "forward target needs an http(s) 'url'", file=file, line=iline, key=f"{key}.url"
            )
        events = frozenset(
            _str_list(item.get("events", ["status", "inbound"]), file, iline, f"{key}.events")
        )
        if not events <= {"status", "inbound"}:
            raise ConfigError(
                "events may be 'status' and/or 'inbound'",
                file=file,
                line=line_of(item, "events"),
                key=f"{key}.events",
            )
        timeout = _number(
            item.get("timeout", 10.0),
            file,
            line_of(item, "timeout"),
            f"{key}.timeout",
            strict_minimum=True,
        )
        retries = _number(
            item.get("retries", 5), file, line_of(item, "retries"), f"{key}.retries", integer=True
        )
        yield ForwardTarget(
            url=str(url),
            secret=str(item["secret"]) if item.get("secret") else None,
            events=events,
            timeout=timeout,
            retries=int(retries),
        )


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read and validate a config file (see :func:`~smsbridge.config.resolve_path`)."""
    file, text = read_text(path)
    return parse_config(load_yaml(text, file), file=file, env=env)

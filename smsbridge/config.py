"""YAML configuration: loading, ``${VAR}`` interpolation, validation.

Every problem is a :class:`ConfigError` naming the file, the line and the key, raised
before anything is sent. Values are never echoed in errors (they may be secrets).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError
from .numbers import normalize, normalize_country

__all__ = [
    "Config",
    "ForwardTarget",
    "PhoneConfig",
    "RouteConfig",
    "RouteMatch",
    "WebhooksConfig",
    "load_config",
    "parse_config",
    "resolve_path",
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


# --------------------------------------------------------------------------- YAML with lines
class _Node(dict[str, Any]):
    """A mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]
    duplicates: list[tuple[str, int, int]]  # (key, line, line of the first one)


class _List(list[Any]):
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, adjusted for a file of phone numbers and country codes.

    * Only ``true``/``false`` are booleans (YAML 1.2): ``NO`` stays Norway, ``on``/``off``
      and ``yes``/``no`` stay strings (typed options still accept them as booleans).
    * Numbers written with a leading ``+`` or ``0`` (``+2250701020304``, ``0701020304``)
      stay strings, so an unquoted E.164 or national number keeps its ``+`` or ``0``
      instead of becoming an integer (or a YAML 1.1 octal).
    * Duplicate keys are recorded, then reported by :func:`load_yaml` with their path.
    """


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int | str:
    text = str(node.value)
    digits = text.replace("_", "")
    if digits[:1] == "+" or (len(digits) > 1 and digits[0] == "0" and digits[1:].isdigit()):
        return text
    value: int = loader.construct_yaml_int(node)
    return value


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Node:
    loader.flatten_mapping(node)
    result = _Node()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    result.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise ConfigError(
                "mapping keys must be plain strings", line=key_node.start_mark.line + 1
            )
        key = str(key)
        line = key_node.start_mark.line + 1
        if key in result:
            result.duplicates.append((key, line, result.key_lines[key]))
            continue
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _List:
    result = _List(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _first_duplicate(value: Any, path: str = "") -> tuple[str, int, int] | None:
    """The earliest duplicate key in a loaded document: (key path, line, first line)."""
    found: list[tuple[str, int, int]] = []
    if isinstance(value, _Node):
        for key, line, first in getattr(value, "duplicates", ()):
            found.append((f"{path}.{key}" if path else key, line, first))
        for key, child in value.items():
            dup = _first_duplicate(child, f"{path}.{key}" if path else key)
            if dup:
                found.append(dup)
    elif isinstance(value, _List):
        for i, child in enumerate(value):
            dup = _first_duplicate(child, f"{path}[{i}]")
            if dup:
                found.append(dup)
    return min(found, key=lambda d: d[1]) if found else None


def _line_of(container: Any, key: str | int | None = None) -> int | None:
    if isinstance(container, _Node):
        if isinstance(key, str) and key in container.key_lines:
            return container.key_lines[key]
        return container.line or None
    if isinstance(container, _List):
        if isinstance(key, int) and 0 <= key < len(container.item_lines):
            return container.item_lines[key]
        return container.line or None
    return None


# --------------------------------------------------------------------------- interpolation
# $$ (a literal $), ${NAME}, ${NAME:-default}, or any other "${" (malformed) except "${{",
# which is a "$" before a Jinja expression in a template body ("Total: ${{ amount }}")
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{(?!\{)")


def _interpolate_str(
    text: str, env: Mapping[str, str], where: _Where, secretish: bool = False
) -> str:
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name is None:  # the value itself is never shown: it may hold a secret
            raise where.error(
                "malformed ${...} reference: write ${NAME} or ${NAME:-default} "
                "(NAME: letters, digits, '_'), and $$ for a literal '$'"
            )
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            raise where.error(f"environment variable ${{{name}}} is not set")
        return value

    return _VAR.sub(sub, text)


@dataclass
class _Where:
    file: str | None
    line: int | None
    key: str

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line, key=self.key)


def _interpolate(
    value: Any, env: Mapping[str, str], file: str | None, path: str, line: int | None
) -> Any:
    if isinstance(value, str):
        return _interpolate_str(value, env, _Where(file, line, path))
    if isinstance(value, _Node):
        out = _Node()
        out.line = value.line
        out.key_lines = dict(value.key_lines)
        for k, v in value.items():
            out[k] = _interpolate(
                v, env, file, f"{path}.{k}" if path else k, value.key_lines.get(k, line)
            )
        return out
    if isinstance(value, _List):
        out_list = _List()
        out_list.line = value.line
        out_list.item_lines = list(value.item_lines)
        for i, v in enumerate(value):
            out_list.append(_interpolate(v, env, file, f"{path}[{i}]", _line_of(value, i)))
        return out_list
    return value


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
def _unknown_keys(data: _Node, allowed: Iterable[str], file: str | None, prefix: str) -> None:
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(allowed)})"
            raise ConfigError(
                f"unknown key '{key}'{hint}",
                file=file,
                line=_line_of(data, key),
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
        names = names.replace("_Node", "mapping").replace("dict", "mapping")
        names = names.replace("_List", "list").replace("str", "string")
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
    if not isinstance(data, _Node):
        data = _to_node(data)
    data = _interpolate(data, os.environ if env is None else env, file, "", data.line)
    _unknown_keys(data, TOP_LEVEL_KEYS, file, "")

    default_region = data.get("default_region")
    if default_region is not None:
        try:
            default_region = normalize_country(str(default_region))
        except ConfigError as exc:
            raise ConfigError(
                exc.reason, file=file, line=_line_of(data, "default_region"), key="default_region"
            ) from None

    store = data.get("store")
    if store is not None:
        _expect(store, str, "store", file, _line_of(data, "store"), "store")

    phones_node = data.get("phones")
    if phones_node is None:
        raise ConfigError("missing 'phones:' section (at least one phone)", file=file, key="phones")
    _expect(phones_node, dict, "phones", file, _line_of(data, "phones"), "phones")
    if not phones_node:
        raise ConfigError(
            "'phones:' is empty", file=file, line=_line_of(data, "phones"), key="phones"
        )
    phones: dict[str, PhoneConfig] = {}
    for name, spec in phones_node.items():
        line = _line_of(phones_node, name)
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
                line=_line_of(spec, "plugin"),
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
        _parse_routes(data.get("routes"), phones, default_region, file, _line_of(data, "routes"))
    )
    webhooks = _parse_webhooks(data.get("webhooks"), file, _line_of(data, "webhooks"))
    forward = tuple(_parse_forward(data.get("forward"), file, _line_of(data, "forward")))
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


def _to_node(value: Any) -> Any:
    """Plain dicts/lists (config built in Python) into line-less nodes."""
    if isinstance(value, dict):
        node = _Node((str(k), _to_node(v)) for k, v in value.items())
        node.key_lines = {}
        return node
    if isinstance(value, list):
        lst = _List(_to_node(v) for v in value)
        lst.item_lines = []
        return lst
    return value


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
        rline = _line_of(node, i)
        key = f"routes[{i}]"
        _expect(route, dict, "a route", file, rline, key)
        _unknown_keys(route, ROUTE_KEYS, file, f"{key}.")
        names = route.get("phones")
        if not names:
            raise ConfigError(
                "route has no 'phones:' list", file=file, line=rline, key=f"{key}.phones"
            )
        names = _str_list(names, file, _line_of(route, "phones"), f"{key}.phones")
        for pname in names:
            if names.count(pname) > 1:
                raise ConfigError(
                    f"phone '{pname}' is listed twice in this route",
                    file=file,
                    line=_line_of(route, "phones"),
                    key=f"{key}.phones",
                )
            if pname not in phones:
                close = difflib.get_close_matches(pname, list(phones), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(
                    f"route names unknown phone '{pname}'{hint} (phones: {', '.join(phones)})",
                    file=file,
                    line=_line_of(route, "phones"),
                    key=f"{key}.phones",
                )
        strategy = route.get("strategy", "failover")
        strategy = strategy if isinstance(strategy, str) else repr(strategy)
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy '{strategy}' (one of {', '.join(STRATEGIES)})",
                file=file,
                line=_line_of(route, "strategy"),
                key=f"{key}.strategy",
            )
        weights: dict[str, float] = {}
        if "weights" in route:
            wnode = _expect(
                route["weights"],
                dict,
                "weights",
                file,
                _line_of(route, "weights"),
                f"{key}.weights",
            )
            if strategy != "weighted":
                raise ConfigError(
                    f"weights only apply to strategy 'weighted' (this route's strategy is "
                    f"'{strategy}'); add 'strategy: weighted' or remove 'weights:'",
                    file=file,
                    line=_line_of(route, "weights"),
                    key=f"{key}.weights",
                )
            for pname, weight in wnode.items():
                if pname not in names:
                    raise ConfigError(
                        f"weight for '{pname}', which is not in this route",
                        file=file,
                        line=_line_of(wnode, pname),
                        key=f"{key}.weights.{pname}",
                    )
                weights[pname] = _number(
                    weight, file, _line_of(wnode, pname), f"{key}.weights.{pname}"
                )
        elif strategy == "weighted":
            raise ConfigError(
                "strategy 'weighted' needs 'weights:'", file=file, line=rline, key=f"{key}.weights"
            )
        match = _parse_match(
            route.get("match"), region, file, _line_of(route, "match"), f"{key}.match"
        )
        yield RouteConfig(
            phones=tuple(names),
            match=match,
            strategy=strategy,
            weights=weights,
            resend_ambiguous=_bool(
                route.get("resend_ambiguous", False),
                file,
                _line_of(route, "resend_ambiguous"),
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
        k, ln = f"{key}.recipients", _line_of(node, "recipients")
        try:
            fields["recipients"] = frozenset(
                normalize(r, region) for r in _str_list(node["recipients"], file, ln, k)
            )
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, line=ln, key=k) from None
    if "prefixes" in node:
        k, ln = f"{key}.prefixes", _line_of(node, "prefixes")
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
        k, ln = f"{key}.countries", _line_of(node, "countries")
        try:
            fields["countries"] = frozenset(
                normalize_country(c) for c in _str_list(node["countries"], file, ln, k)
            )
        except ConfigError as exc:
            raise ConfigError(exc.reason, file=file, line=ln, key=k) from None
    if "tags" in node:
        k, ln = f"{key}.tags", _line_of(node, "tags")
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
            line=_line_of(node, "public_url"),
            key="webhooks.public_url",
        )
    max_body = _number(
        node.get("max_body_bytes", WebhooksConfig.max_body_bytes),
        file,
        _line_of(node, "max_body_bytes"),
        "webhooks.max_body_bytes",
        integer=True,
        strict_minimum=True,
    )
    flags = {
        name: _bool(node.get(name, False), file, _line_of(node, name), f"webhooks.{name}")
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
        key, iline = f"forward[{i}]", _line_of(node, i)
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
                line=_line_of(item, "events"),
                key=f"{key}.events",
            )
        timeout = _number(
            item.get("timeout", 10.0),
            file,
            _line_of(item, "timeout"),
            f"{key}.timeout",
            strict_minimum=True,
        )
        retries = _number(
            item.get("retries", 5), file, _line_of(item, "retries"), f"{key}.retries", integer=True
        )
        yield ForwardTarget(
            url=str(url),
            secret=str(item["secret"]) if item.get("secret") else None,
            events=events,
            timeout=timeout,
            retries=int(retries),
        )


def validate_options(
    phone: PhoneConfig, options_type: type[BaseModel], file: str | None
) -> BaseModel:
    """Validate a phone's options with its plugin's ``Options`` type.

    Errors name the file, line and key; the offending value is never shown, and the
    values of secret options (``SecretStr`` fields, or keys named like secrets) are
    masked even where a plugin's own validator quoted them.
    """
    try:
        return options_type.model_validate(dict(phone.options))
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        err = errors[0]
        loc = [str(p) for p in err["loc"]]
        top = loc[0] if loc else None
        key = ".".join(["phones", phone.name, *loc])
        line = phone.key_lines.get(top, phone.line) if top else phone.line
        if err["type"] == "extra_forbidden":
            known = _option_names(options_type)
            close = difflib.get_close_matches(top or "", known, n=1)
            hint = (
                f"; did you mean '{close[0]}'?"
                if close
                else f" (options of this plugin: {', '.join(known)})"
            )
            message = f"unknown option '{top}' for plugin '{phone.plugin}'{hint}"
        elif err["type"] == "missing":
            message = f"missing required option '{top}' for plugin '{phone.plugin}'"
        else:
            message = f"invalid value: {err['msg']}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem(s) in this phone's options)"
        for secret in _secret_values(phone, options_type):
            message = message.replace(secret, "***")
        raise ConfigError(message, file=file, line=line, key=key) from None


_SECRETISH = re.compile(r"secret|token|passw|api_?key|auth|credential|private", re.IGNORECASE)


def _secret_values(phone: PhoneConfig, options_type: type[BaseModel]) -> list[str]:
    """String values of a phone's secret options, longest first (for masking)."""
    secret_keys = {key for key in phone.options if _SECRETISH.search(key)}
    for name, info in options_type.model_fields.items():
        if "SecretStr" in repr(info.annotation) or "SecretBytes" in repr(info.annotation):
            secret_keys.update({name, info.alias or name})
    values = [phone.options.get(k) for k in secret_keys]
    return sorted({v for v in values if isinstance(v, str) and v}, key=len, reverse=True)


def _option_names(options_type: type[BaseModel]) -> list[str]:
    names = []
    for name, info in options_type.model_fields.items():
        names.append(info.alias or name)
    return sorted(names)


# --------------------------------------------------------------------------- files
def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` → ``$SMSBRIDGE_CONFIG`` → ``./smsbridge.yaml``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("SMSBRIDGE_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path("smsbridge.yaml")


def load_yaml(text: str, file: str | None = None) -> Any:
    """Parse YAML text into line-aware mappings and lists; errors name file and line."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=file, line=exc.line, key=exc.key) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(
            f"malformed YAML: {exc.problem or exc.context}", file=file, line=line
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", file=file) from None
    duplicate = _first_duplicate(data)
    if duplicate is not None:
        path, line, first = duplicate
        what = "phone name" if path.startswith("phones.") and path.count(".") == 1 else "key"
        name = path.rsplit(".", 1)[-1]
        raise ConfigError(
            f"duplicate {what} '{name}' (first at line {first})", file=file, line=line, key=path
        )
    return data


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read and validate a config file (see :func:`resolve_path` for the lookup)."""
    resolved = resolve_path(path)
    file = str(resolved)
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = (
            ""
            if path is not None
            else " (pass a path, set $SMSBRIDGE_CONFIG, or run `smsbridge demo`)"
        )
        raise ConfigError(f"config file not found{hint}", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", file=file) from None
    return parse_config(load_yaml(text, file), file=file, env=env)

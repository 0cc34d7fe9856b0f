"""YAML configuration: loading, ``${VAR}`` interpolation, validation.

Every problem is a :class:`ConfigError` naming the file, the line and the key, raised
before anything is sent. Values are never echoed in errors (they may be secrets).
"""

from __future__ import annotations

import difflib
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

TOP_LEVEL_KEYS = (
    "default_region",
    "store",
    "webhooks",
    "phones",
    "routes",
    "forward",
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


class _List(list[Any]):
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Node:
    loader.flatten_mapping(node)
    result = _Node()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise ConfigError(
                "mapping keys must be plain strings", line=key_node.start_mark.line + 1
            )
        key = str(key)
        if key in result:
            raise ConfigError(
                f"duplicate key '{key}' (first at line {result.key_lines[key]})",
                line=key_node.start_mark.line + 1,
                key=key,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _List:
    result = _List(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


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
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def _interpolate_str(
    text: str, env: Mapping[str, str], where: _Where, secretish: bool = False
) -> str:
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
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


def _interpolate(value: Any, env: Mapping[str, str], file: str | None, path: str,
                 line: int | None) -> Any:
    if isinstance(value, str):
        return _interpolate_str(value, env, _Where(file, line, path))
    if isinstance(value, _Node):
        out = _Node()
        out.line = value.line
        out.key_lines = dict(value.key_lines)
        for k, v in value.items():
            out[k] = _interpolate(v, env, file, f"{path}.{k}" if path else k,
                                  value.key_lines.get(k, line))
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


def _expect(value: Any, kind: type | tuple[type, ...], what: str, file: str | None,
            line: int | None, key: str) -> Any:
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


def parse_config(data: Any, *, file: str | None = None,
                 env: Mapping[str, str] | None = None) -> Config:
    """Validate a loaded YAML document (a mapping) into a :class:`Config`."""
    if data is None:
        raise ConfigError("the file is empty: it needs at least a 'phones:' section", file=file)
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping with a 'phones:' section", file=file)
    if not isinstance(data, _Node):
        data = _to_node(data)
    data = _interpolate(data, os.environ if env is None else env, file, "", data.line)
    _unknown_keys(data, TOP_LEVEL_KEYS, file, "")

    default_region = data.get("default_region")
    if default_region is not None:
        try:
            default_region = normalize_country(str(default_region))
        except ConfigError as exc:
            raise ConfigError(exc.reason, file=file, line=_line_of(data, "default_region"),
                              key="default_region") from None

    store = data.get("store")
    if store is not None:
        _expect(store, str, "store", file, _line_of(data, "store"), "store")

    phones_node = data.get("phones")
    if phones_node is None:
        raise ConfigError("missing 'phones:' section (at least one phone)", file=file, key="phones")
    _expect(phones_node, dict, "phones", file, _line_of(data, "phones"), "phones")
    if not phones_node:
        raise ConfigError("'phones:' is empty", file=file, line=_line_of(data, "phones"),
                          key="phones")
    phones: dict[str, PhoneConfig] = {}
    for name, spec in phones_node.items():
        line = _line_of(phones_node, name)
        key = f"phones.{name}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ConfigError("phone names may use letters, digits, '-', '_' and '.'",
                              file=file, line=line, key=key)
        _expect(spec, dict, "a phone", file, line, key)
        if "plugin" not in spec:
            raise ConfigError("phone has no 'plugin:' (e.g. plugin: dummy)", file=file,
                              line=line, key=f"{key}.plugin")
        options = {k: v for k, v in spec.items() if k != "plugin"}
        phones[name] = PhoneConfig(
            name=name,
            plugin=str(spec["plugin"]),
            options=options,
            line=line,
            key_lines=dict(getattr(spec, "key_lines", {})),
        )

    routes = tuple(_parse_routes(data.get("routes"), phones, default_region, file,
                                 _line_of(data, "routes")))
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


def _parse_routes(node: Any, phones: Mapping[str, PhoneConfig], region: str | None,
                  file: str | None, line: int | None) -> Iterable[RouteConfig]:
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
            raise ConfigError("route has no 'phones:' list", file=file, line=rline,
                              key=f"{key}.phones")
        names = _str_list(names, file, _line_of(route, "phones"), f"{key}.phones")
        for pname in names:
            if pname not in phones:
                close = difflib.get_close_matches(pname, list(phones), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(
                    f"route names unknown phone '{pname}'{hint} (phones: {', '.join(phones)})",
                    file=file, line=_line_of(route, "phones"), key=f"{key}.phones",
                )
        strategy = str(route.get("strategy", "failover"))
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy '{strategy}' (one of {', '.join(STRATEGIES)})",
                              file=file, line=_line_of(route, "strategy"), key=f"{key}.strategy")
        weights: dict[str, float] = {}
        if "weights" in route:
            wnode = _expect(route["weights"], dict, "weights", file, _line_of(route, "weights"),
                            f"{key}.weights")
            for pname, weight in wnode.items():
                if pname not in names:
                    raise ConfigError(f"weight for '{pname}', which is not in this route",
                                      file=file, line=_line_of(wnode, pname),
                                      key=f"{key}.weights.{pname}")
                if not isinstance(weight, (int, float)) or weight < 0:
                    raise ConfigError("weights must be numbers >= 0", file=file,
                                      line=_line_of(wnode, pname), key=f"{key}.weights.{pname}")
                weights[pname] = float(weight)
        elif strategy == "weighted":
            raise ConfigError("strategy 'weighted' needs 'weights:'", file=file, line=rline,
                              key=f"{key}.weights")
        match = _parse_match(route.get("match"), region, file, _line_of(route, "match"),
                             f"{key}.match")
        yield RouteConfig(
            phones=tuple(names),
            match=match,
            strategy=strategy,
            weights=weights,
            resend_ambiguous=bool(route.get("resend_ambiguous", False)),
            name=str(route["name"]) if "name" in route else None,
            line=rline,
        )


def _parse_match(node: Any, region: str | None, file: str | None, line: int | None,
                 key: str) -> RouteMatch:
    if node is None:
        return RouteMatch()
    _expect(node, dict, "match", file, line, key)
    _unknown_keys(node, MATCH_KEYS, file, f"{key}.")
    fields: dict[str, Any] = {}
    if "recipients" in node:
        k, ln = f"{key}.recipients", _line_of(node, "recipients")
        try:
            fields["recipients"] = frozenset(
                normalize(r, region) for r in _str_list(node["recipients"], file, ln, k))
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
                raise ConfigError(f"prefix {p!r} must be digits, like '+33'", file=file,
                                  line=ln, key=k)
            prefixes.append(digits)
        fields["prefixes"] = tuple(prefixes)
    if "countries" in node:
        k, ln = f"{key}.countries", _line_of(node, "countries")
        try:
            fields["countries"] = frozenset(
                normalize_country(c) for c in _str_list(node["countries"], file, ln, k))
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
        raise ConfigError("public_url must be an http(s) URL", file=file,
                          line=_line_of(node, "public_url"), key="webhooks.public_url")
    max_body = node.get("max_body_bytes", WebhooksConfig.max_body_bytes)
    if not isinstance(max_body, int) or max_body <= 0:
        raise ConfigError("max_body_bytes must be a positive integer", file=file,
                          line=_line_of(node, "max_body_bytes"), key="webhooks.max_body_bytes")
    return WebhooksConfig(
        public_url=str(url).rstrip("/") if url else None,
        max_body_bytes=max_body,
        trust_proxy=bool(node.get("trust_proxy", False)),
        log_bodies=bool(node.get("log_bodies", False)),
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
            raise ConfigError("forward target needs an http(s) 'url'", file=file, line=iline,
                              key=f"{key}.url")
        events = frozenset(_str_list(item.get("events", ["status", "inbound"]), file, iline,
                                     f"{key}.events"))
        if not events <= {"status", "inbound"}:
            raise ConfigError("events may be 'status' and/or 'inbound'", file=file,
                              line=_line_of(item, "events"), key=f"{key}.events")
        yield ForwardTarget(
            url=str(url),
            secret=str(item["secret"]) if item.get("secret") else None,
            events=events,
            timeout=float(item.get("timeout", 10.0)),
            retries=int(item.get("retries", 5)),
        )


def validate_options(phone: PhoneConfig, options_type: type[BaseModel],
                     file: str | None) -> BaseModel:
    """Validate a phone's options with its plugin's ``Options`` type.

    Errors name the file, line and key; the offending value is never shown.
    """
    try:
        return options_type.model_validate(dict(phone.options))
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        loc = [str(p) for p in err["loc"]]
        top = loc[0] if loc else None
        key = ".".join(["phones", phone.name, *loc])
        line = phone.key_lines.get(top, phone.line) if top else phone.line
        if err["type"] == "extra_forbidden":
            known = _option_names(options_type)
            close = difflib.get_close_matches(top or "", known, n=1)
            hint = (f"; did you mean '{close[0]}'?" if close
                    else f" (options of this plugin: {', '.join(known)})")
            message = f"unknown option '{top}' for plugin '{phone.plugin}'{hint}"
        elif err["type"] == "missing":
            message = f"missing required option '{top}' for plugin '{phone.plugin}'"
        else:
            message = f"invalid value: {err['msg']}"
        raise ConfigError(message, file=file, line=line, key=key) from None


def _option_names(options_type: type[BaseModel]) -> list[str]:
    names = []
    for name, info in options_type.model_fields.items():
        names.append(info.alias or name)
    return sorted(names)


# --------------------------------------------------------------------------- files
def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` → ``$SMSBRIDGE_CONFIG`` → ``./smsbridge.yaml``."""
    if path is not None:
        return Path(path)
    env = os.environ.get("SMSBRIDGE_CONFIG")
    if env:
        return Path(env)
    return Path("smsbridge.yaml")


def load_yaml(text: str, file: str | None = None) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=file, line=exc.line, key=exc.key) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"malformed YAML: {exc.problem or exc.context}", file=file,
                          line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", file=file) from None


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file (see :func:`resolve_path` for the lookup)."""
    resolved = resolve_path(path)
    file = str(resolved)
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = "" if path is not None else " (pass a path, set $SMSBRIDGE_CONFIG, or run `smsbridge demo`)"
        raise ConfigError(f"config file not found{hint}", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", file=file) from None
    return parse_config(load_yaml(text, file), file=file, env=env)

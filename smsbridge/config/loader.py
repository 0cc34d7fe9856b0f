"""YAML with lines: the loader, ``${VAR}`` interpolation, where each key stands.

Every problem is a :class:`ConfigError` naming the file, the line and the key. Values
are never echoed in errors (they may be secrets).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = [
    "Node",
    "NodeList",
    "closest",
    "interpolate",
    "line_of",
    "load_yaml",
    "read_text",
    "resolve_path",
    "suggest",
    "to_node",
]


# --------------------------------------------------------------------------- YAML with lines
class Node(dict[str, Any]):
    """A mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]
    duplicates: list[tuple[str, int, int]]  # (key, line, line of the first one)


class NodeList(list[Any]):
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


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Node:
    loader.flatten_mapping(node)
    result = Node()
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


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> NodeList:
    result = NodeList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _first_duplicate(value: Any, path: str = "") -> tuple[str, int, int] | None:
    """The earliest duplicate key in a loaded document: (key path, line, first line)."""
    found: list[tuple[str, int, int]] = []
    if isinstance(value, Node):
        for key, line, first in getattr(value, "duplicates", ()):
            found.append((f"{path}.{key}" if path else key, line, first))
        for key, child in value.items():
            dup = _first_duplicate(child, f"{path}.{key}" if path else key)
            if dup:
                found.append(dup)
    elif isinstance(value, NodeList):
        for i, child in enumerate(value):
            dup = _first_duplicate(child, f"{path}[{i}]")
            if dup:
                found.append(dup)
    return min(found, key=lambda d: d[1]) if found else None


def line_of(container: Any, key: str | int | None = None) -> int | None:
    """Line (1-based) of ``key`` in a loaded mapping or list, else of the container."""
    if isinstance(container, Node):
        if isinstance(key, str) and key in container.key_lines:
            return container.key_lines[key]
        return container.line or None
    if isinstance(container, NodeList):
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


def interpolate(
    value: Any, env: Mapping[str, str], file: str | None, path: str, line: int | None
) -> Any:
    if isinstance(value, str):
        return _interpolate_str(value, env, _Where(file, line, path))
    if isinstance(value, Node):
        out = Node()
        out.line = value.line
        out.key_lines = dict(value.key_lines)
        for k, v in value.items():
            out[k] = interpolate(
                v, env, file, f"{path}.{k}" if path else k, value.key_lines.get(k, line)
            )
        return out
    if isinstance(value, NodeList):
        out_list = NodeList()
        out_list.line = value.line
        out_list.item_lines = list(value.item_lines)
        for i, v in enumerate(value):
            out_list.append(interpolate(v, env, file, f"{path}[{i}]", line_of(value, i)))
        return out_list
    return value


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


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to a mistyped ``name`` (difflib), or None."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return close[0] if close else None


def suggest(name: str, known: Iterable[str], *, what: str = "known") -> str:
    """The "did you mean" tail of an error about an unknown ``name``:
    ``"; did you mean 'x'?"`` for a close match, else ``" (known: a, b, c)"``."""
    options = [str(k) for k in known]
    match = closest(name, options)
    return f"; did you mean '{match}'?" if match else f" ({what}: {', '.join(options)})"


def read_text(path: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """``(file name, text)`` of the config file (see :func:`resolve_path`); a missing or
    unreadable file is a :class:`ConfigError`."""
    resolved = resolve_path(path)
    file = str(resolved)
    try:
        return file, resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = (
            ""
            if path is not None
            else " (pass a path, set $SMSBRIDGE_CONFIG, or run `smsbridge demo`)"
        )
        raise ConfigError(f"config file not found{hint}", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", file=file) from None


def to_node(value: Any) -> Any:
    """Plain dicts/lists (config built in Python) into line-less nodes."""
    if isinstance(value, dict):
        node = Node((str(k), to_node(v)) for k, v in value.items())
        node.key_lines = {}
        return node
    if isinstance(value, list):
        lst = NodeList(to_node(v) for v in value)
        lst.item_lines = []
        return lst
    return value

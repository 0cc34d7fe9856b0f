"""Validating a section or a phone's options with a pydantic model: errors are
:class:`ConfigError` naming the file, line and key, never the value (it may be a secret).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .loader import line_of, suggest
from .model import PhoneConfig

__all__ = ["validate_options", "validate_section"]

M = TypeVar("M", bound=BaseModel)


def validate_section(model: type[M], node: Any, *, file: str | None, key: str) -> M:
    """Validate one YAML section with a pydantic ``model``; errors are :class:`ConfigError`
    naming the file, line and key (never the value, which may be a secret)."""
    if node is None:
        return model()
    if not isinstance(node, Mapping):
        raise ConfigError(f"'{key}' must be a mapping", file=file, line=line_of(node), key=key)
    try:
        return model.model_validate(dict(node))
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        loc = [str(p) for p in err["loc"]]
        top = loc[0] if loc else None
        if err["type"] == "extra_forbidden":
            message = f"unknown key '{top}'{suggest(top or '', sorted(model.model_fields))}"
        else:
            message = f"invalid value: {err['msg']}"
        raise ConfigError(
            message, file=file, line=line_of(node, top), key=".".join([key, *loc])
        ) from None


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
            hint = suggest(top or "", _option_names(options_type), what="options of this plugin")
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

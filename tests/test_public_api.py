"""The curated public surface: what `import smsbridge` offers is deliberate."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

import smsbridge
import smsbridge.errors as errors

ROOT = Path(__file__).resolve().parents[1]


def public_names() -> set[str]:
    """What ``import smsbridge`` exposes: every attribute not private and not a submodule."""
    return {
        name
        for name, value in vars(smsbridge).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and type(value).__module__ != "__future__"  # `from __future__ import annotations`
    } | {"__version__"}


def documented_text() -> str:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def test_all_is_exactly_what_the_package_exposes() -> None:
    assert set(smsbridge.__all__) == public_names()
    for name in smsbridge.__all__:
        assert hasattr(smsbridge, name), name


def test_every_public_name_is_documented() -> None:
    text = documented_text()
    undocumented = sorted(
        name
        for name in smsbridge.__all__
        if not re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text)
    )
    assert undocumented == [], "public names no page of docs/ or the README mentions"
    for name in smsbridge.__all__:
        value = getattr(smsbridge, name)
        if isinstance(value, type) or callable(value):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_every_error_is_importable_from_smsbridge() -> None:
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__ == errors.__name__
    }
    assert defined <= set(smsbridge.__all__), defined - set(smsbridge.__all__)


def test_the_checks_catch_an_undocumented_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smsbridge, "Sneaky", type("Sneaky", (), {"__doc__": "x"}), raising=False)
    with pytest.raises(AssertionError):
        test_all_is_exactly_what_the_package_exposes()  # exposed but not in __all__
    monkeypatch.setattr(smsbridge, "__all__", [*smsbridge.__all__, "Sneaky"])
    with pytest.raises(AssertionError, match="no page of docs"):
        test_every_public_name_is_documented()  # in __all__ but no doc page names it


def test_error_tree_matches_the_design() -> None:
    tree = {
        "ConfigError": ("SmsBridgeError", ValueError),
        "MessageError": ("SmsBridgeError", ValueError),
        "InvalidRecipient": ("MessageError",),
        "InvalidSender": ("MessageError",),
        "MessageTooLong": ("MessageError",),
        "UnsupportedFeature": ("MessageError",),
        "RoutingError": ("SmsBridgeError",),
        "SendError": ("SmsBridgeError",),
        "AuthError": ("SendError",),
        "RateLimited": ("SendError",),
        "InsufficientCredit": ("SendError",),
        "ProviderUnavailable": ("SendError",),
        "AmbiguousSend": ("SendError",),
        "Rejected": ("SendError",),
        "WebhookError": ("SmsBridgeError",),
        "WebhookAuthError": ("WebhookError",),
        "WebhookParseError": ("WebhookError",),
    }
    for name, parents in tree.items():
        cls = getattr(errors, name)
        for parent in parents:
            base = getattr(errors, parent) if isinstance(parent, str) else parent
            assert issubclass(cls, base), (name, parent)
        assert name in (errors.__doc__ or ""), f"{name} missing from the drawn tree"
    assert errors.RateLimited("x").retryable and errors.ProviderUnavailable("x").retryable
    assert not errors.Rejected("x").retryable and not errors.AmbiguousSend("x").retryable


def test_values_are_frozen_and_serialisable() -> None:
    import dataclasses

    message = smsbridge.OutgoingMessage(to="+33612345678", body="hi", media=["https://e/a.png"])
    assert message.media == ("https://e/a.png",)
    try:
        message.body = "changed"  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:  # pragma: no cover
        raise AssertionError("OutgoingMessage must be frozen")
    data = message.to_dict()
    assert data["media"] == ["https://e/a.png"] and data["send_at"] is None
    assert smsbridge.Status("delivered").is_final and not smsbridge.Status.sent.is_final

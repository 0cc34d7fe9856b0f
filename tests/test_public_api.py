"""The curated public surface: what `import smsbridge` offers is deliberate."""

from __future__ import annotations

import smsbridge
import smsbridge.errors as errors

EXPECTED = {
    "AmbiguousSend",
    "Attempt",
    "AuthError",
    "Balance",
    "Bridge",
    "Capabilities",
    "ConfigError",
    "HttpPhone",
    "IncomingMessage",
    "InsufficientCredit",
    "InvalidRecipient",
    "InvalidSender",
    "MessageError",
    "MessageTooLong",
    "OutgoingMessage",
    "Phone",
    "PhoneOptions",
    "PreparedMessage",
    "ProviderUnavailable",
    "RateLimited",
    "Rejected",
    "RoutingError",
    "SendError",
    "SendResult",
    "SmsBridgeError",
    "Status",
    "StatusReport",
    "Submission",
    "UnsupportedFeature",
    "WebhookAuthError",
    "WebhookError",
    "WebhookParseError",
    "WebhookRequest",
    "WebhookResponse",
    "__version__",
    "load",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(smsbridge.__all__) == EXPECTED
    for name in smsbridge.__all__:
        assert hasattr(smsbridge, name), name


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

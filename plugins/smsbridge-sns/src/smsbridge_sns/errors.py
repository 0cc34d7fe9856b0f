"""botocore ``ClientError`` codes → the smsbridge error tree (one table)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped,unused-ignore]

from smsbridge.errors import (
    AuthError,
    InvalidRecipient,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SendError,
)

__all__ = ["ERROR_CODES", "map_client_error"]

ERROR_CODES: dict[str, type[SendError]] = {
    # credentials and permissions
    "AuthorizationError": AuthError,
    "AccessDenied": AuthError,
    "AccessDeniedException": AuthError,
    "InvalidClientTokenId": AuthError,
    "UnrecognizedClientException": AuthError,
    "SignatureDoesNotMatch": AuthError,
    "IncompleteSignature": AuthError,
    "MissingAuthenticationToken": AuthError,
    "ExpiredToken": AuthError,
    "ExpiredTokenException": AuthError,
    "InvalidSecurity": AuthError,
    # slow down
    "Throttling": RateLimited,
    "ThrottlingException": RateLimited,
    "Throttled": RateLimited,
    "TooManyRequestsException": RateLimited,
    "RequestLimitExceeded": RateLimited,
    "KMSThrottling": RateLimited,
    # AWS side failures
    "InternalError": ProviderUnavailable,
    "InternalFailure": ProviderUnavailable,
    "ServiceUnavailable": ProviderUnavailable,
    "ServiceUnavailableException": ProviderUnavailable,
    # this message, permanently
    "InvalidParameter": Rejected,
    "InvalidParameterValue": Rejected,
    "ValidationError": Rejected,
    "ValidationException": Rejected,
    "OptedOut": Rejected,
    "EndpointDisabled": Rejected,
    "NotFound": Rejected,
}

_NUMBER_HINTS = ("phonenumber", "phone number", "e164", "e.164")


def map_client_error(exc: ClientError, phone: str, operation: str) -> Exception:
    """The smsbridge error for an AWS error answer (never carries a credential)."""
    error: dict[str, Any] = exc.response.get("Error", {}) or {}
    meta: dict[str, Any] = exc.response.get("ResponseMetadata", {}) or {}
    code = str(error.get("Code") or "Unknown")
    text = str(error.get("Message") or code)
    http = int(meta.get("HTTPStatusCode") or 0)
    raw = {"code": code, "message": text, "http_status": http, "operation": operation}
    message = f"AWS {operation} refused: {text}"
    lowered = text.lower()

    if code == "OptedOut" or "opted out" in lowered:
        return Rejected(message, opt_out=True, phone=phone, provider_code=code, raw=raw)
    if code in ("InvalidParameter", "InvalidParameterValue") and any(
        hint in lowered for hint in _NUMBER_HINTS
    ):
        return InvalidRecipient(f"AWS SNS refused the number: {text} ({code})")
    cls = ERROR_CODES.get(code)
    if cls is None:
        cls = ProviderUnavailable if http >= 500 else SendError
    if cls is RateLimited:
        return RateLimited(
            message, retry_after=_retry_after(meta), phone=phone, provider_code=code, raw=raw
        )
    return cls(message, phone=phone, provider_code=code, raw=raw)


def _retry_after(meta: dict[str, Any]) -> float | None:
    headers = {str(k).lower(): v for k, v in (meta.get("HTTPHeaders") or {}).items()}
    try:
        return float(headers["retry-after"])
    except (KeyError, TypeError, ValueError):
        return None

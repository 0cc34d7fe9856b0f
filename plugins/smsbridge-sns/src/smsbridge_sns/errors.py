"""botocore failures → the smsbridge error tree: the AWS error-code table and the calls.

AWS error codes go through :data:`ERROR_CODES` with the base's
:meth:`~smsbridge.phone.Phone.provider_error` (codes not listed fall back on the HTTP
status). Two refusals are recognised by their text, whatever their code: a number that
opted out (:class:`Rejected` with ``opt_out``) and an ``InvalidParameter`` about the phone
number (:class:`InvalidRecipient`). ``provider_code`` is always AWS's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import botocore.exceptions as bexc  # type: ignore[import-untyped,unused-ignore]

from smsbridge.errors import (
    AmbiguousSend,
    AuthError,
    InvalidRecipient,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SmsBridgeError,
)
from smsbridge.http import parse_retry_after
from smsbridge.phone import ErrorRule, Phone

__all__ = ["ERROR_CODES", "call_aws", "map_client_error"]

ERROR_CODES: Mapping[str, ErrorRule] = {
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
    "OptedOut": (Rejected, {"opt_out": True}),
    "EndpointDisabled": Rejected,
    "NotFound": Rejected,
}

NUMBER_CODES = ("InvalidParameter", "InvalidParameterValue")
NUMBER_HINTS = ("phonenumber", "phone number", "e164", "e.164")


def map_client_error(exc: bexc.ClientError, phone: Phone, operation: str) -> SmsBridgeError:
    """The smsbridge error for an AWS error answer (redacted: never carries a credential)."""
    error: dict[str, Any] = exc.response.get("Error", {}) or {}
    meta: dict[str, Any] = exc.response.get("ResponseMetadata", {}) or {}
    code = str(error.get("Code") or "Unknown")
    text = phone.redact(str(error.get("Message") or code))
    http = int(meta.get("HTTPStatusCode") or 0)
    raw = {"code": code, "message": text, "http_status": http, "operation": operation}
    message = f"AWS {operation} refused: {text}"
    lowered = text.lower()
    if code != "OptedOut" and "opted out" in lowered:
        return Rejected(message, opt_out=True, phone=phone.name, provider_code=code, raw=raw)
    if code in NUMBER_CODES and any(hint in lowered for hint in NUMBER_HINTS):
        return InvalidRecipient(f"AWS SNS refused the number: {text} ({code})", provider_code=code)
    headers = {str(k).lower(): v for k, v in (meta.get("HTTPHeaders") or {}).items()}
    return phone.provider_error(
        message,
        code=code,
        http_status=http or None,
        retry_after=parse_retry_after(headers.get("retry-after")),
        raw=raw,
    )


def call_aws(
    phone: Phone, client: Any, operation: str, *, sends: bool = False, **params: Any
) -> Any:
    """``client.<operation>(**params)``; every botocore failure becomes a smsbridge error.

    ``sends``: the call hands over a message, so no answer once the request went out is
    :class:`AmbiguousSend` (never retried) rather than :class:`ProviderUnavailable`.
    """
    try:
        return getattr(client, operation)(**params)
    except bexc.ClientError as exc:
        raise map_client_error(exc, phone, operation) from None
    except (bexc.NoCredentialsError, bexc.PartialCredentialsError) as exc:
        raise AuthError(
            f"AWS credentials missing: {type(exc).__name__}", phone=phone.name
        ) from None
    except (bexc.CredentialRetrievalError, bexc.NoAuthTokenError, bexc.TokenRetrievalError):
        raise AuthError("AWS credentials could not be retrieved", phone=phone.name) from None
    except (bexc.EndpointConnectionError, bexc.ConnectTimeoutError) as exc:
        # Nothing reached AWS (covers SSL and proxy failures too).
        raise ProviderUnavailable(
            f"cannot reach AWS {operation}: {type(exc).__name__}", phone=phone.name
        ) from None
    except (bexc.ReadTimeoutError, bexc.ConnectionClosedError, bexc.HTTPClientError) as exc:
        if sends:
            raise AmbiguousSend(
                f"no answer to {operation} after the request was sent "
                f"({type(exc).__name__}); the message may or may not have gone out",
                phone=phone.name,
            ) from None
        raise ProviderUnavailable(
            f"AWS {operation} did not answer: {type(exc).__name__}", phone=phone.name
        ) from None

"""``X-Twilio-Signature``: which URLs Twilio may have signed, and the check itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from twilio.request_validator import RequestValidator

from smsbridge.errors import WebhookAuthError
from smsbridge.http import WebhookRequest

__all__ = ["SIGNATURE_HEADER", "FormParams", "has_body_hash", "signed_urls", "verify_signature"]

SIGNATURE_HEADER = "X-Twilio-Signature"
BODY_HASH = "bodySHA256"


class FormParams(dict[str, str]):
    """Form fields with every value of repeated names, as RequestValidator wants them."""

    def __init__(self, lists: Mapping[str, list[str]]) -> None:
        super().__init__({k: v[0] for k, v in lists.items()})
        self._lists = lists

    def getlist(self, name: str) -> list[str]:
        return list(self._lists.get(name, []))


def signed_urls(
    request: WebhookRequest, public_url: str | None, phone: str, status_callback: str | None
) -> list[str]:
    """The URLs Twilio may have signed: ``public_url`` + this request's webhook path (and
    query), and ``status_callback`` when set; the request's own URL without a public URL."""
    if not public_url:
        return [request.url]
    parts = urlsplit(request.url)
    query = f"?{parts.query}" if parts.query else ""
    urls = []
    at = parts.path.rfind(f"/webhooks/{quote(phone, safe='')}/")
    if at >= 0:
        urls.append(public_url + parts.path[at:] + query)
    if status_callback:
        urls.append(status_callback)
    return urls


def verify_signature(request: WebhookRequest, auth_token: str, urls: list[str]) -> None:
    """Raise :class:`WebhookAuthError` unless ``request`` is signed with ``auth_token`` for
    one of ``urls`` (form fields signed with the URL; JSON bodies through ``?bodySHA256=``).

    A JSON body is only covered by the signature through the ``bodySHA256`` its URL
    carries: without one it cannot be verified, and is refused."""
    signature = request.header(SIGNATURE_HEADER)
    if not signature:
        raise WebhookAuthError(f"missing {SIGNATURE_HEADER} header")
    params: Any = {}
    if request.content_type == "application/json":
        # RequestValidator checks a str body only against a URL with ?bodySHA256= (and
        # crashes on one without): keep those URLs, refuse when none is left.
        urls = [url for url in urls if has_body_hash(url)]
        if not urls:
            raise WebhookAuthError(f"JSON body without {BODY_HASH} in the URL: cannot be verified")
        params = request.text()
    elif request.method == "POST" and request.body:
        params = FormParams(request.form_lists())
    validator = RequestValidator(auth_token)
    if not any(validator.validate(url, params, signature) for url in urls):
        raise WebhookAuthError(
            f"{SIGNATURE_HEADER} does not match (is webhooks.public_url the URL Twilio calls?)"
        )


def has_body_hash(url: str) -> bool:
    """Whether ``url`` carries a non-empty ``bodySHA256`` (as RequestValidator reads it)."""
    return BODY_HASH in parse_qs(urlsplit(url).query)

"""Django integration: the webhook views and a ``urlpatterns`` list to ``include()``.

``urls.py``::

    from django.urls import include, path
    from smsbridge.webhooks.django import urls as smsbridge_urls
    from myproject.sms import bridge            # a smsbridge.Bridge (or a function returning one)

    urlpatterns = [
        path("sms/", include(smsbridge_urls(bridge))),
        # -> /sms/webhooks/<phone>/<status|inbound> and /sms/healthz
    ]

With that prefix, set ``webhooks.public_url`` to ``https://your.host/sms``. The views
are CSRF-exempt (providers cannot send a CSRF token; they authenticate by token or
signature instead) and honour ``bridge.config.webhooks`` exactly like the WSGI app.
Django is imported when these functions are called, never by ``import smsbridge``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..http import WebhookRequest, WebhookResponse
from .dispatcher import client_address, external_url

if TYPE_CHECKING:
    from ..bridge import Bridge

__all__ = ["health_view", "urls", "webhook_view"]

_SAFE = "/;=,~!$&'()*+:@"


def _resolve(source: Any) -> Bridge:
    from ..bridge import Bridge

    if isinstance(source, Bridge):
        return source
    bridge = source()
    if not isinstance(bridge, Bridge):
        raise TypeError("expected a smsbridge.Bridge or a function returning one")
    return bridge


def _django_response(response: WebhookResponse) -> Any:
    from django.http import HttpResponse  # type: ignore[import-untyped, unused-ignore]

    out = HttpResponse(response.body, status=response.status, content_type=response.content_type)
    for name, value in response.headers.items():
        out[name] = value
    return out


def webhook_view(bridge: Bridge | Callable[[], Bridge]) -> Callable[..., Any]:
    """A view ``view(request, phone, kind)`` handling one provider callback."""
    from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped, unused-ignore]

    def smsbridge_webhook(request: Any, phone: str, kind: str) -> Any:
        target = _resolve(bridge)
        settings = target.config.webhooks
        meta = request.META
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > settings.max_body_bytes:
            return _django_response(WebhookResponse.text(413, "body too large\n"))
        body = request.read(settings.max_body_bytes + 1) if declared else b""
        if len(body) > settings.max_body_bytes:
            return _django_response(WebhookResponse.text(413, "body too large\n"))
        headers = {str(k).lower(): str(v) for k, v in request.headers.items()}
        host = headers.get("host") or f"{meta.get('SERVER_NAME', 'localhost')}"
        url = external_url(
            request.scheme,
            host,
            quote(request.path, safe=_SAFE),
            str(meta.get("QUERY_STRING", "")),
            headers,
            settings.trust_proxy,
        )
        webhook_request = WebhookRequest(
            method=request.method,
            url=url,
            headers=headers,
            body=body,
            remote_addr=client_address(meta.get("REMOTE_ADDR"), headers, settings.trust_proxy),
        )
        response = target.dispatcher.handle_http(
            request.method, f"/webhooks/{phone}/{kind}", webhook_request
        )
        return _django_response(response)

    view: Callable[..., Any] = csrf_exempt(smsbridge_webhook)
    return view


def health_view(bridge: Bridge | Callable[[], Bridge]) -> Callable[..., Any]:
    """A view answering ``GET healthz``."""
    from django.views.decorators.http import require_safe  # type: ignore[import-untyped, unused-ignore]

    def smsbridge_health(request: Any) -> Any:
        return _django_response(_resolve(bridge).dispatcher.health())

    view: Callable[..., Any] = require_safe(smsbridge_health)
    return view


def urls(bridge: Bridge | Callable[[], Bridge]) -> list[Any]:
    """URL patterns to ``include()``: ``webhooks/<phone>/<kind>`` and ``healthz``.

    ``bridge`` may be a function returning the bridge, called on each request (for
    projects that build it lazily).
    """
    from django.urls import path  # type: ignore[import-untyped, unused-ignore]

    return [
        path("webhooks/<str:phone>/<str:kind>", webhook_view(bridge), name="smsbridge-webhook"),
        path("healthz", health_view(bridge), name="smsbridge-health"),
    ]

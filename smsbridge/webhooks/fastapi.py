"""FastAPI (and Starlette) integration: add the webhook routes to an app or router.

::

    from fastapi import FastAPI
    from smsbridge.webhooks.fastapi import mount

    app = FastAPI()
    mount(app, bridge, prefix="/sms")
    # -> /sms/webhooks/{phone}/{status|inbound} and /sms/healthz

With that prefix, set ``webhooks.public_url`` to ``https://your.host/sms``. The routes
serve smsbridge's own ASGI app (so body limits, proxy settings and responses are the
same as ``smsbridge serve``); they are left out of the OpenAPI schema. Unlike
``app.mount("/", ...)`` this does not shadow the app's other routes. Starlette is
imported when :func:`mount` is called, never by ``import smsbridge``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .asgi import ASGIApp

if TYPE_CHECKING:
    from ..bridge import Bridge

__all__ = ["mount"]


def mount(app: Any, bridge: Bridge, prefix: str = "", **asgi_options: Any) -> ASGIApp:
    """Add ``{prefix}/webhooks/{phone}/{kind}`` (GET, POST) and ``{prefix}/healthz``
    (GET) to ``app`` (a FastAPI/Starlette app or router). Returns the ASGI app used."""
    from starlette.routing import Route

    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    webhook_app = ASGIApp(bridge, prefix=prefix, **asgi_options)
    router = getattr(app, "router", app)
    router.routes.append(
        Route(
            f"{prefix}/webhooks/{{phone}}/{{kind}}",
            endpoint=webhook_app,
            methods=["GET", "POST"],
            name="smsbridge-webhook",
            include_in_schema=False,
        )
    )
    router.routes.append(
        Route(
            f"{prefix}/healthz",
            endpoint=webhook_app,
            methods=["GET"],
            name="smsbridge-health",
            include_in_schema=False,
        )
    )
    return webhook_app

"""Flask integration: a blueprint serving the webhooks.

::

    from flask import Flask
    from smsbridge.webhooks.flask import blueprint

    app = Flask(__name__)
    app.register_blueprint(blueprint(bridge), url_prefix="/sms")
    # -> /sms/webhooks/<phone>/<status|inbound> and /sms/healthz

With that prefix, set ``webhooks.public_url`` to ``https://your.host/sms``. The views
honour ``bridge.config.webhooks`` exactly like the WSGI app. Flask is imported when
:func:`blueprint` is called, never by ``import smsbridge``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..http import WebhookResponse
from .wsgi import BodyTooLarge, environ_request

if TYPE_CHECKING:
    from ..bridge import Bridge

__all__ = ["blueprint"]


def _flask_response(response: WebhookResponse) -> Any:
    from flask import Response

    out = Response(response.body, status=response.status, content_type=response.content_type)
    for name, value in response.headers.items():
        out.headers[name] = value
    return out


def blueprint(bridge: Bridge, name: str = "smsbridge", url_prefix: str | None = None) -> Any:
    """A :class:`flask.Blueprint` with ``/webhooks/<phone>/<kind>`` and ``/healthz``."""
    from flask import Blueprint, request

    bp = Blueprint(name, __name__, url_prefix=url_prefix)

    @bp.route("/webhooks/<phone>/<kind>", methods=["GET", "POST"])
    def webhook(phone: str, kind: str) -> Any:
        limit = bridge.config.webhooks.max_body_bytes
        declared = request.content_length
        if declared is not None and declared > limit:
            return _flask_response(WebhookResponse.text(413, "body too large\n"))
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            return _flask_response(WebhookResponse.text(413, "body too large\n"))
        try:
            webhook_request = environ_request(request.environ, bridge, body=body)
        except BodyTooLarge:  # pragma: no cover - the body is given
            return _flask_response(WebhookResponse.text(413, "body too large\n"))
        response = bridge.dispatcher.handle_http(
            request.method, f"/webhooks/{phone}/{kind}", webhook_request
        )
        return _flask_response(response)

    @bp.route("/healthz", methods=["GET"])
    def health() -> Any:
        return _flask_response(bridge.dispatcher.health())

    return bp

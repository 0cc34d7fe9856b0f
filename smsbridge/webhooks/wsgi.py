"""The WSGI adapter: ``bridge.webhook_app("wsgi")``, with no framework dependency.

Serves ``/webhooks/{phone}/{status|inbound}`` (GET and POST) and ``GET /healthz``
relative to ``SCRIPT_NAME`` (where it is mounted). Run it with any WSGI server::

    gunicorn 'myapp:make_app()'          # def make_app(): return bridge.webhook_app("wsgi")

Honours ``bridge.config.webhooks`` like the ASGI adapter: ``max_body_bytes`` (413 from
``Content-Length`` before reading; a chunked body is read at most one byte past the
limit), ``trust_proxy`` and ``log_bodies``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from ..http import WebhookRequest, WebhookResponse
from .dispatcher import (
    Dispatcher,
    HasDispatcher,
    client_address,
    dispatcher_of,
    external_url,
    log_access,
)

__all__ = ["BodyTooLarge", "WSGIApp", "environ_request", "read_body"]

log = logging.getLogger("smsbridge.webhooks")

StartResponse = Callable[..., Any]
_SAFE = "/;=,~!$&'()*+:@"
_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class BodyTooLarge(Exception):
    """The request body is over ``webhooks.max_body_bytes``."""


class WSGIApp:
    """WSGI application serving a bridge's webhooks (PEP 3333)."""

    def __init__(self, target: Dispatcher | HasDispatcher) -> None:
        """``target``: a :class:`~smsbridge.Bridge`, or its dispatcher."""
        self.dispatcher = dispatcher_of(target)

    def __repr__(self) -> str:
        return f"<WSGIApp phones={list(self.dispatcher.phones)}>"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        route_path = _decoded(environ.get("PATH_INFO", "")) or "/"
        full_path = _decoded(environ.get("SCRIPT_NAME", "")) + route_path
        try:
            request = environ_request(environ, self.dispatcher)
        except BodyTooLarge:
            limit = self.dispatcher.settings.max_body_bytes
            log.warning("webhook %s: body over the %d bytes limit", route_path, limit)
            response = WebhookResponse.text(413, "body too large\n")
            remote = environ.get("REMOTE_ADDR")
            body = _start(start_response, response, method)
            log_access(method, full_path, 413, remote, started, 0)
            return body
        response = self.dispatcher.handle_http(method, route_path, request)
        out = _start(start_response, response, method)
        log_access(
            method, full_path, response.status, request.remote_addr, started, len(response.body)
        )
        return out


def environ_request(
    environ: Mapping[str, Any],
    target: Dispatcher | HasDispatcher,
    *,
    body: bytes | None = None,
) -> WebhookRequest:
    """A :class:`WebhookRequest` from a WSGI environ (also used by the Django and Flask
    integrations). Reads the body within ``max_body_bytes`` unless ``body`` is given."""
    settings = dispatcher_of(target).settings
    headers = _environ_headers(environ)
    if body is None:
        body = read_body(environ, settings.max_body_bytes)
    path = _decoded(environ.get("SCRIPT_NAME", "")) + _decoded(environ.get("PATH_INFO", ""))
    host = headers.get("host")
    if not host:
        name, port = environ.get("SERVER_NAME", "localhost"), str(environ.get("SERVER_PORT", ""))
        scheme = environ.get("wsgi.url_scheme", "http")
        default = (scheme == "http" and port == "80") or (scheme == "https" and port == "443")
        host = name if default or not port else f"{name}:{port}"
    url = external_url(
        str(environ.get("wsgi.url_scheme", "http")),
        host,
        quote(path or "/", safe=_SAFE),
        str(environ.get("QUERY_STRING", "")),
        headers,
        settings.trust_proxy,
    )
    return WebhookRequest(
        method=str(environ.get("REQUEST_METHOD", "GET")),
        url=url,
        headers=headers,
        body=body,
        remote_addr=client_address(environ.get("REMOTE_ADDR"), headers, settings.trust_proxy),
    )


def read_body(environ: Mapping[str, Any], limit: int) -> bytes:
    """The request body; :class:`BodyTooLarge` rather than read past ``limit``."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if declared:
        try:
            length = int(declared)
        except ValueError:
            length = -1
        if length > limit:
            raise BodyTooLarge
        if length >= 0:
            return _read(stream, length, limit)
    if environ.get("wsgi.input_terminated"):  # chunked: read until EOF, bounded
        return _read(stream, limit + 1, limit)
    return b""


def _read(stream: Any, length: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = length
    size = 0
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _decoded(value: Any) -> str:
    """PEP 3333 paths are latin-1 decoded bytes; URLs are UTF-8."""
    text = str(value or "")
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = str(value)
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = str(environ["CONTENT_LENGTH"])
    return headers


def _start(start_response: StartResponse, response: WebhookResponse, method: str) -> list[bytes]:
    status = f"{response.status} {_REASONS.get(response.status, 'Unknown')}"
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        *((str(k), str(v)) for k, v in response.headers.items()),
    ]
    start_response(status, headers)
    return [b"" if method == "HEAD" else response.body]

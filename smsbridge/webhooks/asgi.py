"""The ASGI adapter: ``bridge.webhook_app("asgi")``, with no framework dependency.

Serves ``/webhooks/{phone}/{status|inbound}`` (GET and POST) and ``GET /healthz``
relative to where it is mounted (``root_path``). Run it with any ASGI server::

    uvicorn --factory myapp:make_app      # def make_app(): return bridge.webhook_app()

or ``smsbridge serve``. The dispatcher is synchronous (stores, user callbacks); each
request runs on a worker thread so the event loop never blocks.

Honours ``bridge.config.webhooks``: ``max_body_bytes`` (413, answered from
``Content-Length`` before reading, or as soon as the streamed body passes the limit —
never buffered past it), ``trust_proxy`` (``X-Forwarded-For`` for the caller address,
``X-Forwarded-Proto``/``X-Forwarded-Host`` for the external URL signatures are checked
against), ``log_bodies``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
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

__all__ = ["ASGIApp"]

log = logging.getLogger("smsbridge.webhooks")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SAFE = "/;=,~!$&'()*+:@"


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class ASGIApp:
    """ASGI 3 application serving a bridge's webhooks.

    ``prefix`` is a path the app strips in addition to ``root_path`` (e.g. when it is
    registered as a route at ``/sms/...`` rather than mounted). ``max_workers`` bounds
    the threads running the dispatcher (default: the event loop's default executor).
    """

    def __init__(
        self,
        target: Dispatcher | HasDispatcher,
        *,
        prefix: str = "",
        max_workers: int | None = None,
    ) -> None:
        self.dispatcher = dispatcher_of(target)
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._executor = (
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="smsbridge-webhook")
            if max_workers
            else None
        )

    def __repr__(self) -> str:
        return f"<ASGIApp phones={list(self.dispatcher.phones)}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":  # websockets: not ours
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ HTTP
    def route_path(self, scope: Scope) -> str:
        """The request path relative to where this app is mounted."""
        path: str = scope.get("path") or "/"
        root: str = scope.get("root_path") or ""
        if root and path.startswith(root):  # ASGI servers/routers include root_path
            path = path[len(root) :] or "/"
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            path = path[len(self.prefix) :] or "/"
        return path

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        settings = self.dispatcher.settings
        method: str = scope.get("method", "GET").upper()
        headers = _headers(scope)
        peer = scope.get("client")
        remote = client_address(peer[0] if peer else None, headers, settings.trust_proxy)
        full_path: str = scope.get("path") or "/"
        root: str = scope.get("root_path") or ""
        if root and not full_path.startswith(root):  # older servers leave root_path out
            full_path = root + full_path
        raw_path = scope.get("raw_path")
        # The URL as the caller wrote it (percent-encoding kept): what signatures cover.
        if raw_path:
            url_path = raw_path.decode("latin-1")
            if root and not url_path.startswith(quote(root, safe=_SAFE)):
                url_path = quote(root, safe=_SAFE) + url_path
        else:
            url_path = quote(full_path, safe=_SAFE)
        params = scope.get("path_params") or {}
        if "phone" in params and "kind" in params:  # registered as a framework route
            route_path = f"/webhooks/{params['phone']}/{params['kind']}"
        else:
            route_path = self.route_path(scope)

        try:
            body = await _read_body(receive, headers, settings.max_body_bytes)
        except _TooLarge:
            response = WebhookResponse.text(413, "body too large\n")
            log.warning(
                "webhook %s: body over the %d bytes limit", route_path, settings.max_body_bytes
            )
            await _respond(send, response, method)
            log_access(method, full_path, 413, remote, started, 0)
            return
        except _Disconnected:
            return

        query = scope.get("query_string", b"").decode("latin-1")
        server = scope.get("server")
        host = headers.get("host") or (f"{server[0]}:{server[1]}" if server else None)
        url = external_url(
            scope.get("scheme", "http"), host, url_path, query, headers, settings.trust_proxy
        )
        request = WebhookRequest(
            method=method, url=url, headers=headers, body=body, remote_addr=remote
        )
        dispatcher = self.dispatcher
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(
                self._executor, dispatcher.handle_http, method, route_path, request
            )
        except Exception:  # pragma: no cover - handle() never raises by design
            log.exception("webhook %s: unexpected error", route_path)
            response = WebhookResponse.text(500, "internal error\n")
        await _respond(send, response, method)
        log_access(method, full_path, response.status, remote, started, len(response.body))


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _TooLarge
        except ValueError:
            pass
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, response: WebhookResponse, method: str) -> None:
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode("latin-1")),
    ]
    for name, value in response.headers.items():
        headers.append((name.lower().encode("latin-1"), str(value).encode("latin-1")))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else response.body})

"""``smsbridge serve``: the webhook ASGI app under uvicorn, ready for production.

At start-up it prints the callback URLs of every phone (to paste in the provider
consoles; the ``?token=`` secret is masked unless ``show_secrets``) and a warning for any
phone whose webhooks nobody authenticates. uvicorn's own proxy-header handling and
access log are off: ``webhooks.trust_proxy`` decides whether forwarded headers count, and
smsbridge's access log (logger ``smsbridge.webhooks.access``) never prints query strings,
which carry the tokens.

Put it behind a TLS-terminating reverse proxy (nginx, Caddy, a cloud load balancer),
set ``webhooks.public_url`` to the public address and ``webhooks.trust_proxy: true``.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote, urlencode

from ..errors import SmsBridgeError
from .asgi import ASGIApp

if TYPE_CHECKING:
    from ..bridge import Bridge

__all__ = ["mask_token", "serve", "startup_info", "startup_lines"]

log = logging.getLogger("smsbridge.webhooks")


def mask_token(url: str | None) -> str | None:
    """``...?token=SECRET`` → ``...?token=***``."""
    if url and "token=" in url:
        head, _, tail = url.partition("token=")
        rest = tail.partition("&")
        return head + "token=***" + (rest[1] + rest[2] if rest[1] else "")
    return url


def _base(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def startup_info(
    bridge: Bridge, host: str, port: int, show_secrets: bool = False
) -> dict[str, Any]:
    """What ``serve`` announces: listen address, per-phone URLs, unprotected phones."""
    local = _base(host, port)
    phones: dict[str, Any] = {}
    unprotected: list[str] = []
    for name, urls in bridge.callback_urls().items():
        phone = bridge.phones[name]
        caps = phone.caps
        entry: dict[str, Any] = {"plugin": phone.plugin, "protected": phone.webhook_protected}
        for kind, mode in (("status", caps.status_mode), ("inbound", caps.receive_mode)):
            if mode != "webhook":
                entry[kind] = None
                continue
            url = urls.get(kind)
            if url is None:  # no public_url: the local address (behind a tunnel or proxy)
                url = f"{local}/webhooks/{quote(name, safe='')}/{kind}"
                secret = phone.options.webhook_secret
                if secret is not None:
                    url += "?" + urlencode({"token": secret.get_secret_value()})
            entry[kind] = url if show_secrets else mask_token(url)
        if (entry["status"] or entry["inbound"]) and not phone.webhook_protected:
            unprotected.append(name)
        phones[name] = entry
    return {
        "listen": local,
        "health": f"{local}/healthz",
        "public_url": bridge.config.webhooks.public_url,
        "phones": phones,
        "unprotected": unprotected,
    }


def startup_lines(info: dict[str, Any]) -> list[str]:
    """Human-readable start-up banner from :func:`startup_info`."""
    lines = [f"smsbridge: serving webhooks on {info['listen']} (health: {info['health']})"]
    if not info["public_url"]:
        lines.append(
            "note: webhooks.public_url is not set; the URLs below are local. Set it to the "
            "address providers reach (e.g. https://sms.example.com)."
        )
    rows = [
        (name, entry["plugin"], kind, entry[kind])
        for name, entry in info["phones"].items()
        for kind in ("status", "inbound")
        if entry[kind]
    ]
    if rows:
        lines.append("Callback URLs to register at each provider:")
        widths = [
            max(len(str(r[i])) for r in [("phone", "plugin", "kind", ""), *rows]) for i in range(3)
        ]
        for row in [("phone", "plugin", "kind", "url"), *rows]:
            cells = [str(c).ljust(w) for c, w in zip(row[:3], widths)]
            lines.append("  " + "  ".join([*cells, str(row[3])]))
        if any("token=***" in str(r[3]) for r in rows):
            lines.append("  (token=*** is the phone's webhook_secret; --show-secrets prints it)")
    else:
        lines.append("No phone receives webhooks (all poll or send only).")
    for name in info["unprotected"]:
        plugin = info["phones"][name]["plugin"]
        lines.append(
            f"WARNING: phone '{name}' ({plugin}): webhooks are NOT protected; anyone who "
            "finds the URL can post fake reports and messages. Set webhook_secret "
            "(and/or allow_ips)."
        )
    return lines


def _server_class(uvicorn: Any) -> Any:
    class Server(uvicorn.Server):  # type: ignore[misc]
        """uvicorn's server, minus re-raising SIGTERM/SIGINT after the graceful stop:
        that would kill the process before the caller closes the bridge (draining the
        event forwarder). ``serve`` returns normally instead."""

        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            stops = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server


def serve(
    bridge: Bridge,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    show_secrets: bool = False,
    access_log: bool = True,
    as_json: bool = False,
    threads: int | None = None,
    log_level: str = "info",
    out: TextIO | None = None,
    **uvicorn_options: Any,
) -> None:
    """Serve ``bridge``'s webhooks until interrupted (SIGINT/SIGTERM: graceful stop).

    The caller keeps ownership of ``bridge`` (close it afterwards: that drains the
    event forwarder). ``uvicorn_options`` go to :class:`uvicorn.Config` (e.g.
    ``ssl_certfile``, ``timeout_keep_alive``, ``limit_concurrency``).
    """
    try:
        import uvicorn
    except ImportError:
        raise SmsBridgeError(
            "smsbridge serve needs uvicorn: pip install 'smsbridge[serve]'"
        ) from None
    out = out or sys.stdout
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise SmsBridgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    port = int(sock.getsockname()[1])
    info = startup_info(bridge, host, port, show_secrets)
    if as_json:
        print(json.dumps(info), file=out, flush=True)
    else:
        for line in startup_lines(info):
            print(line, file=out, flush=True)
    for name in info["unprotected"]:
        log.warning("phone %s: webhooks are not protected", name)
    if access_log:
        logging.getLogger("smsbridge.webhooks.access").setLevel(logging.INFO)
        if not logging.getLogger().handlers:
            logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    options: dict[str, Any] = {
        "access_log": False,  # ours has no query strings (tokens)
        "proxy_headers": False,  # webhooks.trust_proxy decides
        "server_header": False,
        "lifespan": "on",
        "log_level": log_level,
        "timeout_graceful_shutdown": 15,
    }
    options.update(uvicorn_options)
    config = uvicorn.Config(ASGIApp(bridge, max_workers=threads), host=host, port=port, **options)
    server = _server_class(uvicorn)(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()

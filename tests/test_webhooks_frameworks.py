"""Django (WSGI and ASGI handlers), Flask and FastAPI integrations, each through the
framework's own request stack."""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import smsbridge
from smsbridge.config import load_yaml, parse_config
from smsbridge.http import WebhookRequest
from smsbridge.message import StatusReport
from smsbridge.phones.dummy import DummyPhone
from smsbridge.status import Status

SECRET = "framework-secret-1"
YAML = f"""
webhooks:
  public_url: https://sms.example.com/sms
  max_body_bytes: 1024
phones:
  dev:
    plugin: dummy
    webhook_secret: {SECRET}
    delivery: none
"""
GOOD = json.dumps({"provider_id": "p-1", "status": "delivered"}).encode()


class RecordingPhone(DummyPhone):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.seen: list[WebhookRequest] = []

    def verify_webhook(self, request: WebhookRequest) -> None:
        self.seen.append(request)
        super().verify_webhook(request)


@pytest.fixture
def bridge() -> Iterator[smsbridge.Bridge]:
    config = parse_config(load_yaml(YAML, "t.yaml"), file="t.yaml")
    phone = RecordingPhone(
        "dev", {"webhook_secret": SECRET, "delivery": "none"}, public_url=config.webhooks.public_url
    )
    b = smsbridge.Bridge({"dev": phone}, config=config)
    yield b
    b.close()


@dataclass
class R:
    status: int
    body: bytes
    headers: dict[str, str]


Send = Callable[[str, str, bytes, dict[str, str]], R]


def run_cases(send: Send, bridge: smsbridge.Bridge, prefix: str = "/sms") -> None:
    """The shared cases every integration must pass."""
    seen: list[StatusReport] = []
    bridge.on_status(seen.append)
    ctype = {"Content-Type": "application/json"}
    url = f"{prefix}/webhooks/dev/status?token={SECRET}"

    assert send("POST", url, GOOD, ctype).status == 200
    assert [r.status for r in seen] == [Status.delivered]
    assert send("POST", url, GOOD, ctype).status == 200  # duplicate
    assert len(seen) == 1
    phone = bridge.phones["dev"]
    assert isinstance(phone, RecordingPhone)
    assert phone.seen[-1].url == f"http://testserver{url}"
    assert phone.seen[-1].body == GOOD

    bad = f"{prefix}/webhooks/dev/status?token=wrong"
    assert send("POST", bad, GOOD, ctype).status == 403
    assert send("POST", url, b"{nope", ctype).status == 400
    assert send("POST", f"{prefix}/webhooks/ghost/status?token={SECRET}", GOOD, ctype).status == 404
    assert send("POST", f"{prefix}/webhooks/dev/bogus?token={SECRET}", GOOD, ctype).status == 404
    big = json.dumps({"provider_id": "p-2", "status": "sent", "pad": "x" * 2000}).encode()
    assert send("POST", url, big, ctype).status == 413
    assert send("PUT", url, GOOD, ctype).status == 405
    health = send("GET", f"{prefix}/healthz", b"", {})
    assert health.status == 200
    assert json.loads(health.body)["status"] == "ok"
    assert len(seen) == 1

    def boom(report: StatusReport) -> None:
        raise RuntimeError("user bug")

    bridge.on_status(boom)
    other = json.dumps({"provider_id": "p-3", "status": "sent"}).encode()
    assert send("POST", url, other, ctype).status == 500
    bridge.callbacks.status.remove(boom)
    assert send("POST", url, other, ctype).status == 200
    assert [r.provider_id for r in seen] == ["p-1", "p-3", "p-3"]


# ---------------------------------------------------------------------- Django
@pytest.fixture
def django_urls(bridge: smsbridge.Bridge) -> Iterator[None]:
    pytest.importorskip("django")
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test-only",
            ALLOWED_HOSTS=["testserver", "localhost"],
            ROOT_URLCONF="smsbridge_tests_urls_unset",
            MIDDLEWARE=[
                "django.middleware.common.CommonMiddleware",
                "django.middleware.csrf.CsrfViewMiddleware",
            ],
            INSTALLED_APPS=[],
            USE_TZ=True,
        )
        django.setup()
    from django.test.utils import override_settings
    from django.urls import include, path

    from smsbridge.webhooks.django import urls

    module = types.ModuleType("smsbridge_tests_urls")
    module.urlpatterns = [path("sms/", include(urls(bridge)))]  # type: ignore[attr-defined]
    with override_settings(ROOT_URLCONF=module):
        yield


def test_django_wsgi(django_urls: None, bridge: smsbridge.Bridge) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)  # providers send no CSRF token

    def send(method: str, url: str, body: bytes, headers: dict[str, str]) -> R:
        ctype = headers.get("Content-Type", "application/octet-stream")
        r = client.generic(method, url, data=body, content_type=ctype)
        return R(r.status_code, r.content, dict(r.headers))

    run_cases(send, bridge)


def test_django_asgi(django_urls: None, bridge: smsbridge.Bridge) -> None:
    from django.core.handlers.asgi import ASGIHandler

    app = ASGIHandler()

    def send(method: str, url: str, body: bytes, headers: dict[str, str]) -> R:
        async def go() -> R:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                r = await c.request(method, url, content=body, headers=headers)
                return R(r.status_code, r.content, dict(r.headers))

        return asyncio.run(go())

    run_cases(send, bridge)


def test_django_accepts_a_bridge_factory(django_urls: None, bridge: smsbridge.Bridge) -> None:
    from django.test import Client
    from django.test.utils import override_settings
    from django.urls import include, path

    from smsbridge.webhooks.django import urls

    module = types.ModuleType("smsbridge_tests_urls_lazy")
    module.urlpatterns = [path("", include(urls(lambda: bridge)))]  # type: ignore[attr-defined]
    with override_settings(ROOT_URLCONF=module):
        r = Client().post(
            f"/webhooks/dev/status?token={SECRET}", data=GOOD, content_type="application/json"
        )
    assert r.status_code == 200


# ---------------------------------------------------------------------- Flask
def test_flask_blueprint(bridge: smsbridge.Bridge) -> None:
    flask = pytest.importorskip("flask")
    from smsbridge.webhooks.flask import blueprint

    app = flask.Flask("t")

    @app.get("/other")
    def other() -> str:
        return "mine"

    app.register_blueprint(blueprint(bridge), url_prefix="/sms")
    client = app.test_client()

    def send(method: str, url: str, body: bytes, headers: dict[str, str]) -> R:
        r = client.open(
            url, method=method, data=body, headers=headers, base_url="http://testserver"
        )
        return R(r.status_code, r.get_data(), dict(r.headers))

    run_cases(send, bridge)
    assert client.get("/other").get_data() == b"mine"


# ---------------------------------------------------------------------- FastAPI
def test_fastapi_mount(bridge: smsbridge.Bridge) -> None:
    fastapi = pytest.importorskip("fastapi")
    from smsbridge.webhooks.fastapi import mount

    app = fastapi.FastAPI()

    @app.get("/other")
    def other() -> dict[str, str]:
        return {"app": "mine"}

    mount(app, bridge, prefix="/sms")

    def send(method: str, url: str, body: bytes, headers: dict[str, str]) -> R:
        async def go() -> R:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                r = await c.request(method, url, content=body, headers=headers)
                return R(r.status_code, r.content, dict(r.headers))

        return asyncio.run(go())

    run_cases(send, bridge)
    assert json.loads(send("GET", "/other", b"", {}).body) == {"app": "mine"}
    schema = json.loads(send("GET", "/openapi.json", b"", {}).body)
    assert list(schema["paths"]) == ["/other"]


def test_fastapi_mount_at_root(bridge: smsbridge.Bridge) -> None:
    fastapi = pytest.importorskip("fastapi")
    from smsbridge.webhooks.fastapi import mount

    app = fastapi.FastAPI()
    mount(app, bridge)

    async def go() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.post(f"/webhooks/dev/status?token={SECRET}", content=GOOD)
            return r.status_code

    assert asyncio.run(go()) == 200


def test_starlette_mount_of_the_asgi_app(bridge: smsbridge.Bridge) -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.routing import Mount

    app = Starlette(routes=[Mount("/sms", app=bridge.webhook_app("asgi"))])

    def send(method: str, url: str, body: bytes, headers: dict[str, str]) -> R:
        async def go() -> R:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                r = await c.request(method, url, content=body, headers=headers)
                return R(r.status_code, r.content, dict(r.headers))

        return asyncio.run(go())

    run_cases(send, bridge)

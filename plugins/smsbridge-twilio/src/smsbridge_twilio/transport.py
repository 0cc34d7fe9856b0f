"""The twilio SDK's client, its HTTP going through the phone's ``requests`` session."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from urllib.parse import urlsplit

from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from smsbridge.http import parse_retry_after
from smsbridge.phone import HttpPhone

from .options import TWILIO_API, TwilioOptions

__all__ = ["PhoneHttpClient", "build_client"]

log = logging.getLogger("smsbridge.twilio")


class PhoneHttpClient(HttpClient):  # type: ignore[misc]  # twilio ships no types
    """The SDK's HTTP seam, sending through the phone's session (:meth:`HttpPhone.request`)."""

    def __init__(self, phone: HttpPhone) -> None:
        super().__init__(log, False, None)
        self._phone = phone
        self._local = threading.local()

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        kwargs: dict[str, Any] = {
            "params": params,
            "headers": headers,
            "auth": auth,
            "allow_redirects": allow_redirects,
        }
        json_body = (headers or {}).get("Content-Type", "").endswith("json")
        kwargs["json" if json_body else "data"] = data
        if timeout is not None:
            kwargs["timeout"] = timeout
        self._local.last = None
        resp = self._phone.request(method.upper(), uri, **kwargs)
        log.debug("%s %s -> %s", method.upper(), urlsplit(uri).path, resp.status_code)
        result = Response(resp.status_code, resp.text, resp.headers)
        self._local.last = result
        return result

    @property
    def last_response(self) -> Response | None:
        """The last response this thread got (raw body, Retry-After)."""
        return getattr(self._local, "last", None)

    def retry_after(self) -> float | None:
        """Seconds the last response asked to wait (``Retry-After``), or None."""
        resp = self.last_response
        if resp is None:
            return None
        return parse_retry_after((resp.headers or {}).get("Retry-After"))

    def last_json(self) -> Any:
        """The last response's body parsed as JSON (None when it is not JSON)."""
        resp = self.last_response
        try:
            return json.loads(resp.text) if resp is not None else None
        except ValueError:
            return None


def build_client(options: TwilioOptions, http_client: PhoneHttpClient) -> Client:
    """The SDK client for ``options`` (API key or auth token), sending through ``http_client``."""
    username, password = options.credentials()
    client = Client(username, password, options.account_sid, http_client=http_client)
    if options.base_url != TWILIO_API:
        # A custom host wins over TWILIO_EDGE / TWILIO_REGION host rewriting.
        client.edge = client.region = None
        client.api.base_url = options.base_url
    return client

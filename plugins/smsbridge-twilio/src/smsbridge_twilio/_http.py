"""The twilio SDK's HTTP seam, sending through the phone's ``requests`` session."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from twilio.http import HttpClient
from twilio.http.response import Response

from smsbridge.phone import HttpPhone

log = logging.getLogger("smsbridge.twilio")


class FormParams(dict[str, str]):
    """Form fields with every value of repeated names, as RequestValidator wants them."""

    def __init__(self, lists: Mapping[str, list[str]]) -> None:
        super().__init__({k: v[0] for k, v in lists.items()})
        self._lists = lists

    def getlist(self, name: str) -> list[str]:
        return list(self._lists.get(name, []))


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

    def last_json(self) -> Any:
        resp = self.last_response
        try:
            return json.loads(resp.text) if resp is not None else None
        except ValueError:
            return None

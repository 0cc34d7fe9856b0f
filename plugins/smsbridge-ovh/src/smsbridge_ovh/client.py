"""The ``ovh`` SDK client of a phone: signed calls with the AK/AS/CK keys.

The SDK has no public way to take an API base URL (it knows region names only) or an
HTTP session: both are set on its ``_endpoint`` and ``_session`` attributes, here only.
"""

from __future__ import annotations

from typing import Any

import ovh
import requests

from .options import OvhOptions

__all__ = ["close_client", "make_client"]


def make_client(options: OvhOptions, session: requests.Session | None = None) -> Any:
    """An ``ovh.Client`` for ``options``, over ``session`` when one is given."""
    custom = options.endpoint not in ovh.client.ENDPOINTS
    client = ovh.Client(
        endpoint="ovh-eu" if custom else options.endpoint,
        application_key=options.application_key.get_secret_value(),
        application_secret=options.application_secret.get_secret_value(),
        consumer_key=options.consumer_key.get_secret_value(),
        timeout=options.timeout,
    )
    if custom:
        client._endpoint = options.endpoint
    if session is not None:
        client._session = session
    return client


def close_client(client: Any) -> None:
    """Close the SDK's HTTP session (its keep-alive connections)."""
    client._session.close()

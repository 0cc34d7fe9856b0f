"""The boto3 clients of one SNS phone: credentials, region, timeouts and botocore retries."""

from __future__ import annotations

import threading
from typing import Any

import boto3  # type: ignore[import-untyped,unused-ignore]
import botocore.exceptions as bexc  # type: ignore[import-untyped,unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]
from pydantic import SecretStr

from smsbridge.errors import AuthError, ConfigError

from .options import SnsOptions

__all__ = ["AwsClients"]


class AwsClients:
    """One boto3 client per AWS service, made on first use (thread-safe).

    ``sns`` calls get no botocore retries: smsbridge's base retries them, and never retries
    an ambiguous publish. Log reads are idempotent: botocore retries those ``retries`` times.
    An unknown ``profile`` is :class:`AuthError`; no region at all is :class:`ConfigError`.
    """

    def __init__(
        self, phone: str, options: SnsOptions, session: boto3.session.Session | None = None
    ) -> None:
        self.phone = phone
        self.options = options
        self.session = session
        self.clients: dict[str, Any] = {}
        self.lock = threading.Lock()

    def get(self, service: str) -> Any:
        with self.lock:
            client = self.clients.get(service)
            if client is None:
                client = self.clients[service] = self.make(service)
            return client

    def make(self, service: str) -> Any:
        o = self.options
        try:
            session = self.session or boto3.session.Session(
                aws_access_key_id=reveal(o.aws_access_key_id),
                aws_secret_access_key=reveal(o.aws_secret_access_key),
                aws_session_token=reveal(o.aws_session_token),
                profile_name=o.profile,
                region_name=o.region,
            )
            config = Config(
                connect_timeout=o.timeout,
                read_timeout=o.timeout,
                retries={
                    "mode": "standard",
                    "total_max_attempts": 1 if service == "sns" else 1 + o.retries,
                },
                user_agent_extra="smsbridge",
            )
            return session.client(service, endpoint_url=o.endpoint_url, config=config)
        except bexc.ProfileNotFound:
            raise AuthError(f"AWS profile {o.profile!r} not found", phone=self.phone) from None
        except bexc.NoRegionError:
            raise ConfigError(
                f"phone '{self.phone}': no AWS region (set `region` or AWS_DEFAULT_REGION)",
                key="region",
            ) from None

    def close(self) -> None:
        with self.lock:
            clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            client.close()


def reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None

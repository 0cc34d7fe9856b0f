"""What a phone can do: the source of the capability matrix in the CLI and the docs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

__all__ = ["Capabilities"]

Mode = Literal["webhook", "poll"]


@dataclass(frozen=True)
class Capabilities:
    """Capabilities of a phone plugin (RaspiSMS's matrix and a few more)."""

    send: bool = True
    receive: bool = False
    receive_mode: Mode | None = None
    status: bool = False
    status_mode: Mode | None = None
    mms_send: bool = False
    mms_receive: bool = False
    flash: bool = False
    sender_name: bool = False
    unicode: bool = True
    long_messages: bool = True
    max_segments: int = 10
    balance: bool = False
    default_rate_limit: float | None = None
    countries: frozenset[str] | None = None  # ISO alpha-2; None = any

    def __post_init__(self) -> None:
        if self.countries is not None and not isinstance(self.countries, frozenset):
            object.__setattr__(self, "countries", frozenset(self.countries))
        if self.receive and self.receive_mode is None:
            raise ValueError("receive=True needs a receive_mode")
        if self.status and self.status_mode is None:
            raise ValueError("status=True needs a status_mode")

    def replace(self, **changes: Any) -> Capabilities:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(changes)
        return Capabilities(**data)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["countries"] = sorted(self.countries) if self.countries is not None else None
        return data

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

"""GSM 03.38 / UCS-2 detection and segment counting.

A message is GSM-7 when every character is in the GSM 03.38 basic set or its extension
table (extension characters cost two septets). Otherwise it is UCS-2, counted in UTF-16
code units (a character outside the BMP, such as most emoji, costs two).

Single segment: 160 septets (GSM-7) or 70 units (UCS-2); concatenated: 153 or 67 per
segment (the rest is the UDH). An extension character's two septets never straddle two
segments, as handsets require.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import MessageTooLong

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENDED",
    "SegmentInfo",
    "check_length",
    "count_segments",
    "detect_encoding",
    "is_gsm7",
]

Encoding = Literal["gsm7", "ucs2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
) - {"\x1b"}
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SegmentInfo:
    encoding: Encoding
    segments: int
    units: int  # septets (gsm7) or UTF-16 code units (ucs2)
    per_segment: int  # capacity of one segment in this message's shape

    def to_dict(self) -> dict[str, object]:
        return {
            "encoding": self.encoding,
            "segments": self.segments,
            "units": self.units,
            "per_segment": self.per_segment,
        }


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def detect_encoding(text: str) -> Encoding:
    return "gsm7" if is_gsm7(text) else "ucs2"


def _char_costs(text: str, encoding: Encoding) -> list[int]:
    if encoding == "gsm7":
        return [2 if ch in GSM7_EXTENDED else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(costs: list[int], capacity: int) -> int:
    """Number of segments when characters (never split) are packed greedily."""
    segments, used = 1, 0
    for cost in costs:
        if used + cost > capacity:
            segments += 1
            used = 0
        used += cost
    return segments


def count_segments(text: str, encoding: Encoding | None = None) -> SegmentInfo:
    """Encoding and number of segments ``text`` needs."""
    enc: Encoding = encoding or detect_encoding(text)
    if enc == "gsm7" and not is_gsm7(text):
        raise ValueError("text has characters outside GSM-7; use ucs2")
    costs = _char_costs(text, enc)
    units = sum(costs)
    single, multi = (160, 153) if enc == "gsm7" else (70, 67)
    if units <= single:
        return SegmentInfo(enc, 1, units, single)
    return SegmentInfo(enc, _pack(costs, multi), units, multi)


def check_length(text: str, max_segments: int, *, phone: str | None = None) -> SegmentInfo:
    """Count segments and raise :class:`MessageTooLong` above ``max_segments``."""
    info = count_segments(text)
    if info.segments > max_segments:
        where = f" on phone '{phone}'" if phone else ""
        raise MessageTooLong(
            f"message needs {info.segments} {info.encoding} segments ({info.units} units), "
            f"more than the {max_segments} allowed{where}",
            segments=info.segments,
            max_segments=max_segments,
        )
    return info

"""Accent folding and encoding control: keep French (and other Latin) text in GSM-7.

A message with a single character outside GSM 03.38 is sent in UCS-2, where a segment
holds 70 characters instead of 160. ``é è à ù`` are GSM-7, but ``ê â î ô û ë ï ç œ`` and
typographic quotes are not, so one ``ê`` can triple the cost of a French SMS. Folding
transliterates such characters to their closest GSM-7 form (``ê`` → ``e``, ``œ`` → ``oe``,
``’`` → ``'``, ``«`` → ``"``, ``…`` → ``...``, non-breaking spaces → space).

Rules (:func:`encode_text`):

- ``encoding="auto"`` (default): a GSM-7 text goes as is. With ``fold_accents=True`` a
  UCS-2 text is folded, and the folded text is used only when it is entirely GSM-7 *and*
  needs no more segments than the original (``…`` → ``...`` could). Otherwise the original
  text goes in UCS-2, unchanged: a character is never dropped silently, and what cannot be
  folded (emoji, ``°``, Arabic...) keeps the message in UCS-2.
- ``encoding="gsm7"``: always fold; a character that has no GSM-7 form raises
  :class:`EncodingError` naming it (never replaced by ``?``).
- ``encoding="ucs2"``: no folding; the message is counted (and, where the provider has an
  encoding parameter, sent) as UCS-2.

The only characters folding removes are invisible formatting characters (zero-width
space, joiners, BOM, soft hyphen); :attr:`Folding.replacements` reports them (mapped to
``""``) like every other change.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .encoding import GSM7_BASIC, GSM7_EXTENDED, SegmentInfo, count_segments, is_gsm7
from .errors import MessageError

__all__ = [
    "ENCODINGS",
    "FOLDS",
    "INVISIBLE",
    "EncodedText",
    "EncodingError",
    "EncodingMode",
    "Folding",
    "encode_for_phone",
    "encode_text",
    "fold",
    "fold_char",
]

EncodingMode = Literal["auto", "gsm7", "ucs2"]
ENCODINGS: tuple[EncodingMode, ...] = ("auto", "gsm7", "ucs2")

_GSM = GSM7_BASIC | GSM7_EXTENDED

#: Invisible formatting characters: folding removes them (and reports it).
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")


def _table() -> dict[str, str]:
    table: dict[str, str] = {}

    def put(chars: str, replacement: str) -> None:
        for ch in chars:
            table[ch] = replacement

    # Letters that canonical decomposition does not reduce to a GSM-7 base.
    put("œ", "oe")
    put("Œ", "OE")
    put("đð", "d")
    put("ĐÐ", "D")
    put("ł", "l")
    put("Ł", "L")
    put("ħ", "h")
    put("Ħ", "H")
    put("ı", "i")
    put("ŀ", "l")
    put("Ŀ", "L")
    put("ŧ", "t")
    put("Ŧ", "T")
    put("þ", "th")
    put("Þ", "Th")
    put("ſ", "s")
    put("ĳ", "ij")
    put("Ĳ", "IJ")
    put("ﬀ", "ff")
    put("ﬁ", "fi")
    put("ﬂ", "fl")
    put("ﬃ", "ffi")
    put("ﬄ", "ffl")
    put("ﬅﬆ", "st")
    put("ª", "a")
    put("º", "o")
    # ç has no lowercase GSM-7 form (the table has only Ç): fold to c, readable everywhere.
    put("ç", "c")
    # Greek capitals that GSM 03.38 renders with the Latin letter of the same shape.
    for greek, latin in zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX"):
        table[greek] = latin
    # Quotes, apostrophes, primes.
    put("‘’‚‛′‵`´ʹʼˈ‹›", "'")
    put("“”„‟″‶«»ʺ˝", '"')
    # Dashes and minus signs.
    put("‐‑‒–—―−⁃", "-")
    # Spaces (no-break, narrow no-break used before ! ? : ; in French, thin, em...).
    put("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a", " ")
    put("\u202f\u205f\u3000\t", " ")
    put("\u2028\u2029\u0085", "\n")
    # Other punctuation and symbols with an unambiguous ASCII spelling.
    put("…", "...")
    put("•‣∙◦", "-")
    put("·", ".")
    put("×", "x")
    put("÷", "/")
    put("⁄∕", "/")
    put("¦", "|")
    put("©", "(c)")
    put("®", "(R)")
    put("™", "TM")
    put("‼", "!!")
    put("⁇", "??")
    for ch in INVISIBLE:
        table[ch] = ""
    return table


#: Explicit transliterations (character → GSM-7 text). Accented Latin letters not listed
#: here are folded by canonical decomposition (NFD) when their base letter is GSM-7.
FOLDS: Mapping[str, str] = _table()


def fold_char(ch: str) -> str | None:
    """The GSM-7 form of one character, or None when it has none.

    GSM-7 characters are returned unchanged; :data:`FOLDS` is consulted next; then the
    canonical decomposition without its combining marks (``ê`` → ``e``, ``Ô`` → ``O``,
    ``ţ`` → ``t``). Compatibility decompositions are not used: ``²`` is not ``2``.
    """
    if ch in _GSM:
        return ch
    folded = FOLDS.get(ch)
    if folded is not None:
        return folded
    decomposed = unicodedata.normalize("NFD", ch)
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    if base and base != ch and all(c in _GSM for c in base):
        return base
    return None


@dataclass(frozen=True)
class Folding:
    """What :func:`fold` did to a text."""

    original: str
    text: str  # folded; still contains the unfoldable characters, unchanged
    replacements: Mapping[str, str] = field(default_factory=dict)  # char -> GSM-7 text
    unfoldable: tuple[str, ...] = ()  # distinct characters with no GSM-7 form

    @property
    def complete(self) -> bool:
        """True when the folded text is entirely GSM-7."""
        return not self.unfoldable


def fold(text: str) -> Folding:
    """Transliterate every character of ``text`` that has a GSM-7 form.

    The text is first put in NFC form (so a decomposed ``e`` + combining acute is the
    GSM-7 ``é``). Characters without a GSM-7 form are kept as they are and listed in
    :attr:`Folding.unfoldable`.
    """
    composed = unicodedata.normalize("NFC", text)
    out: list[str] = []
    replacements: dict[str, str] = {}
    unfoldable: dict[str, None] = {}
    for ch in composed:
        folded = fold_char(ch)
        if folded is None:
            unfoldable[ch] = None
            out.append(ch)
            continue
        if folded != ch:
            replacements[ch] = folded
        out.append(folded)
    return Folding(text, "".join(out), replacements, tuple(unfoldable))


class EncodingError(MessageError):
    """The text cannot be sent in the encoding asked for (``encoding: gsm7``)."""

    def __init__(self, message: str, *, characters: tuple[str, ...] = ()) -> None:
        self.characters = characters
        super().__init__(message)


@dataclass(frozen=True)
class EncodedText:
    """The text to send, its encoding and segments, and what folding changed."""

    text: str
    info: SegmentInfo
    folded: bool = False
    replacements: Mapping[str, str] = field(default_factory=dict)
    unfoldable: tuple[str, ...] = ()

    @property
    def encoding(self) -> str:
        return self.info.encoding

    @property
    def segments(self) -> int:
        return self.info.segments


def _describe(chars: tuple[str, ...]) -> str:
    return ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars)


def encode_text(
    text: str, encoding: str | None = "auto", fold_accents: bool | None = False
) -> EncodedText:
    """Choose the text and encoding to send ``text`` with (see the module docstring)."""
    mode = encoding or "auto"
    if mode not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
    if mode == "ucs2":
        return EncodedText(text, count_segments(text, "ucs2"))
    if is_gsm7(text):
        return EncodedText(text, count_segments(text, "gsm7"))
    if mode == "auto" and not fold_accents:
        return EncodedText(text, count_segments(text, "ucs2"))
    result = fold(text)
    if mode == "gsm7":
        if not result.complete:
            raise EncodingError(
                f"encoding is gsm7 but {_describe(result.unfoldable)} "
                "have no GSM-7 form; use encoding: auto to send it in UCS-2",
                characters=result.unfoldable,
            )
        return EncodedText(
            result.text, count_segments(result.text, "gsm7"), True, result.replacements
        )
    original = count_segments(text, "ucs2")
    if result.complete:
        folded = count_segments(result.text, "gsm7")
        if folded.segments <= original.segments:
            return EncodedText(result.text, folded, True, result.replacements)
    return EncodedText(text, original, False, {}, result.unfoldable)


def encode_for_phone(phone: Any, message: Any) -> EncodedText:
    """:func:`encode_text` for ``message`` sent through ``phone``.

    The message's own ``encoding`` / ``fold_accents`` win over the phone's options of the
    same names (when these attributes exist; both default to ``auto`` / no folding).
    ``Phone.prepare`` calls this so the folded text and its real segment count are what
    is sent and reported in :class:`~smsbridge.SendResult`.
    """
    options = getattr(phone, "options", None)
    encoding = getattr(message, "encoding", None) or getattr(options, "encoding", None)
    fold_accents = getattr(message, "fold_accents", None)
    if fold_accents is None:
        fold_accents = getattr(options, "fold_accents", False)
    return encode_text(getattr(message, "body", "") or "", encoding, bool(fold_accents))

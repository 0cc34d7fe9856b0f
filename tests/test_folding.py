"""Accent folding and encoding control: tables, modes, per-phone wiring, properties."""

from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smsbridge
from smsbridge.encoding import GSM7_BASIC, GSM7_EXTENDED, count_segments, is_gsm7
from smsbridge.folding import (
    FOLDS,
    INVISIBLE,
    EncodingError,
    encode_for_phone,
    encode_text,
    fold,
    fold_char,
)
from smsbridge.phone import PhoneOptions, PreparedMessage
from smsbridge.phones.dummy import DummyOptions, DummyPhone

FRENCH = (
    "Bonjour Aïcha, votre commande n’est pas encore prête : le livreur passera "
    "à 14h. Merci de votre fidélité — l’équipe « Côte Livraison »."
)


# ---------------------------------------------------------------------- tables
@pytest.mark.parametrize("ch", list("éèàùÉìòÄÖÑÜäöñüÇ"))
def test_gsm7_accents_are_kept(ch: str) -> None:
    assert fold_char(ch) == ch
    assert fold(f"caf{ch}").text == f"caf{ch}"


@pytest.mark.parametrize(
    ("ch", "expected"),
    [
        ("ê", "e"),
        ("â", "a"),
        ("î", "i"),
        ("ô", "o"),
        ("û", "u"),
        ("ë", "e"),
        ("ï", "i"),
        ("ç", "c"),
        ("œ", "oe"),
        ("Œ", "OE"),
        ("À", "A"),
        ("Ê", "E"),
        ("Ô", "O"),
        ("ÿ", "y"),
        ("ã", "a"),
        ("ţ", "t"),
        ("ł", "l"),
        ("’", "'"),
        ("‘", "'"),
        ("“", '"'),
        ("”", '"'),
        ("«", '"'),
        ("»", '"'),
        ("–", "-"),
        ("—", "-"),
        ("…", "..."),
        ("\u00a0", " "),
        ("\u202f", " "),
    ],
)
def test_characters_outside_gsm7_fold(ch: str, expected: str) -> None:
    assert ch not in GSM7_BASIC | GSM7_EXTENDED
    assert fold_char(ch) == expected


@pytest.mark.parametrize("ch", ["😀", "°", "½", "ب", "中", "\u0301", "₦"])
def test_characters_without_gsm7_form(ch: str) -> None:
    assert fold_char(ch) is None
    assert fold(f"x{ch}z").unfoldable == (ch,)


def test_every_table_entry_is_gsm7_and_only_invisible_ones_are_empty() -> None:
    for ch, replacement in FOLDS.items():
        assert ch not in GSM7_BASIC | GSM7_EXTENDED, ch
        assert is_gsm7(replacement), ch
        assert (replacement == "") == (ch in INVISIBLE), ch


def test_decomposed_accents_are_composed_first() -> None:
    decomposed = unicodedata.normalize("NFD", "été")  # e + U+0301
    assert not is_gsm7(decomposed)
    assert fold(decomposed).text == "été"
    assert fold("x\u0301").unfoldable == ("\u0301",)  # nothing to compose with


# ---------------------------------------------------------------------- modes
def test_french_message_goes_back_to_160_per_segment() -> None:
    before = count_segments(FRENCH)
    after = encode_text(FRENCH, "auto", fold_accents=True)
    assert before.encoding == "ucs2" and before.segments == 3
    assert after.encoding == "gsm7" and after.segments == 1 and after.folded
    assert "n'est pas encore prete" in after.text and "fidélité" in after.text
    assert after.replacements["’"] == "'" and after.replacements["ê"] == "e"


def test_auto_without_folding_changes_nothing() -> None:
    encoded = encode_text(FRENCH)
    assert encoded.text == FRENCH and encoded.encoding == "ucs2" and not encoded.folded


def test_unfoldable_character_keeps_the_original_text_in_ucs2() -> None:
    text = "Fête réussie 🎉 à bientôt"
    encoded = encode_text(text, "auto", fold_accents=True)
    assert encoded.text == text  # the ê is not folded either: it would not help
    assert encoded.encoding == "ucs2" and encoded.unfoldable == ("🎉",)


def test_folding_is_refused_when_it_would_cost_segments() -> None:
    text = "…" * 70  # 1 UCS-2 segment; 210 septets folded = 2 GSM-7 segments
    encoded = encode_text(text, "auto", fold_accents=True)
    assert encoded.text == text and encoded.segments == 1 and encoded.encoding == "ucs2"


def test_gsm7_mode_folds_or_names_the_characters() -> None:
    assert encode_text("Prêt ?", "gsm7").text == "Pret ?"
    with pytest.raises(EncodingError, match="U\\+00B0") as info:
        encode_text("Il fait 30° à Abidjan", "gsm7")
    assert info.value.characters == ("°",)
    assert isinstance(info.value, smsbridge.MessageError)


def test_ucs2_mode_counts_ucs2_and_never_folds() -> None:
    encoded = encode_text("Prêt", "ucs2", fold_accents=True)
    assert encoded.text == "Prêt" and encoded.encoding == "ucs2"
    plain = encode_text("a" * 100, "ucs2")
    assert plain.encoding == "ucs2" and plain.segments == 2


def test_unknown_encoding_is_an_error() -> None:
    with pytest.raises(ValueError, match="auto, gsm7, ucs2"):
        encode_text("x", "latin1")


# ---------------------------------------------------------------------- per phone
class FoldingOptions(DummyOptions):
    encoding: str = "auto"
    fold_accents: bool = False


class FoldingPhone(DummyPhone):
    """The dummy phone with the proposed ``Phone.prepare`` change: body and segments
    come from :func:`encode_for_phone` (phone options, overridden per message)."""

    Options: ClassVar[type[PhoneOptions]] = FoldingOptions

    def prepare(self, message: Any, message_id: str | None = None) -> PreparedMessage:
        prepared = super().prepare(message, message_id)
        encoded = encode_for_phone(self, message)
        from dataclasses import replace

        return replace(prepared, body=encoded.text, segments=encoded.info)


def test_per_phone_folding_reports_real_encoding_and_segments() -> None:
    folding = FoldingPhone("folding", {"fold_accents": True, "delivery": "none"})
    plain = FoldingPhone("plain", {"delivery": "none"})
    bridge = smsbridge.Bridge({"folding": folding, "plain": plain})
    try:
        result = bridge.send("+2250701020304", FRENCH, phone="folding")
        assert (result.encoding, result.segments) == ("gsm7", 1)
        assert folding.sent[-1]["body"].startswith("Bonjour Aicha")
        result = bridge.send("+2250701020304", FRENCH, phone="plain")
        assert (result.encoding, result.segments) == ("ucs2", 3)
        assert plain.sent[-1]["body"] == FRENCH
    finally:
        bridge.close()


def test_message_settings_override_the_phone() -> None:
    class Message:
        body = "Prêt"
        encoding = "ucs2"
        fold_accents = None

    phone = FoldingPhone("p", {"fold_accents": True})
    assert encode_for_phone(phone, Message()).text == "Prêt"
    Message.encoding = None  # type: ignore[assignment]
    assert encode_for_phone(phone, Message()).text == "Pret"
    Message.fold_accents = False  # type: ignore[assignment]
    assert encode_for_phone(phone, Message()).text == "Prêt"


# ---------------------------------------------------------------------- properties
_INTERESTING = (
    sorted(GSM7_BASIC | GSM7_EXTENDED)
    + sorted(FOLDS)
    + list("êâîôûëïçœÀÂÊÔÛãõţș😀🎉°½€中ب\u0301\u0327")
)
texts = st.one_of(
    st.text(alphabet=st.sampled_from(_INTERESTING), max_size=400),
    st.text(max_size=200),
)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_folding_never_increases_segments(text: str) -> None:
    encoded = encode_text(text, "auto", fold_accents=True)
    assert encoded.segments <= count_segments(text).segments
    assert encoded.info == count_segments(encoded.text, encoded.info.encoding)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_folding_never_drops_characters_silently(text: str) -> None:
    composed = unicodedata.normalize("NFC", text)
    result = fold(text)
    # Every character is accounted for: kept, or replaced by what `replacements` says.
    assert result.text == "".join(result.replacements.get(c, c) for c in composed)
    for ch, replacement in result.replacements.items():
        assert replacement or ch in INVISIBLE
    # Whatever is not GSM-7 in the output is reported as unfoldable.
    assert {c for c in result.text if not is_gsm7(c)} == set(result.unfoldable)
    encoded = encode_text(text, "auto", fold_accents=True)
    if encoded.folded:
        assert encoded.text == result.text and is_gsm7(encoded.text)
    else:
        assert encoded.text == text


@settings(max_examples=200, deadline=None)
@given(texts)
def test_gsm7_mode_is_gsm7_or_an_error(text: str) -> None:
    try:
        encoded = encode_text(text, "gsm7")
    except EncodingError as exc:
        assert exc.characters and all(fold_char(c) is None for c in exc.characters)
    else:
        assert is_gsm7(encoded.text) and encoded.encoding == "gsm7"


# ---------------------------------------------------------------------- through the Bridge
def test_wired_phone_and_message_options() -> None:
    from smsbridge.config import load_yaml, parse_config

    text = (
        "phones:\n  fr: {plugin: dummy, delivery: none, fold_accents: true}\n"
        "  strict: {plugin: dummy, delivery: none, encoding: gsm7}\n"
    )
    config = parse_config(load_yaml(text, "smsbridge.yaml"), file="smsbridge.yaml")
    with smsbridge.Bridge.from_config(config) as bridge:
        result = bridge.send("+2250701020304", FRENCH, phone="fr")
        assert (result.encoding, result.segments) == ("gsm7", 1)
        result = bridge.send("+2250701020304", FRENCH, phone="fr", fold_accents=False)
        assert (result.encoding, result.segments) == ("ucs2", 3)
        result = bridge.send("+2250701020304", "Prêt ?", phone="fr", encoding="ucs2")
        assert result.encoding == "ucs2"
        with pytest.raises(EncodingError):
            bridge.send("+2250701020304", "30° à l'ombre", phone="strict")

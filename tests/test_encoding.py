"""GSM 03.38 / UCS-2 detection and segment counting: examples at every boundary, and
properties checked with hypothesis."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsbridge.encoding import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    SegmentInfo,
    check_length,
    count_segments,
    detect_encoding,
    is_gsm7,
)
from smsbridge.errors import MessageError, MessageTooLong

# The 3GPP TS 23.038 tables, written out independently of the module under test.
BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION_TABLE = "\f^{}\\[~]|€"
EMOJI = "😀"  # U+1F600: outside the BMP, a surrogate pair in UTF-16

gsm_basic_chars = st.sampled_from(sorted(GSM7_BASIC))
gsm_ext_chars = st.sampled_from(sorted(GSM7_EXTENDED))
gsm_text = st.text(alphabet=st.one_of(gsm_basic_chars, gsm_ext_chars), max_size=700)
any_text = st.text(max_size=400)


# ---------------------------------------------------------------------- the tables
def test_tables_are_gsm_03_38() -> None:
    assert len(BASIC_TABLE) == 128  # the escape code 0x1B is not a character
    assert frozenset(BASIC_TABLE) - {"\x1b"} == GSM7_BASIC
    assert frozenset(EXTENSION_TABLE) == GSM7_EXTENDED
    assert not GSM7_BASIC & GSM7_EXTENDED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, world!", "gsm7"),
        ("Prix: 10€ {promo} [x] ~ | ^ \\", "gsm7"),
        ("àéèùìòÇ Ñ ö ß ¿¡ §", "gsm7"),
        ("", "gsm7"),
        ("ç", "ucs2"),  # only capital Ç is in the basic table
        ("ê", "ucs2"),  # French circumflex: not in GSM 03.38
        ("Привет", "ucs2"),
        ("مرحبا", "ucs2"),
        (EMOJI, "ucs2"),
        ("\x1b", "ucs2"),  # the escape code alone is not text
        ("`", "ucs2"),
    ],
)
def test_detect_encoding(text: str, expected: str) -> None:
    assert detect_encoding(text) == expected
    assert is_gsm7(text) is (expected == "gsm7")
    assert count_segments(text).encoding == expected


# ---------------------------------------------------------------------- GSM-7 boundaries
@pytest.mark.parametrize(
    ("length", "segments"),
    [(0, 1), (1, 1), (159, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_segment_boundaries(length: int, segments: int) -> None:
    info = count_segments("a" * length)
    assert info == SegmentInfo("gsm7", segments, length, 160 if segments == 1 else 153)


@pytest.mark.parametrize(("ext", "segments"), [(80, 1), (81, 2)])
def test_extension_characters_cost_two_septets(ext: int, segments: int) -> None:
    info = count_segments("€" * ext)
    assert info.encoding == "gsm7"
    assert info.units == 2 * ext
    assert info.segments == segments


def test_extension_characters_never_straddle_two_segments() -> None:
    # 152 septets, then '€' (2 septets) does not fit in the 153rd: it opens segment 2
    fits = "a" * 152 + "€" + "a" * 151  # 305 septets: 152 | 2 + 151
    assert (count_segments(fits).units, count_segments(fits).segments) == (305, 2)
    spills = "a" * 152 + "€" + "a" * 152  # 306 septets: 152 | 2 + 151 | 1
    assert (count_segments(spills).units, count_segments(spills).segments) == (306, 3)
    assert count_segments("a" * 306).segments == 2  # the same length without the gap


def test_extension_character_at_single_segment_edge() -> None:
    assert count_segments("a" * 158 + "€").segments == 1  # 160 septets exactly
    info = count_segments("a" * 159 + "€")  # 161 septets: concatenated
    assert (info.units, info.segments, info.per_segment) == (161, 2, 153)


# ---------------------------------------------------------------------- UCS-2 boundaries
@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (69, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_segment_boundaries(length: int, segments: int) -> None:
    info = count_segments("ê" * length)
    assert info == SegmentInfo("ucs2", segments, length, 70 if segments == 1 else 67)


def test_one_non_gsm_character_switches_the_whole_message_to_ucs2() -> None:
    assert count_segments("a" * 160).segments == 1
    info = count_segments("a" * 159 + "ê")
    assert info.encoding == "ucs2"
    assert info.segments == 3  # 160 UCS-2 units: 67 + 67 + 26


def test_emoji_outside_the_bmp_count_as_two_units() -> None:
    assert count_segments(EMOJI).units == 2
    assert count_segments(EMOJI * 35) == SegmentInfo("ucs2", 1, 70, 70)
    info = count_segments(EMOJI * 36)
    assert (info.units, info.segments) == (72, 2)
    # a BMP symbol costs one unit
    assert count_segments("☺" * 70).segments == 1


def test_surrogate_pairs_never_straddle_two_segments() -> None:
    # 66 units then an emoji (2 units): it cannot be split at unit 67
    text = "ê" * 66 + EMOJI + "ê" * 66
    info = count_segments(text)
    assert info.units == 134
    assert info.segments == 3  # a plain 134-unit text would need only 2
    assert count_segments("ê" * 134).segments == 2


def test_forcing_gsm7_on_non_gsm_text_is_refused() -> None:
    assert count_segments("abc", "ucs2").encoding == "ucs2"
    with pytest.raises(ValueError, match="outside GSM-7"):
        count_segments("ê", "gsm7")


def test_segment_info_to_dict() -> None:
    assert count_segments("hi").to_dict() == {
        "encoding": "gsm7",
        "segments": 1,
        "units": 2,
        "per_segment": 160,
    }


# ---------------------------------------------------------------------- check_length
def test_check_length_allows_up_to_max_segments() -> None:
    info = check_length("a" * 153 * 3, 3)
    assert info.segments == 3


def test_check_length_raises_message_too_long_above_max() -> None:
    with pytest.raises(MessageTooLong) as caught:
        check_length("a" * (153 * 3 + 1), 3, phone="orange-ci")
    err = caught.value
    assert isinstance(err, MessageError) and isinstance(err, ValueError)
    assert (err.segments, err.max_segments) == (4, 3)
    assert "4 gsm7 segments" in str(err) and "orange-ci" in str(err)
    assert "3 allowed" in str(err)


def test_check_length_single_segment_phone() -> None:
    assert check_length("ê" * 70, 1).segments == 1
    with pytest.raises(MessageTooLong, match="2 ucs2 segments"):
        check_length("ê" * 71, 1)


# ---------------------------------------------------------------------- properties
@settings(max_examples=200, deadline=None)
@given(any_text)
def test_gsm7_detection_agrees_with_the_charset(text: str) -> None:
    expected = all(ch in BASIC_TABLE.replace("\x1b", "") or ch in EXTENSION_TABLE for ch in text)
    assert is_gsm7(text) is expected
    assert detect_encoding(text) == ("gsm7" if expected else "ucs2")


@settings(max_examples=200, deadline=None)
@given(any_text, any_text)
def test_segments_are_monotonic_in_length(text: str, more: str) -> None:
    a, b = count_segments(text), count_segments(text + more)
    # holds across a switch to UCS-2 too: a UCS-2 segment carries fewer characters
    # (70/67) than a GSM-7 one, even one full of 2-septet characters (80/76)
    assert b.segments >= a.segments
    if a.encoding == b.encoding:
        assert b.units >= a.units


@settings(max_examples=200, deadline=None)
@given(gsm_text)
def test_gsm7_units_count_extension_characters_twice(text: str) -> None:
    info = count_segments(text)
    assert info.encoding == "gsm7"
    assert info.units == len(text) + sum(ch in EXTENSION_TABLE for ch in text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=gsm_basic_chars, max_size=800))
def test_gsm7_basic_segments_are_ceil_of_units(text: str) -> None:
    info = count_segments(text)
    if len(text) <= 160:
        assert (info.segments, info.per_segment) == (1, 160)
    else:
        assert info.segments == math.ceil(len(text) / 153)
        assert info.per_segment == 153


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x100, max_codepoint=0xD7FF), max_size=400))
def test_ucs2_bmp_segments_are_ceil_of_units(text: str) -> None:
    info = count_segments(text)
    assert info.encoding == "ucs2" or text == ""
    units = len(text)
    assert info.units == units
    expected = 1 if units <= 70 else math.ceil(units / 67)
    assert info.segments == expected


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_units_are_utf16_code_units_for_ucs2(text: str) -> None:
    info = count_segments(text)
    if info.encoding == "ucs2":
        assert info.units == len(text.encode("utf-16-le", "surrogatepass")) // 2


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_segments_hold_every_unit_and_waste_less_than_one_char_each(text: str) -> None:
    info = count_segments(text)
    capacity = info.segments * info.per_segment
    assert info.units <= capacity
    if info.segments > 1:
        # greedy packing wastes at most one unit per segment boundary (a 2-unit
        # character that did not fit), so never a whole segment
        assert info.units > (info.segments - 1) * info.per_segment - (info.segments - 1)


@settings(max_examples=100, deadline=None)
@given(any_text, st.integers(min_value=1, max_value=10))
def test_check_length_agrees_with_count_segments(text: str, max_segments: int) -> None:
    needed = count_segments(text).segments
    if needed <= max_segments:
        assert check_length(text, max_segments).segments == needed
    else:
        with pytest.raises(MessageTooLong):
            check_length(text, max_segments)

from __future__ import annotations

import pytest

from prefloop_collector.text import normalize, parse_threshold, question_key


@pytest.mark.parametrize("text", ["45%", "0.45", "45", " 45 % ".replace(" ", "")])
def test_a_threshold_is_read_as_percent_fraction_or_number(text: str) -> None:
    assert parse_threshold(text) == pytest.approx(0.45)


@pytest.mark.parametrize("text", ["abc", "150%", "-3"])
def test_a_bad_threshold_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="70%|outside"):
        parse_threshold(text)


def test_questions_are_the_same_after_nfc_whitespace_and_case() -> None:
    decomposed = "\u1100\u1161 Creeper?"  # 가 in jamo
    assert normalize(decomposed) == normalize("가   creeper?")
    assert question_key("Q", "minecraft") != question_key("Q", "palworld")

"""Key-fact scoring for Korean and English, and the judge's reply parsing."""

from __future__ import annotations

import pytest

from prefloop_server.qa.scoring import fact_found, key_fact_recall, normalize, parse_judge_score


@pytest.mark.parametrize(
    ("answer", "fact"),
    [
        ("크리퍼는 고양이를 두려워합니다.", "고양이"),  # particle attached to the noun
        ("크리퍼는 고 양 이 를 싫어해요", "고양이"),  # stray spaces
        ("Ｐａｒｉｓ is the capital", "paris"),  # full-width letters (NFKC)
        ("A spider has 8 legs.", "8|eight"),
        ("It has EIGHT legs!", "8|eight"),
        ("트레이서의 궁극기는 펄스 폭탄입니다", "펄스폭탄"),
    ],
)
def test_facts_are_found_through_normalisation(answer: str, fact: str) -> None:
    assert fact_found(answer, fact)


@pytest.mark.parametrize(
    ("answer", "fact"),
    [
        ("This is a category of items", "cat"),  # Latin facts match whole words only
        ("크리퍼는 개를 두려워합니다", "고양이"),
        ("A spider has 18 legs", "8"),
    ],
)
def test_facts_are_not_found_by_accident(answer: str, fact: str) -> None:
    assert not fact_found(answer, fact)


def test_recall_is_the_share_of_facts_found() -> None:
    assert key_fact_recall("램볼은 평원에 살며 운반을 한다", ["평원", "운반", "수작업"]) == pytest.approx(2 / 3)
    assert key_fact_recall("anything", []) == 1.0


def test_normalize_drops_punctuation_and_case() -> None:
    assert normalize("Hello, WORLD!!  (ok)") == "hello world ok"


def test_judge_scores_are_read_from_json_or_x_of_10() -> None:
    assert parse_judge_score('{"score": 7, "reason": "close"}') == pytest.approx(0.7)
    assert parse_judge_score("I'd give it 9/10.") == pytest.approx(0.9)
    assert parse_judge_score("no idea") is None

"""Each pre-training check passes on good data and fails (or warns) on the fault it exists for."""

from __future__ import annotations

from prefloop_core.contracts import Verdict
from prefloop_collector.checks import (
    Candidate,
    answer_length,
    blocking,
    chosen_vs_rejected,
    duplicate_questions,
    game_balance,
    min_pairs,
    run_checks,
)
from prefloop_collector.settings import CollectorSettings

S = CollectorSettings(collector_min_pairs=10, collector_warn_pairs=50)
GAMES = ["minecraft", "palworld", "overwatch"]


def pairs(n: int) -> list[Candidate]:
    return [Candidate(i, f"question {i}", GAMES[i % 3], f"right {i}", f"wrong answer number {i} here") for i in range(n)]


def test_min_pairs_fails_under_the_hard_minimum_and_warns_under_the_recommended() -> None:
    assert min_pairs(pairs(9), S).verdict is Verdict.FAIL
    assert "review more with `prefloop review`" in min_pairs(pairs(9), S).detail
    assert min_pairs(pairs(20), S).verdict is Verdict.WARN
    assert min_pairs(pairs(60), S).verdict is Verdict.PASS


def test_duplicate_questions_are_found_after_normalisation() -> None:
    data = pairs(12) + [Candidate(99, "  QUESTION 3 ", "minecraft", "x", "y")]
    result = duplicate_questions(data, S)
    assert result.verdict is Verdict.FAIL and "3, 99" in result.detail
    assert duplicate_questions(pairs(12), S).verdict is Verdict.PASS


def test_chosen_equal_or_nearly_equal_to_rejected_fails() -> None:
    data = pairs(12) + [Candidate(50, "q50", "palworld", "The answer is Paris.", "the answer is paris")]
    assert chosen_vs_rejected(data, S).verdict is Verdict.FAIL
    assert chosen_vs_rejected(pairs(12), S).verdict is Verdict.PASS


def test_empty_or_over_long_answers_fail() -> None:
    long = "가" * (S.collector_max_text_chars + 1)
    assert answer_length(pairs(12) + [Candidate(7, "q", "minecraft", " ", "x")], S).verdict is Verdict.FAIL
    assert answer_length(pairs(12) + [Candidate(8, "q", "minecraft", long, "x")], S).verdict is Verdict.FAIL
    assert answer_length(pairs(12), S).verdict is Verdict.PASS


def test_game_balance_is_a_warning_by_default_and_a_gate_when_configured() -> None:
    lopsided = [Candidate(i, f"q{i}", "minecraft", "a", "b") for i in range(12)]
    assert game_balance(lopsided, S).verdict is Verdict.WARN
    strict = S.model_copy(update={"collector_hard_checks": [*S.collector_hard_checks, "game_balance"]})
    result = game_balance(lopsided, strict)
    assert result.verdict is Verdict.FAIL and "under 30%: palworld, overwatch" in result.detail
    assert game_balance(pairs(12), S).verdict is Verdict.PASS


def test_only_failed_hard_checks_block() -> None:
    assert blocking(run_checks(pairs(60), S)) == []
    assert [c.name for c in blocking(run_checks(pairs(3), S))] == ["min_pairs"]

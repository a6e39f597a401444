"""The gate's verdict as a pure function of two runs' records and the rule."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from scipy import stats

from prefloop_core.contracts import GateMethod, GateRule, QARecord
from prefloop_server.qa.gate import chart_png, compare, exact_p, markdown

NOW = datetime.now(timezone.utc)


def record(
    model: str, qid: str, score: float, split: str = "train", game: str = "minecraft", protected: bool = False
) -> QARecord:
    return QARecord(
        record_id=f"{model}-{qid}",
        asked_at=NOW,
        question_id=qid,
        question=qid,
        answer="a",
        score=score,
        model=model,
        game=game,
        split=split,
        protected=protected,
    )


def paired(
    fixed: int, regressed: int, right: int = 0, wrong: int = 0, split: str = "train"
) -> tuple[list[QARecord], list[QARecord]]:
    """Live and candidate records with so many questions fixed, regressed, right on both and wrong on both."""
    pairs = [(0.0, 1.0)] * fixed + [(1.0, 0.0)] * regressed + [(1.0, 1.0)] * right + [(0.0, 0.0)] * wrong
    live = [record("live", f"{split}-{i}", a, split) for i, (a, _) in enumerate(pairs)]
    cand = [record("cand", f"{split}-{i}", b, split) for i, (_, b) in enumerate(pairs)]
    return live, cand


def test_the_new_users_demo_22_fixed_against_7_regressed_is_accepted() -> None:
    """The round that was refused on another CPU for 7 regressions against a limit of 6."""
    live, cand = paired(fixed=22, regressed=7, right=16, wrong=27)
    verdict = compare(live, cand)
    assert verdict.accepted
    assert (len(verdict.fixed), len(verdict.regressions)) == (22, 7)
    assert verdict.p_value == pytest.approx(0.0041, abs=1e-4)
    assert verdict.reasons[0] == "22 fixed against 7 regressed: better beyond chance (p = 0.004, needs below 0.05)"
    old = compare(live, cand, GateRule(method=GateMethod.COUNT))
    assert not old.accepted and "7 previously correct questions regress (at most 6)" in old.reasons[0]


def test_a_requantization_that_teaches_nothing_9_fixed_against_5_regressed_is_refused() -> None:
    """Q8_0 against Q4_K_M of the same weights: +5.6 points, which the count rule accepted."""
    live, cand = paired(fixed=9, regressed=5, right=18, wrong=40)
    verdict = compare(live, cand)
    assert not verdict.accepted
    assert verdict.p_value == pytest.approx(0.212, abs=1e-3)
    assert verdict.reasons == ["9 fixed against 5 regressed: not better beyond chance (p = 0.21, needs below 0.05)"]
    assert compare(live, cand, GateRule(method=GateMethod.COUNT)).accepted


def test_the_p_value_is_the_one_sided_binomial_tail_on_the_discordant_questions() -> None:
    for fixed, regressed in [(1, 0), (5, 0), (6, 1), (10, 10), (3, 12), (30, 14)]:
        expected = stats.binomtest(fixed, fixed + regressed, 0.5, alternative="greater").pvalue
        live, cand = paired(fixed, regressed, right=5, wrong=5)
        assert compare(live, cand).p_value == pytest.approx(expected)
    # Questions right or wrong on both sides do not enter the test: the same p whatever their number.
    assert compare(*paired(8, 1, right=0)).p_value == compare(*paired(8, 1, right=60, wrong=40)).p_value
    assert exact_p(0, 0) == 1.0


def test_nothing_changed_is_refused_with_its_reason() -> None:
    live, cand = paired(fixed=0, regressed=0, right=10, wrong=10)
    verdict = compare(live, cand)
    assert not verdict.accepted and verdict.p_value == 1.0
    assert "nothing shows the candidate is better" in verdict.reasons[0]
    assert verdict.delta_interval == (0.0, 0.0)


def test_the_significance_is_configurable() -> None:
    live, cand = paired(fixed=9, regressed=3, right=10)  # p = 0.073
    assert not compare(live, cand).accepted
    assert compare(live, cand, GateRule(alpha=0.1)).accepted


def heldout(fixed: int, regressed: int, right: int = 0, wrong: int = 0) -> tuple[list[QARecord], list[QARecord]]:
    return paired(fixed, regressed, right, wrong, split="heldout")


def test_held_out_questions_worse_beyond_chance_refuse_a_candidate_better_on_the_trained_ones() -> None:
    tl, tc = paired(fixed=20, regressed=0, wrong=10)
    hl, hc = heldout(fixed=0, regressed=6, right=18)  # p_worse = 1/64
    verdict = compare(tl + hl, tc + hc)
    assert not verdict.accepted and verdict.p_value < 0.01  # better beyond chance over all 54 questions
    assert verdict.heldout is not None and verdict.heldout.regressed == 6 and verdict.heldout.p_worse == pytest.approx(1 / 64)
    assert verdict.reasons == [
        "held out (24 questions): 100.0% -> 75.0%, 0 fixed, 6 regressed: worse beyond chance (p = 0.016, refused below 0.05)"
    ]


def test_a_held_out_drop_larger_than_allowed_refuses_even_when_not_significant() -> None:
    tl, tc = paired(fixed=20, regressed=0, wrong=10)
    hl, hc = heldout(fixed=1, regressed=4, right=5)  # p_worse 0.19, but 30 points down on 10 questions
    verdict = compare(tl + hl, tc + hc)
    assert not verdict.accepted and "a drop of 30.0 points, more than the 10.0 allowed" in verdict.reasons[0]
    assert compare(tl + hl, tc + hc, GateRule(max_heldout_drop=0.3)).accepted


def test_held_out_within_noise_passes_and_says_so() -> None:
    tl, tc = paired(fixed=20, regressed=3, wrong=10)
    hl, hc = heldout(fixed=2, regressed=3, right=15, wrong=4)
    verdict = compare(tl + hl, tc + hc)
    assert verdict.accepted
    assert [c.name for c in verdict.checks] == ["better", "held-out"]
    assert verdict.reasons[1].startswith("held out (24 questions): 75.0% -> 70.8%, 2 fixed, 3 regressed: not worse")


def test_a_protected_question_that_regresses_refuses_whatever_the_rest_shows() -> None:
    live, cand = paired(fixed=30, regressed=0, wrong=5)
    live.append(record("live", "refund-policy", 1.0, protected=True))
    cand.append(record("cand", "refund-policy", 0.5, protected=True))
    for rule in (GateRule(), GateRule(method=GateMethod.COUNT)):
        verdict = compare(live, cand, rule)
        assert not verdict.accepted and verdict.protected_regressions == ["refund-policy"]
        assert verdict.reasons == ["protected question(s) regress: refund-policy"]
    # A protected question that stays right, or gets better, is no obstacle.
    cand[-1] = record("cand", "refund-policy", 1.0, protected=True)
    assert compare(live, cand).accepted


def test_partial_scores_enter_the_test_as_right_or_wrong_and_the_accuracy_as_mean_scores() -> None:
    live = [record("live", "a", 0.5), record("live", "b", 0.6), record("live", "c", 0.7)]
    cand = [record("cand", "a", 0.69), record("cand", "b", 1.0), record("cand", "c", 0.8)]
    verdict = compare(live, cand)
    assert verdict.fixed == ["b"] and verdict.regressions == []  # a: 0.5 -> 0.69 is better, still wrong
    assert verdict.wins == ["a", "b", "c"]
    assert verdict.delta == pytest.approx((0.19 + 0.4 + 0.1) / 3)
    table = markdown(verdict)
    assert "| b | minecraft | train | 0.60 | 1.00 | **fixed** |" in table
    assert "| a | minecraft | train | 0.50 | 0.69 | better |" in table


def test_the_interval_of_the_accuracy_change_is_the_paired_t_interval() -> None:
    live, cand = paired(fixed=12, regressed=4, right=20, wrong=36)
    verdict = compare(live, cand)
    changes = [1.0] * 12 + [-1.0] * 4 + [0.0] * 56
    low, high = stats.ttest_1samp(changes, 0.0).confidence_interval(0.95)
    assert verdict.delta_interval == (pytest.approx(low), pytest.approx(high))
    assert low < verdict.delta < high
    assert f"95% interval {100 * low:+.1f} to {100 * high:+.1f}" in markdown(verdict)


def test_a_question_the_candidate_failed_to_answer_counts_as_wrong() -> None:
    live = [record("live", "a", 1.0), record("live", "b", 1.0)]
    verdict = compare(live, [record("cand", "a", 1.0)], GateRule(method=GateMethod.COUNT, min_delta=-1, max_regressions=0))
    assert verdict.regressions == ["b"] and not verdict.accepted


def test_the_count_rule_is_the_first_rule() -> None:
    same = [record("live", "a", 1.0), record("live", "b", 0.0)]
    tie = [record("cand", "a", 1.0), record("cand", "b", 0.0)]
    assert not compare(same, tie, GateRule(method=GateMethod.COUNT)).accepted
    assert compare(same, tie, GateRule(method=GateMethod.COUNT, min_delta=0.0)).accepted


def test_the_markdown_carries_the_evidence_and_the_chart_is_a_png() -> None:
    verdict = compare(*paired(fixed=22, regressed=7, right=16, wrong=27))
    table = markdown(verdict)
    assert table.startswith("## QA gate: ACCEPTED")
    assert "passed: 22 fixed against 7 regressed: better beyond chance (p = 0.004" in table
    assert "fixed 22 · regressed 7" in table and "one-sided exact test p = 0.004" in table
    png = chart_png(verdict)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

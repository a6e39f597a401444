"""The gate's verdict as a pure function of two runs' records and the rule."""

from __future__ import annotations

from datetime import datetime, timezone

from prefloop_core.contracts import QARecord
from prefloop_server.qa.gate import GateRule, chart_png, compare, markdown


def records(model: str, scores: dict[str, float]) -> list[QARecord]:
    now = datetime.now(timezone.utc)
    return [
        QARecord(record_id=f"{model}-{qid}", asked_at=now, question_id=qid, question=qid, answer="a", score=score,
                 model=model, game="minecraft" if i % 2 else "palworld", split="train" if i < 4 else "heldout")
        for i, (qid, score) in enumerate(scores.items())
    ]


def test_a_better_candidate_is_accepted() -> None:
    live = records("live", {"a": 0.0, "b": 0.0, "c": 1.0, "d": 1.0, "e": 1.0, "f": 0.5})
    cand = records("cand", {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 1.0, "f": 0.5})
    verdict = compare(live, cand)
    assert verdict.accepted and verdict.delta > 0.3 and verdict.fixed == ["a", "b"] and verdict.regressions == []


def test_a_worse_candidate_is_refused_with_its_regressions() -> None:
    live = records("live", {q: 1.0 for q in "abcdefg"} | {q: 0.0 for q in "hijklmnop"})
    cand = records("cand", {q: 0.0 for q in "abcdefg"} | {q: 1.0 for q in "hijklmnop"})
    verdict = compare(live, cand)
    assert not verdict.accepted and verdict.delta > 0.1  # better on average, but it broke too much
    assert verdict.regressions == list("abcdefg")
    assert verdict.reasons == ["7 previously correct questions regress (at most 6): a, b, c, d, e, f, g"]
    assert "| a | palworld | 1.00 | 0.00 |" in markdown(verdict)


def test_a_tie_is_refused_by_the_default_margin() -> None:
    same = {"a": 1.0, "b": 0.0}
    verdict = compare(records("live", same), records("cand", same))
    assert not verdict.accepted and "not at least live" in verdict.reasons[0]


def test_the_rule_is_configurable() -> None:
    same = {"a": 1.0, "b": 0.0}
    assert compare(records("live", same), records("cand", same), GateRule(min_delta=0.0)).accepted


def test_a_question_the_candidate_failed_to_answer_counts_as_wrong() -> None:
    live = records("live", {"a": 1.0, "b": 1.0})
    cand = records("cand", {"a": 1.0})
    verdict = compare(live, cand, GateRule(min_delta=-1, max_regressions=0))
    assert verdict.regressions == ["b"] and not verdict.accepted


def test_the_chart_is_a_png() -> None:
    verdict = compare(records("live", {"a": 0.0, "b": 1.0}), records("cand", {"a": 1.0, "b": 1.0}))
    png = chart_png(verdict)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

"""Which pairs a snapshot makes from the reviewed items."""

from __future__ import annotations

from collector_helpers import record

from prefloop_core.prompts import PromptTemplate
from prefloop_collector.queue import ReviewQueue
from prefloop_collector.snapshot import build_pairs, reviewed_items


def _wrong(n: int, model: str, answer: str, score: float) -> object:
    return record(n, score=score, model=model).model_copy(update={"record_id": f"rec-{n}-{model}-{answer}", "answer": answer})


def test_each_model_that_answered_a_reviewed_question_wrong_adds_a_pair_against_its_worst_answer(queue: ReviewQueue) -> None:
    queue.ingest([_wrong(1, "base", "모름", 0.0), _wrong(1, "base", "개를 두려워함", 0.3), _wrong(2, "base", "모름", 0.0)])
    for item in queue.items():
        queue.save_chosen(item.item_id, "고양이를 두려워합니다.", "minji", item.version)
    first = build_pairs(reviewed_items(queue), PromptTemplate())
    assert [(p.item_id, p.rejected[0].content) for p in first] == [(1, "모름"), (2, "모름")]

    # The model trained on those pairs, now served, still gets question 1 wrong (twice): one new pair, on its answer.
    queue.ingest([_wrong(1, "round-1", "오셀롯만 두려워함", 0.2), _wrong(1, "round-1", "늑대", 0.1)])
    second = build_pairs(reviewed_items(queue), PromptTemplate())
    assert [(p.item_id, p.rejected[0].content) for p in second] == [(1, "모름"), (1, "늑대"), (2, "모름")]
    assert {p.chosen[0].content for p in second} == {"고양이를 두려워합니다."}
    assert second[0].prompt == first[0].prompt

"""The bundled QA sets and reviewer batches fit together: each week's batch answers that week's train questions."""

from __future__ import annotations

from prefloop_flows.bundled import NEW_QUESTIONS_2, REVIEWER_ANSWERS, games_v2, load_qa_set, load_reviewer_answers


def test_games_v2_adds_new_train_questions_and_keeps_the_held_out_ones() -> None:
    v1, v2, new = load_qa_set(), games_v2(), load_qa_set(NEW_QUESTIONS_2)
    assert v2.questions[: len(v1.questions)] == v1.questions and len(v2.questions) == len(v1.questions) + len(new.questions)
    assert len({q.id for q in v2.questions}) == len(v2.questions)
    assert len({q.question for q in v2.questions}) == len(v2.questions)
    assert {q.split for q in new.questions} == {"train"} and {q.game for q in new.questions} == {q.game for q in v1.questions}


def test_batch_one_answers_games_v1s_train_questions_and_batch_two_the_new_ones() -> None:
    v1, new = load_qa_set(), load_qa_set(NEW_QUESTIONS_2)
    first, second = (load_reviewer_answers(path) for path in REVIEWER_ANSWERS)
    assert [a.question_id for a in first.answers] == [q.id for q in v1.questions if q.split == "train"]
    assert [a.question_id for a in second.answers] == [q.id for q in new.questions]
    assert first.reviewer != second.reviewer

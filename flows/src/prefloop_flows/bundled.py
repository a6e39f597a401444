"""What ships with the flows: the QA set `games-v1`, the questions a second week adds to it (`games-v2`), and the
reviewer answers that stand in for a person in the demo, one batch per week."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from prefloop_core.contracts import QASet

DATA = Path(__file__).parent / "data"
QA_SET = DATA / "qa_set.json"  # games-v1: 72 questions, 48 train / 24 held out
NEW_QUESTIONS_2 = DATA / "qa_set_new_2.json"  # 24 train questions the second week brings; held out stays the same
# Batch 1 answers games-v1's train questions, batch 2 the new ones.
REVIEWER_ANSWERS = (DATA / "reviewer_answers.json", DATA / "reviewer_answers_2.json")


class ReviewerAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question_id: str = Field(min_length=1)
    chosen: str = Field(min_length=1)


class ReviewerAnswers(BaseModel):
    """A batch of corrected answers, keyed by QA-set question id, written by one (bundled) reviewer."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = 1
    reviewer: str = Field(min_length=1)
    answers: list[ReviewerAnswer]


def load_qa_set(path: Path | None = None) -> QASet:
    return QASet.model_validate_json((path or QA_SET).read_text(encoding="utf-8"))


def games_v2() -> QASet:
    """games-v1 and the second week's new train questions."""
    v1, new = load_qa_set(), load_qa_set(NEW_QUESTIONS_2)
    return v1.model_copy(update={"name": "games-v2", "questions": v1.questions + new.questions})


def load_reviewer_answers(path: Path) -> ReviewerAnswers:
    return ReviewerAnswers.model_validate(json.loads(path.read_text(encoding="utf-8")))

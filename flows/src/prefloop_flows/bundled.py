"""What ships with the flows: the QA set `games-v1` and the reviewer answers that stand in for a person in the demo."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from prefloop_core.contracts import QASet

DATA = Path(__file__).parent / "data"
QA_SET = DATA / "qa_set.json"
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


def load_reviewer_answers(path: Path) -> ReviewerAnswers:
    return ReviewerAnswers.model_validate(json.loads(path.read_text(encoding="utf-8")))

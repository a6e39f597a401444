"""A QA record: one question put to a served model, its answer, and the answer's score."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from prefloop_core.contracts.common import ChatMessage, Contract, Text
from prefloop_core.ids import Slug


class QARecord(Contract):
    """One answered question with its score; the QA runner writes these as JSONL, the collector reads them."""

    record_id: str = Field(description="Stable id of this answer (hash of question id, model, answer and time).")
    asked_at: AwareDatetime = Field(description="When the question was asked, with its timezone.")
    question_id: str = Field(description="Id of the question in its QA set.")
    question: Text = Field(description="The user's question as asked.")
    game: Slug | None = Field(default=None, description="Game the question is about (minecraft, palworld, overwatch, ...).")
    language: str | None = Field(default=None, description="Language code of the question, e.g. 'ko' or 'en'.")
    context: str | None = Field(default=None, description="Retrieved wiki passage given to the model, if any.")
    prompt: list[ChatMessage] = Field(
        default_factory=list, description="The exact chat messages sent (built from the RAG template)."
    )
    answer: str = Field(description="The model's answer.")
    reference: str | None = Field(default=None, description="Reference answer from the QA set.")
    key_facts: list[str] = Field(default_factory=list, description="Facts a correct answer must contain.")
    score: float = Field(ge=0.0, le=1.0, description="Accuracy of the answer in [0, 1].")
    scorer: str = Field(default="key_facts", description="Which scorer produced `score`.")
    model: str = Field(description="Release tag (or model name) that answered.")
    qa_set: str | None = Field(default=None, description="Name of the QA set the question came from.")
    split: Literal["train", "heldout"] | None = Field(default=None, description="The question's split in its QA set.")
    protected: bool = Field(
        default=False,
        description="A protected question of its QA set: the gate refuses a "
        "candidate that gets it wrong where the live model got it right.",
    )
    latency_s: float | None = Field(default=None, ge=0, description="Seconds the answer took.")


class QAQuestion(Contract):
    """One question of a QA set: what to ask, what a correct answer must contain."""

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    question: Text
    game: Slug | None = None
    language: str | None = Field(default=None, description="'ko', 'en', ...")
    context: str | None = Field(default=None, description="Retrieved wiki passage put into the RAG prompt.")
    reference: str | None = Field(default=None, description="A reference answer (for people, embeddings, judges).")
    key_facts: list[str] = Field(
        min_length=1,
        description="Facts a correct answer contains; `a|b` accepts either spelling (e.g. 'Paris|파리').",
    )
    split: Literal["train", "heldout"] | None = Field(
        default=None, description="train: its failures go to review; heldout: only measured."
    )
    protected: bool = Field(
        default=False,
        description="A regression on this question (right on live, wrong on the candidate) refuses "
        "the candidate, whatever the rest shows: for answers that must never break (safety, pricing, ...).",
    )


class QASet(Contract):
    """A named list of questions: the same set is asked of every model that is compared."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    questions: list[QAQuestion] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> QASet:
        seen: set[str] = set()
        dupes = sorted({q.id for q in self.questions if q.id in seen or seen.add(q.id)})  # type: ignore[func-returns-value]
        if dupes:
            raise ValueError(f"question ids must be unique; repeated: {', '.join(dupes)}")
        return self


class CandidateRecord(Contract):
    """A sampled answer that scored badly, with the best sampled answer as a suggestion to confirm.

    Candidate generation (the DPO guide's method 3) writes these; the collector queues `record`
    as a rejected answer and shows `suggestion` to the reviewer, who confirms or rewrites it.
    """

    record: QARecord
    suggestion: str | None = Field(default=None, description="The best-scoring sampled answer, if it scored well.")
    suggestion_score: float | None = Field(default=None, ge=0, le=1)

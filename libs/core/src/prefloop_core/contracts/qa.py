"""A QA record: one question put to a served model, its answer, and the answer's score."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from prefloop_core.contracts.common import ChatMessage, Contract
from prefloop_core.ids import Slug


class QARecord(Contract):
    """One answered question with its score; the QA runner writes these as JSONL, the collector reads them."""

    record_id: str = Field(description="Stable id of this answer (hash of question id, model, answer and time).")
    asked_at: AwareDatetime = Field(description="When the question was asked, with its timezone.")
    question_id: str = Field(description="Id of the question in its QA set.")
    question: str = Field(min_length=1, description="The user's question as asked.")
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
    latency_s: float | None = Field(default=None, ge=0, description="Seconds the answer took.")

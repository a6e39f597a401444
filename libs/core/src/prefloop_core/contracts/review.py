"""The review queue's items and the preference pairs they become."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from prefloop_core.contracts.common import ChatMessage, Contract
from prefloop_core.contracts.contributors import ContributedAnswer
from prefloop_core.ids import Slug


class ReviewStatus(str, enum.Enum):
    PENDING = "pending"  # has a rejected answer, waits for a person
    CHOSEN = "chosen"  # a person wrote the correct answer: a trainable pair
    SKIPPED = "skipped"  # looked at, left for later
    DELETED = "deleted"  # excluded from training for good


class PairSplit(str, enum.Enum):
    """What a reviewed pair is for: training, or the trainer's evaluation (an imported evaluation file)."""

    TRAIN = "train"
    EVAL = "eval"


class ImportFormat(str, enum.Enum):
    """The shapes `prefloop import` reads (docs: the README's reviewer section)."""

    PREFLOOP = "prefloop"  # {"question", "rejected", "chosen"}: the template `prefloop template` hands out
    STANDARD = "standard"  # {"prompt", "chosen", "rejected"} as text, the prompt text or {"instruction", "input"}
    CONVERSATIONAL = "conversational"  # TRL's: message lists; without "prompt", the messages chosen and rejected share


class PairOrigin(BaseModel):
    """Where an imported pair came from."""

    model_config = ConfigDict(extra="forbid")

    format: ImportFormat
    file: str = Field(description="The imported file's name (or `request body`).")
    index: int = Field(ge=0, description="The entry's place in the file, from 0.")


class RejectedAnswer(Contract):
    """A bad answer the served model gave to the item's question."""

    answer: str
    score: float = Field(ge=0.0, le=1.0)
    model: str
    asked_at: datetime
    record_id: str = Field(description="QA record this answer came from; ingesting it again adds nothing.")


class ReviewItem(Contract):
    """One question in the review queue with its rejected answers and, once reviewed, the chosen one."""

    item_id: int
    question: str = Field(min_length=1)
    game: Slug | None = None
    context: str | None = None
    prompt: list[ChatMessage] | None = Field(
        default=None, description="The item's own prompt (from an import); None: built from the RAG template."
    )
    status: ReviewStatus = ReviewStatus.PENDING
    rejected: list[RejectedAnswer] = Field(default_factory=list)
    chosen: str | None = Field(default=None, description="The correct answer a reviewer wrote.")
    suggestion: str | None = Field(
        default=None, description="A well-scoring sampled answer offered to the reviewer (never trained on unconfirmed)."
    )
    suggestion_score: float | None = Field(default=None, ge=0, le=1)
    reviewer: str | None = Field(default=None, description="Who wrote `chosen`.")
    version: int = Field(default=0, ge=0, description="Bumped on every save; a save on a stale version conflicts.")
    updated_at: datetime | None = None
    split: PairSplit = PairSplit.TRAIN
    origin: PairOrigin | None = Field(default=None, description="Set on imported items.")
    offered: bool = Field(default=False, description="Offered to contributors: they see it and may answer it.")
    contributions: list[ContributedAnswer] = Field(default_factory=list, description="Contributors' answers.")


class PreferencePair(Contract):
    """One training example in TRL's conversational preference format, plus where it came from."""

    prompt: list[ChatMessage] = Field(min_length=1, description="Messages up to the answer (system + user).")
    chosen: list[ChatMessage] = Field(min_length=1, description="The correct assistant answer.")
    rejected: list[ChatMessage] = Field(min_length=1, description="The bad assistant answer.")
    item_id: int | None = Field(default=None, description="Review item the pair came from.")
    game: Slug | None = None
    reviewer: str | None = None
    source: str = Field(default="review", description="review, import, contributors or generated.")
    split: PairSplit = PairSplit.TRAIN
    origin: PairOrigin | None = None

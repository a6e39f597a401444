"""Contributors: people outside the reviewers who answer the questions offered to them.

A contributed answer is not a pair yet: it becomes the item's chosen answer when enough contributors agree
(`PREFLOOP_COLLECTOR_CONTRIBUTORS_AGREE`, compared normalised) or when a reviewer approves it.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from prefloop_core.contracts.common import SQL_INT_MAX
from prefloop_core.ids import Slug


class ContributionStatus(str, enum.Enum):
    PENDING = "pending"  # waits for agreement or a reviewer
    ACCEPTED = "accepted"  # became the item's answer (agreed or approved), or matched the answer a reviewer wrote
    NOT_CHOSEN = "not_chosen"  # the item was answered otherwise
    CLOSED = "closed"  # the item was deleted from training before a decision
    SET_ASIDE = "set_aside"  # its contributor was revoked while it was pending: never counted, never trained


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContributedAnswer(_Closed):
    """A contributor's answer to an item, as the review UI shows it."""

    contribution_id: int
    contributor: str
    answer: str
    status: ContributionStatus
    agreeing: int = Field(ge=1, description="Pending or accepted contributions on the item with this same answer.")
    created_at: datetime


class OfferedItem(_Closed):
    """An item offered to contributors, as a contributor sees it (and the JSON template they fill in): the question
    and its context, never the other contributors' answers."""

    item_id: int = Field(ge=1, le=SQL_INT_MAX)
    question: str
    game: str | None = None
    context: str | None = None
    answer: str = Field(default="", description="Write the correct answer here.")


class Contribution(_Closed):
    """One answer a contributor submits (an entry of the filled-in template)."""

    item_id: int = Field(ge=1, le=SQL_INT_MAX)
    answer: str = Field(description="The correct answer to the item's question; an empty one is skipped.")
    # The template's other fields come back filled in; they are read-only.
    question: str | None = None
    game: str | None = None
    context: str | None = None


class ContributionOutcome(_Closed):
    item_id: int
    outcome: Literal["accepted", "pending", "skipped", "refused"] = Field(
        description="accepted: enough contributors agree, the item is a pair now; pending: waits for agreement or a "
        "reviewer; skipped: no answer written; refused: see `reason`, nothing stored"
    )
    agreeing: int = Field(default=0, ge=0, description="Contributors who gave this answer to the item so far.")
    reason: str | None = None


class ContributorInvite(_Closed):
    name: Slug
    token: str = Field(description="Shown once: only its hash is stored.")


class NewContributor(_Closed):
    name: Slug


class ContributorStats(_Closed):
    """What `status` reports per contributor."""

    name: str
    revoked: bool
    answers: int
    pending: int
    accepted: int
    not_chosen: int
    set_aside: int
    agreement: float | None = Field(
        description="accepted / (accepted + not_chosen): how often their answers on decided items were the one kept"
    )


class OfferRequest(_Closed):
    """Items to offer to contributors (or withdraw): the listed ids, or the pending items of a game, or all pending."""

    item_ids: list[Annotated[int, Field(ge=1, le=SQL_INT_MAX)]] | None = Field(default=None, max_length=10_000)
    game: Slug | None = None
    offered: bool = True


class OfferResult(_Closed):
    changed: int


class RevokeResult(_Closed):
    name: str
    set_aside: int = Field(description="Their pending answers, now set aside; everything else is kept.")


class ApproveBody(_Closed):
    version: int = Field(ge=0, le=SQL_INT_MAX, description="Version of the item you read; a stale one conflicts.")

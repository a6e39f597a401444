"""The API's contributor calls: the admin's (invite, list, revoke), the reviewers' (offer items, approve an answer)
and the contributors' own (the items offered to them, submitting answers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import Field

from prefloop_core.contracts import (
    ApproveBody,
    Contribution,
    ContributionOutcome,
    ContributorInvite,
    ContributorStats,
    NewContributor,
    OfferedItem,
    OfferRequest,
    OfferResult,
    ReviewItem,
    RevokeResult,
)
from prefloop_collector.api import Queue, Reviewer, conflict_error
from prefloop_collector.auth import require_admin, require_contributor
from prefloop_collector.contributors import ContributorError, Contributors
from prefloop_collector.http_params import ContributionId, ItemId
from prefloop_collector.queue import Conflict, ItemNotFound

Contributor = Annotated[str, Depends(require_contributor)]


def contributors_of(request: Request) -> Contributors:
    return request.app.state.contributors


People = Annotated[Contributors, Depends(contributors_of)]
router = APIRouter(prefix="/api")
admin = APIRouter(prefix="/api/admin", dependencies=[Depends(require_admin)])


@admin.post("/contributors", response_model=ContributorInvite, status_code=status.HTTP_201_CREATED)
def invite(body: NewContributor, people: People) -> ContributorInvite:
    """A new contributor; the token is in this answer only (the collector keeps its hash)."""
    try:
        return people.invite(body.name)
    except ContributorError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@admin.get("/contributors", response_model=list[ContributorStats])
def list_contributors(people: People) -> list[ContributorStats]:
    return people.stats()


@admin.post("/contributors/{name}/revoke", response_model=RevokeResult)
def revoke(name: str, people: People) -> RevokeResult:
    """The token stops working and the contributor's pending answers are set aside; nothing else changes."""
    try:
        return people.revoke(name)
    except ContributorError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.post("/offer", response_model=OfferResult)
def offer(body: OfferRequest, queue: Queue, _: Reviewer) -> OfferResult:
    """Offer pending items to contributors (the listed ones, a game's, or all), or withdraw them (`offered: false`)."""
    return OfferResult(changed=queue.offer(body.item_ids, body.game, body.offered))


@router.post("/items/{item_id}/contributions/{contribution_id}/approve", response_model=ReviewItem)
def approve(
    item_id: ItemId, contribution_id: ContributionId, body: ApproveBody, people: People, reviewer: Reviewer
) -> ReviewItem:
    """Make a contributed answer the item's chosen one, as if the reviewer had written it."""
    try:
        return people.approve(item_id, contribution_id, reviewer, body.version)
    except ItemNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0])) from None
    except Conflict as exc:
        raise conflict_error(exc) from None
    except ContributorError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.get("/contribute/items", response_model=list[OfferedItem])
def offered_items(people: People, contributor: Contributor) -> list[OfferedItem]:
    """The items offered to you that you have not answered: fill in `answer` and POST the list to /api/contribute."""
    return people.offered(contributor)


@router.post("/contribute", response_model=list[ContributionOutcome])
def contribute(
    entries: Annotated[list[Contribution], Field(max_length=1000)], people: People, contributor: Contributor
) -> list[ContributionOutcome]:
    """Your answers; each gets its outcome (a refused one its reason, and nothing of it is stored)."""
    try:
        return people.submit(contributor, entries)
    except ContributorError as exc:  # revoked between the token check and the write
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None

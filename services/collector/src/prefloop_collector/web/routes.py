"""Pages of the review UI: sign in, the queue with filters, an item to answer (or a contributor's answer to approve),
the status page. Contributors sign in on the same page and land on their own pages (web/contribute.py).

Shortcuts on an item page: Ctrl+Enter saves and opens the next item; outside the text box,
`e` edits, `s` skips, `d` deletes (after a confirm), `n` opens the next item without saving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from prefloop_core.contracts import ReviewStatus, check_text
from prefloop_collector.auth import COOKIE, contributor_for, reviewer_for, token_from
from prefloop_collector.checks import run_checks
from prefloop_collector.contributors import ContributorError, Contributors
from prefloop_collector.http_params import ContributionId, FormVersion, ItemId
from prefloop_collector.queue import Conflict, Filters, ItemNotFound, ReviewQueue
from prefloop_collector.snapshot import candidates, reviewed_items
from prefloop_collector.status import dataset_status
from prefloop_collector.text import parse_threshold
from prefloop_collector.web.charts import balance_svg

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)


def _queue(request: Request) -> ReviewQueue:
    return request.app.state.queue


def _who(request: Request) -> str | None:
    return reviewer_for(token_from(request), request.app.state.settings)


def _to_login(request: Request) -> RedirectResponse:
    """Not a reviewer: a contributor goes to their own page, anyone else to sign in."""
    signed_in_contributor = contributor_for(token_from(request), request) is not None
    return RedirectResponse("/contribute" if signed_in_contributor else "/login", status_code=303)


def _page(request: Request, name: str, reviewer: str | None, **context: object) -> HTMLResponse:
    agree = request.app.state.settings.collector_contributors_agree
    return templates.TemplateResponse(request, name, {"reviewer": reviewer, "contributor": None, "agree": agree, **context})


@router.get("/login")
def login_form(request: Request) -> HTMLResponse:
    return _page(request, "login.html", None, error=None)


@router.post("/login")
def login(request: Request, token: Annotated[str, Form()]) -> Response:
    if reviewer_for(token.strip(), request.app.state.settings) is not None:
        response = RedirectResponse("/queue", status_code=303)
    elif contributor_for(token.strip(), request) is not None:
        response = RedirectResponse("/contribute", status_code=303)
    else:
        return _page(request, "login.html", None, error="That token is not a reviewer's or a contributor's token.")
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", max_age=30 * 24 * 3600)
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/")
def home() -> Response:
    return RedirectResponse("/queue", status_code=303)


def _filters(status: str, game: str, min_score: str, max_score: str) -> tuple[Filters, str | None]:
    try:
        return Filters(
            game=game or None,
            status=ReviewStatus(status) if status else None,
            min_score=parse_threshold(min_score) if min_score else None,
            max_score=parse_threshold(max_score) if max_score else None,
        ), None
    except ValueError as exc:
        return Filters(), str(exc)


@router.get("/queue")
def queue_page(request: Request, status: str = "pending", game: str = "", min_score: str = "", max_score: str = "") -> Response:
    reviewer = _who(request)
    if reviewer is None:
        return _to_login(request)
    filters, error = _filters(status, game, min_score, max_score)
    items = _queue(request).items(filters, limit=200)
    return _page(
        request,
        "queue.html",
        reviewer,
        items=items,
        error=error,
        statuses=[s.value for s in ReviewStatus],
        games=request.app.state.settings.collector_games,
        form={"status": status, "game": game, "min_score": min_score, "max_score": max_score},
    )


def _next_pending(queue: ReviewQueue, after: int) -> str:
    for item in queue.items(Filters(status=ReviewStatus.PENDING), limit=2):
        if item.item_id != after:
            return f"/items/{item.item_id}"
    return "/queue?" + urlencode({"status": "pending", "done": "1"})


@router.get("/items/{item_id}")
def item_page(request: Request, item_id: ItemId) -> Response:
    reviewer = _who(request)
    if reviewer is None:
        return _to_login(request)
    try:
        item = _queue(request).get(item_id)
    except ItemNotFound:
        return _page(request, "message.html", reviewer, message=f"There is no item {item_id}.")
    return _page(
        request, "item.html", reviewer, item=item, conflict=None, draft=None, next_url=_next_pending(_queue(request), item_id)
    )


def _refused(request: Request, queue: ReviewQueue, reviewer: str, item_id: int, draft: str, error: str) -> HTMLResponse:
    """The item page again, with the reviewer's draft and why the action was refused."""
    return _page(
        request,
        "item.html",
        reviewer,
        item=queue.get(item_id),
        conflict=None,
        draft=draft,
        error=error,
        next_url=_next_pending(queue, item_id),
    )


def _act(request: Request, item_id: int, action: str, version: int, chosen: str = "", contribution_id: int = 0) -> Response:
    reviewer = _who(request)
    if reviewer is None:
        return _to_login(request)
    queue = _queue(request)
    try:
        if action == "chosen":
            try:
                check_text(chosen)
            except ValueError as exc:
                return _refused(request, queue, reviewer, item_id, chosen, f"The answer {exc}.")
            queue.save_chosen(item_id, chosen, reviewer, version)
        elif action == "approve":
            contributors: Contributors = request.app.state.contributors
            contributors.approve(item_id, contribution_id, reviewer, version)
        elif action == "skip":
            queue.skip(item_id, version)
        else:
            queue.delete(item_id, version)
    except ItemNotFound:
        return _page(request, "message.html", reviewer, message=f"There is no item {item_id}.")
    except ContributorError as exc:
        return _refused(request, queue, reviewer, item_id, "", str(exc))
    except Conflict as exc:
        # Show the answer saved meanwhile beside the reviewer's own draft; nothing is overwritten.
        return _page(
            request,
            "item.html",
            reviewer,
            item=exc.current,
            conflict=exc.current,
            draft=chosen,
            next_url=_next_pending(queue, item_id),
        )
    return RedirectResponse(_next_pending(queue, item_id), status_code=303)


@router.post("/items/{item_id}/chosen")
def save_chosen(request: Request, item_id: ItemId, version: FormVersion, chosen: Annotated[str, Form()] = "") -> Response:
    return _act(request, item_id, "chosen", version, chosen)


@router.post("/items/{item_id}/contributions/{contribution_id}/approve")
def approve(request: Request, item_id: ItemId, contribution_id: ContributionId, version: FormVersion) -> Response:
    return _act(request, item_id, "approve", version, contribution_id=contribution_id)


@router.post("/items/{item_id}/offer")
def offer(request: Request, item_id: ItemId, offered: Annotated[bool, Form()]) -> Response:
    if _who(request) is None:
        return _to_login(request)
    _queue(request).offer([item_id], None, offered)
    return RedirectResponse(f"/items/{item_id}", status_code=303)


@router.post("/items/{item_id}/skip")
def skip(request: Request, item_id: ItemId, version: FormVersion) -> Response:
    return _act(request, item_id, "skip", version)


@router.post("/items/{item_id}/delete")
def delete(request: Request, item_id: ItemId, version: FormVersion) -> Response:
    return _act(request, item_id, "delete", version)


@router.get("/status")
def status_page(request: Request) -> Response:
    reviewer = _who(request)
    if reviewer is None:
        return _to_login(request)
    settings = request.app.state.settings
    queue = _queue(request)
    status = dataset_status(queue, settings)
    checks = run_checks(candidates(reviewed_items(queue)), settings)
    chart = balance_svg(status.games, settings.collector_min_game_share)
    return _page(
        request, "status.html", reviewer, status=status, checks=checks, chart=chart, minimum=settings.collector_min_game_share
    )

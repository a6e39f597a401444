"""A contributor's pages: the next question offered to them with a box for the answer, what became of their answers,
and the same questions as a JSON file to fill in and upload (the template the API hands out)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from prefloop_core.contracts import SQL_INT_MAX, Contribution, ContributionOutcome
from prefloop_collector.auth import contributor_for, token_from
from prefloop_collector.contributors import ContributorError, Contributors
from prefloop_collector.http_params import ItemId
from prefloop_collector.web.routes import templates

router = APIRouter(include_in_schema=False)
ENTRIES = TypeAdapter(list[Contribution])


def _contributors(request: Request) -> Contributors:
    return request.app.state.contributors


def _page(request: Request, contributor: str, after: int = 0, **context: object) -> HTMLResponse:
    """The next offered question after item `after` (from the first again at the end), with `context` shown above."""
    people = _contributors(request)
    offered = people.offered(contributor)
    current = next((item for item in offered if item.item_id > after), offered[0] if offered else None)
    return templates.TemplateResponse(
        request,
        "contribute.html",
        {
            "reviewer": None,
            "contributor": contributor,
            "item": current,
            "left": len(offered),
            "answered": people.answered(contributor),
            "outcomes": [],
            "problems": [],
            **context,
        },
    )


def _signed_in(request: Request) -> str | None:
    return contributor_for(token_from(request), request)


@router.get("/contribute")
def contribute_page(request: Request, after: Annotated[int, Query(ge=0, le=SQL_INT_MAX)] = 0) -> Response:
    contributor = _signed_in(request)
    if contributor is None:
        return RedirectResponse("/login", status_code=303)
    return _page(request, contributor, after)


@router.get("/contribute/template.json")
def template(request: Request) -> Response:
    contributor = _signed_in(request)
    if contributor is None:
        return RedirectResponse("/login", status_code=303)
    items = [item.model_dump(mode="json") for item in _contributors(request).offered(contributor)]
    return Response(
        json.dumps(items, ensure_ascii=False, indent=2) + "\n",
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="questions.json"'},
    )


@router.post("/contribute/upload")
async def upload(request: Request, file: Annotated[UploadFile, File()]) -> Response:
    contributor = _signed_in(request)
    if contributor is None:
        return RedirectResponse("/login", status_code=303)
    name = file.filename or "the file"
    try:
        entries = ENTRIES.validate_json(await file.read())
    except ValidationError as exc:
        problems = [_problem(name, error) for error in exc.errors()]
        return _page(request, contributor, problems=problems[:20])
    try:
        outcomes: list[ContributionOutcome] = _contributors(request).submit(contributor, entries)
    except ContributorError:  # revoked since the page was opened
        return RedirectResponse("/login", status_code=303)
    return _page(request, contributor, outcomes=outcomes, uploaded=name)


@router.post("/contribute/{item_id}")
def answer(request: Request, item_id: ItemId, answer: Annotated[str, Form()] = "") -> Response:
    contributor = _signed_in(request)
    if contributor is None:
        return RedirectResponse("/login", status_code=303)
    try:
        (outcome,) = _contributors(request).submit(contributor, [Contribution(item_id=item_id, answer=answer)])
    except ContributorError:  # revoked since the page was opened
        return RedirectResponse("/login", status_code=303)
    if outcome.outcome == "refused":
        return _page(request, contributor, item_id - 1, outcomes=[outcome], draft=answer, retry=item_id)
    return _page(request, contributor, item_id, outcomes=[outcome])


def _problem(name: str, error: ErrorDetails) -> str:
    """One line per bad entry: `questions.json item 3: answer: Input should be a valid string`."""
    loc = list(error["loc"])
    if error["type"] == "json_invalid":
        return f"{name} is not JSON ({error.get('ctx', {}).get('error', 'invalid')}): save the file the page gave you"
    where = f"item {loc[0]}" if loc and isinstance(loc[0], int) else "the file"
    field = ".".join(str(part) for part in loc[1:])
    return f"{name} {where}: {field + ': ' if field else ''}{error['msg']}"

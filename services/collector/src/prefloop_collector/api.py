"""The collector's HTTP API (JSON under /api) and the app that also serves the review UI."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Literal

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, JsonValue

from prefloop_core.contracts import (
    SQL_INT_MAX,
    CandidateRecord,
    CheckResult,
    DatasetManifest,
    DatasetStatus,
    ImportDuplicate,
    ImportFormat,
    ImportResult,
    IngestResult,
    PairSplit,
    QARecord,
    ReviewItem,
    ReviewStatus,
    SnapshotRefused,
    Text,
)
from prefloop_core.asgi_limits import BodySizeLimit
from prefloop_core.prompts import load_template
from prefloop_core.store import open_store
from prefloop_collector.auth import require_reviewer
from prefloop_collector.checks import run_checks
from prefloop_collector.contributors import Contributors
from prefloop_collector.http_params import ItemId
from prefloop_collector.importer import read_entries, template_entries
from prefloop_collector.ingest import needs_review
from prefloop_collector.queue import Conflict, Filters, ItemNotFound, ReviewQueue
from prefloop_collector.settings import CollectorSettings
from prefloop_collector.snapshot import candidates, reviewed_items, snapshot
from prefloop_collector.status import dataset_status

Reviewer = Annotated[str, Depends(require_reviewer)]


class ChosenBody(BaseModel):
    chosen: Text = Field(description="The correct answer.")
    version: int = Field(ge=0, le=SQL_INT_MAX, description="Version of the item you edited (from GET); a stale one conflicts.")


class VersionBody(BaseModel):
    version: int = Field(ge=0, le=SQL_INT_MAX)


def queue_of(request: Request) -> ReviewQueue:
    return request.app.state.queue


def settings_of(request: Request) -> CollectorSettings:
    return request.app.state.settings


Queue = Annotated[ReviewQueue, Depends(queue_of)]
Config = Annotated[CollectorSettings, Depends(settings_of)]

router = APIRouter(prefix="/api")


def _item(queue: ReviewQueue, item_id: int) -> ReviewItem:
    try:
        return queue.get(item_id)
    except ItemNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no item {item_id}") from None


def conflict_error(exc: Conflict) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, {"message": str(exc), "current": exc.current.model_dump(mode="json")})


@router.get("/status", response_model=DatasetStatus)
def get_status(queue: Queue, settings: Config, _: Reviewer) -> DatasetStatus:
    return dataset_status(queue, settings)


@router.get("/checks", response_model=list[CheckResult])
def get_checks(queue: Queue, settings: Config, _: Reviewer) -> list[CheckResult]:
    return run_checks(candidates(reviewed_items(queue)), settings)


@router.get("/items", response_model=list[ReviewItem])
def list_items(
    queue: Queue,
    _: Reviewer,
    status_: Annotated[ReviewStatus | None, Query(alias="status")] = ReviewStatus.PENDING,
    game: str | None = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=SQL_INT_MAX)] = 0,
) -> list[ReviewItem]:
    return queue.items(Filters(game, status_, min_score, max_score), limit, offset)


@router.get("/items/{item_id}", response_model=ReviewItem)
def get_item(item_id: ItemId, queue: Queue, _: Reviewer) -> ReviewItem:
    return _item(queue, item_id)


@router.post("/items/{item_id}/chosen", response_model=ReviewItem)
def submit_chosen(item_id: ItemId, body: ChosenBody, queue: Queue, reviewer: Reviewer) -> ReviewItem:
    _item(queue, item_id)
    try:
        return queue.save_chosen(item_id, body.chosen, reviewer, body.version)
    except Conflict as exc:
        raise conflict_error(exc) from None


@router.post("/items/{item_id}/{action}", response_model=ReviewItem)
def submit_skip_or_delete(
    item_id: ItemId, action: Literal["skip", "delete"], body: VersionBody, queue: Queue, _: Reviewer
) -> ReviewItem:
    """`skip` leaves the item for later; `delete` excludes its question from training for good."""
    _item(queue, item_id)
    try:
        return queue.skip(item_id, body.version) if action == "skip" else queue.delete(item_id, body.version)
    except Conflict as exc:
        raise conflict_error(exc) from None


def _ingest(entries: Sequence[QARecord | CandidateRecord], queue: ReviewQueue, limit: float) -> IngestResult:
    bad = [e for e in entries if needs_review(e.record if isinstance(e, CandidateRecord) else e, limit)]
    counts = queue.ingest(bad)
    return IngestResult(
        received=len(entries),
        bad_answers=len(bad),
        new_rejected=counts.new_rejected,
        new_items=counts.new_items,
        already_known=counts.already_known,
    )


@router.post("/ingest", response_model=IngestResult)
def ingest(
    records: list[QARecord],
    queue: Queue,
    settings: Config,
    _: Reviewer,
    threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> IngestResult:
    """Queue the answers at or under the threshold (default: the collector's) from QA records; held-out
    questions are never queued."""
    return _ingest(records, queue, threshold if threshold is not None else settings.collector_threshold)


@router.post("/ingest/candidates", response_model=IngestResult)
def ingest_candidates(candidates: list[CandidateRecord], queue: Queue, settings: Config, _: Reviewer) -> IngestResult:
    """Queue sampled bad answers (the server's candidate generation), each with its suggested answer for a person to
    confirm; the collector's threshold applies, held-out questions are never queued."""
    return _ingest(candidates, queue, settings.collector_threshold)


@router.post("/import", response_model=ImportResult)
def import_batch(
    entries: list[dict[str, JsonValue]],
    queue: Queue,
    settings: Config,
    reviewer: Reviewer,
    format: ImportFormat | None = None,
    split: PairSplit = PairSplit.TRAIN,
) -> ImportResult:
    """Import reviewed pairs in any format `prefloop import` reads (prefloop, standard, conversational; told by the
    entries' fields, or `format`), for training or, with `split=eval`, for the trainer's evaluation. All or nothing:
    one invalid entry (422, each problem at its entry and field) imports none."""
    parsed = read_entries(
        ((f"item {i}", entry) for i, entry in enumerate(entries)), "request body", settings.collector_max_text_chars, format
    )
    if parsed.problems:
        detail = [{"loc": ["body", p.index, *(p.field.split(".") if p.field else [])], "msg": p.message} for p in parsed.problems]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail)
    report = queue.import_entries(parsed.entries, reviewer, parsed.format or ImportFormat.PREFLOOP, "request body", split)
    return ImportResult(
        format=parsed.format,
        imported=report.imported,
        unanswered=report.unanswered,
        duplicates=[ImportDuplicate(index=i, reason=r) for i, r in report.duplicates],
        ignored_fields=parsed.ignored,
    )


@router.get("/template")
def get_template(queue: Queue, _: Reviewer, game: str | None = None) -> list[dict[str, object]]:
    """Pending items as an import file with empty answers, for crowdsourcing."""
    return template_entries(queue.items(Filters(game=game)))


@router.post("/snapshots", response_model=DatasetManifest, status_code=status.HTTP_201_CREATED)
def publish_snapshot(queue: Queue, settings: Config, _: Reviewer, allow_failed_checks: bool = False) -> DatasetManifest:
    result = snapshot(queue, open_store(settings), settings, load_template(settings.prompt_template), allow_failed_checks)
    if result.manifest is None:
        refused = SnapshotRefused(message="a hard check failed", checks=result.checks)
        raise HTTPException(status.HTTP_409_CONFLICT, refused.model_dump(mode="json"))
    return result.manifest


def create_app(settings: CollectorSettings) -> FastAPI:
    from prefloop_collector import contributors_api
    from prefloop_collector.web import router as web_router

    app = FastAPI(
        title="prefloop collector",
        description="Review queue of bad answers, reviewed pairs, dataset snapshots. "
        "Every /api call needs a token, `Authorization: Bearer <token>`: a reviewer's, a contributor's for "
        "/api/contribute, the admin's for /api/admin.",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.queue = ReviewQueue(settings.db_path)
    app.state.contributors = Contributors(app.state.queue, settings)
    app.include_router(router)
    app.include_router(contributors_api.router)
    app.include_router(contributors_api.admin)
    app.include_router(web_router)
    app.add_middleware(
        BodySizeLimit, max_bytes=int(settings.collector_max_body_mb * 1024 * 1024), setting="PREFLOOP_COLLECTOR_MAX_BODY_MB"
    )

    @app.get("/health", include_in_schema=False)
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


def serve(settings: CollectorSettings, host: str, port: int) -> int:
    if not settings.collector_reviewers:
        print("collector: no reviewers configured (PREFLOOP_COLLECTOR_REVIEWERS): every sign-in will be refused", file=sys.stderr)
    print(f"collector: review UI and API on http://{host}:{port}/ (queue {settings.db_path})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower(), access_log=False)
    return 0

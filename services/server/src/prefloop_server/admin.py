"""The admin API (its own token): status, history, deploy, promote, rollback, discard, and the QA gate."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from prefloop_core.contracts import CandidateRecord, QARecord, QASet, ReleaseHistoryEntry
from prefloop_core.ids import SafeId
from prefloop_core.prompts import load_template
from prefloop_core.store import ArtifactNotFound, IntegrityError
from prefloop_server.bluegreen import BlueGreen, OperationRefused, ServerStatus
from prefloop_server.qa.candidates import generate_async
from prefloop_server.qa.gate import GateRule, GateVerdict, chart_png, compare, markdown
from prefloop_server.qa.runner import Decoding, Endpoint, RunSummary, run_qa_async
from prefloop_server.settings import ServerSettings
from prefloop_server.slots import SlotFailed, SlotState, SlotStatus


def require_admin(request: Request) -> None:
    settings: ServerSettings = request.app.state.settings
    if settings.server_admin_token is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the admin API is off: set PREFLOOP_SERVER_ADMIN_TOKEN")
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(token.encode(), settings.server_admin_token.get_secret_value().encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "admin token required: 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


def bluegreen_of(request: Request) -> BlueGreen:
    return request.app.state.bluegreen


Slots = Annotated[BlueGreen, Depends(bluegreen_of)]


class DeployBody(BaseModel):
    tag: SafeId
    trigger: str = Field(default="api", max_length=200)


class PromoteBody(BaseModel):
    accuracy: float | None = Field(default=None, ge=0, le=1, description="QA accuracy to record with the promotion.")
    trigger: str = Field(default="api", max_length=200)


class RollbackBody(BaseModel):
    tag: SafeId | None = Field(default=None, description="Release to put back; none: the one before the current.")
    trigger: str = Field(default="api", max_length=200)


class TriggerBody(BaseModel):
    trigger: str = Field(default="api", max_length=200)


class GateBody(BaseModel):
    qa_set: QASet
    rule: GateRule | None = None


class QABody(BaseModel):
    qa_set: QASet


class CandidatesBody(BaseModel):
    qa_set: QASet
    samples: int = Field(default=4, ge=2, le=16, description="Answers sampled per question.")
    temperature: float = Field(default=0.8, gt=0, le=2)


class QAReport(BaseModel):
    summary: RunSummary
    records: list[QARecord]


class GateReport(BaseModel):
    verdict: GateVerdict
    markdown: str
    chart_png: str = Field(description="The before/after chart (per game, per question class), PNG in base64.")
    live: RunSummary
    candidate: RunSummary
    live_records: list[QARecord]
    candidate_records: list[QARecord]


def install_error_handlers(app: FastAPI) -> None:
    """Admin failures become HTTP answers: refused 409, unknown release 404, a slot that failed 502 with its log."""

    def handler(code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def respond(_: Request, exc: Exception) -> JSONResponse:
            detail: object = str(exc)
            if isinstance(exc, SlotFailed):
                detail = {"message": str(exc), "log_tail": exc.log_tail}
            return JSONResponse({"detail": detail}, status_code=code)

        return respond

    app.add_exception_handler(OperationRefused, handler(status.HTTP_409_CONFLICT))
    app.add_exception_handler(ArtifactNotFound, handler(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(SlotFailed, handler(status.HTTP_502_BAD_GATEWAY))
    app.add_exception_handler(IntegrityError, handler(status.HTTP_502_BAD_GATEWAY))


@router.get("/status", response_model=ServerStatus)
def get_status(bluegreen: Slots) -> ServerStatus:
    return bluegreen.status()


@router.get("/history", response_model=list[ReleaseHistoryEntry])
def get_history(bluegreen: Slots) -> list[ReleaseHistoryEntry]:
    return bluegreen.store.history()


@router.post("/deploy", response_model=SlotState)
async def deploy(body: DeployBody, bluegreen: Slots) -> SlotState:
    return await bluegreen.deploy(body.tag, body.trigger)


@router.post("/promote", response_model=ServerStatus)
async def promote(body: PromoteBody, bluegreen: Slots) -> ServerStatus:
    return await bluegreen.promote(body.trigger, body.accuracy)


@router.post("/rollback", response_model=ServerStatus)
async def rollback(body: RollbackBody, bluegreen: Slots) -> ServerStatus:
    return await bluegreen.rollback(body.trigger, body.tag)


@router.post("/discard", response_model=ServerStatus)
async def discard(body: TriggerBody, bluegreen: Slots) -> ServerStatus:
    return await bluegreen.discard(body.trigger)


def _qa_options(settings: ServerSettings, correct_at: float) -> dict[str, Any]:
    return {"concurrency": settings.server_qa_concurrency, "decoding": Decoding(max_tokens=settings.server_qa_max_tokens),
            "correct_at": correct_at}


def _live(bluegreen: BlueGreen) -> Endpoint:
    live = bluegreen.live_slot()
    if live is None or live.model is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "no model is live: deploy and promote a release first")
    return Endpoint(live.url, live.model.tag, llama_server=True)


@router.post("/qa", response_model=QAReport)
async def qa(body: QABody, request: Request, bluegreen: Slots) -> QAReport:
    """Run the QA set on the live slot (the source's daily qa-test); the records are the collector's input."""
    settings: ServerSettings = request.app.state.settings
    live = _live(bluegreen)
    run = await run_qa_async(body.qa_set, live, load_template(settings.prompt_template), model=live.model,
                             **_qa_options(settings, settings.server_correct_at))
    assert run.summary
    return QAReport(summary=run.summary, records=run.records)


@router.post("/candidates", response_model=list[CandidateRecord])
async def candidates(body: CandidatesBody, request: Request, bluegreen: Slots) -> list[CandidateRecord]:
    """Sample answers from the live slot: the bad ones, each with the best answer as a suggestion when it was right
    (candidate generation, for the review queue)."""
    settings: ServerSettings = request.app.state.settings
    live = _live(bluegreen)
    return await generate_async(body.qa_set, live, load_template(settings.prompt_template), model=live.model,
                                samples=body.samples, temperature=body.temperature,
                                max_tokens=settings.server_qa_max_tokens, correct_at=settings.server_correct_at,
                                concurrency=settings.server_qa_concurrency)


@router.post("/gate", response_model=GateReport)
async def gate(body: GateBody, request: Request, bluegreen: Slots) -> GateReport:
    """Run the QA set on the live slot and on the deployed candidate; compare with the rule."""
    settings: ServerSettings = request.app.state.settings
    live, candidate = bluegreen.live_slot(), bluegreen.idle()
    if live is None or live.model is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "no model is live to compare against")
    if candidate.status is not SlotStatus.READY or candidate.model is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "no candidate: deploy a tag to the idle slot first")
    rule = body.rule or GateRule(min_delta=settings.server_gate_min_delta,
                                 max_regressions=settings.server_gate_max_regressions, correct_at=settings.server_correct_at)
    template = load_template(settings.prompt_template)
    # One slot after the other, each one question at a time by default, without reusing cached prompts (the Endpoint's
    # `llama_server`): single-sequence decoding from a fresh prompt gives the same answer every run, where a batch of
    # several, or a prompt finished on KV cached by an earlier run, does not (benchmarks/qa_noise.py); and two
    # llama-servers decoding at once on the same CPU cores fight over them (each question took ~5x longer side by side
    # than alone on 2 cores).
    options = {**_qa_options(settings, rule.correct_at), "concurrency": settings.server_gate_concurrency}
    live_run = await run_qa_async(body.qa_set, Endpoint(live.url, live.model.tag, llama_server=True), template,
                                  model=live.model.tag, **options)
    cand_run = await run_qa_async(body.qa_set, Endpoint(candidate.url, candidate.model.tag, llama_server=True), template,
                                  model=candidate.model.tag, **options)
    verdict = compare(live_run.records, cand_run.records, rule)
    assert live_run.summary and cand_run.summary
    return GateReport(verdict=verdict, markdown=markdown(verdict), chart_png=base64.b64encode(chart_png(verdict)).decode(),
                      live=live_run.summary, candidate=cand_run.summary,
                      live_records=live_run.records, candidate_records=cand_run.records)

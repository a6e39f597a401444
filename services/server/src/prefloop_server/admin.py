"""The admin API (its own token): status, history, deploy, promote, rollback, discard, and the QA gate."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from prefloop_core.contracts import (
    CandidateRecord,
    GateResult,
    GateRule,
    QAReport,
    QASet,
    ReleaseHistoryEntry,
    ServerStatus,
    SlotState,
)
from prefloop_core.ids import SafeId
from prefloop_core.prompts import load_template
from prefloop_core.store import ArtifactNotFound, IntegrityError
from prefloop_server.bluegreen import BlueGreen, GateInterrupted, OperationRefused
from prefloop_server.ensemble import EnsembleTransport, ensemble_of
from prefloop_server.qa import drift
from prefloop_server.qa.candidates import generate_async
from prefloop_server.qa.gate_report import publish_gate
from prefloop_server.qa.runner import Decoding, Endpoint, run_qa_async
from prefloop_server.releases import NotServable
from prefloop_server.settings import ServerSettings
from prefloop_server.slots import Slot, SlotFailed

log = logging.getLogger("prefloop.admin")


def require_admin(request: Request) -> None:
    settings: ServerSettings = request.app.state.settings
    if settings.server_admin_token is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the admin API is off: set PREFLOOP_SERVER_ADMIN_TOKEN")
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(token.encode(), settings.server_admin_token.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "admin token required: 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


def bluegreen_of(request: Request) -> BlueGreen:
    return request.app.state.bluegreen


Slots = Annotated[BlueGreen, Depends(bluegreen_of)]


class DeployBody(BaseModel):
    tag: SafeId
    trigger: str = Field(default="api", max_length=200)


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # e.g. an `accuracy` of the caller's: the history takes the report's

    tag: SafeId = Field(description="The release expected in the idle slot: promoting anything else is refused.")
    report_id: SafeId | None = Field(
        default=None, description="The QA gate report that accepted `tag` (default: the last gate this server ran on `tag`)."
    )
    force: bool = Field(
        default=False, description="Promote although no gate accepted it: a person's decision, recorded with `reason`."
    )
    reason: str | None = Field(default=None, max_length=500, description="Why, when `force`: kept in the history.")
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
    app.add_exception_handler(GateInterrupted, handler(status.HTTP_409_CONFLICT))
    app.add_exception_handler(ArtifactNotFound, handler(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(NotServable, handler(status.HTTP_409_CONFLICT))
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
    if body.force and not (body.reason or "").strip():
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "force needs a reason: it is recorded in the release history and the changelog"
        )
    return await bluegreen.promote(body.tag, body.trigger, body.report_id, body.reason if body.force else None)


@router.post("/rollback", response_model=ServerStatus)
async def rollback(body: RollbackBody, bluegreen: Slots) -> ServerStatus:
    return await bluegreen.rollback(body.trigger, body.tag)


@router.post("/discard", response_model=ServerStatus)
async def discard(body: TriggerBody, bluegreen: Slots) -> ServerStatus:
    return await bluegreen.discard(body.trigger)


def _qa_options(settings: ServerSettings, correct_at: float) -> dict[str, Any]:
    return {
        "concurrency": settings.server_qa_concurrency,
        "decoding": Decoding(max_tokens=settings.server_qa_max_tokens),
        "correct_at": correct_at,
    }


def _endpoint(slot: Slot, tag: str, settings: ServerSettings) -> Endpoint:
    """How the QA runner asks a slot: directly, or through the ensemble the slot serves (a fresh transport per run:
    the run's client closes it)."""
    ensemble = ensemble_of(slot, settings)
    transport = EnsembleTransport(ensemble) if ensemble else None
    return Endpoint(slot.url, tag, api_key=slot.api_key, llama_server=True, transport=transport)


def _live(bluegreen: BlueGreen, settings: ServerSettings) -> Endpoint:
    live = bluegreen.live_slot()
    if live is None or live.model is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "no model is live: deploy and promote a release first")
    return _endpoint(live, live.model.tag, settings)


@router.post("/qa", response_model=QAReport)
async def qa(body: QABody, request: Request, bluegreen: Slots) -> QAReport:
    """Run the QA set on the live slot (the source's daily qa-test); the records are the collector's input."""
    settings: ServerSettings = request.app.state.settings
    live = _live(bluegreen, settings)
    run = await run_qa_async(
        body.qa_set,
        live,
        load_template(settings.prompt_template),
        model=live.model,
        **_qa_options(settings, settings.server_correct_at),
    )
    assert run.summary
    return QAReport(summary=run.summary, records=run.records)


@router.post("/candidates", response_model=list[CandidateRecord])
async def candidates(body: CandidatesBody, request: Request, bluegreen: Slots) -> list[CandidateRecord]:
    """Sample answers from the live slot: the bad ones, each with the best answer as a suggestion when it was right
    (candidate generation, for the review queue)."""
    settings: ServerSettings = request.app.state.settings
    live = _live(bluegreen, settings)
    return await generate_async(
        body.qa_set,
        live,
        load_template(settings.prompt_template),
        model=live.model,
        samples=body.samples,
        temperature=body.temperature,
        max_tokens=settings.server_qa_max_tokens,
        correct_at=settings.server_correct_at,
        concurrency=settings.server_qa_concurrency,
    )


@router.post("/gate", response_model=GateResult)
async def gate(body: GateBody, request: Request, bluegreen: Slots) -> GateResult:
    """Run the QA set on the live slot and on the deployed candidate, compare with the rule, publish the report.

    Deploy, discard and promote are refused while it runs (409); a slot that stops answering or changes (a rollback)
    ends it with an error, never with a verdict."""
    settings: ServerSettings = request.app.state.settings
    rule = body.rule or settings.gate_rule()
    template = load_template(settings.prompt_template)
    # One slot after the other, each one question at a time by default, without reusing cached prompts (the Endpoint's
    # `llama_server`): single-sequence decoding from a fresh prompt gives the same answer every run, where a batch of
    # several, or a prompt finished on KV cached by an earlier run, does not (benchmarks/qa_noise.py); and two
    # llama-servers decoding at once on the same CPU cores fight over them (each question took ~5x longer side by side
    # than alone on 2 cores).
    options = {**_qa_options(settings, rule.correct_at), "concurrency": settings.server_gate_concurrency}
    async with bluegreen.gating() as hold:
        runs = []
        for slot, tag in ((hold.live, hold.live_tag), (hold.candidate, hold.candidate_tag)):
            run = await run_qa_async(body.qa_set, _endpoint(slot, tag, settings), template, model=tag, **options)
            bluegreen.check_held(hold)
            if run.failures:
                question, error = run.failures[0]
                raise SlotFailed(
                    f"{tag} ({slot.name.value} slot) did not answer {len(run.failures)} of "
                    f"{len(body.qa_set.questions)} questions (first: {question}: {error}): no verdict",
                    slot.log_tail(),
                )
            runs.append(run)
        measured = None
        # The drift compares two models' next-token distributions; an ensemble has none of its own (each answer is one
        # member's), so a gate with an ensemble on either side reports none.
        single = not (ensemble_of(hold.live, settings) or ensemble_of(hold.candidate, settings))
        if settings.server_gate_drift_tokens and single:
            try:
                measured = await drift.measure(
                    _endpoint(hold.live, hold.live_tag, settings),
                    _endpoint(hold.candidate, hold.candidate_tag, settings),
                    runs[0].records,
                    max_tokens=settings.server_gate_drift_tokens,
                    concurrency=settings.server_qa_concurrency,
                )
            except Exception as exc:  # the drift informs, the verdict decides: it is left out, not the gate
                bluegreen.check_held(hold)  # a slot changed under it (a rollback): no verdict at all
                log.warning("the gate's drift figure is left out: measuring it failed (%s: %s)", type(exc).__name__, exc)
            bluegreen.check_held(hold)
        live_run, candidate_run = runs
        # Published while the slots are held: a promotion arriving now must not find the previous gate's report.
        result = await asyncio.to_thread(
            publish_gate, bluegreen.store, hold, body.qa_set.name, rule, live_run, candidate_run, measured
        )
        bluegreen.last_report = result.report  # a promotion of the same tag may rely on it
    return result

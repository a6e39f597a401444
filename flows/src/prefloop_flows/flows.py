"""The loop as Prefect flows. Stages pass ids only; every gate that says no ends the run in a named state.

collect              QA set on the live model -> its bad answers (train split) into the review queue, and wrong
                     samples of the train questions it answers right (rehearsal, against forgetting)
train                dataset snapshot (refused when a hard check fails) -> trainer job -> run id; the new
                     adapter continues the live release's (iterative DPO) unless turned off
export               exporter job -> release tag
evaluate_and_deploy  deploy to the idle slot -> QA gate -> promote or discard; the live model's records
                     go back to the collector
rollback             put an earlier release back
improve              train -> export -> evaluate_and_deploy, the loop after people reviewed

Re-running after a crash resumes: the trainer makes its run id from what decides the run (dataset, resolved
config, base, trainer version) and returns a run it already published, or resumes a killed one from its last
checkpoint in the bucket; the exporter returns the release that already holds a run in the asked mode and
quantization. Each job hands back what it made as a `PREFLOOP_RESULT` line, which is what the tasks read.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.states import Completed, State
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from prefloop_core.clients import CollectorClient, ServerAdminClient, ServiceError, SnapshotRefusedError
from prefloop_core.contracts import (
    DatasetStatus,
    GateResult,
    IngestResult,
    JobResult,
    QARecord,
    QAReport,
    QASet,
    Release,
    ServerStatus,
    SlotState,
    TrainingMethod,
    TrainingProgress,
    TrainingRun,
)
from prefloop_core.ids import check_safe_id
from prefloop_core.settings import load_settings
from prefloop_core.store import open_store
from prefloop_flows.bundled import load_qa_set
from prefloop_flows.jobs import Job, made_release, made_run, make_runner
from prefloop_flows.settings import FlowsSettings

REFUSED = "Refused"  # the name of the state a run ends in when a gate says no (the live model is untouched)


def _settings() -> FlowsSettings:
    return load_settings(FlowsSettings)


def _collector(settings: FlowsSettings) -> CollectorClient:
    token = settings.flows_collector_token.get_secret_value() if settings.flows_collector_token else None
    return CollectorClient(settings.flows_collector_url, token)


def _server(settings: FlowsSettings) -> ServerAdminClient:
    token = settings.flows_server_token.get_secret_value() if settings.flows_server_token else None
    return ServerAdminClient(settings.flows_server_url, token)


def transient(_task: Any, _run: Any, state: State) -> bool:
    """Retry a service call only when the service did not answer or was briefly unavailable, never on a refusal
    (4xx) or a release that failed to load (502 with the llama-server log)."""
    try:
        state.result()
    except ServiceError as exc:
        return exc.status in (0, 429, 503, 504)
    except Exception:  # noqa: BLE001 - anything else is not transient
        return False
    return False


RETRY: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_condition_fn": transient,
}


class Outcome(BaseModel):
    """Where a flow run ended and why, with the ids it made."""

    accepted: bool
    reason: str
    dataset_id: str | None = None
    run_id: str | None = None
    init_run: str | None = None  # the earlier run the new one continued (the live model's)
    tag: str | None = None
    live_tag: str | None = None
    live_accuracy: float | None = None
    candidate_accuracy: float | None = None
    comparison: str | None = None
    chart_png: str | None = None  # base64: the before/after chart of the QA gate
    report_id: str | None = None  # the QA gate's report in the bucket (qa/<report_id>/)


def _end(outcome: Outcome) -> Outcome | State:
    """A refusal ends the run in the named state `Refused` with its reason; the outcome stays its result."""
    if outcome.accepted:
        return outcome
    get_run_logger().warning("refused: %s", outcome.reason)
    return Completed(name=REFUSED, message=outcome.reason, data=outcome)


def outcome_of(state: State) -> Outcome:
    """The outcome a finished flow run of `train`, `evaluate_and_deploy` or `improve` holds (refused or not)."""
    outcome = state.result()
    if not isinstance(outcome, Outcome):
        raise TypeError(f"the flow run {state.name} holds {type(outcome).__name__}, not an outcome")
    return outcome


# -- tasks ----------------------------------------------------------------------------------------


@task(name="qa-live", **RETRY)
def qa_live(qa_set: QASet) -> QAReport:
    report = _server(_settings()).qa(qa_set.model_dump(mode="json"))
    get_run_logger().info(
        "live model %s: accuracy %.1f%% on %d questions",
        report.summary.model,
        100 * report.summary.accuracy,
        report.summary.asked,
    )
    return report


@task(name="ingest", **RETRY)
def ingest(records: list[QARecord], threshold: float | None) -> IngestResult:
    result = _collector(_settings()).ingest(records, threshold)
    get_run_logger().info(
        "collector: %d records, %d bad, %d new questions", result.received, result.bad_answers, result.new_items
    )
    return result


class Rehearsal(BaseModel):
    """What sampling the train questions live answers right queued (collect flow)."""

    asked: int = 0
    bad_answers: int = 0
    new_items: int = 0


@task(name="rehearsal-candidates", **RETRY)
def rehearsal_candidates(qa_set: QASet, report: QAReport, samples: int) -> Rehearsal:
    """Training on the questions a model gets wrong makes it forget some it got right (benchmarks/results/
    effectiveness.md). So the train questions it answers right are sampled too: their wrong samples go to the queue,
    with the best sample as a suggestion, and once a person confirms the answer the pair rehearses what it knew."""
    correct_at = report.summary.correct_at
    right = {r.question_id for r in report.records if r.split == "train" and r.score >= correct_at}
    asked = qa_set.model_copy(update={"questions": [q for q in qa_set.questions if q.id in right]})
    if not asked.questions:
        return Rehearsal()
    found = _server(_settings()).candidates(asked.model_dump(mode="json"), samples)
    result = _collector(_settings()).ingest_candidates(found)
    get_run_logger().info(
        "rehearsal: %d train questions answered right, %d wrong samples, %d new questions queued",
        len(asked.questions),
        result.bad_answers,
        result.new_items,
    )
    return Rehearsal(asked=len(asked.questions), bad_answers=result.bad_answers, new_items=result.new_items)


@task(name="dataset-status", **RETRY)
def dataset_status() -> DatasetStatus:
    status = _collector(_settings()).status()
    create_table_artifact(
        key="dataset-status",
        description="The review queue and the dataset it makes",
        table=[{"field": k, "value": str(v)} for k, v in status.model_dump().items()],
    )
    return status


@task(name="snapshot", **RETRY)
def snapshot() -> tuple[str | None, str]:
    """(dataset id, note); no id when the collector's hard checks refuse the data (the note says which and why)."""
    try:
        manifest = _collector(_settings()).snapshot()
    except SnapshotRefusedError as exc:
        return None, str(exc)
    return manifest.dataset_id, f"dataset {manifest.dataset_id}: {manifest.pair_count} pairs"


@task(name="live-run", **RETRY)
def live_run() -> str | None:
    """The training run behind the live release, for the next run to continue; None when nothing trained here is
    live (the base release) or the setting is off."""
    settings, logger = _settings(), get_run_logger()
    tag = _server(settings).status().live_tag if settings.flows_train_from_live else None
    store = open_store(settings)
    release = store.get(Release, tag) if tag else None
    if release is None or release.run_id is None:
        return None
    run = store.require(TrainingRun, release.run_id)
    if run.method is TrainingMethod.SFT_DPO:  # its adapter sits over an SFT-merged model: not one to continue
        logger.info("the live release %s comes from an sft+dpo run: training starts from the base", tag)
        return None
    logger.info("training continues run %s, the live release %s's", run.run_id, tag)
    return run.run_id


class TrainingLog:
    """A training job's output into the task's log, its `PREFLOOP_PROGRESS` lines into the progress artifact
    `training-progress` instead (the dashboard draws it as a bar; the job's own bar line is in the log)."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.artifact: Any = None

    def __call__(self, line: str) -> None:
        progress = TrainingProgress.parse(line)
        if progress is None:
            self.logger.info(line)
            return
        percent = 100 * progress.step / progress.total
        description = f"{progress.stage}: step {progress.step}/{progress.total}, about {progress.eta_s / 60:.1f} min left"
        if self.artifact is None:
            self.artifact = create_progress_artifact(percent, key="training-progress", description=description)
        else:
            update_progress_artifact(self.artifact, percent, description=description)


@task(name="train")
def train(dataset_id: str, init_run: str | None = None) -> str:
    settings = _settings()
    args = ["train", "--set", f"data.dataset_id={dataset_id}"]
    if init_run:
        args += ["--set", f"model.init_run={init_run}"]
    lines = make_runner(settings).run(Job("trainer", args, config=settings.flows_train_config), TrainingLog(get_run_logger()))
    return open_store(settings).require(TrainingRun, made_run(lines)).run_id


@task(name="export")
def export(run_id: str) -> str:
    settings, logger = _settings(), get_run_logger()
    mode, quant = settings.flows_export_mode, settings.flows_export_quant
    lines = make_runner(settings).run(
        Job("exporter", ["export", run_id, "--mode", mode.value, "--quant", quant.value]), logger.info
    )
    release = open_store(settings).require(Release, made_release(lines))
    if JobResult.last_in(lines).reused:
        return release.tag
    create_markdown_artifact(
        key="release",
        description=f"Release {release.tag}",
        markdown=(
            f"# Release `{release.tag}`\n\n| field | value |\n| --- | --- |\n| run | `{run_id}` |\n"
            f"| mode | {release.mode.value} |\n"
            f"| quantizations | {', '.join(q.value for q in release.quantizations)} |\n| pairs | {release.pairs} |\n"
            f"| base release | {release.base_release or '-'} |\n| llama.cpp | {release.llama_cpp_version} |\n"
            + "".join(
                f"| `{name}` | {entry.size / 1e6:.1f} MB, sha256 `{entry.sha256[:12]}` |\n"
                for name, entry in release.files.items()
            )
        ),
    )
    return release.tag


@task(name="deploy", **RETRY)
def deploy(tag: str, trigger: str) -> SlotState:
    return _server(_settings()).deploy(tag, trigger)


@task(name="gate", **RETRY)
def gate(qa_set: QASet) -> GateResult:
    result = _server(_settings()).gate(qa_set.model_dump(mode="json"))
    report = result.report
    create_markdown_artifact(
        key="qa-comparison",
        description=f"QA gate {report.report_id}: {report.candidate_tag} vs {report.live_tag}",
        markdown=f"{result.markdown}\nReport `{report.report_id}` (bucket: `qa/{report.report_id}/`, both runs' records)\n\n"
        f"![QA gate chart](data:image/png;base64,{result.chart_png})\n",
    )
    return result


@task(name="promote", **RETRY)
def promote(tag: str, trigger: str, report_id: str) -> ServerStatus:
    return _server(_settings()).promote(tag, trigger, report_id)


@task(name="discard", **RETRY)
def discard(trigger: str) -> ServerStatus:
    return _server(_settings()).discard(trigger)


# -- flows ----------------------------------------------------------------------------------------


class Collected(BaseModel):
    """What the collect flow did: the live model's accuracy, what its QA queued, what rehearsal sampling queued."""

    accuracy: float
    ingested: IngestResult
    rehearsal: Rehearsal


@flow(name="collect", log_prints=True)
def collect_flow(threshold: float | None = None) -> Collected:
    """The source's daily QA test: ask the live model the QA set, queue its bad answers for review."""
    settings = _settings()
    qa_set = load_qa_set(settings.flows_qa_set)
    report = qa_live(qa_set)
    result = ingest(report.records, threshold if threshold is not None else settings.flows_collect_threshold)
    rehearsal = (
        rehearsal_candidates(qa_set, report, settings.flows_rehearsal_samples)
        if settings.flows_rehearsal_samples
        else Rehearsal()
    )
    dataset_status()
    return Collected(accuracy=report.summary.accuracy, ingested=result, rehearsal=rehearsal)


@flow(name="train")
def train_flow() -> Outcome | State:
    """Snapshot the reviewed pairs (refused when the collector's hard checks fail) and train on them."""
    dataset_status()
    dataset_id, note = snapshot()
    if dataset_id is None:
        return _end(Outcome(accepted=False, reason=note))
    init_run = live_run()
    run_id = train(dataset_id, init_run)
    note += f"; continuing run {init_run} (the live model's)" if init_run else "; from the base model"
    return Outcome(accepted=True, reason=note, dataset_id=dataset_id, run_id=run_id, init_run=init_run)


@flow(name="export")
def export_flow(run_id: str) -> Outcome:
    return Outcome(accepted=True, reason="exported", run_id=run_id, tag=export(check_safe_id(run_id)))


@flow(name="evaluate-and-deploy")
def evaluate_and_deploy_flow(tag: str, trigger: str = "flow:evaluate-and-deploy") -> Outcome | State:
    """Deploy `tag` to the idle slot, run the QA gate, promote or discard; the live records go to the collector."""
    settings = _settings()
    qa_set = load_qa_set(settings.flows_qa_set)
    deploy(check_safe_id(tag), trigger)
    result = gate(qa_set)
    report, verdict = result.report, result.report.verdict
    if report.candidate_tag != tag:  # the server would refuse the promotion too; say what happened
        raise RuntimeError(
            f"the QA gate compared {report.candidate_tag}, not {tag}: the idle slot was changed after this flow deployed to it"
        )
    outcome = Outcome(
        accepted=verdict.accepted,
        reason="; ".join(verdict.reasons),
        tag=tag,
        live_tag=report.live_tag,
        live_accuracy=verdict.live_accuracy,
        candidate_accuracy=verdict.candidate_accuracy,
        comparison=result.markdown,
        chart_png=result.chart_png,
        report_id=report.report_id,
    )
    if outcome.accepted:
        promote(tag, trigger, report.report_id)
        outcome.reason = f"{tag} won the QA gate ({outcome.reason}) and is live"
    else:
        discard(trigger)
        outcome.reason = f"the QA gate refused {tag}: {outcome.reason}"
    ingest(result.live_records, settings.flows_collect_threshold)
    return _end(outcome)


@flow(name="rollback")
def rollback_flow(tag: str | None = None, trigger: str = "flow:rollback") -> ServerStatus:
    """Put an earlier release back in service (default: the one before the current)."""
    return _server(_settings()).rollback(trigger, check_safe_id(tag) if tag else None)


@flow(name="improve")
def improve_flow(trigger: str = "flow:improve") -> Outcome | State:
    """The loop after review: snapshot -> train -> export -> QA gate -> promote or keep the live model."""
    trained = train_flow(return_state=True)
    outcome = outcome_of(trained)
    if trained.name == REFUSED or not outcome.accepted or outcome.run_id is None:
        return _end(outcome)
    tag = export(outcome.run_id)
    final = outcome_of(evaluate_and_deploy_flow(tag, trigger, return_state=True))
    final.dataset_id, final.run_id, final.init_run = outcome.dataset_id, outcome.run_id, outcome.init_run
    return _end(final)

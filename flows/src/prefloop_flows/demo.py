"""`prefloop demo`: the whole loop on the embedded default (CPU, local bucket, no Docker, no GPU).

It exports SmolLM2-135M-Instruct (or the GGUF `PREFLOOP_BASE_GGUF` names, with `PREFLOOP_BASE_CHAT_TEMPLATE` for a
base model without one: `make demo-gemma`) once as a verified base release, starts the collector and the server
(serving that release) as local processes, asks the bundled
QA set (`collect`), applies the bundled reviewer answers as the human step (or waits for a person in
the review UI with `--interactive`), then runs `improve`: snapshot -> train -> export -> deploy to the
idle slot -> QA gate -> promote if it won. The flows run on Prefect's temporary local API.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from prefloop_core.clients import CollectorClient
from prefloop_core.contracts import QASet, TrainingRun
from prefloop_core.children import die_with_parent
from prefloop_core.net import NotReady, free_port, stop_process, wait_until_ready
from prefloop_core.store import open_store
from prefloop_core.settings import load_settings
from prefloop_flows.bundled import REVIEWER_ANSWERS, games_v2, load_qa_set, load_reviewer_answers
from prefloop_flows.jobs import Job, made_release, make_runner
from prefloop_flows.settings import FlowsSettings

if TYPE_CHECKING:  # the flows module imports Prefect, which must see this process's settings first
    from prefloop_flows.flows import Outcome

FLOWS_REVIEWER = "flows"
# The demo's own defaults (a variable already set wins). QA answers are demo-sized: the bundled answers are a sentence or
# two, and 72 questions are asked three times on 2 cores. The daily QA asks one question at a time, as the gate does, so
# a demo starts from the same baseline every time (batched decoding moves answers between runs: benchmarks/qa_noise.py).
# Releases are exported merged, as the flows export them (a LoRA applied at run time generated at 0.43-0.60x of the
# base's tokens/s, a merged release at 0.95-1.03x: benchmarks/results/serving.md); the gate's calibration over merged
# candidates is in benchmarks/results/gate.md.
DEMO_DEFAULTS = {"PREFLOOP_SERVER_QA_MAX_TOKENS": "64", "PREFLOOP_SERVER_QA_CONCURRENCY": "1"}


def base_release(settings: FlowsSettings) -> str:
    """The base model (SmolLM2, or PREFLOOP_BASE_GGUF's) exported once (verified) as release
    `<base-short>-base-<quant>` and reused afterwards: the model the demo serves first, in the quantization its
    candidates are served over."""
    lines = make_runner(settings).run(
        Job("exporter", ["base-release", "--quant", settings.flows_export_quant.value]),
        lambda line: print(f"    {line}", flush=True),
    )
    return made_release(lines)


class Say:
    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    def __call__(self, message: str) -> None:
        self.done += 1
        print(f"\n[demo {self.done}/{self.total}] {message}", flush=True)


@contextmanager
def service(name: str, command: list[str], env: dict[str, str], health: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, preexec_fn=die_with_parent()
        )
    try:
        try:
            wait_until_ready(health, 180, proc)
        except NotReady as exc:
            raise SystemExit(f"demo: the {name} did not start ({exc}); its log: {log}") from None
        yield proc
    finally:
        stop_process(proc, 30)


def apply_reviewer_answers(collector: CollectorClient, qa_set: QASet, answers_file: Path) -> int:
    """The human step, played by a file: each pending item whose question the bundled reviewer answered."""
    batch = load_reviewer_answers(answers_file)
    by_question = {q.question: q.id for q in qa_set.questions}
    answers = {a.question_id: a.chosen for a in batch.answers}
    saved = 0
    for item in collector.items("pending"):
        chosen = answers.get(by_question.get(item.question, ""))
        if chosen:
            collector.save_chosen(item.item_id, chosen, item.version)
            saved += 1
    return saved


def second_week_qa_set(settings: FlowsSettings, home: Path, qa_set: QASet) -> QASet:
    """What round 2 asks: games-v2, the QA set with the second week's new train questions (the held-out ones stay),
    unless a QA set of your own is configured."""
    if settings.flows_qa_set is not None:
        return qa_set
    v2 = games_v2()
    path = home / "qa" / f"{v2.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(v2.model_dump_json(indent=1), encoding="utf-8")
    os.environ["PREFLOOP_FLOWS_QA_SET"] = str(path)
    print(f"a second week: {len(v2.questions) - len(qa_set.questions)} new train questions join the QA set ({v2.name}, {path})")
    return v2


def run_demo(interactive: bool = False, keep_running: bool = False, rounds: int = 1) -> int:
    started = time.monotonic()
    for name, value in DEMO_DEFAULTS.items():
        os.environ.setdefault(name, value)
    settings = load_settings(FlowsSettings)
    say = Say(2 + 3 * rounds)
    store = open_store(settings)
    qa_set = load_qa_set(settings.flows_qa_set)
    base = settings.base_gguf.name if settings.base_gguf else "SmolLM2-135M-Instruct"
    template = f", chat template {settings.base_chat_template}" if settings.base_chat_template else ""
    say(
        f"bucket {store.backend.describe()}; the base model, {base}{template}, as a verified "
        f"{settings.flows_export_quant.value} release (made once, then reused)"
    )
    live_tag = base_release(settings)

    venvs = settings.venvs_dir or Path(".venvs")
    home = settings.home
    collector_port, server_port = free_port(), free_port()
    flows_token, admin_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    batches = [load_reviewer_answers(path) for path in REVIEWER_ANSWERS]
    reviewers = {FLOWS_REVIEWER: flows_token, **{batch.reviewer: secrets.token_urlsafe(24) for batch in batches}}
    env = {
        **os.environ,
        "PREFLOOP_HOME": str(home),
        "PREFLOOP_COLLECTOR_REVIEWERS": json.dumps(reviewers),
        "PREFLOOP_SERVER_ADMIN_TOKEN": admin_token,
    }
    collector_url, server_url = f"http://127.0.0.1:{collector_port}", f"http://127.0.0.1:{server_port}"
    os.environ.update(
        {
            "PREFLOOP_FLOWS_COLLECTOR_URL": collector_url,
            "PREFLOOP_FLOWS_COLLECTOR_TOKEN": flows_token,
            "PREFLOOP_FLOWS_SERVER_URL": server_url,
            "PREFLOOP_FLOWS_SERVER_TOKEN": admin_token,
            "PREFLOOP_HOME": str(home),
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
        }
    )
    say(f"starting the collector ({collector_url}) and the server ({server_url}) as local processes")
    logs = home / "logs"
    with (
        service(
            "collector",
            [
                str(venvs / "collector/bin/prefloop-collector"),
                "review",
                "--web",
                "--host",
                "127.0.0.1",
                "--port",
                str(collector_port),
            ],
            env,
            f"{collector_url}/health",
            logs / "collector.log",
        ),
        service(
            "server",
            [
                str(venvs / "server/bin/prefloop-server"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(server_port),
                "--tag",
                live_tag,
            ],
            env,
            f"{server_url}/health",
            logs / "server.log",
        ),
    ):
        for round_ in range(1, rounds + 1):
            if rounds > 1:
                print(f"\n=== round {round_} of {rounds} ===")
            if round_ == 2:
                qa_set = second_week_qa_set(settings, home, qa_set)
            batch = REVIEWER_ANSWERS[round_ - 1]
            reviewer = batches[round_ - 1].reviewer
            collector = CollectorClient(collector_url, reviewers[reviewer])
            review_ui = f"{collector_url}/ (token for {reviewer}: {reviewers[reviewer]})" if interactive else None
            outcome = one_round(say, qa_set, collector, batch, review_ui, round_)
            if outcome is None:
                print(f"\ndemo: the `improve` flow failed; logs: {logs}", file=sys.stderr)
                return 1
            reports = home / "reports"
            reports.mkdir(parents=True, exist_ok=True)
            if outcome.run_id and (run := store.get(TrainingRun, outcome.run_id)) is not None:
                store.fetch(run, reports / outcome.run_id, [name for name in run.files if name.startswith("plots/")])
            print(
                f"where to look: review UI {collector_url}/ · training plots {reports / str(outcome.run_id) / 'plots'} · "
                f"logs {logs} · `./prefloop releases --changelog`"
            )
            if outcome.chart_png:
                chart = reports / f"qa-comparison-{outcome.tag}.png"
                chart.write_bytes(base64.b64decode(outcome.chart_png))
                print(f"before/after chart (per game, trained vs held-out questions): {chart}")
            if not outcome.accepted and round_ < rounds:
                print("the live model did not change: no further round")
                break
        print(f"demo took {(time.monotonic() - started) / 60:.1f} min")
        if keep_running:
            print(
                f"\nkeeping the collector and the server running (router {server_url}/v1, admin token in "
                f"PREFLOOP_SERVER_ADMIN_TOKEN of this process); Ctrl+C stops them"
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0


def one_round(
    say: Say, qa_set: QASet, collector: CollectorClient, answers: Path, review_ui: str | None, round_: int
) -> Outcome | None:
    """QA on the live model and its bad answers queued, the human step (the bundled `answers`, or a person in the
    review UI when `review_ui` says where), then `improve`; None when the flow failed."""
    from prefloop_flows.flows import REFUSED, collect_flow, improve_flow, outcome_of

    say(
        f"{'baseline ' if round_ == 1 else ''}QA: the `collect` flow asks the live model the bundled QA set "
        f"({len(qa_set.questions)} questions, {sum(q.split == 'train' for q in qa_set.questions)} train / "
        f"{sum(q.split == 'heldout' for q in qa_set.questions)} held out) and queues its bad answers on train questions"
    )
    collected = collect_flow()
    print(
        f"    live accuracy {collected.accuracy:.1%}; {collected.ingested.bad_answers} bad answers queued "
        f"({collected.ingested.new_items} new questions); the {collected.rehearsal.asked} train questions it answers "
        f"right, sampled: {collected.rehearsal.bad_answers} wrong samples queued ({collected.rehearsal.new_items} new "
        "questions; rehearsal)"
    )
    if review_ui:
        say(f"the human step: review the queue at {review_ui}")
        input("    press Enter when you have written the answers you want to train on... ")
    else:
        say(
            f"the human step, played by a file: the bundled reviewer answers ({answers.name}, labelled reviewer "
            f"'{load_reviewer_answers(answers).reviewer}'); --interactive lets you do it"
        )
        print(f"    {apply_reviewer_answers(collector, qa_set, answers)} answers written into the queue")

    say("`improve`: snapshot -> train (DPO + LoRA) -> export (Q4_K_M) -> deploy to the idle slot -> QA gate -> promote if it won")
    state = improve_flow(return_state=True)
    if state.is_failed() or state.is_crashed():
        print(f"    {state.message}", file=sys.stderr)
        return None
    outcome = outcome_of(state)
    print()
    print(outcome.comparison or "(no comparison: the loop stopped before the QA gate)")
    verdict = "PROMOTED" if outcome.accepted else f"{REFUSED.upper()} (the live model stays)"
    print(f"\nresult: {verdict}: {outcome.reason}")
    if outcome.tag:
        start = f"continuing run {outcome.init_run}, the live model's" if outcome.init_run else "from the base model"
        print(f"release: {outcome.tag} (run {outcome.run_id}, {start}; dataset {outcome.dataset_id})")
    if outcome.report_id:
        print(f"gate report: {outcome.report_id} (in the bucket under qa/{outcome.report_id}/, both runs' records)")
    return outcome

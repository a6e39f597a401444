"""`prefloop demo`: the whole loop on the embedded default (CPU, local bucket, no Docker, no GPU).

It starts the collector and the server as local processes on SmolLM2-135M-Instruct, asks the bundled
QA set (`collect`), applies the bundled reviewer answers as the human step (or waits for a person in
the review UI with `--interactive`), then runs `improve`: snapshot -> train -> export -> deploy to the
idle slot -> QA gate -> promote if it won. The flows run on Prefect's temporary local API.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.clients import CollectorClient
from prefloop_core.contracts import ExportMode, Quantization, QASet, Release
from prefloop_core.net import NotReady, free_port, stop_process, wait_until_ready
from prefloop_core.store import ArtifactStore, open_store
from prefloop_core.toolchain import base_gguf
from prefloop_flows.bundled import REVIEWER_ANSWERS, load_qa_set, load_reviewer_answers
from prefloop_flows.settings import FlowsSettings

BASE_TAG = "smollm2-135m-instruct-base"
FLOWS_REVIEWER = "flows"
# Demo-sized QA answers (unless set): the bundled answers are a sentence or two, and 72 questions are asked three
# times on 2 cores.
DEMO_DEFAULTS = {"PREFLOOP_SERVER_QA_MAX_TOKENS": "64"}


def publish_base(store: ArtifactStore, gguf: Path) -> Release:
    release = Release(tag=BASE_TAG, base_model="smollm2", mode=ExportMode.BASE, quantizations=[Quantization.Q4_1],
                      created_at=datetime.now(timezone.utc))
    existing = store.get(Release, BASE_TAG)
    return existing if existing is not None else store.publish(release, {"model-Q4_1.gguf": gguf})


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
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
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
        chosen = answers.get(by_question.get(item["question"], ""))
        if chosen:
            collector.save_chosen(item["item_id"], chosen, item["version"])
            saved += 1
    return saved


def run_demo(settings: FlowsSettings, interactive: bool = False, keep_running: bool = False) -> int:
    started = time.monotonic()
    say = Say(6)
    store = open_store(settings)
    qa_set = load_qa_set(settings.flows_qa_set)
    say(f"bucket {store.backend.describe()}; base model SmolLM2-135M-Instruct (Q4_1) as release {BASE_TAG}")
    release = publish_base(store, base_gguf(settings))
    print(f"    {release.tag}: {release.files['model-Q4_1.gguf'].size / 1e6:.1f} MB, sha256 verified on every fetch")

    venvs = settings.venvs_dir or Path(".venvs")
    home = settings.home
    collector_port, server_port = free_port(), free_port()
    flows_token, reviewer_token, admin_token = (secrets.token_urlsafe(24) for _ in range(3))
    reviewers = {FLOWS_REVIEWER: flows_token, "bundled-reviewer-1": reviewer_token}
    env = {**DEMO_DEFAULTS, **os.environ, "PREFLOOP_HOME": str(home), "PREFLOOP_COLLECTOR_REVIEWERS": json.dumps(reviewers),
           "PREFLOOP_SERVER_ADMIN_TOKEN": admin_token}
    collector_url, server_url = f"http://127.0.0.1:{collector_port}", f"http://127.0.0.1:{server_port}"
    os.environ.update({
        "PREFLOOP_FLOWS_COLLECTOR_URL": collector_url, "PREFLOOP_FLOWS_COLLECTOR_TOKEN": flows_token,
        "PREFLOOP_FLOWS_SERVER_URL": server_url, "PREFLOOP_FLOWS_SERVER_TOKEN": admin_token,
        "PREFLOOP_HOME": str(home), "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
    })
    say(f"starting the collector ({collector_url}) and the server ({server_url}) as local processes")
    logs = home / "logs"
    with service("collector", [str(venvs / "collector/bin/prefloop-collector"), "review", "--web", "--host", "127.0.0.1",
                               "--port", str(collector_port)], env, f"{collector_url}/health", logs / "collector.log"), \
         service("server", [str(venvs / "server/bin/prefloop-server"), "serve", "--host", "127.0.0.1", "--port",
                            str(server_port), "--tag", BASE_TAG], env, f"{server_url}/health", logs / "server.log"):
        from prefloop_flows.flows import REFUSED, collect_flow, improve_flow

        say(f"baseline QA: the `collect` flow asks the live model the bundled QA set ({len(qa_set.questions)} questions, "
            f"{sum(q.split == 'train' for q in qa_set.questions)} train / {sum(q.split == 'heldout' for q in qa_set.questions)} "
            "held out) and queues its bad answers on train questions")
        collected = collect_flow()
        print(f"    live accuracy {collected['accuracy']:.1%}; {collected['bad_answers']} bad answers queued "
              f"({collected['new_items']} questions)")

        collector = CollectorClient(collector_url, reviewer_token)
        if interactive:
            say(f"the human step: review the queue at {collector_url}/ (token for bundled-reviewer-1: {reviewer_token})")
            input("    press Enter when you have written the answers you want to train on... ")
        else:
            say("the human step, played by a file: the bundled reviewer answers "
                f"({REVIEWER_ANSWERS[0].name}, labelled reviewer 'bundled-reviewer-1'); --interactive lets you do it")
            saved = apply_reviewer_answers(collector, qa_set, REVIEWER_ANSWERS[0])
            print(f"    {saved} answers written into the queue")

        say("`improve`: snapshot -> train (DPO + LoRA) -> export (Q4_K_M) -> deploy to the idle slot -> QA gate -> "
            "promote if it won")
        state = improve_flow(return_state=True)
        if state.is_failed() or state.is_crashed():
            print(f"\ndemo: the `improve` flow failed: {state.message}\n      logs: {logs}", file=sys.stderr)
            return 1
        outcome = state.result()
        print()
        print(outcome.comparison or "(no comparison: the loop stopped before the QA gate)")
        verdict = "PROMOTED" if outcome.accepted else f"{REFUSED.upper()} (the live model stays)"
        print(f"\nresult: {verdict}: {outcome.reason}")
        if outcome.tag:
            print(f"release: {outcome.tag} (run {outcome.run_id}, dataset {outcome.dataset_id})")
        print(f"where to look: review UI {collector_url}/ · training plots {home / 'bucket' / 'runs' / str(outcome.run_id)}"
              f"/plots · logs {logs} · `./prefloop releases --changelog`")
        print(f"demo took {(time.monotonic() - started) / 60:.1f} min")
        if keep_running:
            print(f"\nkeeping the collector and the server running (router {server_url}/v1, admin token in "
                  f"PREFLOOP_SERVER_ADMIN_TOKEN of this process); Ctrl+C stops them")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0

"""The gate refuses what does not help: a training set with chosen and rejected swapped (the right answer rejected, a
wrong one chosen) trains a worse model, and the QA gate must refuse it, list its regressions, and leave the live model
serving. Real collector and server processes, the `improve` flow with the trainer and exporter as jobs,
SmolLM2-135M-Instruct on 12 of the bundled questions.

Every question gets a swapped pair: its reference answer rejected, the live model's answer to another question chosen.
Swapping only the reviewed train questions (the live model's own wrong answer chosen over the reviewer's) barely moves
a model that already gives those answers: with the QA repeatable, such a candidate read as the live model give or take
one question of the 12, and the gate accepted it in one of two runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import VENVS, clean_environment

from prefloop_core.clients import ServerAdminClient
from prefloop_core.contracts import HistoryAction
from prefloop_core.net import free_port
from prefloop_core.settings import load_settings
from prefloop_core.store import open_store
from prefloop_flows.bundled import load_qa_set
from prefloop_flows.demo import base_release, service
from prefloop_flows.settings import FlowsSettings

IMPROVE = (
    "from prefloop_flows.flows import improve_flow\nstate = improve_flow(return_state=True)\n"
    "print('state:', state.name)\nprint('message:', state.message)\nprint(state.result().comparison)"
)


def test_a_model_trained_on_swapped_pairs_is_refused_with_its_regressions_and_the_live_model_stays(
    tmp_path: Path, home: Path, small_qa_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    qa_set = load_qa_set(small_qa_file)
    config = tmp_path / "train.yaml"  # strong enough to move the model in a few steps on 6 pairs
    config.write_text("data:\n  min_pairs: 2\ntraining:\n  learning_rate: 1.0e-3\n  max_steps: 12\n  grad_accumulation: 1\n")
    token, admin = "swapped-test-reviewer-token", "swapped-test-admin-token"
    cport, sport = free_port(), free_port()
    for name in set(os.environ) - set(clean_environment()):
        monkeypatch.delenv(name)
    for name, value in dict(
        PREFLOOP_HOME=str(home),
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFLOOP_COLLECTOR_REVIEWERS=json.dumps({"flows": token}),
        PREFLOOP_COLLECTOR_MIN_PAIRS="2",
        PREFLOOP_COLLECTOR_WARN_PAIRS="2",
        PREFLOOP_SERVER_ADMIN_TOKEN=admin,
        PREFLOOP_SERVER_QA_MAX_TOKENS="64",
        PREFLOOP_FLOWS_COLLECTOR_URL=f"http://127.0.0.1:{cport}",
        PREFLOOP_FLOWS_COLLECTOR_TOKEN=token,
        PREFLOOP_FLOWS_SERVER_URL=f"http://127.0.0.1:{sport}",
        PREFLOOP_FLOWS_SERVER_TOKEN=admin,
        PREFLOOP_FLOWS_QA_SET=str(small_qa_file),
        PREFLOOP_FLOWS_TRAIN_CONFIG=str(config),
        PREFLOOP_FLOWS_EXPORT_MODE="adapter",
    ).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(FlowsSettings)
    store = open_store(settings)
    live_tag = base_release(settings)  # made once for the session (conftest); the candidate is it plus a LoRA
    logs, env = tmp_path / "logs", dict(os.environ)
    with (
        service(
            "collector",
            [str(VENVS / "collector/bin/prefloop-collector"), "review", "--web", "--host", "127.0.0.1", "--port", str(cport)],
            env,
            f"http://127.0.0.1:{cport}/health",
            logs / "collector.log",
        ),
        service(
            "server",
            [str(VENVS / "server/bin/prefloop-server"), "serve", "--host", "127.0.0.1", "--port", str(sport), "--tag", live_tag],
            env,
            f"http://127.0.0.1:{sport}/health",
            logs / "server.log",
        ),
    ):
        server = ServerAdminClient(f"http://127.0.0.1:{sport}", admin)
        live = {r.question_id: r for r in server.qa(qa_set.model_dump(mode="json")).records}
        assert any(r.score >= 0.7 for r in live.values()), "the live model answers none right: nothing could regress"
        questions = qa_set.questions
        swapped = [
            {
                "question": q.question,
                "context": q.context,
                "game": q.game,
                "rejected": q.reference,
                "chosen": live[questions[(i + 1) % len(questions)].id].answer,
            }  # an answer to another question
            for i, q in enumerate(questions)
        ]
        assert all(pair["rejected"] for pair in swapped)
        imported = httpx.post(f"http://127.0.0.1:{cport}/api/import", json=swapped, headers={"Authorization": f"Bearer {token}"})
        assert imported.status_code == 200 and imported.json()["imported"] == len(swapped), imported.text

        done = subprocess.run([sys.executable, "-c", IMPROVE], env=env, capture_output=True, text=True, timeout=900)
        out = done.stdout
        assert done.returncode == 0 and "state: Refused" in out, done.stderr[-3000:] + out[-2000:]
        message, comparison = out.split("message:", 1)[1].split("\n", 1)
        assert "the QA gate refused" in message and "QA gate: REFUSED" in comparison, out[-3000:]
        assert "Questions whose score moved" in comparison and "| **regressed** |" in comparison, comparison
        status = server.status()
    assert status.live_tag == live_tag
    [(tag, actions)] = {
        e.tag: [x.action for x in store.history() if x.tag == e.tag] for e in store.history() if e.tag != live_tag
    }.items()
    assert actions == [HistoryAction.DEPLOY, HistoryAction.DISCARD], (tag, actions)
    assert f"the QA gate refused {tag}" in message

"""`prefloop demo`, the whole loop, run as a person runs it: real collector and server processes, real llama-server
slots, Prefect flows, the trainer and exporter as jobs. Shortened to fit CI (12 questions, 4 training steps); the
full demo's effect is measured in benchmarks/effectiveness.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from prefloop_core.contracts import HistoryAction, Release, TrainingRun
from prefloop_core.store import ArtifactStore, LocalBackend
from prefloop_flows.bundled import load_qa_set

REPO = Path(__file__).resolve().parents[2]


def small_qa_set(path: Path) -> Path:
    """Two questions per game and language (one train, one held out): 12 of the bundled 72."""
    full = load_qa_set()
    picked, seen = [], set()
    for question in full.questions:
        key = (question.game, question.language, question.split)
        if key not in seen:
            seen.add(key)
            picked.append(question)
    path.write_text(full.model_copy(update={"name": "games-v1-small", "questions": picked}).model_dump_json())
    return path


def test_the_demo_runs_the_whole_loop_and_prints_a_real_comparison(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = tmp_path / "train.yaml"
    config.write_text("data:\n  min_pairs: 2\ntraining:\n  max_steps: 4\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFLOOP_", "PREFECT_"))}
    env.update(PREFLOOP_HOME=str(home), PREFLOOP_VENVS_DIR=os.environ["PREFLOOP_VENVS_DIR"],
               PREFLOOP_LLAMA_CPP_DIR=os.environ["PREFLOOP_LLAMA_CPP_DIR"],
               PREFLOOP_FLOWS_QA_SET=str(small_qa_set(tmp_path / "qa.json")), PREFLOOP_FLOWS_TRAIN_CONFIG=str(config),
               PREFLOOP_COLLECTOR_MIN_PAIRS="2", PREFLOOP_COLLECTOR_WARN_PAIRS="2")
    done = subprocess.run([str(REPO / "prefloop"), "demo"], capture_output=True, text=True, env=env, timeout=1200)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out[-3000:]

    assert "[demo 3/6] baseline QA" in out and "answers written into the queue" in out
    assert "| split: train |" in out and "| split: heldout |" in out, out[-3000:]  # the before/after table, per split
    assert "result: PROMOTED" in out or "result: REFUSED" in out

    store = ArtifactStore(LocalBackend(home / "bucket"))
    runs = store.ids(TrainingRun)
    trained = [store.require(Release, t) for t in store.ids(Release) if store.require(Release, t).run_id in runs]
    assert len(runs) == 1 and len(trained) == 1 and f"release: {trained[0].tag}" in out
    actions = [entry.action for entry in store.history() if entry.tag == trained[0].tag]
    assert actions[0] is HistoryAction.DEPLOY and actions[-1] in (HistoryAction.PROMOTE, HistoryAction.DISCARD)
    queue = home / "collector" / "queue.db"
    assert queue.is_file()
    status = json.loads(subprocess.run(
        [str(Path(os.environ["PREFLOOP_VENVS_DIR"]) / "collector/bin/prefloop-collector"), "status", "--json"],
        capture_output=True, text=True, env=env, check=True).stdout)
    assert status["trainable_pairs"] >= 2

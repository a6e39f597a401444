"""`prefloop demo`, the whole loop, run as a person runs it: real collector and server processes, real llama-server
slots, Prefect flows, the trainer and exporter as jobs. Shortened to fit CI (12 questions, 4 training steps); the
full demo's effect is measured in benchmarks/effectiveness.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import clean_environment

from prefloop_core.contracts import HistoryAction, Release, TrainingRun
from prefloop_core.store import ArtifactStore, LocalBackend

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_runs_the_whole_loop_and_prints_a_real_comparison(tmp_path: Path, home: Path, small_qa_file: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("data:\n  min_pairs: 2\ntraining:\n  max_steps: 4\n")
    env = clean_environment()
    # merged here (the demo exports adapters): SmolLM2's merged export runs end to end in this test
    env.update(PREFLOOP_HOME=str(home), PREFLOOP_FLOWS_QA_SET=str(small_qa_file), PREFLOOP_FLOWS_TRAIN_CONFIG=str(config),
               PREFLOOP_COLLECTOR_MIN_PAIRS="2", PREFLOOP_COLLECTOR_WARN_PAIRS="2", PREFLOOP_FLOWS_EXPORT_MODE="merged")
    done = subprocess.run([str(REPO / "prefloop"), "demo"], capture_output=True, text=True, env=env, timeout=1200)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out[-3000:]

    assert "reusing base release smollm2-135m-base-q4_k_m" in out  # made once for the session (conftest)
    assert "[demo 3/5] baseline QA" in out and "answers written into the queue" in out
    assert "| trained questions |" in out and "| held out questions |" in out, out[-3000:]  # before/after, per class
    assert "result: PROMOTED" in out or "result: REFUSED" in out
    charts = list((home / "reports").glob("qa-comparison-*.png"))
    assert len(charts) == 1 and f"before/after chart (per game, trained vs held-out questions): {charts[0]}" in out
    assert charts[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    store = ArtifactStore(LocalBackend(home / "bucket"))
    runs = store.ids(TrainingRun)
    trained = [store.require(Release, t) for t in store.ids(Release) if store.require(Release, t).run_id in runs]
    assert trained[0].mode.value == "merged"
    assert len(runs) == 1 and len(trained) == 1 and f"release: {trained[0].tag}" in out
    actions = [entry.action for entry in store.history() if entry.tag == trained[0].tag]
    assert actions[0] is HistoryAction.DEPLOY and actions[-1] in (HistoryAction.PROMOTE, HistoryAction.DISCARD)
    queue = home / "collector" / "queue.db"
    assert queue.is_file()
    status = json.loads(subprocess.run(
        [str(Path(os.environ["PREFLOOP_VENVS_DIR"]) / "collector/bin/prefloop-collector"), "status", "--json"],
        capture_output=True, text=True, env=env, check=True).stdout)
    assert status["trainable_pairs"] >= 2

"""`prefloop demo --rounds 2`, the whole loop twice, run as a person runs it: real collector and server processes,
real llama-server slots, Prefect flows, the trainer and exporter as jobs. Shortened to fit CI (12 questions, 4 training
steps) and with a gate that accepts any candidate, so that the second round always runs: this test is about the loop;
the gate's decisions are tested in services/server and tests/e2e/test_swapped_pairs.py, and the full demo's effect is
measured in benchmarks/effectiveness.py and benchmarks/results/effectiveness.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from conftest import clean_environment

from prefloop_core.contracts import DatasetManifest, HistoryAction, Release, TrainingRun
from prefloop_core.store import ArtifactStore, LocalBackend

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_runs_the_loop_twice_the_second_run_continuing_the_promoted_one(
    tmp_path: Path, home: Path, small_qa_file: Path
) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("data:\n  min_pairs: 2\ntraining:\n  max_steps: 4\n")
    env = clean_environment()
    # merged here (the demo exports adapters): SmolLM2's merged export runs end to end in this test
    env.update(
        PREFLOOP_HOME=str(home),
        PREFLOOP_FLOWS_QA_SET=str(small_qa_file),
        PREFLOOP_FLOWS_TRAIN_CONFIG=str(config),
        PREFLOOP_COLLECTOR_MIN_PAIRS="2",
        PREFLOOP_COLLECTOR_WARN_PAIRS="2",
        PREFLOOP_FLOWS_EXPORT_MODE="merged",
        PREFLOOP_SERVER_GATE_METHOD="count",
        PREFLOOP_SERVER_GATE_MIN_DELTA="-1",
        PREFLOOP_SERVER_GATE_MAX_REGRESSIONS="100",
    )
    done = subprocess.run(
        [str(REPO / "prefloop"), "demo", "--rounds", "2"], capture_output=True, text=True, env=env, timeout=1800
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out[-3000:]

    assert "reusing base release smollm2-135m-base-q4_k_m" in out  # made beforehand (conftest)
    assert "[demo 3/8] baseline QA" in out and "answers written into the queue" in out and "=== round 2 of 2 ===" in out
    assert "| trained questions |" in out and "| held out questions |" in out, out[-3000:]  # before/after, per class
    assert out.count("result: PROMOTED") == 2, out[-3000:]
    charts = sorted((home / "reports").glob("qa-comparison-*.png"))
    assert len(charts) == 2 and all(f"before/after chart (per game, trained vs held-out questions): {c}" in out for c in charts)
    assert all(c.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for c in charts)

    store = ArtifactStore(LocalBackend(home / "bucket"))
    runs = [store.require(TrainingRun, run_id) for run_id in store.ids(TrainingRun)]
    first, second = sorted(runs, key=lambda run: run.started_at)
    # Round 1 starts from the base; round 2 continues round 1's adapter, now the live model, on a dataset that holds
    # round 1's pairs and the promoted model's own wrong answers to the same reviewed questions.
    assert first.config["model"]["init_run"] is None and second.config["model"]["init_run"] == first.run_id
    assert f"continuing run {first.run_id}, the live model's" in out and "from the base model" in out
    datasets = [store.require(DatasetManifest, run.dataset_id) for run in (first, second)]
    assert datasets[1].pair_count >= datasets[0].pair_count
    releases = {store.require(Release, t).run_id: store.require(Release, t) for t in store.ids(Release)}
    tags = [releases[run.run_id].tag for run in (first, second)]
    assert all(releases[run.run_id].mode.value == "merged" for run in (first, second))
    assert all(f"release: {tag}" in out for tag in tags)
    promoted = [e.tag for e in store.history() if e.action is HistoryAction.PROMOTE and e.tag in tags]
    assert promoted == tags
    changelog = subprocess.run(
        [str(REPO / "prefloop"), "releases", "--changelog"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert all(re.search(rf"\| {tag} \| \d+\.\d% \|", changelog) for tag in tags), changelog
    queue = home / "collector" / "queue.db"
    assert queue.is_file()
    status = json.loads(
        subprocess.run(
            [str(Path(os.environ["PREFLOOP_VENVS_DIR"]) / "collector/bin/prefloop-collector"), "status", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
    )
    assert status["trainable_pairs"] >= 2

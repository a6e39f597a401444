"""The memory estimate against measured peak RSS, refusal under the minimum, resume after a real kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trainer_helpers import publish_dataset, synthetic_pairs

from prefloop_core.contracts import Checkpoint, TrainingRun
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore, LocalBackend

HERE = Path(__file__).parent
TRAINER = str(Path(sys.executable).parent / "prefloop-trainer")


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOOP_") or k == "PREFLOOP_LLAMA_CPP_DIR"}
    return {**env, "PREFLOOP_HOME": str(home), "PYTHONPATH": str(HERE), "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize(("batch", "max_length", "words"), [(1, 64, 5), (4, 256, 120)])
def test_the_memory_estimate_is_within_30_percent_of_peak_rss(
    tiny_model: Path, tmp_path: Path, batch: int, max_length: int, words: int
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "memprobe.py"),
            str(tmp_path / "home"),
            str(tiny_model),
            str(batch),
            str(max_length),
            str(words),
        ],
        capture_output=True,
        text=True,
        env=env_for(tmp_path / "home"),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    ratio = measured["estimated_gib"] / measured["peak_gib"]
    assert 0.7 <= ratio <= 1.3, measured
    assert measured["plan"]["batch_size"] == batch and measured["plan"]["device"] == "cpu"  # run.json's resolved plan


def test_fewer_pairs_than_the_minimum_are_refused_with_the_count_and_what_to_do(tiny_model: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = ArtifactStore(LocalBackend(Settings(home=home).bucket_dir))
    dataset = publish_dataset(store, synthetic_pairs(6), "ds-six0000000000001")
    result = subprocess.run(
        [TRAINER, "train", "--set", f"model.base={tiny_model}", "--set", f"data.dataset_id={dataset}"],
        capture_output=True,
        text=True,
        env=env_for(home),
        timeout=300,
    )
    assert result.returncode == 1
    assert "6 pairs is fewer than the minimum of 10" in result.stderr and "prefloop status" in result.stderr
    assert "Traceback" not in result.stderr and store.ids(TrainingRun) == []


def test_prompts_longer_than_max_length_are_refused_before_loading_weights(tiny_model: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = ArtifactStore(LocalBackend(Settings(home=home).bucket_dir))
    dataset = publish_dataset(store, synthetic_pairs(12), "ds-long000000000001")
    result = subprocess.run(
        [
            TRAINER,
            "train",
            "--set",
            f"model.base={tiny_model}",
            "--set",
            f"data.dataset_id={dataset}",
            "--set",
            "data.max_length=32",
        ],
        capture_output=True,
        text=True,
        env=env_for(home),
        timeout=300,
    )
    assert result.returncode == 1 and "every prompt is at least data.max_length=32 tokens long" in result.stderr
    assert "Traceback" not in result.stderr and store.ids(TrainingRun) == []


def test_training_sleeps_at_openmp_barriers(tiny_model: Path, tmp_path: Path) -> None:
    """Beside a busy live slot on the same cores, spinning torch threads made 3 steps take 154 s instead of 13 s
    (PREFLOOP_OMP_WAIT_POLICY, passive by default; benchmarks/results/trainer.md). libgomp prints what it runs with
    as it loads: 300000 spins before sleeping by default, none when passive."""
    home = tmp_path / "home"
    dataset = publish_dataset(
        ArtifactStore(LocalBackend(Settings(home=home).bucket_dir)), synthetic_pairs(12), "ds-omp0000000000001"
    )
    env = {**env_for(home), "OMP_DISPLAY_ENV": "verbose"}
    env.pop("OMP_WAIT_POLICY", None)
    result = subprocess.run(
        [
            TRAINER,
            "train",
            "--set",
            f"model.base={tiny_model}",
            "--set",
            f"data.dataset_id={dataset}",
            "--set",
            "training.max_steps=1",
            "--set",
            "data.max_length=64",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GOMP_SPINCOUNT = '0'" in result.stderr


def test_a_run_killed_mid_way_resumes_from_its_last_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = ArtifactStore(LocalBackend(Settings(home=home).bucket_dir))
    dataset = publish_dataset(store, synthetic_pairs(16), "ds-resume000000001")
    run_id = "run-20261123-000000-test"
    command = [
        TRAINER,
        "train",
        "--set",
        f"model.base={tiny_model}",
        "--set",
        f"data.dataset_id={dataset}",
        "--set",
        f"run_id={run_id}",
        "--set",
        "training.batch_size=2",
        "--set",
        "training.grad_accumulation=1",
        "--set",
        "training.max_steps=12",
        "--set",
        "training.checkpoint_steps=4",
        "--set",
        "data.max_length=64",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env_for(home))
    deadline = time.monotonic() + 300
    while not store.ids(Checkpoint, prefix=f"{run_id}-dpo-") and time.monotonic() < deadline:
        assert first.poll() is None, first.communicate()[0][-3000:]
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    saved = store.ids(Checkpoint, prefix=f"{run_id}-dpo-")
    assert saved and store.get(TrainingRun, run_id) is None

    second = subprocess.run(command, capture_output=True, text=True, env=env_for(home), timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    step = int(saved[-1].rsplit("-", 1)[1])
    assert f"resuming from checkpoint-{step}" in second.stdout
    run = store.require(TrainingRun, run_id)
    steps = [row["step"] for row in json.loads(store.read_bytes(run, "metrics.json"))["steps"]]
    assert steps[0] == step + 1 and steps[-1] == 12  # no step trained twice, none skipped

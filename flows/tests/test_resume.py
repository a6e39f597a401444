"""Kill the worker mid-training, run the flow again: training resumes from its last checkpoint in the bucket (the
trainer makes the same run id from the same inputs), and a third run repeats nothing. Real collector, real Prefect (its temporary local API), real trainer job on a tiny model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from prefloop_core.contracts import Checkpoint, TrainingRun
from prefloop_core.net import free_port, wait_until_ready
from prefloop_core.store import ArtifactStore, LocalBackend

VENVS = Path(os.environ.get("PREFLOOP_VENVS_DIR", ".venvs"))
TOKEN = "resume-test-token-0123456789"
RUN_FLOW = "from prefloop_flows.flows import train_flow; print('outcome:', train_flow(return_state=True).name)"
PROGRESS = (
    "\nfrom prefect.client.orchestration import get_client\n"  # (read_artifacts() sends nulls the API refuses)
    "with get_client(sync_client=True) as client:\n"
    "    found = client.request('POST', '/artifacts/filter', json={'artifacts': {'key': {'any_': ['training-progress']}}})\n"
    "print('progress:', [(a['type'], a['data'], a['description']) for a in found.json()])"
)


def pairs(n: int) -> list[dict[str, str]]:
    games = ["minecraft", "palworld", "overwatch"]
    return [
        {
            "question": f"Question {i} about {games[i % 3]}: what should I build first?",
            "game": games[i % 3],
            "rejected": f"I do not know, sorry ({i}).",
            "chosen": f"Build a shelter with a door and torches first ({i}).",
        }
        for i in range(n)
    ]


@pytest.fixture
def collector(tmp_path: Path) -> str:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFLOOP_")},
        "PREFLOOP_HOME": str(tmp_path / "home"),
        "PREFLOOP_COLLECTOR_REVIEWERS": f'{{"flows": "{TOKEN}"}}',
    }
    with open(tmp_path / "collector.log", "wb") as log:
        proc = subprocess.Popen(
            [str(VENVS / "collector/bin/prefloop-collector"), "review", "--web", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", 60, proc)
        imported = httpx.post(
            f"http://127.0.0.1:{port}/api/import", json=pairs(16), headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()
        assert imported["imported"] == 16
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_killed_training_resumes_and_a_finished_stage_is_not_repeated(collector: str, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny"
    subprocess.run(
        [
            str(VENVS / "trainer/bin/python"),
            "-c",
            "import sys; from pathlib import Path; "
            "from prefloop_core.settings import Settings; from prefloop_ml.testing import build_tiny_model; "
            f"build_tiny_model(Path({str(tiny)!r}), Settings(home=Path({str(tmp_path / 'tiny-home')!r})))",
        ],
        check=True,
        capture_output=True,
    )
    config = tmp_path / "train.yaml"
    config.write_text(
        f"model:\n  base: {tiny}\ndata:\n  max_length: 192\n  min_pairs: 2\n"
        "training:\n  batch_size: 2\n  grad_accumulation: 1\n  max_steps: 12\n  checkpoint_steps: 4\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFLOOP_", "PREFECT_"))},
        "PREFLOOP_HOME": str(tmp_path / "home"),
        "PREFLOOP_VENVS_DIR": str(VENVS),
        "PREFLOOP_FLOWS_COLLECTOR_URL": collector,
        "PREFLOOP_FLOWS_COLLECTOR_TOKEN": TOKEN,
        "PREFLOOP_FLOWS_TRAIN_CONFIG": str(config),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFLOOP_FLOWS_TRAIN_FROM_LIVE": "false",  # no server here to say what is live: train from the base
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    store = ArtifactStore(LocalBackend(tmp_path / "home" / "bucket"))

    worker = subprocess.Popen(
        [sys.executable, "-c", RUN_FLOW],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not store.ids(Checkpoint) and time.monotonic() < deadline:
        assert worker.poll() is None, worker.communicate()[0][-3000:]
        time.sleep(0.1)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and everything it started: Prefect's API, the trainer
    worker.wait()
    saved = store.ids(Checkpoint)
    assert saved and not store.ids(TrainingRun)

    second = subprocess.run([sys.executable, "-c", RUN_FLOW + PROGRESS], env=env, capture_output=True, text=True, timeout=600)
    log = second.stdout + second.stderr
    assert second.returncode == 0 and "outcome: Completed" in log, log[-3000:]
    assert f"resuming from checkpoint-{int(saved[-1].rsplit('-', 1)[1])}" in log
    # the job's progress lines became the progress artifact, not log lines; its own bar line is in the log
    assert "[dpo] [" in log and "PREFLOOP_PROGRESS" not in log and "{'loss'" not in log, log[-3000:]
    assert "('progress', 100, 'dpo: step 12/12, about 0.0 min left')" in log, log[-3000:]  # (and the killed run's)
    [run_id] = store.ids(TrainingRun)

    third = subprocess.run([sys.executable, "-c", RUN_FLOW], env=env, capture_output=True, text=True, timeout=600)
    log = third.stdout + third.stderr
    assert third.returncode == 0 and "outcome: Completed" in log, log[-3000:]
    # the trainer found its run already published (same dataset, config, base, trainer) and trained nothing
    assert "is already published" in log and "[dpo]" not in log and "resuming" not in log, log[-3000:]
    assert store.ids(TrainingRun) == [run_id]

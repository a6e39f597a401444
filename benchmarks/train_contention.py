"""Training beside the live model on one CPU: OpenMP's wait policy decides whether they share the cores.

On a CPU host the trainer runs on the cores the live llama-server slot answers on. torch's threads, like ggml's, meet
at a barrier after every operation and by default spin there (libgomp: 300,000 iterations) before sleeping; a spinning
thread preempted by the live slot's threads holds every barrier up for a scheduler time slice. For each policy
(`PREFLOOP_OMP_WAIT_POLICY` of the `prefloop-trainer train` process: `default` = OpenMP's spinning, `passive` =
prefloop's default): a short DPO run of SmolLM2-135M-Instruct alone, then the same run while one client keeps asking
the live model (a prefloop server, SmolLM2 Q4_1 live, slots passive) through the router. Reported: the run's training
time (metrics.json's train_runtime, model loading excluded) and the live model's tokens/s meanwhile. Interleaved
rounds, medians; a run still going after `--cap` seconds is stopped and shown as "> cap".

    .venvs/server/bin/python benchmarks/train_contention.py [--steps 3] [--rounds 2] [--cap 300] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services" / "server" / "tests"))
from report import emit  # noqa: E402  (the script's folder is on sys.path)
from server_bench import story_requests  # noqa: E402
from server_helpers import build_bucket, start_server, stop_server  # noqa: E402

from prefloop_core.contracts import TrainingRun  # noqa: E402
from prefloop_core.store import ArtifactStore, LocalBackend  # noqa: E402

TRAINER_VENV = Path(os.environ.get("PREFLOOP_VENVS_DIR", REPO / ".venvs")) / "trainer" / "bin"
POLICIES = ("default", "passive")


def prepare(home: Path) -> str:
    """The train benchmark's 16 synthetic pairs as a dataset in `home`'s bucket (in the trainer's venv)."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); import train_bench; from pathlib import Path; "
        f"print(train_bench.prepare(Path({str(home)!r}), 16))"
    )
    done = subprocess.run([str(TRAINER_VENV / "python"), "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def train(home: Path, dataset: str, steps: int, policy: str, cap: float) -> float | None:
    """Training seconds of one `prefloop-trainer train` run (None: stopped at `cap`)."""
    store = ArtifactStore(LocalBackend(home / "bucket"))
    before = set(store.ids(TrainingRun))
    env = {**os.environ, "PREFLOOP_HOME": str(home), "PREFLOOP_OMP_WAIT_POLICY": policy}
    env.pop("OMP_WAIT_POLICY", None)
    try:
        subprocess.run(
            [
                str(TRAINER_VENV / "prefloop-trainer"),
                "train",
                "--set",
                "model.base=smollm2",
                "--set",
                f"data.dataset_id={dataset}",
                "--set",
                f"training.max_steps={steps}",
                "--set",
                "data.max_length=256",
                "--set",
                "training.checkpoint_steps=1000",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=cap,
        )
    except subprocess.TimeoutExpired:
        return None
    [run_id] = set(store.ids(TrainingRun)) - before
    metrics = json.loads(store.read_bytes(store.require(TrainingRun, run_id), "metrics.json"))
    return float(metrics["summary"]["train_runtime"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per run (4 pairs each; default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the policies (default 2)")
    parser.add_argument("--cap", type=float, default=300, help="stop a run after this many seconds (default 300)")
    parser.add_argument("--out", type=Path)
    ns = parser.parse_args()
    runs: dict[str, dict[str, list]] = {p: {"alone": [], "beside": [], "live": []} for p in POLICIES}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = build_bucket(root)
        home = root / "trainer-home"
        dataset = prepare(home)
        server = start_server(root / "server-home", paths["bucket"], paths["template"])
        try:
            admin = server.admin()
            for step, body in (("deploy", {"tag": "good"}), ("promote", {})):
                admin.post(f"/admin/{step}", json=body).raise_for_status()
            alone: list[tuple[float, float]] = []
            story_requests(server.url, alone, n=4)
            for round_ in range(ns.rounds):
                for policy in POLICIES:
                    runs[policy]["alone"].append(train(home, dataset, ns.steps, policy, ns.cap))
                    stop = threading.Event()
                    live: list[tuple[float, float]] = []
                    loader = threading.Thread(target=story_requests, args=(server.url, live), kwargs={"stop": stop})
                    loader.start()
                    runs[policy]["beside"].append(train(home, dataset, ns.steps, policy, ns.cap))
                    stop.set()
                    loader.join()
                    runs[policy]["live"].append(statistics.median(tps for _, tps in live) if live else None)
                    print(
                        f"round {round_ + 1}: {policy}: " + ", ".join(f"{k} {v[-1]}" for k, v in runs[policy].items()),
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            stop_server(server)

    def med(policy: str, key: str, unit: str = "") -> str:
        values = runs[policy][key]
        if any(v is None for v in values):
            return f"> {ns.cap:.0f}{unit}" if key != "live" else "-"
        return f"{statistics.median(values):.1f}{unit}"

    lines = [
        f"machine: {platform.node()} · {platform.machine()} · {os.cpu_count()} cores · "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · SmolLM2-135M-Instruct, DPO + LoRA r16, {ns.steps} steps "
        f"of 4 pairs, CPU; live: SmolLM2 Q4_1, slots passive · {ns.rounds} rounds (medians); live alone "
        f"{statistics.median(tps for _, tps in alone):.1f} tok/s",
        "",
        "| trainer's PREFLOOP_OMP_WAIT_POLICY | training alone s | training beside the busy live model s "
        "| live tok/s meanwhile |",
        "| --- | ---: | ---: | ---: |",
    ]
    for policy in POLICIES:
        lines.append(f"| {policy} | {med(policy, 'alone')} | {med(policy, 'beside')} | {med(policy, 'live')} |")
    lines += ["", f"all runs: {json.dumps(runs)}"]
    emit(lines, ns.out)


if __name__ == "__main__":
    main()

"""Loop effectiveness: which trainer settings make the served model better on small data, over seeds.

    .venvs/flows/bin/python benchmarks/effectiveness.py --work DIR [--trials a,b] [--seeds 0,1,2] [--report FILE]

One pass of the demo's loop, with the training settings swept. Set up once per work folder (kept, so
trials can be added in later invocations): SmolLM2-135M-Instruct's Q4_K_M base release (as the demo
serves it) is live on a real `prefloop serve`; the bundled QA set is asked once; the bad answers on train questions
go to a real collector; the bundled reviewer answers are written into the queue; the snapshot is the
dataset every trial trains on (rehearsal trials: that plus a pair for each train question live already answers
right, the reviewer's answer over a wrong sample of live's, made with `prefloop qa --candidates` on first use).
Each trial then runs the real jobs: `prefloop-trainer train` with the
trial's settings and seed, `prefloop-exporter export --mode adapter --quant Q4_K_M` (the LoRA over the
Q4_K_M base release, as the demo exports), `deploy` to the idle slot, `games-v2` (the demo's QA set and the second
week's 24 questions, which this round never trains on) against that slot
with the same runner, scorer, template and greedy decoding, and `discard`.

QA runs as the demo's does: one request at a time on the server's slots (4 sequences each), without reusing cached
prompts (the server's QA and gate always ask so): benchmarks/qa_noise.py measured that batched decoding and reused
prompts both move scores between identical runs, which would swamp small effects. (Work folders set up before
2026-11-24 11:00 asked on one-sequence slots with prompts reused: their numbers are not comparable with later ones.)

A `-x<scale>` trial trains nothing: it serves the named trial's adapter of the same seed at that LoRA scale
(llama-server's `/lora-adapters`), so list that trial first. Every trial's numbers go to `<work>/trials.jsonl`; `--report FILE` appends the tables to FILE: mean and spread
over seeds, per setting; and each setting against the defaults on the seeds both ran, question by question, with a
sign test (how a lever's default is decided: benchmarks/results/effectiveness.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import yaml
from scipy import stats

from prefloop_core.contracts import QARecord, SlotStatus

from report import emit  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
STATE_FILE = "setup.json"  # in the work folder: the live scores and dataset ids every trial reuses
CORRECT_AT = 0.7

# name -> (what it is, trainer config overrides). "source" is the source's values (and the trainer's first defaults).
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
# The source's values, written out: every trial is these plus its own changes, whatever the trainer's defaults are now.
SOURCE = {
    "method": {"name": "dpo", "loss_type": ["sigmoid"], "beta": 0.1},
    "training": {"learning_rate": 5e-5, "epochs": 3.0, "batch_size": 1, "grad_accumulation": 4},
    "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear"},
}
RPO = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]}  # DPO plus an SFT term on the chosen answers
TRIALS: dict[str, tuple[str, dict[str, Any]]] = {
    "source": ("DPO sigmoid, lr 5e-5, beta 0.1, 3 epochs, r16 all-linear (the source's values)", {}),
    "dpo-lr5e-4": ("DPO sigmoid, lr 5e-4", {"training": {"learning_rate": 5e-4}}),
    "dpo-lr5e-4-b0.5": ("DPO sigmoid, lr 5e-4, beta 0.5", {"training": {"learning_rate": 5e-4}, "method": {"beta": 0.5}}),
    "ipo-lr5e-4": ("DPO ipo, lr 5e-4", {"training": {"learning_rate": 5e-4}, "method": {"loss_type": ["ipo"]}}),
    "rpo-lr5e-5": ("DPO sigmoid + SFT on chosen (RPO), lr 5e-5", {"method": RPO}),
    "rpo-lr2e-4": ("DPO sigmoid + SFT on chosen (RPO), lr 2e-4", {"training": {"learning_rate": 2e-4}, "method": RPO}),
    "rpo-lr2e-4-attn": (
        "RPO, lr 2e-4, r16 attention only",
        {"training": {"learning_rate": 2e-4}, "method": RPO, "lora": {"target_modules": ATTENTION}},
    ),
    "rpo-lr2e-4-r8": (
        "RPO, lr 2e-4, r8 alpha 16",
        {"training": {"learning_rate": 2e-4}, "method": RPO, "lora": {"r": 8, "alpha": 16}},
    ),
    "sft+dpo-lr5e-5": ("SFT 2 epochs on chosen, then DPO, lr 5e-5", {"method": {"name": "sft+dpo", "sft_epochs": 2}}),
    "sft+dpo-lr2e-4": (
        "SFT 2 epochs on chosen, then DPO, lr 2e-4",
        {"training": {"learning_rate": 2e-4}, "method": {"name": "sft+dpo", "sft_epochs": 2}},
    ),
    "rpo-lr4e-4": ("RPO, lr 4e-4", {"training": {"learning_rate": 4e-4}, "method": RPO}),
    "rpo-lr2e-4-rehearsal": (
        "RPO, lr 2e-4, plus pairs for the train questions live already gets right",
        {"training": {"learning_rate": 2e-4}, "method": RPO},
    ),
    "rpo-lr4e-4-rehearsal": (
        "RPO, lr 4e-4, plus pairs for the train questions live already gets right",
        {"training": {"learning_rate": 4e-4}, "method": RPO},
    ),
    # The trainer's defaults (the line above) with one more setting changed:
    "rpo-lr4e-4-rehearsal-b0.5": (
        "RPO, lr 4e-4, rehearsal, beta 0.5",
        {"training": {"learning_rate": 4e-4}, "method": {**RPO, "beta": 0.5}},
    ),
    "rpo-lr4e-4-rehearsal-e2": (
        "RPO, lr 4e-4, rehearsal, 2 epochs",
        {"training": {"learning_rate": 4e-4, "epochs": 2.0}, "method": RPO},
    ),
    "rpo-lr4e-4-rehearsal-r8": (
        "RPO, lr 4e-4, rehearsal, r8 alpha 16",
        {"training": {"learning_rate": 4e-4}, "method": RPO, "lora": {"r": 8, "alpha": 16}},
    ),
    "rpo-lr4e-4-rehearsal-attn": (
        "RPO, lr 4e-4, rehearsal, r16 on the attention projections only",
        {"training": {"learning_rate": 4e-4}, "method": RPO, "lora": {"target_modules": ATTENTION}},
    ),
    # Aimed at the regressions (train questions with rehearsal pairs that still flip): a lighter SFT term, a lower lr ...
    "rpo-lr4e-4-rehearsal-sft0.5": (
        "RPO, lr 4e-4, rehearsal, SFT term weighted 0.5",
        {"training": {"learning_rate": 4e-4}, "method": {**RPO, "loss_weights": [1.0, 0.5]}},
    ),
    "rpo-lr3e-4-rehearsal": ("RPO, lr 3e-4, rehearsal", {"training": {"learning_rate": 3e-4}, "method": RPO}),
    # ... or at learning the reviewed answers better (the flipped train questions never learnt theirs):
    "rpo-lr4e-4-rehearsal-e5": (
        "RPO, lr 4e-4, rehearsal, 5 epochs",
        {"training": {"learning_rate": 4e-4, "epochs": 5.0}, "method": RPO},
    ),
    "rpo-lr6e-4-rehearsal": ("RPO, lr 6e-4, rehearsal", {"training": {"learning_rate": 6e-4}, "method": RPO}),
    # The defaults computed in bf16 with a step's 4 pairs in one micro-batch (faster on train_bench's same-length
    # synthetic pairs on a CPU with AMX, not on the demo's: results/trainer.md):
    "rpo-lr4e-4-rehearsal-bf16": (
        "RPO, lr 4e-4, rehearsal, bf16, 4 pairs per micro-batch",
        {
            "training": {"learning_rate": 4e-4, "dtype": "bfloat16", "pack_micro_batches": "on", "group_by_length": "off"},
            "method": RPO,
        },
    ),
    "rpo-lr4e-4-rehearsal-bf16-grouped": (
        "RPO, lr 4e-4, rehearsal, bf16, 4 pairs per micro-batch grouped by length",
        {
            "training": {"learning_rate": 4e-4, "dtype": "bfloat16", "pack_micro_batches": "on", "group_by_length": "on"},
            "method": RPO,
        },
    ),
    # What keeps right answers right (issue: fewer regressions, made by training), each one change from the defaults
    # (rpo-lr4e-4-rehearsal-e5):
    "rpo-lr4e-4-e5": (
        "the defaults without rehearsal pairs (rehearsal share 0)",
        {"training": {"learning_rate": 4e-4, "epochs": 5.0}, "method": RPO},
    ),
    "rpo-lr4e-4-rehearsal-e5-b0.3": (
        "the defaults, beta 0.3 (held closer to the live model)",
        {"training": {"learning_rate": 4e-4, "epochs": 5.0}, "method": {**RPO, "beta": 0.3}},
    ),
    "rpo-lr4e-4-rehearsal-e5-sft2": (
        "the defaults, SFT term weighted 2",
        {"training": {"learning_rate": 4e-4, "epochs": 5.0}, "method": {**RPO, "loss_weights": [1.0, 2.0]}},
    ),
    "rpo-lr4e-4-rehearsal-e5-sft0.5": (
        "the defaults, SFT term weighted 0.5",
        {"training": {"learning_rate": 4e-4, "epochs": 5.0}, "method": {**RPO, "loss_weights": [1.0, 0.5]}},
    ),
    "apo-lr4e-4-rehearsal-e5": (
        "the defaults with TRL's apo_zero in place of sigmoid DPO (for pairs a small edit apart)",
        {
            "training": {"learning_rate": 4e-4, "epochs": 5.0},
            "method": {"loss_type": ["apo_zero", "sft"], "loss_weights": [1.0, 1.0]},
        },
    ),
    "rpo-lr3e-4-rehearsal-e5": ("the defaults, lr 3e-4", {"training": {"learning_rate": 3e-4, "epochs": 5.0}, "method": RPO}),
    "rpo-lr4e-4-rehearsal-e4": ("the defaults, 4 epochs", {"training": {"learning_rate": 4e-4, "epochs": 4.0}, "method": RPO}),
}
DEFAULTS = "rpo-lr4e-4-rehearsal-e5"  # the trainer's defaults: every lever above is one change from these
# The LoRA applied at a scale below 1 (llama-server's /lora-adapters), as an export could bake it in: no training of its
# own, the named trial's adapter of the same seed at that scale.
SCALED = {f"rpo-lr4e-4-rehearsal-e5-x{scale:g}": ("rpo-lr4e-4-rehearsal-e5", scale) for scale in (0.6, 0.8)}
TRIALS.update({name: (f"the defaults' LoRA served at scale {scale:g}", {}) for name, (_, scale) in SCALED.items()})
# Trials that train on the rehearsal dataset: the reviewed pairs plus, for each train question the live model already
# answers right, a pair of the reviewer's answer over one of the live model's own bad sampled answers (`qa --candidates`),
# so that training on the others does not make it forget those.
REHEARSAL = {name for name in TRIALS if "-rehearsal" in name}


def trial_config(overrides: dict[str, Any]) -> dict[str, Any]:
    return {section: {**values, **overrides.get(section, {})} for section, values in SOURCE.items()}


def scores_of(records: list[dict[str, Any]]) -> dict[str, float]:
    return {r["question_id"]: r["score"] for r in records}


def measure(scores: dict[str, float], live: dict[str, float], split: dict[str, list[str]]) -> dict[str, Any]:
    """Accuracy per split and overall (the demo's QA set: train and heldout), regressions and fixes on it; `week2` (the
    second week's questions, which round 1 never trains on) when the trial was asked them."""

    def acc(ids: list[str]) -> float:
        return sum(scores.get(i, 0.0) for i in ids) / len(ids)

    everything = [*split["train"], *split["heldout"]]
    asked_week2 = all(q in scores for q in split.get("week2", [None]))
    return {
        "accuracy": acc(everything),
        "train": acc(split["train"]),
        "heldout": acc(split["heldout"]),
        "week2": acc(split["week2"]) if asked_week2 else None,
        "regressions": sorted(q for q in everything if live[q] >= CORRECT_AT > scores.get(q, 0.0)),
        "fixed": sorted(q for q in everything if scores.get(q, 0.0) >= CORRECT_AT > live[q]),
    }


class Loop:
    """The live services of the work folder and the calls a trial makes on them."""

    def __init__(self, work: Path, server: Any, collector: Any, settings: Any, slot_key: str) -> None:
        self.work, self.server, self.collector, self.settings = work, server, collector, settings
        self.slot_key = slot_key  # the server's PREFLOOP_SERVER_SLOT_API_KEY: its slots are asked directly

    def ask(self, tag: str, qa_set_file: Path, out: Path, option: list[str], suffix: str) -> list[dict[str, Any]]:
        """`prefloop qa` against the slot that serves `tag`, 64-token answers; the lines of its `*<suffix>` output."""
        status = self.server.status()
        ready = [s for s in status.slots if s.tag == tag and s.status is SlotStatus.READY]
        slot = next((s for s in ready if s.name != status.live), ready[0])  # the idle one when both hold `tag`
        subprocess.run(
            [
                str(self.settings.venvs_dir / "server/bin/prefloop-server"),
                "qa",
                "--set",
                str(qa_set_file),
                "--endpoint",
                f"http://127.0.0.1:{slot.port}",
                "--model",
                tag,
                *option,
                "--max-tokens",
                "64",
                "--out",
                str(out),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PREFLOOP_QA_API_KEY": self.slot_key},
        )
        [found] = out.glob(f"*{suffix}")
        return [json.loads(line) for line in found.read_text(encoding="utf-8").splitlines()]

    def qa_on_slot(self, tag: str, qa_set_file: Path, folder: str = "") -> list[dict[str, Any]]:
        """The QA set against the slot that serves `tag`, one request at a time, no prompt reuse: its records, kept in
        `<work>/qa/<folder or tag>/` for reading the answers later."""
        out = self.work / "qa" / (folder or tag)
        return self.ask(tag, qa_set_file, out, ["--concurrency", "1", "--llama-server"], ".records.jsonl")

    def candidates(self, tag: str, qa_set_file: Path) -> list[dict[str, Any]]:
        """Four sampled answers per question from the slot that serves `tag` (`--candidates`): the bad ones."""
        return self.ask(tag, qa_set_file, self.work / "candidates", ["--candidates", "4"], ".candidates.jsonl")

    def lora_scale(self, scale: float) -> None:
        """The idle slot's LoRA applied at `scale` from now on (llama-server's `/lora-adapters`)."""
        httpx.post(
            f"http://127.0.0.1:{self.server.status().idle.port}/lora-adapters",
            json=[{"id": 0, "scale": scale}],
            headers={"Authorization": f"Bearer {self.slot_key}"},
            timeout=30,
        ).raise_for_status()

    def scaled(self, name: str, seed: int, trained: dict[str, Any], qa_set_file: Path) -> dict[str, Any]:
        """`trained` (the SCALED trial's own, same seed) with its LoRA applied at the trial's scale."""
        scale = SCALED[name][1]
        self.server.deploy(trained["tag"], "benchmark")
        try:
            self.lora_scale(scale)
            records = self.qa_on_slot(trained["tag"], qa_set_file, f"{trained['tag']}-x{scale:g}")  # beside scale 1's
        finally:
            self.server.discard("benchmark")
        return {**trained, "trial": name, "description": TRIALS[name][0], "scores": scores_of(records), "lora_scale": scale}

    def trial(self, name: str, seed: int, dataset_id: str, qa_set_file: Path) -> dict[str, Any]:
        from prefloop_flows.jobs import Job, made_release, make_runner

        description, overrides = TRIALS[name]
        config = self.work / "configs" / f"{name}.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(trial_config(overrides)), encoding="utf-8")
        run_id = f"run-{name.replace('+', '-').replace('.', '')}-s{seed}"
        runner = make_runner(self.settings)
        log = self.work / "logs" / f"{run_id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as fh:

            def write(line: str) -> None:
                fh.write(line + "\n")
                fh.flush()

            started = time.monotonic()
            runner.run(
                Job(
                    "trainer",
                    [
                        "train",
                        "--config",
                        str(config),
                        "--set",
                        f"data.dataset_id={dataset_id}",
                        "--set",
                        f"run_id={run_id}",
                        "--set",
                        f"training.seed={seed}",
                    ],
                ),
                write,
            )
            train_s = time.monotonic() - started
            tag = made_release(runner.run(Job("exporter", ["export", run_id, "--mode", "adapter", "--quant", "Q4_K_M"]), write))
        self.server.deploy(tag, "benchmark")
        try:
            records = self.qa_on_slot(tag, qa_set_file)
        finally:
            self.server.discard("benchmark")
        return {
            "trial": name,
            "description": description,
            "seed": seed,
            "run_id": run_id,
            "tag": tag,
            "train_seconds": round(train_s, 1),
            "scores": scores_of(records),
        }


def save_state(work: Path, state: dict[str, Any]) -> None:
    (work / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")


def setup(loop: Loop, qa_set: Any, qa_set_file: Path, live_tag: str) -> dict[str, Any]:
    """Once per work folder: the live model's QA records, the queue filled and answered, the dataset id."""
    from prefloop_flows.bundled import REVIEWER_ANSWERS
    from prefloop_flows.demo import apply_reviewer_answers

    state_file = loop.work / STATE_FILE
    if state_file.exists():
        return json.loads(state_file.read_text(encoding="utf-8"))
    records = loop.qa_on_slot(live_tag, qa_set_file)
    ingested = loop.collector.ingest([QARecord.model_validate(r) for r in records])
    answered = apply_reviewer_answers(loop.collector, qa_set, REVIEWER_ANSWERS[0])
    manifest = loop.collector.snapshot()
    state = {
        "live_tag": live_tag,
        "live_scores": scores_of(records),
        "queued": ingested.new_items,
        "answered": answered,
        "dataset_id": manifest.dataset_id,
        "pairs": manifest.pair_count,
    }
    save_state(loop.work, state)
    return state


def rehearsal_dataset(loop: Loop, qa_set: Any, state: dict[str, Any]) -> str:
    """Once per work folder: the reviewed pairs plus rehearsal pairs (see REHEARSAL); its dataset id."""
    from prefloop_flows.bundled import REVIEWER_ANSWERS
    from prefloop_flows.demo import apply_reviewer_answers

    if "rehearsal_dataset_id" not in state:
        right = [q for q in qa_set.questions if q.split == "train" and state["live_scores"][q.id] >= CORRECT_AT]
        subset = loop.work / "right-train-questions.json"
        subset.write_text(qa_set.model_copy(update={"questions": right}).model_dump_json(), encoding="utf-8")
        bad = [QARecord.model_validate(c["record"]) for c in loop.candidates(state["live_tag"], subset)]
        loop.collector.ingest(bad, threshold=CORRECT_AT - 1e-6)
        answered = apply_reviewer_answers(loop.collector, qa_set, REVIEWER_ANSWERS[0])
        manifest = loop.collector.snapshot()
        state.update(rehearsal_dataset_id=manifest.dataset_id, rehearsal_pairs=manifest.pair_count, rehearsal_answered=answered)
        save_state(loop.work, state)
    return str(state["rehearsal_dataset_id"])


def report(trials: list[dict[str, Any]], state: dict[str, Any], split: dict[str, list[str]]) -> list[str]:
    live_scores = state.get("live_v2_scores", state["live_scores"])
    live = measure(live_scores, live_scores, split)
    lines = [
        f"## Effectiveness sweep, {datetime.now(timezone.utc):%Y-%m-%d} ({platform.machine()}, {os.cpu_count()} CPUs)",
        "",
        f"One pass: {state['queued']} questions queued, {state['answered']} answered by the bundled reviewer, "
        f"{state['pairs']} pairs. Live ({state['live_tag']}): trained {live['train']:.1%}, held out "
        f"{live['heldout']:.1%}, overall {live['accuracy']:.1%}. Candidate = the trial's LoRA over that base; QA one "
        "request at a time, greedy, 64 tokens. Deltas in points against live; mean ± spread (max - min) over seeds."
        + (f" Rehearsal trials: {state['rehearsal_pairs']} pairs." if "rehearsal_pairs" in state else "")
        + " Settings are chosen on the trained questions (gain, regressions) and the second week's 24 (never "
        "trained in this round): the held-out column is reported, not tuned on.",
        "",
        "| setting | seeds | trained delta | regressions | second week delta | held-out delta | overall delta | train time |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        by_name.setdefault(t["trial"], []).append(t)

    def cell(values: list[float]) -> str:
        mean = statistics.fmean(values)
        return f"{mean:+.1f} ± {max(values) - min(values):.1f}" if len(values) > 1 else f"{mean:+.1f}"

    for name, runs in by_name.items():
        m = [measure(r["scores"], live_scores, split) for r in runs]
        regressions = [len(x["regressions"]) for x in m]
        week2 = [100 * (x["week2"] - live["week2"]) for x in m if x["week2"] is not None and live["week2"] is not None]
        lines.append(
            f"| `{name}`: {runs[0]['description']} | {len(runs)} | {cell([100 * (x['train'] - live['train']) for x in m])} | "
            f"{statistics.fmean(regressions):.1f} ({min(regressions)}-{max(regressions)}) | "
            f"{cell(week2) if len(week2) == len(m) else '-'} | "
            f"{cell([100 * (x['heldout'] - live['heldout']) for x in m])} | "
            f"{cell([100 * (x['accuracy'] - live['accuracy']) for x in m])} | "
            f"{statistics.fmean(r['train_seconds'] for r in runs) / 60:.1f} min |"
        )
    return lines + paired_with_defaults(by_name, live_scores, split)


def sign_test(ahead: int, behind: int) -> str:
    """Two-sided exact sign test (McNemar's, on questions): `ahead` questions moved one way, `behind` the other."""
    p = float(stats.binomtest(ahead, ahead + behind, 0.5).pvalue) if ahead + behind else 1.0
    return f"{ahead} / {behind} (p = {p:.3f})"


def paired_with_defaults(
    by_name: dict[str, list[dict[str, Any]]], live_scores: dict[str, float], split: dict[str, list[str]]
) -> list[str]:
    """Each trial against the defaults on the seeds both ran, question by question.

    A question counts for a trial when, summed over the paired seeds, it was right (or, for regressions, turned wrong
    from live's right answer) more often under the trial than under the defaults; against the defaults the other way.
    The sign test over those questions treats questions as independent and a question's seeds as one observation, so
    five seeds of one question are not counted as five pieces of evidence (they are not independent: the question is
    the same). It is the gate's McNemar test, with the defaults in live's place. Beside it, the same test over seeds
    (each seed an independent training, counted by its number of regressions; equal seeds left out)."""
    defaults = {r["seed"]: r for r in by_name.get(DEFAULTS, [])}
    everything = [*split["train"], *split["heldout"]]
    lines = [
        "",
        f"Against the defaults (`{DEFAULTS}`), on the seeds both ran: questions that did better under the setting / "
        "under the defaults, summed over those seeds, and the two-sided sign test over them. Regressions: a question "
        "live answers right, turned wrong; trained and second week: answered right.",
        "",
        "| setting | paired seeds | regressions per seed, setting - defaults | seeds with fewer / more | fewer "
        "regressions / more | trained right more / fewer | second week right more / fewer |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in by_name.items():
        paired = [(r, defaults[r["seed"]]) for r in runs if r["seed"] in defaults and name != DEFAULTS]
        if not paired:
            continue

        def net(ids: list[str], outcome: Any) -> str:
            sums = {q: sum(outcome(t, q) - outcome(d, q) for t, d in paired) for q in ids}
            return sign_test(sum(v > 0 for v in sums.values()), sum(v < 0 for v in sums.values()))

        def right(run: dict[str, Any], q: str) -> int:
            return int(run["scores"].get(q, 0.0) >= CORRECT_AT)

        def kept(run: dict[str, Any], q: str) -> int:  # 1 unless live's right answer turned wrong
            return int(not live_scores[q] >= CORRECT_AT > run["scores"].get(q, 0.0))

        differences = [
            len(measure(t["scores"], live_scores, split)["regressions"])
            - len(measure(d["scores"], live_scores, split)["regressions"])
            for t, d in paired
        ]
        lines.append(
            f"| `{name}` | {', '.join(str(t['seed']) for t, _ in paired)} | {' / '.join(f'{x:+d}' for x in differences)} | "
            f"{sign_test(sum(x < 0 for x in differences), sum(x > 0 for x in differences))} | {net(everything, kept)} | {net(split['train'], right)} | {net(split.get('week2', []), right)} |"
        )
    return lines


@contextmanager
def running_loop(work: Path, settings: Any, live_tag: str) -> Iterator[Loop]:
    """A real collector and `prefloop serve` (serving `live_tag`) for the work folder, as the demo starts them."""
    import secrets

    from prefloop_core.clients import CollectorClient, ServerAdminClient
    from prefloop_core.net import free_port
    from prefloop_flows.demo import service

    token, admin, slot_key = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "PREFLOOP_COLLECTOR_REVIEWERS": json.dumps({"flows": token}),
        "PREFLOOP_SERVER_ADMIN_TOKEN": admin,
        "PREFLOOP_SERVER_SLOT_API_KEY": slot_key,
    }
    cport, sport = free_port(), free_port()
    venvs = settings.venvs_dir
    assert venvs is not None, "PREFLOOP_VENVS_DIR is not set: run `make setup` and source .venvs/env"
    with (
        service(
            "collector",
            [str(venvs / "collector/bin/prefloop-collector"), "review", "--web", "--host", "127.0.0.1", "--port", str(cport)],
            env,
            f"http://127.0.0.1:{cport}/health",
            work / "logs/collector.log",
        ),
        service(
            "server",
            [str(venvs / "server/bin/prefloop-server"), "serve", "--host", "127.0.0.1", "--port", str(sport), "--tag", live_tag],
            env,
            f"http://127.0.0.1:{sport}/health",
            work / "logs/server.log",
        ),
    ):
        yield Loop(
            work,
            ServerAdminClient(f"http://127.0.0.1:{sport}", admin),
            CollectorClient(f"http://127.0.0.1:{cport}", token),
            settings,
            slot_key,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="work folder (kept: trials add up across invocations)")
    parser.add_argument("--trials", default="", help=f"comma-separated, from: {', '.join(TRIALS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--report", type=Path, help="append the table to this file")
    args = parser.parse_args()
    unknown = [t for t in args.trials.split(",") if t and t not in TRIALS]
    if unknown:
        parser.error(f"unknown trials {unknown}; known: {', '.join(TRIALS)}")

    work = args.work.resolve()
    home = work / "home"
    os.environ.update({"PREFLOOP_HOME": str(home), "PREFLOOP_SERVER_QA_CONCURRENCY": "1", "PREFLOOP_SERVER_QA_MAX_TOKENS": "64"})
    from prefloop_core.settings import load_settings
    from prefloop_flows.bundled import QA_SET, games_v2, load_qa_set
    from prefloop_flows.demo import base_release
    from prefloop_flows.settings import FlowsSettings

    settings = load_settings(FlowsSettings)
    live_tag = base_release(settings)
    qa_set = load_qa_set(QA_SET)
    split = {s: [q.id for q in qa_set.questions if q.split == s] for s in ("train", "heldout")}
    asked = work / "games-v2.json"  # trials are asked the demo's QA set and the second week's questions
    asked.write_text(games_v2().model_dump_json(), encoding="utf-8")
    split["week2"] = [q.id for q in games_v2().questions if q.id not in {*split["train"], *split["heldout"]}]
    trials_file = work / "trials.jsonl"
    with running_loop(work, settings, live_tag) as loop:
        state = setup(loop, qa_set, QA_SET, live_tag)
        if "live_v2_scores" not in state:
            state["live_v2_scores"] = scores_of(
                loop.ask(live_tag, asked, work / "qa" / "live-v2", ["--concurrency", "1", "--llama-server"], ".records.jsonl")
            )
            save_state(work, state)
        done = (
            {(t["trial"], t["seed"]) for t in map(json.loads, trials_file.read_text().splitlines())}
            if trials_file.exists()
            else set()
        )
        for name in filter(None, args.trials.split(",")):
            for seed in map(int, args.seeds.split(",")):
                if (name, seed) in done:
                    continue
                if name in SCALED:
                    of = SCALED[name][0]
                    trained = (
                        next(
                            (
                                t
                                for t in map(json.loads, trials_file.read_text().splitlines())
                                if (t["trial"], t["seed"]) == (of, seed)
                            ),
                            None,
                        )
                        if trials_file.exists()
                        else None
                    )
                    if trained is None:
                        raise SystemExit(
                            f"{name} seed {seed} serves {of}'s adapter of the same seed: run that trial "
                            "first (list it before this one in --trials)"
                        )
                    result = loop.scaled(name, seed, trained, asked)
                else:
                    dataset_id = rehearsal_dataset(loop, qa_set, state) if name in REHEARSAL else state["dataset_id"]
                    result = loop.trial(name, seed, dataset_id, asked)
                m = measure(result["scores"], state["live_v2_scores"], split)
                print(
                    f"{name} seed {seed}: trained {m['train']:.1%} held out {m['heldout']:.1%} overall {m['accuracy']:.1%} "
                    f"regressions {len(m['regressions'])} ({result['train_seconds'] / 60:.1f} min training)",
                    flush=True,
                )
                with open(trials_file, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(result) + "\n")
    trials = [json.loads(line) for line in trials_file.read_text().splitlines()] if trials_file.exists() else []
    emit(report(trials, state, split), args.report)


if __name__ == "__main__":
    main()

"""The QA gate as a classifier: its decisions on candidates whose truth is known, old rule and new side by side.

    .venvs/flows/bin/python benchmarks/gate_calibration.py --work DIR [--seeds 42,0,1,...] [--swapped-seeds 0]
    .venvs/flows/bin/python benchmarks/gate_calibration.py --records benchmarks/results/gate_calibration --report FILE

Two phases. **Making candidates** (`--work`, slow: ~15 min of CPU per trained candidate on 2 cores) sets up the
demo's first round exactly as benchmarks/effectiveness.py does (the base's Q4_K_M release live on a real
`prefloop serve`, the bundled QA set asked, the bad answers and the rehearsal samples queued and answered by the
bundled reviewer: the demo's 48 pairs), then makes each candidate, asks it `games-v2` (the demo's 72 questions plus the
24 of the second week, which round 1 never trains on) one question at a time without prompt reuse, as the gate asks,
and writes its QA records (JSONL, as `prefloop qa` writes them, prompts and contexts left out) to `--records`:

- real: the trainer's defaults on the demo's pairs, one candidate per seed (`--seeds`), exported as the demo exports
  (a LoRA over the live base release); `--merged-seeds` exports those trainings merged as well (`real-merged-s<seed>`:
  the LoRA folded into the weights, quantized Q4_K_M), the other way a candidate can be served;
- no-op: the same base weights in other quantizations (Q8_0, Q6_K, Q5_K_M), the live release again in the other
  slot, and the first real candidate's LoRA applied at scale 0 (llama-server's `/lora-adapters`);
- harmful: that LoRA at scale 3 and 6 (answers break), and the defaults trained on the demo's pairs with chosen and
  rejected swapped (`--swapped-seeds`).

Another base, as the demo takes it: PREFLOOP_BASE_GGUF (and PREFLOOP_BASE_CHAT_TEMPLATE for a base model without a
template) with `--records` of its own, e.g. Gemma 3 270M (`infra/gemma.sh` prints its file):

    PREFLOOP_BASE_GGUF=$(infra/gemma.sh | tail -1) PREFLOOP_BASE_CHAT_TEMPLATE=gemma .venvs/flows/bin/python \
        benchmarks/gate_calibration.py --work DIR --records benchmarks/results/gate_calibration_gemma --seeds 42,0,1

Candidates already in `--records` are skipped, so the phase can be run again (another session, another machine) to
add seeds. **Deciding** (`--report`) is offline and quick: each candidate's records against the live model's, on the
demo's QA set (games-v1, the 72 questions the demo's gate asks), through `prefloop gate --json` under each rule; the
truth of a real candidate comes from the 48 questions it never trained on (games-v1's 24 held out and the second
week's 24): better when their mean score rose. It prints the confusion table and the per-candidate rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from report import emit, machine  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECORDS = ROOT / "benchmarks" / "results" / "gate_calibration"
LIVE = "live"
NOOP_QUANTS = ("Q8_0", "Q6_K", "Q5_K_M")
HARMFUL_SCALES = (3.0, 6.0)
RULES = ("mcnemar", "count")
DROPPED_FIELDS = ("prompt", "context")  # large, and the same for every candidate: the QA set has them


# -- making candidates ---------------------------------------------------------------------------------------------


class Maker:
    """The work folder's live services, and one method per kind of candidate; each writes `<records>/<name>.jsonl`."""

    def __init__(self, loop: Any, records: Path, qa_file: Path, settings: Any, live_tag: str) -> None:
        self.loop, self.records, self.qa_file, self.settings, self.live_tag = loop, records, qa_file, settings, live_tag
        self.index = records / "candidates.jsonl"

    def done(self, name: str) -> bool:
        return (self.records / f"{name}.jsonl").exists()

    def _save(self, name: str, kind: str, description: str, tag: str, answers: list[dict[str, Any]], **extra: Any) -> None:
        lines = [json.dumps({k: v for k, v in r.items() if k not in DROPPED_FIELDS}, ensure_ascii=False) for r in answers]
        (self.records / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        entry = {
            "name": name,
            "kind": kind,
            "description": description,
            "tag": tag,
            "machine": machine(),
            "date": f"{datetime.now(timezone.utc):%Y-%m-%d}",
            **extra,
        }
        with open(self.index, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        print(f"  {name}: {len(answers)} answers, mean score {statistics.fmean(r['score'] for r in answers):.3f}", flush=True)

    def _ask(self, name: str, tag: str) -> list[dict[str, Any]]:
        """games-v2 against the slot serving `tag`, one question at a time without prompt reuse, as the gate asks."""
        out = self.loop.work / "calibration" / name
        shutil.rmtree(out, ignore_errors=True)  # what an interrupted run left
        return self.loop.ask(tag, self.qa_file, out, ["--concurrency", "1", "--llama-server"], ".records.jsonl")

    def _ask_deployed(self, name: str, tag: str, lora_scale: float | None = None) -> list[dict[str, Any]]:
        self.loop.server.deploy(tag, "gate-calibration")
        try:
            if lora_scale is not None:
                self.loop.lora_scale(lora_scale)
            return self._ask(name, tag)
        finally:
            self.loop.server.discard("gate-calibration")

    def live(self) -> None:
        if not self.done(LIVE):
            self._save(
                LIVE, "live", f"the live model: the base release {self.live_tag}", self.live_tag, self._ask(LIVE, self.live_tag)
            )

    def same_release(self) -> None:
        if not self.done("noop-same-release"):
            self._save(
                "noop-same-release",
                "noop",
                "the live release again, in the other slot",
                self.live_tag,
                self._ask_deployed("noop-same-release", self.live_tag),
            )

    def quantization(self, quant: str) -> None:
        from prefloop_flows.jobs import Job, made_release, make_runner

        name = f"noop-{quant}"
        if self.done(name):
            return
        tag = made_release(make_runner(self.settings).run(Job("exporter", ["base-release", "--quant", quant]), lambda _: None))
        self._save(name, "noop", f"the same base weights quantized {quant} instead of Q4_K_M", tag, self._ask_deployed(name, tag))

    def _train(
        self, run_id: str, dataset_id: str, seed: int, modes: tuple[str, ...], merged_quant: str = "Q4_K_M"
    ) -> tuple[list[str], int]:
        """Train the trainer's defaults on `dataset_id` with `seed`, export in each mode (adapters over the Q4_K_M base,
        merged as `merged_quant`); the tags and the seconds trained."""
        from prefloop_flows.jobs import Job, make_runner

        with self._log(run_id) as fh:
            started = time.monotonic()
            make_runner(self.settings).run(
                Job(
                    "trainer",
                    [
                        "train",
                        "--set",
                        f"data.dataset_id={dataset_id}",
                        "--set",
                        f"run_id={run_id}",
                        "--set",
                        f"training.seed={seed}",
                    ],
                ),
                lambda line: print(line, file=fh, flush=True),
            )
            train_s = round(time.monotonic() - started)
        return [self._export(run_id, mode, "Q4_K_M" if mode == "adapter" else merged_quant) for mode in modes], train_s

    def _log(self, run_id: str) -> TextIO:
        log = self.loop.work / "logs" / f"{run_id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        return open(log, "a", encoding="utf-8")

    def _export(self, run_id: str, mode: str, quant: str) -> str:
        """`run_id` exported in `mode` as `quant` (its output appended to the run's log); the release tag."""
        from prefloop_flows.jobs import Job, made_release, make_runner

        with self._log(run_id) as fh:
            return made_release(
                make_runner(self.settings).run(
                    Job("exporter", ["export", run_id, "--mode", mode, "--quant", quant]),
                    lambda line: print(line, file=fh, flush=True),
                )
            )

    def trained(self, name: str, kind: str, description: str, dataset_id: str, seed: int) -> str:
        """Train the trainer's defaults on `dataset_id` with `seed`, export as the demo does, ask; the release tag."""
        index = [json.loads(line) for line in self.index.read_text().splitlines()] if self.index.exists() else []
        made = [e for e in index if e["name"] == name]
        if made:
            return str(made[0]["tag"])
        [tag], train_s = self._train(f"run-cal-{name}", dataset_id, seed, ("adapter",))
        self._save(name, kind, description, tag, self._ask_deployed(name, tag), seed=seed, train_seconds=train_s)
        return tag

    def merged(self, seed: int, dataset_id: str, quant: str = "Q4_K_M") -> None:
        """real-s<seed>'s training exported merged: the LoRA folded into the weights, then quantized `quant`.

        When this work folder lacks that training (real-s<seed> was made elsewhere), it is trained again with the same
        seed and exported both ways; the adapter export is asked too and compared with real-s<seed>'s records, so the
        table says whether the merged candidate comes from the same weights as the adapter it stands beside. A seed
        with no adapter candidate at all is trained and exported merged only."""
        from prefloop_core.contracts import TrainingRun
        from prefloop_core.store import open_store

        name = f"real-merged-s{seed}" if quant == "Q4_K_M" else f"real-merged-{quant.lower()}-s{seed}"
        if self.done(name):
            return
        run_id = f"run-cal-real-s{seed}"
        extra: dict[str, Any] = {}
        trained = open_store(self.settings).get(TrainingRun, run_id) is not None
        if not trained and not (self.records / f"real-s{seed}.jsonl").exists():
            # no adapter candidate of this seed anywhere: the merged one alone, as the demo exports
            [tag], extra["train_seconds"] = self._train(run_id, dataset_id, seed, ("merged",), quant)
        elif not trained:
            (adapter_tag, tag), extra["train_seconds"] = self._train(run_id, dataset_id, seed, ("adapter", "merged"), quant)
            again = self._ask_deployed(f"real-again-s{seed}", adapter_tag)
            before = {r["question_id"]: r["answer"] for r in _read(self.records / f"real-s{seed}.jsonl")}
            extra["adapter_answers_reproduced"] = sum(before.get(r["question_id"]) == r["answer"] for r in again)
            print(
                f"  retrained real-s{seed}: its adapter gives {extra['adapter_answers_reproduced']} of {len(again)} "
                "answers as before",
                flush=True,
            )
        else:
            tag = self._export(run_id, "merged", quant)
        mode = "merged" if quant == "Q4_K_M" else f"merged {quant}"
        self._save(
            name,
            "real",
            f"real-s{seed}'s training exported merged ({quant} of the merged weights)",
            tag,
            self._ask_deployed(name, tag),
            seed=seed,
            mode=mode,
            **extra,
        )

    def scaled(self, tag: str, scale: float) -> None:
        kind = "noop" if scale == 0 else "harmful"
        name = f"{kind}-lora-x{scale:g}"
        if not self.done(name):
            self._save(
                name,
                kind,
                f"a real candidate's LoRA ({tag}) applied at scale {scale:g}",
                tag,
                self._ask_deployed(name, tag, lora_scale=scale),
                lora_scale=scale,
            )


def swapped_dataset(settings: Any, dataset_id: str) -> str:
    """The demo's pairs with chosen and rejected swapped, published as a dataset of its own."""
    from prefloop_core.contracts import DatasetManifest
    from prefloop_core.store import open_store

    store = open_store(settings)
    swapped_id = f"ds-swapped-{dataset_id.removeprefix('ds-')}"[:64]
    if store.get(DatasetManifest, swapped_id) is None:
        manifest = store.require(DatasetManifest, dataset_id)
        with tempfile.TemporaryDirectory() as tmp:
            pairs = store.fetch(manifest, Path(tmp), ["pairs.jsonl"])["pairs.jsonl"]
            rows = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines()]
            out = Path(tmp) / "swapped.jsonl"
            out.write_text(
                "".join(
                    json.dumps({**r, "chosen": r["rejected"], "rejected": r["chosen"]}, ensure_ascii=False) + "\n" for r in rows
                ),
                encoding="utf-8",
            )
            store.publish(manifest.model_copy(update={"dataset_id": swapped_id, "files": {}}), {"pairs.jsonl": out})
    return swapped_id


def make(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from effectiveness import rehearsal_dataset, running_loop, setup

    work = args.work.resolve()
    records = args.records.resolve()
    records.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {"PREFLOOP_HOME": str(work / "home"), "PREFLOOP_SERVER_QA_CONCURRENCY": "1", "PREFLOOP_SERVER_QA_MAX_TOKENS": "64"}
    )
    from prefloop_core.settings import load_settings
    from prefloop_flows.bundled import QA_SET, games_v2, load_qa_set
    from prefloop_flows.demo import base_release
    from prefloop_flows.settings import FlowsSettings

    settings = load_settings(FlowsSettings)
    live_tag = base_release(settings)
    qa_set = load_qa_set(QA_SET)
    qa_file = work / "games-v2.json"
    qa_file.write_text(games_v2().model_dump_json(), encoding="utf-8")
    with running_loop(work, settings, live_tag) as loop:
        state = setup(loop, qa_set, QA_SET, live_tag)
        dataset_id = rehearsal_dataset(loop, qa_set, state)
        print(f"the demo's round: {state['rehearsal_pairs']} pairs (dataset {dataset_id}); live {live_tag}", flush=True)
        maker = Maker(loop, records, qa_file, settings, live_tag)
        maker.live()
        maker.same_release()
        for quant in (q for q in args.noop_quants.split(",") if q):
            maker.quantization(quant)
        seeds = [int(s) for s in args.seeds.split(",") if s]
        swapped = [int(s) for s in args.swapped_seeds.split(",") if s]
        for i, seed in enumerate(seeds):
            tag = maker.trained(f"real-s{seed}", "real", "the trainer's defaults on the demo's pairs", dataset_id, seed)
            if i == 0:
                for scale in (0.0, *HARMFUL_SCALES):
                    maker.scaled(tag, scale)
                for s in swapped:
                    maker.trained(
                        f"harmful-swapped-s{s}",
                        "harmful",
                        "the trainer's defaults on the demo's pairs with chosen and rejected swapped",
                        swapped_dataset(settings, dataset_id),
                        s,
                    )
        for seed in (int(s) for s in args.merged_seeds.split(",") if s):
            for quant in ("Q4_K_M", *(q for q in args.merged_quants.split(",") if q and q != "Q4_K_M")):
                maker.merged(seed, dataset_id, quant)


# -- deciding --------------------------------------------------------------------------------------------------------


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def gate(server_bin: Path, live: Path, candidate: Path, rule: str) -> dict[str, Any]:
    """The offline gate (`prefloop gate --json`): exit 0 accepts, 1 refuses, anything else is an error."""
    done = subprocess.run(
        [str(server_bin), "gate", "--live", str(live), "--candidate", str(candidate), "--rule", rule, "--json"],
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"prefloop gate failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout)


def decide(args: argparse.Namespace) -> None:
    from prefloop_flows.bundled import QA_SET, load_qa_set

    records = args.records.resolve()
    index = {e["name"]: e for e in map(json.loads, (records / "candidates.jsonl").read_text().splitlines())}
    gated_ids = {q.id for q in load_qa_set(QA_SET).questions}  # what the demo's gate asks
    live_all = {r["question_id"]: r for r in _read(records / f"{LIVE}.jsonl")}
    unseen = [q for q, r in live_all.items() if r["split"] == "heldout" or q not in gated_ids]
    server_bin = Path(os.environ.get("PREFLOOP_VENVS_DIR", ROOT / ".venvs")) / "server" / "bin" / "prefloop-server"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:

        def gated(name: str) -> Path:
            path = Path(tmp) / f"{name}.jsonl"
            path.write_text(
                "".join(
                    json.dumps(r, ensure_ascii=False) + "\n"
                    for r in _read(records / f"{name}.jsonl")
                    if r["question_id"] in gated_ids
                ),
                encoding="utf-8",
            )
            return path

        live_file = gated(LIVE)
        for name, entry in index.items():
            if entry["kind"] == "live":
                continue
            cand = {r["question_id"]: r for r in _read(records / f"{name}.jsonl")}
            yard = statistics.fmean(cand[q]["score"] - live_all[q]["score"] for q in unseen)
            week2 = statistics.fmean(cand[q]["score"] - live_all[q]["score"] for q in live_all if q not in gated_ids)
            truth = {"noop": "not better", "harmful": "worse"}.get(entry["kind"]) or ("better" if yard > 0 else "not confirmed")
            verdicts = {rule: gate(server_bin, live_file, gated(name), rule) for rule in RULES}
            rows.append(
                {
                    "name": name,
                    "kind": entry["kind"],
                    "truth": truth,
                    "yardstick": yard,
                    "week2": week2,
                    "mode": entry.get("mode", "adapter"),
                    "machine": entry["machine"],
                    "date": entry["date"],
                    **{rule: v for rule, v in verdicts.items()},
                }
            )
    emit(table(rows, len(unseen)), args.report)


def table(rows: list[dict[str, Any]], unseen: int) -> list[str]:
    machines = sorted({f"{r['machine']} ({r['date']})" for r in rows})
    lines = [
        f"## Gate calibration, {datetime.now(timezone.utc):%Y-%m-%d}",
        "",
        "Candidates made on: " + "; ".join(machines) + ".",
        "",
        "| candidate | truth | yardstick, pts | fixed / regressed | p | held out, pts | new rule | old rule |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        v = r["mcnemar"]
        held = v["per_split"].get("heldout", [0, 0])
        lines.append(
            f"| {r['name']} | {r['truth']} | {100 * r['yardstick']:+.1f} | {len(v['fixed'])} / "
            f"{len(v['regressions'])} | {v['p_value']:.3f} | {100 * (held[1] - held[0]):+.1f} | "
            f"{'accept' if v['accepted'] else 'refuse'} | {'accept' if r['count']['accepted'] else 'refuse'} |"
        )
    lines += [
        "",
        f"Yardstick: the mean score change on the {unseen} questions no candidate trained on. p: the new "
        "rule's one-sided exact test on the discordant questions.",
        "",
        "| truth | candidates | new rule accepts | old rule accepts |",
        "| --- | ---: | ---: | ---: |",
    ]
    for truth in ("not better", "worse", "better", "not confirmed"):
        group = [r for r in rows if r["truth"] == truth]
        if group:
            lines.append(
                f"| {truth} | {len(group)} | {sum(r['mcnemar']['accepted'] for r in group)} | "
                f"{sum(r['count']['accepted'] for r in group)} |"
            )
    by_name = {r["name"]: r for r in rows}
    pairs = [
        (r["name"].removeprefix("real-merged-s"), by_name.get(r["name"].replace("-merged", "")), r)
        for r in rows
        if r["name"].startswith("real-merged-s")
    ]
    if pairs:
        lines += [
            "",
            "The same trainings exported two ways (new rule):",
            "",
            "| seed | adapter: fixed / regressed, p | merged: fixed / regressed, p | yardstick adapter / merged, pts |",
            "| --- | --- | --- | ---: |",
        ]

        def cell(r: dict[str, Any] | None) -> str:
            if r is None:
                return "-"
            v = r["mcnemar"]
            return f"{len(v['fixed'])} / {len(v['regressions'])}, {v['p_value']:.3f}, {'accept' if v['accepted'] else 'refuse'}"

        for seed, adapter, merged in pairs:
            yard = f"{100 * adapter['yardstick']:+.1f} / " if adapter else "- / "
            lines.append(f"| {seed} | {cell(adapter)} | {cell(merged)} | {yard}{100 * merged['yardstick']:+.1f} |")
    return lines + distribution([r for r in rows if r["kind"] == "real"], [r for r in rows if r["kind"] == "noop"])


def distribution(real: list[dict[str, Any]], noop: list[dict[str, Any]]) -> list[str]:
    """The demo's round as a distribution over seeds, per export mode: what `make demo`'s first round gives."""
    if not real:
        return []

    def change(r: dict[str, Any], split: str) -> float:
        live, cand = r["mcnemar"]["per_split"][split]
        return 100 * (cand - live)

    def columns(r: dict[str, Any]) -> list[float]:
        v = r["mcnemar"]
        return [change(r, "train"), change(r, "heldout"), 100 * v["delta"], 100 * r["week2"], len(v["regressions"])]

    noise = [change(r, "heldout") for r in noop]
    lines = [
        "",
        "The demo's first round over seeds (the QA set the demo's gate asks: trained and held-out questions; "
        "the second week's questions, which round 1 never trains on), per export mode:",
        "",
        "| export | seeds | trained, pts | held out, pts | overall, pts | second week, pts | regressions | promoted |",
        "| --- | ---: | --- | --- | --- | --- | --- | ---: |",
    ]
    for mode in sorted({r["mode"] for r in real}):
        group = [r for r in real if r["mode"] == mode]
        values = list(zip(*(columns(r) for r in group), strict=True))

        def cell(xs: tuple[float, ...], fmt: str = "+.1f") -> str:
            mean = round(statistics.fmean(xs), 1) + 0.0  # no "-0.0"
            return f"{mean:{fmt}} ({min(xs):{fmt}} to {max(xs):{fmt}})"

        lines.append(
            f"| {mode} | {len(group)} | {cell(values[0])} | {cell(values[1])} | {cell(values[2])} | "
            f"{cell(values[3])} | {cell(values[4], '.1f')} | "
            f"{sum(r['mcnemar']['accepted'] for r in group)} of {len(group)} |"
        )
    if noise:
        lines += [
            "",
            f"Mean (min to max) over seeds. The no-op candidates' held-out change (what requantizing or "
            f"re-serving the same weights does to these {len(noop)} draws): {min(noise):+.1f} to "
            f"{max(noise):+.1f} points.",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="make candidates in this work folder (kept between invocations)")
    parser.add_argument("--records", type=Path, default=DEFAULT_RECORDS, help="candidates' QA records (default: %(default)s)")
    parser.add_argument("--seeds", default="42,0,1,2,3,4,5,6,7,8", help="trainer seeds of the real candidates")
    parser.add_argument("--swapped-seeds", default="0", help="trainer seeds of the swapped-pairs candidates")
    parser.add_argument(
        "--merged-seeds",
        default="",
        help="real candidates to export merged as well (a seed without an adapter candidate in --records is trained "
        "and exported merged only)",
    )
    parser.add_argument(
        "--noop-quants",
        default=",".join(NOOP_QUANTS),
        help="the base requantized in these as no-op candidates (default: %(default)s)",
    )
    parser.add_argument(
        "--merged-quants",
        default="Q4_K_M",
        help="merged exports in these quantizations too (`real-merged-<quant>-s<seed>`; Q4_K_M is always made first)",
    )
    parser.add_argument("--report", type=Path, help="decide, print the tables and append them to this file")
    args = parser.parse_args()
    if not args.work and not args.report:
        parser.error("give --work (make candidates), --report (decide), or both")
    if args.work:
        make(args)
    if args.report:
        decide(args)


if __name__ == "__main__":
    main()

"""Collector throughput: ingest 100,000 QA records, import 100,000 pairs and snapshot 10,000, against baselines.

    .venvs/collector/bin/python benchmarks/collector_bench.py [--records 100000] [--imports 100000] [--pairs 10000]

Each side runs in its own process (peak RSS is per process) on the same generated data:
- ingest, prefloop: `prefloop collect` on a JSONL file (validation, window and threshold, queue);
- ingest, baseline: `json.loads` per line + `sqlite3` inserts in one transaction, no validation;
- import, prefloop: `prefloop import` of a TRL-format JSONL file (half Korean text prompts, half the DPO guide's
  `{"instruction", "input"}`): format detection, validation, dedupe, origin, one transaction;
- import, baseline: what a TRL user loads the same file with, Hugging Face `datasets.load_dataset("json")` (run in
  the trainer's venv, which has it), no validation;
- snapshot, prefloop: checks + TRL-format pairs + publish to a local bucket;
- snapshot, baseline: select the rows and `json.dumps` them to a file.
Prints records/s, peak RSS and the ratios; writes nothing unless --out names a markdown file.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from report import emit  # the script's folder is on sys.path

GAMES = ["minecraft", "palworld", "overwatch"]
KO = ["크리퍼는 무엇을 두려워하나요?", "팰월드에서 램볼은 어디에 사나요?", "트레이서의 궁극기는 무엇인가요?"]
EN = ["What do creepers fear?", "Where does Lamball live in Palworld?", "What is Tracer's ultimate?"]


def generate(path: Path, n: int) -> None:
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            korean = i % 2 == 0
            q = (KO if korean else EN)[i % 3]
            out.write(
                json.dumps(
                    {
                        "record_id": f"rec-{i}",
                        "asked_at": (now - timedelta(hours=rng.randint(0, 150))).isoformat(),
                        "question_id": f"q-{i % 5000}",
                        "question": f"{q} ({i % 5000})",
                        "game": GAMES[i % 3],
                        "language": "ko" if korean else "en",
                        "context": ("위키 문단 " if korean else "Wiki passage ") * 20,
                        "answer": ("잘 모르겠습니다. " if korean else "I am not sure. ") * 5,
                        "key_facts": ["fact"],
                        "score": round(rng.random(), 2),
                        "model": "smollm2-135m-instruct-base",
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )


def generate_pairs(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            if i % 2 == 0:
                entry: dict[str, object] = {"prompt": f"{KO[i % 3]} ({i})", "chosen": "고양이를 두려워합니다.", "rejected": "물"}
            else:
                entry = {
                    "prompt": {"instruction": "Translate the sentence.", "input": f"{EN[i % 3]} ({i})"},
                    "chosen": "번역",
                    "rejected": "?",
                }
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")


def peak_rss_mb() -> float:
    # Linux keeps the parent's high-water mark across fork+exec: the parent here stays small (~17 MB).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ingest_prefloop(src: Path, work: Path) -> dict[str, float]:
    from prefloop_collector.ingest import collect
    from prefloop_collector.queue import ReviewQueue

    queue = ReviewQueue(work / "queue.db")
    start = time.perf_counter()
    report = collect(queue, [src], threshold=0.7, window_days=7, max_chars=20_000)
    return {"seconds": time.perf_counter() - start, "queued": report.counts.new_rejected, "rss_mb": peak_rss_mb()}


def ingest_baseline(src: Path, work: Path) -> dict[str, float]:
    conn = sqlite3.connect(work / "baseline.db")
    conn.execute("CREATE TABLE rejected (record_id TEXT PRIMARY KEY, question TEXT, game TEXT, answer TEXT, score REAL)")
    start = time.perf_counter()
    queued = 0
    with open(src, encoding="utf-8") as fh, conn:
        for line in fh:
            r = json.loads(line)
            if r["score"] <= 0.7:
                conn.execute(
                    "INSERT OR IGNORE INTO rejected VALUES (?, ?, ?, ?, ?)",
                    (r["record_id"], r["question"], r["game"], r["answer"], r["score"]),
                )
                queued += 1
    return {"seconds": time.perf_counter() - start, "queued": queued, "rss_mb": peak_rss_mb()}


def import_prefloop(src: Path, work: Path) -> dict[str, float]:
    from prefloop_core.contracts import ImportFormat
    from prefloop_collector.importer import parse_import
    from prefloop_collector.queue import ReviewQueue

    queue = ReviewQueue(work / "queue.db")
    start = time.perf_counter()
    parsed = parse_import(src.read_bytes(), str(src), 20_000)
    assert not parsed.problems, parsed.problems[:3]
    report = queue.import_entries(parsed.entries, "bench", parsed.format or ImportFormat.PREFLOOP, src.name)
    return {"seconds": time.perf_counter() - start, "queued": report.imported, "rss_mb": peak_rss_mb()}


def import_baseline(src: Path, work: Path) -> dict[str, float]:
    from datasets import load_dataset  # type: ignore[import-not-found]

    start = time.perf_counter()
    rows = load_dataset("json", data_files=str(src), split="train", cache_dir=str(work / "hf"))
    return {"seconds": time.perf_counter() - start, "queued": len(rows), "rss_mb": peak_rss_mb()}


def snapshot_prefloop(work: Path, pairs: int) -> dict[str, float]:
    from prefloop_core.prompts import PromptTemplate
    from prefloop_core.store import ArtifactStore, LocalBackend
    from prefloop_collector.importer import ImportEntry
    from prefloop_collector.queue import ReviewQueue
    from prefloop_collector.settings import CollectorSettings
    from prefloop_collector.snapshot import snapshot

    queue = ReviewQueue(work / "snap.db")
    queue.import_entries(
        [
            ImportEntry(
                question=f"{KO[i % 3]} {i}",
                rejected=f"틀린 답 {i}",
                chosen=f"맞는 답 {i}",
                game=GAMES[i % 3],
                context="위키 " * 30,
            )
            for i in range(pairs)
        ],
        "bench",
    )
    start = time.perf_counter()
    result = snapshot(queue, ArtifactStore(LocalBackend(work / "bucket")), CollectorSettings(), PromptTemplate())
    assert result.manifest is not None and result.manifest.pair_count == pairs
    return {"seconds": time.perf_counter() - start, "queued": pairs, "rss_mb": peak_rss_mb()}


def snapshot_baseline(work: Path, pairs: int) -> dict[str, float]:
    conn = sqlite3.connect(work / "snapbase.db")
    conn.execute("CREATE TABLE pairs (q TEXT, chosen TEXT, rejected TEXT, game TEXT)")
    with conn:
        conn.executemany(
            "INSERT INTO pairs VALUES (?, ?, ?, ?)",
            [(f"{KO[i % 3]} {i}", f"맞는 답 {i}", f"틀린 답 {i}", GAMES[i % 3]) for i in range(pairs)],
        )
    start = time.perf_counter()
    with open(work / "pairs.jsonl", "w", encoding="utf-8") as out:
        for q, chosen, rejected, game in conn.execute("SELECT * FROM pairs"):
            out.write(
                json.dumps(
                    {
                        "prompt": [{"role": "user", "content": q}],
                        "chosen": [{"role": "assistant", "content": chosen}],
                        "rejected": [{"role": "assistant", "content": rejected}],
                        "game": game,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return {"seconds": time.perf_counter() - start, "queued": pairs, "rss_mb": peak_rss_mb()}


def child(kind: str, arg: str, work: str) -> None:
    fn = {
        "ingest_prefloop": ingest_prefloop,
        "ingest_baseline": ingest_baseline,
        "import_prefloop": import_prefloop,
        "import_baseline": import_baseline,
        "snapshot_prefloop": snapshot_prefloop,
        "snapshot_baseline": snapshot_baseline,
    }[kind]
    result = fn(Path(work), int(arg)) if kind.startswith("snapshot") else fn(Path(arg), Path(work))
    print(json.dumps(result))


def run_child(kind: str, arg: str, work: Path) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    # Hugging Face datasets lives in the trainer's venv, beside this one
    python = Path(sys.executable).parents[2] / "trainer" / "bin" / "python" if kind == "import_baseline" else sys.executable
    out = subprocess.run([str(python), __file__, "--child", kind, arg, str(work)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--imports", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--out", type=Path, help="append the results table to this markdown file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        child(*ns.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src, prefs = root / "qa.jsonl", root / "prefs.jsonl"
        generate(src, ns.records)
        generate_pairs(prefs, ns.imports)
        rows = []
        tasks = (("ingest", str(src), ns.records), ("import", str(prefs), ns.imports), ("snapshot", str(ns.pairs), ns.pairs))
        for task, arg, count in tasks:
            ours = run_child(f"{task}_prefloop", arg, root / f"{task}-ours")
            base = run_child(f"{task}_baseline", arg, root / f"{task}-base")
            rows.append((task, count, ours, base))
    lines = [
        f"machine: {platform.node()} · {platform.processor() or platform.machine()} · Python {platform.python_version()} · "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        "| task | items | prefloop items/s | baseline items/s | speed ratio | prefloop peak RSS MB | baseline peak RSS MB | memory ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for task, count, ours, base in rows:
        ours_rate, base_rate = count / ours["seconds"], count / base["seconds"]
        lines.append(
            f"| {task} | {count:,} | {ours_rate:,.0f} | {base_rate:,.0f} | {ours_rate / base_rate:.2f} | "
            f"{ours['rss_mb']:.0f} | {base['rss_mb']:.0f} | {ours['rss_mb'] / base['rss_mb']:.2f} |"
        )
    emit(lines, ns.out)


if __name__ == "__main__":
    main()

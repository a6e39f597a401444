"""The dataset snapshot from the bucket, in the shape each method's TRL trainer takes."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefloop_core.contracts import DatasetManifest, PairSplit, TrainingMethod
from prefloop_core.store import ArtifactStore
from prefloop_trainer.config import DataSection


class TooFewPairs(ValueError):
    pass


@dataclass
class Splits:
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    given: bool = False  # the eval pairs were marked in the dataset (an imported evaluation file), not drawn


def load_pairs(store: ArtifactStore, dataset_id: str, work: Path) -> tuple[DatasetManifest, Splits]:
    """The snapshot's pairs to train on, and those marked for evaluation (`prefloop import --split eval`)."""
    manifest = store.require(DatasetManifest, dataset_id)
    path = store.fetch(manifest, work / "dataset", ["pairs.jsonl"])["pairs.jsonl"]
    pairs = Splits([], [])
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            part = pairs.eval if row.get("split") == PairSplit.EVAL.value else pairs.train
            part.append({"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]})
    pairs.given = bool(pairs.eval)
    return manifest, pairs


def check_count(pairs: list[dict[str, Any]], data: DataSection) -> str | None:
    """Refuse under the minimum (with what to do); a warning line under the recommended count."""
    if len(pairs) < data.min_pairs:
        raise TooFewPairs(
            f"{len(pairs)} pairs is fewer than the minimum of {data.min_pairs}: review more answers "
            "(`prefloop status` shows the queue, `prefloop review` works through it), then snapshot again"
        )
    if len(pairs) < data.warn_pairs:
        return f"only {len(pairs)} pairs; {data.warn_pairs}+ are recommended for a useful run"
    return None


def split(pairs: Splits, data: DataSection, seed: int) -> Splits:
    """The dataset's own evaluation pairs when it has them; else `eval_fraction` of the pairs drawn with `seed` once
    there are `eval_min_pairs`."""
    if pairs.given or len(pairs.train) < data.eval_min_pairs or data.eval_fraction == 0:
        return pairs
    shuffled = pairs.train[:]
    random.Random(seed).shuffle(shuffled)
    n_eval = max(1, round(len(shuffled) * data.eval_fraction))
    return Splits(shuffled[n_eval:], shuffled[:n_eval])


def for_method(rows: list[dict[str, Any]], method: TrainingMethod) -> list[dict[str, Any]]:
    """Preference pairs as DPO/ORPO take them; unpaired (KTO); prompt-completion (SFT)."""
    if method is TrainingMethod.KTO:
        return [
            r
            for p in rows
            for r in (
                {"prompt": p["prompt"], "completion": p["chosen"], "label": True},
                {"prompt": p["prompt"], "completion": p["rejected"], "label": False},
            )
        ]
    if method is TrainingMethod.SFT:
        return [{"prompt": p["prompt"], "completion": p["chosen"]} for p in rows]
    return rows

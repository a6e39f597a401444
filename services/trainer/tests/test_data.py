"""The snapshot's pairs as the trainer reads them: its own evaluation pairs kept, else a seeded draw."""

from __future__ import annotations

from pathlib import Path

from trainer_helpers import publish_dataset, synthetic_pairs

from prefloop_core.contracts import PairSplit
from prefloop_core.store import ArtifactStore
from prefloop_trainer.config import load_config
from prefloop_trainer.data import load_pairs, split


def test_pairs_imported_for_evaluation_are_the_eval_split_whatever_the_seed(store: ArtifactStore, tmp_path: Path) -> None:
    pairs = synthetic_pairs(20)
    for pair in pairs[:3]:
        pair.split = PairSplit.EVAL
    publish_dataset(store, pairs, "ds-witheval000000020")
    _, loaded = load_pairs(store, "ds-witheval000000020", tmp_path)
    assert loaded.given and (len(loaded.train), len(loaded.eval)) == (17, 3)
    assert [p["prompt"][0]["content"] for p in loaded.eval] == [p.prompt[0].content for p in pairs[:3]]
    data = load_config(None, []).data  # eval_min_pairs 50: fewer pairs than a drawn split needs, still evaluated
    for seed in (0, 1, 42):
        assert split(loaded, data, seed) == loaded


def test_without_evaluation_pairs_a_fraction_is_drawn_with_the_seed(store: ArtifactStore, tmp_path: Path) -> None:
    publish_dataset(store, synthetic_pairs(60), "ds-noeval0000000060")
    _, loaded = load_pairs(store, "ds-noeval0000000060", tmp_path)
    assert not loaded.given and (len(loaded.train), len(loaded.eval)) == (60, 0)
    data = load_config(None, []).data
    drawn = {seed: split(loaded, data, seed) for seed in (0, 1)}
    assert all((len(s.train), len(s.eval)) == (54, 6) and not s.given for s in drawn.values())
    assert drawn[0].eval != drawn[1].eval and drawn[0] == split(loaded, data, 0)
    few = load_config(None, ["data.eval_min_pairs=61"]).data
    assert split(loaded, few, 0).eval == []

"""A run id is made once from what decides the run: the same inputs give the same id, any changed input another."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefloop_core.settings import Settings
from prefloop_trainer import identity
from prefloop_trainer.config import TrainConfig, load_config

DATASET = "ds-0123456789abcdef"


def config(*overrides: str) -> TrainConfig:
    return load_config(None, [f"data.dataset_id={DATASET}", *overrides])


def test_the_same_inputs_give_the_same_id_and_the_run_id_field_is_not_an_input(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    run_id = identity.run_id_for(config(), DATASET, settings)
    assert run_id.startswith("run-0123456789abcdef-") and len(run_id) == len("run-0123456789abcdef-") + 8
    assert identity.run_id_for(config(), DATASET, settings) == run_id
    assert identity.run_id_for(config("run_id=my-run"), DATASET, settings) == run_id


@pytest.mark.parametrize(
    "change",
    [
        "training.seed=7",
        "training.learning_rate=1e-4",
        "lora.r=8",
        "method.beta=0.3",
        "model.chat_template=chatml",
        "model.init_run=run-earlier",
    ],
)
def test_a_changed_setting_is_another_run(change: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert identity.run_id_for(config(change), DATASET, settings) != identity.run_id_for(config(), DATASET, settings)


def test_a_changed_default_trainer_or_base_is_another_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path)
    before = identity.run_id_for(config(), DATASET, settings)
    # the resolved values count, not how they were written: a default spelled out is the same run, so a default
    # that changes is a changed value and another run
    epochs = config().training.epochs
    assert identity.run_id_for(config(f"training.epochs={epochs}"), DATASET, settings) == before
    assert identity.run_id_for(config(f"training.epochs={epochs + 1}"), DATASET, settings) != before
    monkeypatch.setattr(identity, "trainer_version", lambda: "0.1.0+edited")
    assert identity.run_id_for(config(), DATASET, settings) != before
    monkeypatch.undo()
    monkeypatch.setattr(identity, "base_digest", lambda base, settings: "0f" * 8)  # PREFLOOP_BASE_GGUF moved
    assert identity.run_id_for(config(), DATASET, settings) != before
    monkeypatch.undo()
    assert identity.run_id_for(config(), DATASET, Settings(home=tmp_path, base_chat_template="gemma")) != before


def test_the_trainer_version_carries_a_digest_of_its_code() -> None:
    number, digest = identity.trainer_version().split("+")
    assert number and len(digest) == 12

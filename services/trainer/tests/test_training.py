"""Real TRL training on CPU with the tiny model: the loss falls for DPO, ORPO and KTO; the run is published."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

from prefloop_core.chat_templates import resolve_chat_template
from prefloop_core.contracts import JobResult, TrainingRun
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_trainer.config import load_config
from prefloop_ml.testing import drop_chat_template
from prefloop_trainer.run import train


def config_for(tiny_model: Path, dataset: str, method: str, *extra: str):
    return load_config(
        None,
        [
            f"model.base={tiny_model}",
            f"data.dataset_id={dataset}",
            f"method.name={method}",
            "training.learning_rate=5e-3",
            "training.epochs=4",
            "training.batch_size=4",
            "training.grad_accumulation=1",
            "data.max_length=64",
            "training.checkpoint_steps=1000",
            *extra,
        ],
    )


def losses(run: TrainingRun, store: ArtifactStore) -> list[float]:
    metrics = json.loads(store.read_bytes(run, "metrics.json"))
    return [row["loss"] for row in metrics["steps"] if "loss" in row]


@pytest.mark.parametrize("method", ["dpo", "orpo", "kto"])
def test_the_loss_falls_on_an_easy_preference_set(
    method: str, tiny_model: Path, dataset: str, settings: Settings, store: ArtifactStore
) -> None:
    out = io.StringIO()
    run = train(config_for(tiny_model, dataset, method), settings, store, out)
    curve = losses(run, store)
    assert len(curve) >= 8 and sum(curve[-3:]) / 3 < sum(curve[:3]) / 3, curve
    assert "adapter/adapter_model.safetensors" in run.files and "adapter/adapter_config.json" in run.files
    assert run.method.value == method and run.dtype == "float32" and run.device.startswith("cpu")
    assert {"torch", "transformers", "trl", "peft"} <= set(run.versions)
    text = out.getvalue()
    assert "estimated" in text and "PREFLOOP_PROGRESS " in text
    assert re.search(r"step (\d+)/\1 ", text), text[-500:]  # the progress line reached the last step


def test_a_dpo_run_publishes_metrics_plots_and_tensorboard(
    tiny_model: Path, dataset: str, settings: Settings, store: ArtifactStore
) -> None:
    run = train(config_for(tiny_model, dataset, "dpo"), settings, store, io.StringIO())
    published = store.require(TrainingRun, run.run_id)
    again = io.StringIO()  # the same inputs: the published run, nothing trained
    assert train(config_for(tiny_model, dataset, "dpo"), settings, store, again) == published
    assert "is already published" in again.getvalue() and "[dpo]" not in again.getvalue()
    assert JobResult.last_in(again.getvalue().splitlines()) == JobResult(run_id=run.run_id, reused=True)
    steps = json.loads(store.read_bytes(published, "metrics.json"))["steps"]
    assert {"loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "learning_rate"} <= set(
        steps[-1]
    )
    assert steps[-1]["rewards/margins"] > steps[0]["rewards/margins"]
    assert {"plots/loss.png", "plots/margins.png"} <= set(published.files)
    assert any(name.startswith("tb/") and "tfevents" in name for name in published.files)
    assert published.config["lora"]["r"] == 16 and published.config["method"]["beta"] == 0.1
    plan = published.plan  # what was resolved for the hardware, and the measured peak beside the estimate
    assert plan["dtype"] == "float32" and plan["load_in_4bit"] is False and plan["planned_steps"] == steps[-1]["step"]
    assert plan["memory_estimate_gib"] > 0 and plan["longest_tokens"] > 0
    assert published.peak_memory_gib and published.peak_memory_gib > 0


def test_sft_then_dpo_publishes_both_adapters(tiny_model: Path, dataset: str, settings: Settings, store: ArtifactStore) -> None:
    out = io.StringIO()
    run = train(config_for(tiny_model, dataset, "sft+dpo", "method.sft_epochs=2"), settings, store, out)
    assert run.method.value == "sft+dpo"
    assert "sft_adapter/adapter_model.safetensors" in run.files and "adapter/adapter_model.safetensors" in run.files
    text = out.getvalue()
    assert "[sft]" in text and "[dpo]" in text


def test_a_nan_loss_stops_the_run_with_advice(
    tiny_model: Path, dataset: str, settings: Settings, store: ArtifactStore, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefloop_trainer.callbacks import NonFiniteLoss

    broken = tmp_path / "nan-model"  # a base with one NaN weight: every loss is NaN
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        model.model.norm.weight[0] = float("nan")
    model.save_pretrained(broken)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(broken)
    with pytest.raises(NonFiniteLoss, match="became NaN/inf at step .* Lower training.learning_rate"):
        train(config_for(broken, dataset, "dpo"), settings, store, io.StringIO())
    assert store.ids(TrainingRun) == []


def test_a_config_that_cannot_fit_is_refused_before_weights_load(
    tiny_model: Path, dataset: str, settings: Settings, store: ArtifactStore
) -> None:
    from prefloop_trainer.memory import DoesNotFit

    with pytest.raises(DoesNotFit, match="does not fit the 0.10 GiB available"):
        train(config_for(tiny_model, dataset, "dpo", "training.memory_budget_gb=0.1"), settings, store, io.StringIO())


def test_a_run_continues_an_earlier_runs_adapter_and_pulls_toward_it(
    tiny_model: Path, dataset: str, settings: Settings, store: ArtifactStore
) -> None:
    first = train(config_for(tiny_model, dataset, "dpo", "run_id=run-first"), settings, store, io.StringIO())
    out = io.StringIO()
    second = train(
        config_for(tiny_model, dataset, "dpo", "run_id=run-second", "model.init_run=run-first", "lora.r=4"), settings, store, out
    )
    assert "run run-first's adapter (r 16), trained further" in out.getvalue()
    steps = {run.run_id: json.loads(store.read_bytes(run, "metrics.json"))["steps"] for run in (first, second)}
    # The reference is the first run's model: the second run starts with zero rewards although it starts where the
    # first one ended (its chosen answers are already more likely than the bare base's).
    assert abs(steps["run-second"][0]["rewards/chosen"]) < 1e-3 and abs(steps["run-second"][0]["rewards/margins"]) < 1e-3
    assert steps["run-second"][0]["logps/chosen"] > steps["run-first"][0]["logps/chosen"] + 1
    assert second.config["model"]["init_run"] == "run-first"
    # One adapter, r 16 like the one it continued (TRL's frozen reference copy is not published).
    adapter_files = sorted(name for name in second.files if name.startswith("adapter/"))
    assert "adapter/adapter_model.safetensors" in adapter_files and not any("/ref/" in n for n in adapter_files)
    assert json.loads(store.read_bytes(second, "adapter/adapter_config.json"))["r"] == 16


def test_continuing_a_run_of_another_base_or_no_run_is_refused_before_weights_load(
    tiny_model: Path, dataset: str, settings: Settings, store: ArtifactStore, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="model.init_run: there is no run run-nowhere in the bucket"):
        train(config_for(tiny_model, dataset, "dpo", "model.init_run=run-nowhere"), settings, store, io.StringIO())
    train(config_for(tiny_model, dataset, "orpo", "run_id=run-tiny", "training.max_steps=1"), settings, store, io.StringIO())
    other = tmp_path / "other-base"
    other.symlink_to(tiny_model, target_is_directory=True)
    with pytest.raises(ValueError, match=f"run run-tiny was trained on {tiny_model}, not {other}"):
        train(config_for(other, dataset, "dpo", "model.init_run=run-tiny"), settings, store, io.StringIO())


def test_micro_batches_grouped_by_length_pad_less_than_random_ones(tiny_model: Path, tmp_path: Path) -> None:
    """Half the pairs short, half long: TRL draws random micro-batches of 4, which nearly all pad to a long pair;
    grouped ones (what `training.group_by_length` gives DPO) mix a short and a long pair at most once per group of 12."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from prefloop_trainer.methods import grouped_by_length

    rows = [
        {
            "prompt": [{"role": "user", "content": "Tell me about it. " * (1 if i % 2 else 30)}],
            "chosen": [{"role": "assistant", "content": "It is in the wiki."}],
            "rejected": [{"role": "assistant", "content": "No idea."}],
        }
        for i in range(48)
    ]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)
    args = DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, use_cpu=True, report_to=[], max_length=512, seed=0)

    def padded_share(trainer_cls: type) -> float:
        trainer = trainer_cls(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
        batches = list(trainer.get_train_dataloader())
        assert sum(b["input_ids"].shape[0] for b in batches) == 2 * len(rows)  # every pair once, chosen + rejected
        return sum(b["input_ids"].numel() for b in batches) / sum(int(b["attention_mask"].sum()) for b in batches)

    random, grouped = padded_share(DPOTrainer), padded_share(grouped_by_length(DPOTrainer))
    assert grouped < 0.85 * random, (grouped, random)


def test_a_base_model_trains_with_the_chat_template_it_is_given_and_the_run_records_it(
    tiny_model: Path, dataset: str, settings: Settings, store: ArtifactStore, tmp_path: Path
) -> None:
    base = Path(shutil.copytree(tiny_model, tmp_path / "base"))
    drop_chat_template(base)
    with pytest.raises(
        ValueError,
        match=rf"{base} has no chat template .* give one with model.chat_template "
        r"\(chatml, gemma, or a Jinja file",
    ):
        train(config_for(base, dataset, "dpo", "training.max_steps=1"), settings, store, io.StringIO())

    run = train(
        config_for(base, dataset, "dpo", "run_id=run-chatml", "model.chat_template=chatml", "training.max_steps=1"),
        settings,
        store,
        io.StringIO(),
    )
    assert run.chat_template == resolve_chat_template("chatml")
    assert store.read_bytes(run, "adapter/chat_template.jinja").decode() == run.chat_template.text

    with pytest.raises(
        ValueError,
        match=r"run run-chatml was trained with chat template chatml \(sha256 [0-9a-f]{12}\), "
        r"this run formats with gemma",
    ):
        train(
            config_for(base, dataset, "dpo", "model.init_run=run-chatml", "model.chat_template=gemma"),
            settings,
            store,
            io.StringIO(),
        )

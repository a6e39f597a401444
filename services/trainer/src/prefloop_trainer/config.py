"""The training config: one pydantic schema with sections model / data / method / training / lora /
quantization. Read from YAML, then `--set section.field=value` overrides, then validated; every
field's description is its documentation (`prefloop train --print-config` shows the result).

Defaults are the source's (LoRA rank 16 / alpha 32, beta 0.1, batch 1 x accumulation 4, a 10% eval split once
there are 50 pairs) except where benchmarks/effectiveness.py chose otherwise on the demo's data: RPO (DPO + an SFT
term), lr 4e-4 and 5 epochs instead of DPO, 5e-5 and 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from prefloop_core.contracts import TrainingMethod


def _switch(value: Any) -> Any:
    # YAML reads on/off/yes/no as booleans: take them back as the words people wrote.
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


Switch = Annotated[Literal["auto", "on", "off"], BeforeValidator(_switch)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(Section):
    base: str = Field(
        default="smollm2",
        description="Base model: an HF folder, a hub id, a .gguf file, or `smollm2` (the bundled SmolLM2-135M-Instruct GGUF).",
    )
    chat_template: str | None = Field(
        default=None,
        description="Chat template for a base that has none (or to replace its own): `gemma`, `chatml`, or a Jinja file. "
        "Default: $PREFLOOP_BASE_CHAT_TEMPLATE, else the model's own. Export over a base release made with the same.",
    )
    init_run: str | None = Field(
        default=None,
        description="Start from this earlier run's adapter (same base) instead of a new one: it is trained further, and "
        "DPO/KTO pull toward it rather than the bare base (iterative DPO; the flows pass the live release's run). "
        "The LoRA section is then the earlier run's.",
    )


class DataSection(Section):
    dataset_id: str | None = Field(default=None, description="Dataset snapshot in the bucket (`prefloop snapshot` prints it).")
    eval_fraction: float = Field(default=0.1, ge=0, lt=0.5, description="Share held out for evaluation ...")
    eval_min_pairs: int = Field(default=50, ge=2, description="... once the dataset has at least this many pairs.")
    max_length: int = Field(default=1024, ge=32, description="Longest prompt + answer in tokens (longer are truncated).")
    min_pairs: int = Field(default=10, ge=1, description="Fewer pairs than this: refused.")
    warn_pairs: int = Field(default=50, ge=1, description="Fewer pairs than this: a warning.")


class MethodSection(Section):
    name: TrainingMethod = Field(default=TrainingMethod.DPO, description="dpo, orpo, kto, sft, or sft+dpo.")
    loss_type: list[str] = Field(
        default=["sigmoid", "sft"],
        description="DPO loss(es) from the installed TRL; several are combined. Default: sigmoid DPO plus an SFT term on "
        "the chosen answers (RPO), the winner of benchmarks/effectiveness.py on small data.",
    )
    loss_weights: list[float] | None = Field(default=None, description="Weights of several DPO losses (default: 1 each).")
    beta: float = Field(default=0.1, gt=0, description="Strength of the pull toward the reference (0.1-0.5 recommended).")
    sft_epochs: float = Field(default=1.0, gt=0, description="Epochs of the SFT stage of sft+dpo.")

    @field_validator("loss_type", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class TrainingSection(Section):
    learning_rate: float = Field(
        default=4e-4, gt=0, description="Peak learning rate (benchmarks/effectiveness.py; loss not falling: lower it)."
    )
    epochs: float = Field(
        default=5.0,
        gt=0,
        description="Passes over the training pairs (the source's 3 learnt less "
        "and less steadily over four seeds: benchmarks/results/effectiveness.md).",
    )
    max_steps: int = Field(default=-1, description="Stop after this many optimizer steps (-1: by epochs).")
    batch_size: int = Field(default=1, ge=1, description="Pairs per micro-batch (memory grows with it).")
    grad_accumulation: int = Field(default=4, ge=1, description="Micro-batches per optimizer step.")
    pack_micro_batches: Switch = Field(
        default="auto",
        description="Run a step's pairs (batch_size x grad_accumulation) in fewer, larger micro-batches: the same pairs "
        "per optimizer step, fewer and larger matrix multiplies. auto: on a GPU, as large as 75% of the memory budget "
        "allows without gradient checkpointing (on CPU measured no faster, for more memory); on: one micro-batch per "
        "step, shrunk only if it does not fit; off: as set.",
    )
    group_by_length: Switch = Field(
        default="auto",
        description="Put pairs of similar token length in the same micro-batch, so it pads little "
        "(transformers' LengthGroupedSampler: random groups, sorted within). auto: on for DPO when a micro-batch holds "
        "more than one pair.",
    )
    share_prompts: bool = Field(
        default=True,
        description="DPO: run each pair as one packed row holding the prompt its chosen and rejected "
        "answer share once, not twice (the same log-probs and gradients from fewer tokens: "
        "prefloop_trainer.shared_prompt; models with sdpa or eager attention).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Compute dtype. auto: bf16 where the GPU supports it, else fp16 on a GPU; fp32 on "
        "CPU. bfloat16 on a CPU with AMX or AVX512-BF16 is an option to measure (benchmarks/results/trainer.md).",
    )
    gradient_checkpointing: Switch = Field(
        default="auto", description="Trade compute for memory; auto: on when the memory estimate needs it."
    )
    optimizer: Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit"] = Field(
        default="adamw_torch", description="8-bit and paged optimizers need CUDA (bitsandbytes)."
    )
    precompute_ref_log_probs: Switch = Field(
        default="auto", description="Compute the reference once before training (DPO/KTO); auto: on when cheaper."
    )
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    seed: int = 42
    logging_steps: int = Field(default=1, ge=1)
    checkpoint_steps: int = Field(default=50, ge=1, description="Save (and upload) a checkpoint every N steps.")
    memory_budget_gb: float | None = Field(
        default=None, gt=0, description="Memory to plan for (default: free GPU memory, or 80% of free RAM on CPU)."
    )


class LoraSection(Section):
    r: int = Field(default=16, ge=1, description="LoRA rank.")
    alpha: int = Field(default=32, ge=1, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str | list[str] = Field(default="all-linear", description="Modules to adapt; `all-linear` or names.")


class QuantizationSection(Section):
    load_in_4bit: Switch = Field(
        default="auto", description="NF4 4-bit base weights (bitsandbytes, CUDA only); auto: on on CUDA."
    )
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True


class TrainConfig(Section):
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    method: MethodSection = MethodSection()
    training: TrainingSection = TrainingSection()
    lora: LoraSection = LoraSection()
    quantization: QuantizationSection = QuantizationSection()
    run_id: str | None = Field(default=None, description="Run id to publish as (and to resume); default: a new one.")


class ConfigError(ValueError):
    """A config problem, one line per field: `section.field: what is wrong`."""


def _set(tree: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {key} is not a section")
        node = child
    node[keys[-1]] = yaml.safe_load(raw) if raw != "" else None


def load_config(path: Path | None, overrides: list[str]) -> TrainConfig:
    """YAML file, then `key=value` overrides, then validation (precedence: --set > file > defaults)."""
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected sections (model:, data:, method:, ...), got {type(loaded).__name__}")
        tree = loaded or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: write section.field=value, e.g. --set training.learning_rate=1e-4")
        try:
            _set(tree, key.strip(), value.strip())
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: {exc}") from None
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            message = (
                "unknown field; check its spelling (prefloop train --print-config lists them)"
                if err["type"] == "extra_forbidden"
                else err["msg"]
            )
            lines.append(f"  {where}: {message}")
        source = f" ({path})" if path else ""
        raise ConfigError(f"invalid training config{source}:\n" + "\n".join(lines)) from None

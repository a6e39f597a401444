"""Config precedence and errors, hardware resolution and the memory fit: pure, no weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefloop_trainer.config import ConfigError, load_config
from prefloop_trainer.hardware import Hardware, resolve
from prefloop_trainer.memory import GiB, DoesNotFit, Shape, estimate, fit

QWEN7B = Shape(params=7_615_616_512, hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, vocab=152064)


def test_defaults_are_the_sources_except_what_the_effectiveness_sweep_chose() -> None:
    c = load_config(None, [])
    assert (c.lora.r, c.lora.alpha, c.method.beta) == (16, 32, 0.1)
    assert (c.training.learning_rate, c.method.loss_type) == (4e-4, ["sigmoid", "sft"])  # benchmarks/results/effectiveness.md
    assert (c.training.batch_size, c.training.grad_accumulation, c.training.epochs) == (1, 4, 5.0)  # epochs: the sweep
    assert c.data.eval_fraction == 0.1 and c.data.eval_min_pairs == 50


def test_set_overrides_the_file_which_overrides_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("training:\n  learning_rate: 1.0e-4\n  epochs: 2\nmethod:\n  name: orpo\n  loss_type: hinge\n")
    c = load_config(path, ["training.learning_rate=3e-4", "lora.r=8"])
    assert c.training.learning_rate == 3e-4  # --set beats the file
    assert c.training.epochs == 2 and c.method.name.value == "orpo"  # the file beats the defaults
    assert c.lora.r == 8 and c.method.loss_type == ["hinge"]


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["training.learning_rate=-1", "lora.rank=8", "method.name=ppo"])
    text = str(info.value)
    assert "training.learning_rate: Input should be greater than 0" in text
    assert "lora.rank: unknown field" in text and "method.name:" in text
    with pytest.raises(ConfigError, match="write section.field=value"):
        load_config(None, ["learning_rate"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, [])


@pytest.mark.parametrize(
    ("hw", "dtype", "four_bit"),
    [
        (Hardware("cuda", "NVIDIA H100", 70, bf16=True), "bfloat16", True),
        (Hardware("cuda", "Tesla T4", 14, bf16=False), "float16", True),  # the source's cuBLAS bf16 failure
        (Hardware("mps", "Apple GPU", 20, bf16=False), "float16", False),
        (Hardware("cpu", "CPU", 20, bf16=False), "float32", False),
    ],
)
def test_dtype_and_4bit_follow_the_hardware(hw: Hardware, dtype: str, four_bit: bool) -> None:
    resolved = resolve(load_config(None, ["quantization.load_in_4bit=on", "training.optimizer=paged_adamw_8bit"]), hw)
    assert resolved.dtype == dtype and resolved.load_in_4bit is four_bit
    if hw.device != "cuda":
        assert any("4-bit needs CUDA" in n for n in resolved.notes) and resolved.optimizer == "adamw_torch"


def test_a_7b_model_in_4bit_fits_16gb_after_adjustments_and_not_in_bf16() -> None:
    config = load_config(None, ["training.batch_size=4", "data.max_length=1024"])
    t4 = Hardware("cuda", "16 GB GPU", 15.5, bf16=False)
    resolved, est = fit(QWEN7B, resolve(config, t4), 16, 1024, 2, 0.6 * GiB, 15.5, checkpointing_fixed=False)
    assert est.total <= 15.5 * GiB and resolved.load_in_4bit
    assert resolved.gradient_checkpointing and resolved.batch_size * resolved.grad_accumulation == 16
    assert any("to fit memory" in n for n in resolved.notes)
    no4 = resolve(load_config(None, ["quantization.load_in_4bit=off"]), t4)
    with pytest.raises(DoesNotFit, match="does not fit the 15.50 GiB available"):
        fit(QWEN7B, no4, 16, 1024, 2, 0.6 * GiB, 15.5, checkpointing_fixed=False)


def test_the_estimate_grows_with_batch_and_sequence() -> None:
    resolved = resolve(load_config(None, []), Hardware("cpu", "CPU", 20, False))
    small = estimate(QWEN7B, resolved, 16, 256, 2, 0)
    resolved.batch_size = 4
    big = estimate(QWEN7B, resolved, 16, 1024, 2, 0)
    assert big.activations > 10 * small.activations and big.logits > 10 * small.logits
    assert big.weights == small.weights


def test_print_config_round_trips(tmp_path: Path) -> None:
    import subprocess
    import sys

    exe = str(Path(sys.executable).parent / "prefloop-trainer")
    printed = subprocess.run([exe, "train", "--print-config", "--set", "method.name=kto"], capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    path = tmp_path / "train.yaml"
    path.write_text(printed.stdout)
    assert load_config(path, []) == load_config(None, ["method.name=kto"])
    bad = subprocess.run([exe, "train", "--set", "lora.rank=8"], capture_output=True, text=True)
    assert bad.returncode == 2 and "lora.rank: unknown field" in bad.stderr and "Traceback" not in bad.stderr


SMOLLM2 = Shape(params=134_479_872, hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, vocab=49152)


def test_on_a_gpu_a_steps_pairs_are_packed_into_one_micro_batch_when_memory_allows() -> None:
    gpu = Hardware("cuda", "NVIDIA H100", 70, bf16=True)
    resolved, est = fit(
        SMOLLM2, resolve(load_config(None, []), gpu), 16, 512, 2, 0.6 * GiB, 70, checkpointing_fixed=False, packing="auto"
    )
    assert (resolved.batch_size, resolved.grad_accumulation) == (4, 1)  # the same 4 pairs per optimizer step
    assert not resolved.gradient_checkpointing and any("pairs packed" in n for n in resolved.notes)
    assert est.total <= 0.75 * 70 * GiB


def test_packing_stops_where_memory_does_and_never_turns_checkpointing_on() -> None:
    gpu = Hardware("cuda", "24 GB GPU", 23.5, bf16=True)  # a 7B in 4-bit, 192 tokens: 2 pairs fit 75% of it, 4 do not
    config = load_config(None, ["training.batch_size=1", "training.grad_accumulation=8"])
    packed, est = fit(QWEN7B, resolve(config, gpu), 16, 192, 2, 0.6 * GiB, 23.5, checkpointing_fixed=False, packing="auto")
    assert (packed.batch_size, packed.grad_accumulation) == (2, 4) and not packed.gradient_checkpointing
    assert est.total <= 0.75 * 23.5 * GiB
    four = resolve(load_config(None, ["training.batch_size=4", "training.grad_accumulation=2"]), gpu)
    assert estimate(QWEN7B, four, 16, 192, 2, 0.6 * GiB).total > 0.75 * 23.5 * GiB
    tight = Hardware("cuda", "16 GB GPU", 15.5, bf16=True)  # nothing fits without checkpointing: left to `fit` as it was
    unpacked, _ = fit(QWEN7B, resolve(config, tight), 16, 1024, 2, 0.6 * GiB, 15.5, checkpointing_fixed=False, packing="auto")
    plain, _ = fit(QWEN7B, resolve(config, tight), 16, 1024, 2, 0.6 * GiB, 15.5, checkpointing_fixed=False, packing="off")
    assert unpacked == plain and not any("packed" in n for n in unpacked.notes)


def test_auto_packing_leaves_a_cpu_as_configured_and_on_packs_there_too() -> None:
    cpu = Hardware("cpu", "CPU", 20, bf16=False)
    auto, _ = fit(
        SMOLLM2, resolve(load_config(None, []), cpu), 16, 256, 2, 0.5 * GiB, 20, checkpointing_fixed=False, packing="auto"
    )
    on, _ = fit(SMOLLM2, resolve(load_config(None, []), cpu), 16, 256, 2, 0.5 * GiB, 20, checkpointing_fixed=False, packing="on")
    assert (auto.batch_size, auto.grad_accumulation) == (1, 4) and (on.batch_size, on.grad_accumulation) == (4, 1)


def test_training_dtype_picks_another_dtype_only_where_the_hardware_can() -> None:
    amx = Hardware("cpu", "CPU", 20, bf16=True)
    assert resolve(load_config(None, ["training.dtype=bfloat16"]), amx).dtype == "bfloat16"
    plain_cpu = resolve(load_config(None, ["training.dtype=bfloat16"]), Hardware("cpu", "CPU", 20, bf16=False))
    assert plain_cpu.dtype == "bfloat16" and any("no native bf16" in n for n in plain_cpu.notes)
    with pytest.raises(ValueError, match="training.dtype=float16: fp16 training needs a GPU"):
        resolve(load_config(None, ["training.dtype=float16"]), amx)
    with pytest.raises(ValueError, match="Tesla T4 has no bf16"):
        resolve(load_config(None, ["training.dtype=bfloat16"]), Hardware("cuda", "Tesla T4", 14, bf16=False))
    assert resolve(load_config(None, ["training.dtype=float32"]), Hardware("cuda", "H100", 70, bf16=True)).dtype == "float32"


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_the_shape_counts_what_the_model_holds_also_where_heads_are_wider_than_hidden_over_heads(family: str) -> None:
    """Gemma 3 270M: 4 heads of 256 at hidden 640 (not 160 each). Parameters and LoRA parameters as the model and PEFT
    count them (built on the meta device: no memory)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig

    config = (
        Gemma3TextConfig(
            vocab_size=262144,
            hidden_size=640,
            intermediate_size=2048,
            num_hidden_layers=18,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=256,
            tie_word_embeddings=True,
        )
        if family == "gemma3"
        else LlamaConfig(
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            tie_word_embeddings=True,
        )
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shape = Shape.of(config)
    norms = sum(p.numel() for name, p in model.named_parameters() if "norm" in name)
    assert shape.params == sum(p.numel() for p in model.parameters()) - norms
    lora = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear"))
    assert shape.lora_params(16) == sum(p.numel() for p in lora.parameters() if p.requires_grad)

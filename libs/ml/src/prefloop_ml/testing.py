"""Test helpers shared by the trainer's and the exporter's tests: the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

from prefloop_core.settings import Settings
from prefloop_ml.base_model import load_tokenizer


def build_tiny_model(folder: Path, settings: Settings, seed: int = 0) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer and chat template, saved as an HF checkpoint (weights from `seed`)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer("smollm2", settings)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def drop_chat_template(model_dir: Path) -> None:
    """Make a checkpoint whose tokenizer has no chat template (a base model, not an instruct one)."""
    (model_dir / "chat_template.jinja").unlink(missing_ok=True)
    config_file = model_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("chat_template", None)
    config_file.write_text(json.dumps(config))

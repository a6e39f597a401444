"""The exporter's venv has what it needs: the pinned CPU torch stack and the default base model."""

from __future__ import annotations

import importlib.metadata

from prefloop_core.settings import load_settings
from prefloop_core.toolchain import SMOLLM2_FILE, base_gguf


def test_the_pinned_ml_stack_is_installed() -> None:
    assert importlib.metadata.version("torch").startswith("2.13.0")
    assert importlib.metadata.version("transformers") == "5.23.0"
    assert importlib.metadata.version("peft") == "0.21.2"


def test_the_default_base_model_loads_through_transformers_gguf_support() -> None:
    from transformers import AutoTokenizer

    path = base_gguf(load_settings())
    assert path.name == SMOLLM2_FILE
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "안녕"}], add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids  # transformers 5 returns a BatchEncoding
    assert "안녕" in tokenizer.decode(ids)

"""The base model: where it is, its config and tokenizer (without weights), a plain HF checkpoint of it,
and loading it for training or merging.

A GGUF base (the embedded default) is loaded through transformers' `gguf_file` support, which
dequantizes it; such a model refuses `save_pretrained`, so it is rebuilt from its config as a
plain checkpoint once and cached by the GGUF's hash (`$PREFLOOP_HOME/cache/hf/<hash>`).
"""

from __future__ import annotations

import functools
import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

from prefloop_core.chat_templates import ChatTemplateError
from prefloop_core.contracts import ChatTemplate
from prefloop_core.settings import Settings
from prefloop_core.toolchain import base_gguf

# PEFT reads transformers' old property name on every adapter it wraps; the warning says nothing a user can act on.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def base_location(base: str, settings: Settings) -> tuple[Path | str, str | None]:
    """(folder or hub id, GGUF file name or None)."""
    if base == "smollm2":
        gguf = base_gguf(settings)
        return gguf.parent, gguf.name
    path = Path(base)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"model.base: {base} does not exist")
        return path.parent, path.name
    return (path if path.exists() else base), None


def load_config(base: str, settings: Settings) -> Any:
    """The base's config; for a GGUF base, from its cached checkpoint once there (parsing the GGUF's metadata takes
    ~4.5 s for SmolLM2's, the cached config.json 2 ms)."""
    from transformers import AutoConfig

    where, gguf = base_location(base, settings)
    if gguf is not None and (cached := _cache_dir(Path(where) / gguf, settings)).joinpath("config.json").is_file():
        return AutoConfig.from_pretrained(cached)
    return AutoConfig.from_pretrained(where, gguf_file=gguf) if gguf else AutoConfig.from_pretrained(where)


def load_tokenizer(base: str, settings: Settings, chat_template: ChatTemplate | None = None) -> Any:
    """The base's tokenizer; for a GGUF base, from its cached checkpoint once there (rebuilding it from the GGUF
    takes seconds). With `chat_template`, that template in place of the model's own, checked against this
    tokenizer (`apply_chat_template`)."""
    from transformers import AutoTokenizer

    where, gguf = base_location(base, settings)
    if gguf is None:
        tokenizer = AutoTokenizer.from_pretrained(where)
    elif (cached := _cache_dir(Path(where) / gguf, settings)).joinpath("tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(cached)
    else:
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=gguf)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template is not None:
        apply_chat_template(tokenizer, chat_template)
    return tokenizer


# What looks like a turn marker in a rendered conversation: <start_of_turn>, <|im_start|>, [INST], ...
_MARKER = re.compile(r"<\|?[A-Za-z_][A-Za-z0-9_]*\|?>|\[/?[A-Z_]+\]")
_PROBE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Bye"},
]


def apply_chat_template(tokenizer: Any, template: ChatTemplate) -> None:
    """Give `tokenizer` the template, after checking it fits: it renders a conversation with a system message, and
    each turn marker it writes is one token of this vocabulary. A marker the model does not know would be trained
    as plain text pieces and never stop generation; ChatTemplateError names it and what to do instead."""
    tokenizer.chat_template = template.text
    try:
        rendered = tokenizer.apply_chat_template(_PROBE, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # jinja2's TemplateError, or the template's own raise_exception
        raise ChatTemplateError(f"chat template {template.name} does not render a conversation: {exc}") from None
    for marker in sorted(set(_MARKER.findall(rendered))):
        ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ChatTemplateError(
                f"chat template {template.name} writes {marker!r}, which this model's tokenizer splits into {len(ids)} "
                "pieces: the model has no such token, so it would learn the marker as text and never stop after its "
                "answer. Give a template made for this model (its model card names one; bundled: gemma, chatml)."
            )


def _digest(gguf: Path) -> str:
    """The GGUF's sha256 (first 16 hex digits), read once per file version: a run's config, tokenizer, checkpoint and
    recorded digest each ask for it, and hashing reads the whole file (gigabytes for a 7B model)."""
    stat = gguf.stat()
    return _file_digest(gguf.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _file_digest(path: Path, _size: int, _mtime_ns: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:16]


def _cache_dir(gguf: Path, settings: Settings) -> Path:
    """Where the plain checkpoint of a GGUF base is kept, keyed by the GGUF's content."""
    return settings.home / "cache" / "hf" / _digest(gguf)


def base_digest(base: str, settings: Settings) -> str | None:
    """The base GGUF's content digest (sha256, first 16 hex digits); None for an HF folder or hub id. `smollm2` names
    the configured default base (PREFLOOP_BASE_GGUF, else SmolLM2), so the name alone does not say which model it is."""
    where, gguf = base_location(base, settings)
    return _digest(Path(where) / gguf) if gguf else None


def base_title(base: str, settings: Settings) -> str:
    """The base as people should read it: the configured default's file when PREFLOOP_BASE_GGUF replaces SmolLM2."""
    if base == "smollm2" and settings.base_gguf is not None:
        return f"{settings.base_gguf.name} (PREFLOOP_BASE_GGUF)"
    return base


def base_mismatch(run_id: str, trained_on: str, digest: str | None, settings: Settings) -> str | None:
    """Why run `run_id`'s adapter does not fit the base its `trained_on` names now (None: it fits or cannot be told):
    the GGUF it resolves to has other content than the one the run trained on, e.g. PREFLOOP_BASE_GGUF changed."""
    if digest is None:
        return None
    now = base_digest(trained_on, settings)
    if now == digest:
        return None
    return (
        f"run {run_id} was trained on a base GGUF with sha256 {digest}..., but {base_title(trained_on, settings)} "
        f"is now {f'{now}...' if now else 'not a GGUF'}: its adapter fits only the model it trained on; point "
        "PREFLOOP_BASE_GGUF (or model.base) back at that file"
    )


def hf_checkpoint(base: str, settings: Settings) -> Path | str:
    """A plain HF checkpoint of the base: itself, or the GGUF rebuilt once and cached."""
    where, gguf = base_location(base, settings)
    if gguf is None:
        return where
    cached = _cache_dir(Path(where) / gguf, settings)
    if (cached / "config.json").is_file():
        return cached
    import torch
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(where, gguf_file=gguf, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    partial = cached.with_name(cached.name + ".partial")
    plain.save_pretrained(partial)
    load_tokenizer(base, settings).save_pretrained(partial)
    partial.rename(cached)
    return cached


def load_model(base: str, settings: Settings, dtype: str, load_in_4bit: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    checkpoint = hf_checkpoint(base, settings)
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch_dtype
        )
        return AutoModelForCausalLM.from_pretrained(checkpoint, quantization_config=quant, dtype=torch_dtype)
    return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch_dtype)

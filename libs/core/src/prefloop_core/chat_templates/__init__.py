"""Chat templates for base models whose files carry none: bundled by name, or read from a Jinja file.

A base model (Gemma 3 270M, Qwen2.5-7B base, ...) has no chat template, so nothing says how a conversation
becomes tokens: the trainer could not format pairs, and llama-server would fall back to a format of its own.
Like LLaMA-Factory's `template:` and Unsloth's `get_chat_template`, a template can be named here; the trainer
formats with it, the run and every release record it, and the exporter writes it into every GGUF (where the
template check holds llama-server's rendering against the tokenizer's like any other).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from prefloop_core.contracts import ChatTemplate
from prefloop_core.settings import Settings

MAX_BYTES = 64 * 1024


class ChatTemplateError(ValueError):
    """A chat template that cannot be used: the message names it and what to give instead."""


_BUNDLED_DIR = files(__package__)


def bundled_names() -> list[str]:
    return sorted(p.name.removesuffix(".jinja") for p in _BUNDLED_DIR.iterdir() if p.name.endswith(".jinja"))


def resolve_chat_template(spec: str) -> ChatTemplate:
    """A bundled template by name (`gemma`: Gemma 3's own, as its instruction-tuned models ship it; `chatml`:
    `<|im_start|>role ... <|im_end|>`), or the Jinja file at `spec`."""
    if spec in bundled_names():
        text = _BUNDLED_DIR.joinpath(f"{spec}.jinja").read_text(encoding="utf-8")
        return ChatTemplate(name=spec, text=text.removesuffix("\n"))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ChatTemplateError(
            f"chat template {spec!r} is neither a bundled one ({', '.join(bundled_names())}) nor a Jinja file that exists"
        )
    if path.stat().st_size > MAX_BYTES:
        raise ChatTemplateError(
            f"chat template {path}: {path.stat().st_size} bytes, more than a chat template needs "
            f"({MAX_BYTES} at most); is it the right file?"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ChatTemplateError(f"chat template {path}: not UTF-8 text (byte {exc.start}); give a Jinja file") from None
    if not text.strip():
        raise ChatTemplateError(f"chat template {path} is empty")
    # Jinja drops one trailing newline of a template (keep_trailing_newline=False): so does the record of it.
    return ChatTemplate(name=str(path), text=text.removesuffix("\n"))


def configured_chat_template(given: str | None, settings: Settings) -> ChatTemplate | None:
    """The template a command was given, else `PREFLOOP_BASE_CHAT_TEMPLATE`, resolved; None: the model's own."""
    spec = given or settings.base_chat_template
    return resolve_chat_template(spec) if spec else None


def describe(template: ChatTemplate | None) -> str:
    """A recorded template as a message says it: its label, or "the model's own" when none was given."""
    return template.label() if template else "the model's own"

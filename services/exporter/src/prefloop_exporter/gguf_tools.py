"""llama.cpp's own converter and quantizer, run as the pinned build ships them (never a GGUF writer of ours)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefloop_core.contracts import Quantization
from prefloop_core.toolchain import LlamaCpp


class ToolFailed(RuntimeError):
    pass


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ToolFailed(f"{what} failed (exit {result.returncode}):\n{tail}")


def convert_to_f16(tools: LlamaCpp, hf_dir: Path, out: Path) -> Path:
    """`convert_hf_to_gguf.py --outtype f16`, with llama.cpp's own gguf-py (PyPI's is too old for it)."""
    env = {**os.environ, "PYTHONPATH": str(tools.gguf_py)}
    _run([sys.executable, str(tools.convert_hf), str(hf_dir), "--outtype", "f16", "--outfile", str(out)],
         "convert_hf_to_gguf.py", env)
    return out


def quantize(tools: LlamaCpp, f16: Path, out: Path, quant: Quantization) -> Path:
    _run([str(tools.quantize), str(f16), str(out), quant.value], f"llama-quantize {quant.value}")
    return out

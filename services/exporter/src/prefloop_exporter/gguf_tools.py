"""llama.cpp's own converters, quantizer and perplexity tool, run as the pinned build ships them.

Never a GGUF writer of ours: every file comes out of `convert_hf_to_gguf.py`,
`convert_lora_to_gguf.py` or `llama-quantize`.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

from prefloop_core.contracts import Quantization
from prefloop_core.toolchain import LlamaCpp


class ToolFailed(RuntimeError):
    pass


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ToolFailed(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout + result.stderr


def _converter_env(tools: LlamaCpp) -> dict[str, str]:
    """llama.cpp's converters need their own gguf-py (PyPI's is too old for them)."""
    return {**os.environ, "PYTHONPATH": str(tools.gguf_py)}


def convert_to_f16(tools: LlamaCpp, hf_dir: Path, out: Path) -> Path:
    """`convert_hf_to_gguf.py --outtype f16`."""
    _run([sys.executable, str(tools.convert_hf), str(hf_dir), "--outtype", "f16", "--outfile", str(out)],
         "convert_hf_to_gguf.py", _converter_env(tools))
    return out


def convert_lora(tools: LlamaCpp, adapter_dir: Path, base_hf_dir: Path, out: Path) -> Path:
    """`convert_lora_to_gguf.py --base`: a PEFT adapter into a GGUF LoRA llama-server applies with `--lora`."""
    _run([sys.executable, str(tools.convert_lora), str(adapter_dir), "--base", str(base_hf_dir),
          "--outtype", "f16", "--outfile", str(out)], "convert_lora_to_gguf.py", _converter_env(tools))
    return out


def quantize(tools: LlamaCpp, f16: Path, out: Path, quant: Quantization) -> Path:
    _run([str(tools.quantize), str(f16), str(out), quant.value], f"llama-quantize {quant.value}")
    return out


_FINAL_PPL = re.compile(r"Final estimate: PPL = ([0-9.]+)")


def mean_nll(tools: LlamaCpp, model: Path, loras: list[Path], text: Path, ctx: int = 128) -> float:
    """Mean negative log-likelihood per token (nats) of `text` under `model` (+ LoRAs), by `llama-perplexity`."""
    command = [str(tools.perplexity), "-m", str(model), "-f", str(text), "-c", str(ctx), "-b", str(ctx)]
    for lora in loras:
        command += ["--lora", str(lora)]
    output = _run(command, f"llama-perplexity on {model.name}")
    found = _FINAL_PPL.search(output)
    if found is None:
        raise ToolFailed(f"llama-perplexity printed no final estimate for {model.name}:\n{output[-800:]}")
    return math.log(float(found.group(1)))


_PUBLISHED = re.compile(r"^\s*\d+\s+or\s+(\S+)\s*:\s*[0-9.]+G,\s*([+-][0-9.]+) ppl @ (\S+)", re.MULTILINE)


@cache
def published_ppl_loss(tools: LlamaCpp) -> dict[str, tuple[float, str]]:
    """llama.cpp's own table of perplexity added per quantization, as `llama-quantize --help` prints it.

    {"Q4_K_M": (0.1754, "Llama-3-8B"), ...}: the anchor for the quantization-loss check.
    """
    result = subprocess.run([str(tools.quantize), "--help"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return {m.group(1): (float(m.group(2)), m.group(3)) for m in _PUBLISHED.finditer(result.stdout + result.stderr)}

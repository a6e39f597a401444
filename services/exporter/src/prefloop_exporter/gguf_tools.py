"""llama.cpp's own converters, quantizer and perplexity tool, run as the pinned build ships them.

Never a GGUF writer of ours: every file comes out of `convert_hf_to_gguf.py`,
`convert_lora_to_gguf.py` or `llama-quantize`.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

from prefloop_core.contracts import Quantization
from prefloop_core.children import die_with_parent
from prefloop_core.toolchain import LlamaCpp


class ToolFailed(RuntimeError):
    pass


def _failed(what: str, returncode: int, output: str) -> ToolFailed:
    tail = "\n".join(output.strip().splitlines()[-15:])
    return ToolFailed(f"{what} failed (exit {returncode}):\n{tail}")


def _run(command: list[str], what: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise _failed(what, result.returncode, result.stdout + result.stderr)
    return result.stdout + result.stderr


# Runs a llama.cpp converter script exactly as `python SCRIPT ARGS...` would, in two halves: its top level (the
# imports of torch, transformers, numpy and gguf-py: ~2 s of SmolLM2's ~7 s conversion on 2 cores) as soon as the
# process starts, and the script as `__main__` once the arguments arrive on stdin. Started ahead, the imports overlap
# the merge.
_LAUNCHER = """
import json, os, runpy, sys
script = sys.argv[1]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__prefloop_warm__")
sys.argv = json.loads(sys.stdin.readline())
runpy.run_path(script, run_name="__main__")
"""


class Converter:
    """One run of one of llama.cpp's converter scripts, in its own Python process started ahead of time.

    Its own process, so llama.cpp's gguf-py (newer than PyPI's `gguf` that transformers uses) never meets ours.
    A `with` block stops the process if it is never given its arguments.
    """

    def __init__(self, tools: LlamaCpp, script: Path) -> None:
        self.script = script
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": str(tools.gguf_py)},
            preexec_fn=die_with_parent(),
        )

    def run(self, args: list[str]) -> str:
        output, _ = self.proc.communicate(json.dumps([str(self.script), *args]) + "\n")
        if self.proc.returncode != 0:
            raise _failed(self.script.name, self.proc.returncode, output)
        return output

    def __enter__(self) -> Converter:
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def convert_to_f16(tools: LlamaCpp, hf_dir: Path, out: Path, converter: Converter | None = None) -> Path:
    """`convert_hf_to_gguf.py --outtype f16` (in `converter` when one was started ahead for it)."""
    with converter or Converter(tools, tools.convert_hf) as running:
        running.run([str(hf_dir), "--outtype", "f16", "--outfile", str(out)])
    return out


def convert_lora(tools: LlamaCpp, adapter_dir: Path, base_hf_dir: Path, out: Path) -> Path:
    """`convert_lora_to_gguf.py --base`: a PEFT adapter into a GGUF LoRA llama-server applies with `--lora`."""
    with Converter(tools, tools.convert_lora) as running:
        running.run([str(adapter_dir), "--base", str(base_hf_dir), "--outtype", "f16", "--outfile", str(out)])
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
    # Asked twice at most: this build once exited 0 without printing its final estimate on a loaded machine (its log
    # is written asynchronously), and a second run printed it.
    for _ in range(2):
        output = _run(command, f"llama-perplexity on {model.name}")
        found = _FINAL_PPL.search(output)
        if found is not None:
            return math.log(float(found.group(1)))
    raise ToolFailed(f"llama-perplexity printed no final estimate for {model.name} (twice):\n{output[-800:]}")


_PUBLISHED = re.compile(r"^\s*\d+\s+or\s+(\S+)\s*:\s*[0-9.]+G,\s*([+-][0-9.]+) ppl @ (\S+)", re.MULTILINE)


@cache
def published_ppl_loss(tools: LlamaCpp) -> dict[str, tuple[float, str]]:
    """llama.cpp's own table of perplexity added per quantization, as `llama-quantize --help` prints it.

    {"Q4_K_M": (0.1754, "Llama-3-8B"), ...}: the anchor for the quantization-loss check.
    """
    result = subprocess.run([str(tools.quantize), "--help"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return {m.group(1): (float(m.group(2)), m.group(3)) for m in _PUBLISHED.finditer(result.stdout + result.stderr)}

"""llama.cpp's tools as the exporter runs them, where their output can let it down."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from prefloop_core.toolchain import LlamaCpp
from prefloop_exporter.gguf_tools import ToolFailed, mean_nll


def fake_perplexity(tmp_path: Path, outputs: list[str]) -> LlamaCpp:
    """A `llama-perplexity` that prints `outputs[i]` on its i-th run (and exits 0 every time)."""
    (tmp_path / "bin").mkdir()
    for i, text in enumerate(outputs):
        (tmp_path / f"out{i}.txt").write_text(text)
    tool = tmp_path / "bin" / "llama-perplexity"
    tool.write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{tmp_path}/runs" 2>/dev/null || echo 0)\n'
        f'echo $((n + 1)) > "{tmp_path}/runs"\n'
        f'cat "{tmp_path}/out$n.txt"\n'
    )
    tool.chmod(0o755)
    return LlamaCpp(tmp_path)


def test_a_perplexity_run_without_its_final_estimate_is_asked_once_more(tmp_path: Path) -> None:
    tools = fake_perplexity(tmp_path, ["perplexity: calculating...\n", "Final estimate: PPL = 7.3891 +/- 0.1\n"])
    assert mean_nll(tools, tmp_path / "m.gguf", [], tmp_path / "text.txt") == pytest.approx(math.log(7.3891))
    assert (tmp_path / "runs").read_text().strip() == "2"


def test_two_runs_without_a_final_estimate_fail_with_what_it_printed(tmp_path: Path) -> None:
    tools = fake_perplexity(tmp_path, ["nothing here\n", "still nothing\n"])
    with pytest.raises(ToolFailed, match=r"printed no final estimate for m\.gguf \(twice\):\nstill nothing"):
        mean_nll(tools, tmp_path / "m.gguf", [], tmp_path / "text.txt")

"""The exporter's venv runs llama.cpp's own converters, and the pinned quantizer is there."""

from __future__ import annotations

import os
import subprocess
import sys

from prefloop_core.settings import load_settings
from prefloop_core.toolchain import llama_cpp


def test_llama_cpps_converters_run_in_this_venv_with_their_own_gguf_py() -> None:
    tools = llama_cpp(load_settings())
    env = {**os.environ, "PYTHONPATH": str(tools.gguf_py)}
    for script in (tools.convert_hf, tools.convert_lora):
        result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "usage:" in result.stdout


def test_the_quantizer_is_the_pinned_build() -> None:
    tools = llama_cpp(load_settings())
    assert tools.version == "0.3.36"
    result = subprocess.run([str(tools.quantize), "--help"], capture_output=True, text=True, timeout=30)
    assert "Q4_K_M" in result.stdout + result.stderr

"""The exporter's venv runs llama.cpp's own converters (also started ahead), and the pinned quantizer is there."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from prefloop_core.settings import load_settings
from prefloop_core.toolchain import llama_cpp
from prefloop_exporter.gguf_tools import Converter, ToolFailed


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


def test_a_converter_started_ahead_runs_the_script_as_its_command_line_would() -> None:
    tools = llama_cpp(load_settings())
    with Converter(tools, tools.convert_hf) as converter:
        assert "usage: convert_hf_to_gguf.py" in converter.run(["--help"])
    with Converter(tools, tools.convert_lora) as converter, pytest.raises(ToolFailed) as failed:
        converter.run([])
    assert "convert_lora_to_gguf.py failed (exit 2)" in str(failed.value)
    assert "the following arguments are required: lora_path" in str(failed.value)
    with Converter(tools, tools.convert_hf) as unused:
        pass
    assert unused.proc.returncode is not None  # never given its arguments: stopped, not left behind

"""Adapter mode on SmolLM2-135M-Instruct, the embedded default: every check passes on a real model (the base
release's four, then the adapter's), and the quantization-loss check refuses a file quantized far below what its
name claims. Merged mode on SmolLM2 runs in the demo's end-to-end test (tests/e2e/test_demo.py)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from exporter_helpers import publish_run

from prefloop_core.contracts import ExportMode, Quantization, Release
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_core.toolchain import llama_cpp
from prefloop_exporter.export import export
from prefloop_exporter.gguf_tools import mean_nll
from prefloop_exporter.verify import LOGLIK_TEXT, VerificationFailed, check_quantization_loss


def test_smollm2_exports_as_an_adapter_and_a_q2_k_file_fails_the_q4_k_m_loss_bound(
    settings: Settings, store: ArtifactStore, tmp_path: Path
) -> None:
    run = publish_run(store, settings, "smollm2", tmp_path)
    log = io.StringIO()
    adapter = export(run.run_id, [Quantization.Q4_K_M], settings, store, log, mode=ExportMode.ADAPTER)
    print(log.getvalue())
    assert adapter.tag.startswith("smollm2-135m-dpo-") and adapter.base_release == "smollm2-135m-base-q4_k_m"
    assert log.getvalue().count("f16 GGUF agrees with the merged HF model") == 2  # the base, then base + LoRA
    assert "Q4_K_M loads and answers; loses" in log.getvalue()  # the base's quantization loss, checked once

    tools = llama_cpp(settings)
    base = store.require(Release, "smollm2-135m-base-q4_k_m")
    f16 = store.fetch(base, tmp_path / "base", ["model-F16.gguf"])["model-F16.gguf"]
    q2_k = tmp_path / "model-Q2_K.gguf"
    subprocess.run([str(tools.quantize), str(f16), str(q2_k), "Q2_K"], check=True, capture_output=True)
    with pytest.raises(VerificationFailed) as failed:
        check_quantization_loss(tools, mean_nll(tools, f16, [], LOGLIK_TEXT), q2_k, Quantization.Q4_K_M, [])
    assert failed.value.check == "quantization loss"
    assert "(Q4_K_M) loses" in failed.value.reason and "the bound is 0.1665" in failed.value.reason

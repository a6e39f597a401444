"""Merged export on the tiny model: adapter merged, llama.cpp converts and quantizes, llama-server loads it."""

from __future__ import annotations

import io
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from prefloop_core.contracts import Quantization, Release, TrainingMethod, TrainingRun
from prefloop_core.net import free_port, wait_until_ready
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore, LocalBackend
from prefloop_core.toolchain import llama_cpp
from prefloop_exporter.export import export
from prefloop_ml.testing import build_tiny_model


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", llama_cpp_dir=Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"]))


def publish_run(store: ArtifactStore, base: Path, work: Path) -> TrainingRun:
    """A run whose adapter is a real (randomly initialised, non-zero) PEFT LoRA on the tiny model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.01)
    model.save_pretrained(work / "adapter")
    files = {f"adapter/{p.name}": p for p in (work / "adapter").iterdir()}
    run = TrainingRun(run_id="run-20261123-120000-ab12", dataset_id="ds-0000000000000001", base_model=str(base),
                      method=TrainingMethod.DPO, device="cpu", dtype="float32", started_at=datetime.now(timezone.utc))
    return store.publish(run, files)


def test_a_merged_export_is_a_release_llama_server_loads(settings: Settings, tmp_path: Path) -> None:
    base = build_tiny_model(tmp_path / "tiny", settings)
    store = ArtifactStore(LocalBackend(settings.bucket_dir))
    run = publish_run(store, base, tmp_path)
    out = io.StringIO()
    release = export(run.run_id, [Quantization.Q4_K_M, Quantization.Q8_0], settings, store, out)

    assert release.tag == "tiny-dpo-" + datetime.now(timezone.utc).strftime("%Y%m%d") + "-1"
    assert set(release.files) == {"model-Q4_K_M.gguf", "model-Q8_0.gguf"} and release.run_id == run.run_id
    assert release.llama_cpp_version == "0.3.36" and store.require(Release, release.tag) == release
    assert "[export 2/3]" in out.getvalue()
    again = export(run.run_id, [Quantization.Q4_K_M], settings, store, io.StringIO())
    assert again.tag.endswith("-2")  # tags are never reused

    gguf = store.fetch(release, tmp_path / "served", ["model-Q4_K_M.gguf"])["model-Q4_K_M.gguf"]
    assert gguf.read_bytes()[:4] == b"GGUF"
    port = free_port()
    proc = subprocess.Popen([str(llama_cpp(settings).server), "-m", str(gguf), "--port", str(port), "--host", "127.0.0.1",
                             "-c", "256"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", 60, proc)
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4})
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] >= 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not list(Path("/tmp").glob(f"prefloop-export-{run.run_id}-*"))  # temporary space freed


def test_the_command_line_exports_lists_and_explains_a_missing_run(settings: Settings, tmp_path: Path) -> None:
    import sys

    base = build_tiny_model(tmp_path / "tiny", settings)
    store = ArtifactStore(LocalBackend(settings.bucket_dir))
    run = publish_run(store, base, tmp_path)
    exe = str(Path(sys.executable).parent / "prefloop-exporter")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFLOOP_")},
           "PREFLOOP_HOME": str(settings.home), "PREFLOOP_LLAMA_CPP_DIR": os.environ["PREFLOOP_LLAMA_CPP_DIR"]}
    done = subprocess.run([exe, "export", run.run_id], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    tag = done.stdout.strip().splitlines()[-1]
    listed = subprocess.run([exe, "releases"], capture_output=True, text=True, env=env)
    assert f"| {tag} | merged | Q4_K_M | - | {run.run_id}" in listed.stdout
    missing = subprocess.run([exe, "export", "run-20261123-000000-none"], capture_output=True, text=True, env=env)
    assert missing.returncode == 1 and "runs/run-20261123-000000-none is not published" in missing.stderr

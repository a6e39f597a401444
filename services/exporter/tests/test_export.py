"""Both export modes on the tiny model: verified releases llama-server loads; broken inputs publish nothing."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import namedtuple
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from exporter_helpers import publish_run

from prefloop_core.chat_templates import ChatTemplateError, resolve_chat_template
from prefloop_core.contracts import ChatTemplate, ExportMode, JobResult, Quantization, Release, TrainingRun
from prefloop_core.net import free_port, wait_until_ready
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_core.toolchain import llama_cpp
from prefloop_exporter import disk
from prefloop_exporter.disk import NotEnoughDisk
from prefloop_exporter.export import ExportError, export, export_base
from prefloop_exporter.gguf_tools import convert_to_f16, quantize
from prefloop_exporter.tags import base_release_tag
from prefloop_exporter.verify import LlamaServer, VerificationFailed, check_loads_and_answers
from prefloop_ml.base_model import apply_chat_template, load_tokenizer
from prefloop_ml.testing import build_tiny_model, drop_chat_template


def next_number(earlier: Release, later: Release) -> int:
    """The `<n>` the later release of the same base and method should get: n+1 the same day, 1 the next (a test
    running across midnight UTC)."""
    same_day = earlier.created_at.date() == later.created_at.date()
    return int(earlier.tag.rsplit("-", 1)[1]) + 1 if same_day else 1


def chat(settings: Settings, gguf: Path, loras: list[Path]) -> int:
    """Serve `gguf` (+ LoRAs) with llama-server and return how many tokens it answered with."""
    port = free_port()
    command = [str(llama_cpp(settings).server), "-m", str(gguf), "--port", str(port), "--host", "127.0.0.1", "-c", "256"]
    for lora in loras:
        command += ["--lora", str(lora)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", 60, proc)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            timeout=60,
            json={"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4},
        )
        assert reply.status_code == 200
        return int(reply.json()["usage"]["completion_tokens"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def temp_dirs(run: TrainingRun) -> list[Path]:
    return list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"prefloop-export-{run.run_id}-*"))


def test_a_merged_export_is_verified_tagged_and_served(
    settings: Settings, store: ArtifactStore, tmp_path: Path, tiny: Path
) -> None:
    run = publish_run(store, settings, str(tiny), tmp_path)
    out = io.StringIO()
    release = export(run.run_id, [Quantization.Q4_K_M, Quantization.Q8_0], settings, store, out)

    assert release.tag == f"tiny-dpo-{release.created_at:%Y%m%d}-1" and release.mode is ExportMode.MERGED
    assert set(release.files) == {"model-Q4_K_M.gguf", "model-Q8_0.gguf"} and release.run_id == run.run_id
    assert release.llama_cpp_version == "0.3.36" and store.require(Release, release.tag) == release
    log = out.getvalue()
    assert "[export 4/4] verifying" in log and "HF and llama-server agree" in log and "f16 GGUF agrees" in log
    assert "Q4_K_M loads and answers; loses" in log and "Q8_0 loads and answers" in log
    assert f"changelog: {release.created_at:%Y-%m-%d} | {release.tag} | - | -" in log
    assert JobResult.last_in(log.splitlines()) == JobResult(tag=release.tag, run_id=run.run_id)
    repeat = io.StringIO()  # the run is already exported merged with Q4_K_M: that release, nothing made
    assert export(run.run_id, [Quantization.Q4_K_M], settings, store, repeat) == release
    assert JobResult.last_in(repeat.getvalue().splitlines()).reused and "[export" not in repeat.getvalue()
    again = export(run.run_id, [Quantization.Q4_K_M], settings, store, io.StringIO(), again=True)
    assert again.tag == f"tiny-dpo-{again.created_at:%Y%m%d}-{next_number(release, again)}"  # tags are never reused

    gguf = store.fetch(release, tmp_path / "served", ["model-Q4_K_M.gguf"])["model-Q4_K_M.gguf"]
    assert chat(settings, gguf, []) >= 1
    assert not temp_dirs(run)  # temporary space freed


def test_an_adapter_export_is_a_small_lora_over_a_base_exported_once(
    settings: Settings, store: ArtifactStore, tmp_path: Path, tiny: Path
) -> None:
    run = publish_run(store, settings, str(tiny), tmp_path)
    out = io.StringIO()
    release = export(run.run_id, [Quantization.Q4_K_M], settings, store, out, mode=ExportMode.ADAPTER)

    assert release.mode is ExportMode.ADAPTER and release.base_release == "tiny-base-q4_k_m"
    assert list(release.files) == ["lora-1-adapter.gguf"]
    base_release = store.require(Release, "tiny-base-q4_k_m")
    assert base_release.mode is ExportMode.BASE and set(base_release.files) == {"model-F16.gguf", "model-Q4_K_M.gguf"}
    assert release.files["lora-1-adapter.gguf"].size < base_release.files["model-Q4_K_M.gguf"].size
    assert "exporting the base once as release tiny-base-q4_k_m" in out.getvalue()

    second = io.StringIO()
    again = export(run.run_id, [Quantization.Q4_K_M], settings, store, second, mode=ExportMode.ADAPTER, again=True)
    assert "reusing base release tiny-base-q4_k_m" in second.getvalue() and again.base_release == base_release.tag
    assert store.require(Release, "tiny-base-q4_k_m") == base_release

    lora = store.fetch(release, tmp_path / "lora")["lora-1-adapter.gguf"]
    base_gguf = store.fetch(base_release, tmp_path / "base", ["model-Q4_K_M.gguf"])["model-Q4_K_M.gguf"]
    assert lora.read_bytes()[:4] == b"GGUF" and chat(settings, base_gguf, [lora]) >= 1
    assert not temp_dirs(run)


def test_a_model_without_a_chat_template_fails_verification_and_publishes_nothing(
    settings: Settings, store: ArtifactStore, tmp_path: Path, tiny: Path
) -> None:
    drop_chat_template(tiny)
    run = publish_run(store, settings, str(tiny), tmp_path)
    with pytest.raises(VerificationFailed) as failed:
        export(run.run_id, [Quantization.Q4_K_M], settings, store, io.StringIO())
    assert failed.value.check == "chat template" and "no chat template" in failed.value.reason
    assert store.ids(Release) == [] and not temp_dirs(run)


def served_template(settings: Settings, store: ArtifactStore, release: Release, name: str, tmp_path: Path) -> str:
    gguf = store.fetch(release, tmp_path / release.tag, [name])[name]
    with LlamaServer(llama_cpp(settings), gguf, [], tmp_path / f"{release.tag}.log") as server:
        return str(server.call("GET", "/props")["chat_template"])


def test_a_base_model_given_a_chat_template_carries_it_into_every_gguf_and_record(
    settings: Settings, store: ArtifactStore, tmp_path: Path, tiny: Path
) -> None:
    drop_chat_template(tiny)  # a base model: no template of its own
    chatml = resolve_chat_template("chatml")
    base = export_base(str(tiny), Quantization.Q4_K_M, settings, store, io.StringIO(), chat_template=chatml)
    assert base.tag == "tiny-base-q4_k_m" and base.chat_template == chatml
    assert served_template(settings, store, base, "model-Q4_K_M.gguf", tmp_path) == chatml.text

    run = publish_run(store, settings, str(tiny), tmp_path, chat_template=chatml)
    adapter = export(run.run_id, [Quantization.Q4_K_M], settings, store, io.StringIO(), mode=ExportMode.ADAPTER)
    assert adapter.base_release == base.tag and adapter.chat_template == chatml
    merged = export(run.run_id, [Quantization.Q4_K_M], settings, store, io.StringIO(), mode=ExportMode.MERGED)
    assert merged.chat_template == chatml
    assert served_template(settings, store, merged, "model-Q4_K_M.gguf", tmp_path) == chatml.text

    # A run trained without the template must not be served over the base release that has it.
    plain = publish_run(store, settings, str(tiny), tmp_path, run_id="run-20261123-120000-cd34")
    with pytest.raises(
        ExportError,
        match=r"carries chat template chatml \(sha256 [0-9a-f]{12}\), this export asks "
        r"for the model's own",
    ):
        export(plain.run_id, [Quantization.Q4_K_M], settings, store, io.StringIO(), mode=ExportMode.ADAPTER)


def test_a_chat_template_that_does_not_fit_the_tokenizer_is_refused_by_name(settings: Settings, tiny: Path) -> None:
    tokenizer = load_tokenizer(str(tiny), settings)
    with pytest.raises(
        ChatTemplateError,
        match=r"chat template gemma writes '<end_of_turn>', which this model's "
        r"tokenizer splits into \d+ pieces",
    ):
        apply_chat_template(tokenizer, resolve_chat_template("gemma"))  # SmolLM2's vocabulary has no Gemma turns
    with pytest.raises(ChatTemplateError, match="chat template broken.jinja does not render a conversation"):
        apply_chat_template(tokenizer, ChatTemplate(name="broken.jinja", text="{% for m in messages %}"))
    apply_chat_template(tokenizer, resolve_chat_template("chatml"))
    assert (
        tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
        == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_an_adapter_over_the_wrong_base_fails_the_greedy_check(
    settings: Settings, store: ArtifactStore, tmp_path: Path, tiny: Path
) -> None:
    run = publish_run(store, settings, str(tiny), tmp_path, scale=0.5)
    # A base release under the tag the export reuses, but exported from other weights (as if the base folder had
    # been replaced since): the LoRA would be served over the wrong model.
    other = build_tiny_model(tmp_path / "other" / "tiny", settings, seed=7)
    tools = llama_cpp(settings)
    f16 = convert_to_f16(tools, other, tmp_path / "model-F16.gguf")
    q4 = quantize(tools, f16, tmp_path / "model-Q4_K_M.gguf", Quantization.Q4_K_M)
    store.publish(
        Release(
            tag="tiny-base-q4_k_m",
            base_model=str(tiny),
            mode=ExportMode.BASE,
            quantizations=[Quantization.F16, Quantization.Q4_K_M],
            created_at=datetime.now(timezone.utc),
        ),
        {"model-F16.gguf": f16, "model-Q4_K_M.gguf": q4},
    )

    with pytest.raises(VerificationFailed) as failed:
        export(run.run_id, [Quantization.Q4_K_M], settings, store, io.StringIO(), mode=ExportMode.ADAPTER)
    assert failed.value.check == "greedy" and "merged HF model prefers" in failed.value.reason
    assert store.ids(Release) == ["tiny-base-q4_k_m"]


def test_a_truncated_gguf_fails_the_load_check(settings: Settings, tmp_path: Path, tiny: Path) -> None:
    tools = llama_cpp(settings)
    good = quantize(tools, convert_to_f16(tools, tiny, tmp_path / "f16.gguf"), tmp_path / "q4.gguf", Quantization.Q4_K_M)
    with LlamaServer(tools, good, [], tmp_path / "good.log") as server:
        check_loads_and_answers(server)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    with pytest.raises(VerificationFailed) as failed, LlamaServer(tools, truncated, [], tmp_path / "bad.log"):
        pass
    assert failed.value.check == "loads" and "truncated.gguf" in failed.value.reason


def test_too_little_free_disk_is_refused_before_any_work(
    settings: Settings, store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny: Path
) -> None:
    run = publish_run(store, settings, str(tiny), tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(NotEnoughDisk, match=r"needs about 0\.\d+ GB of temporary space in .* 0\.00 GB is free"):
        export(run.run_id, [Quantization.Q4_K_M], settings, store, io.StringIO())
    assert store.ids(Release) == [] and not temp_dirs(run)


def test_the_command_line_exports_an_adapter_lists_and_explains_errors(
    settings: Settings, store: ArtifactStore, tmp_path: Path, tiny: Path
) -> None:
    run = publish_run(store, settings, str(tiny), tmp_path)
    exe = str(Path(sys.executable).parent / "prefloop-exporter")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFLOOP_")},
        "PREFLOOP_HOME": str(settings.home),
        "PREFLOOP_LLAMA_CPP_DIR": os.environ["PREFLOOP_LLAMA_CPP_DIR"],
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300)

    merged = export(run.run_id, [Quantization.Q4_K_M], settings, store, io.StringIO())  # merged: tested above
    merged_tag = merged.tag
    env.pop("OMP_WAIT_POLICY", None)
    env["OMP_DISPLAY_ENV"] = "verbose"  # torch's OpenMP runtime prints its settings as it loads
    adapter = cli("export", run.run_id, "--mode", "adapter")
    assert adapter.returncode == 0, adapter.stderr
    assert "GOMP_SPINCOUNT = '0'" in adapter.stderr  # PREFLOOP_OMP_WAIT_POLICY=passive: no spinning at barriers
    del env["OMP_DISPLAY_ENV"]
    *_, result, adapter_tag = adapter.stdout.strip().splitlines()  # the result line, then the tag alone
    assert JobResult.parse(result) == JobResult(tag=adapter_tag, run_id=run.run_id)
    adapter_release = store.require(Release, adapter_tag)
    assert adapter_tag == f"tiny-dpo-{adapter_release.created_at:%Y%m%d}-{next_number(merged, adapter_release)}"

    listed = cli("releases").stdout
    assert f"| {merged_tag} | merged | Q4_K_M | - | {run.run_id} | -" in listed
    assert f"| {adapter_tag} | adapter | Q4_K_M | - | {run.run_id} | tiny-base-q4_k_m" in listed
    assert "| tiny-base-q4_k_m | base | F16,Q4_K_M |" in listed
    log = cli("releases", "--changelog").stdout.splitlines()
    assert log[0] == "date | tag | accuracy | pairs" and len(log) == 3 and log[1].endswith(f"| {merged_tag} | - | -")

    repeat = cli("export", run.run_id, "--mode", "adapter")
    assert repeat.returncode == 0 and repeat.stdout.splitlines()[-1] == adapter_tag
    assert f"release {adapter_tag} already holds run {run.run_id} (adapter, Q4_K_M)" in repeat.stdout

    missing = cli("export", "run-20261123-000000-none")
    assert missing.returncode == 1 and "runs/run-20261123-000000-none is not published" in missing.stderr
    two = cli("export", run.run_id, "--mode", "adapter", "--quant", "Q4_K_M", "--quant", "Q8_0")
    assert two.returncode == 1 and "give exactly one --quant" in two.stderr and "Traceback" not in two.stderr
    assert "four checks run" in cli("export", "--help").stdout
    unknown = cli("base-release", "--base", str(tiny), "--chat-template", "vicuna")
    assert (
        unknown.returncode == 2
        and "chat template 'vicuna' is neither a bundled one (chatml, gemma) nor a Jinja file that exists" in unknown.stderr
        and "Traceback" not in unknown.stderr
    )


def test_the_default_base_is_named_after_the_gguf_it_stands_for(settings: Settings, tmp_path: Path) -> None:
    assert base_release_tag("smollm2", Quantization.Q4_K_M, settings) == "smollm2-135m-base-q4_k_m"
    gemma = tmp_path / "gemma-3-270m-q4_k_m.gguf"  # PREFLOOP_BASE_GGUF put in the default's place
    gemma.write_bytes(b"GGUF")
    assert (
        base_release_tag("smollm2", Quantization.Q4_K_M, settings.model_copy(update={"base_gguf": gemma}))
        == "gemma-3-270m-q4-k-m-base-q4_k_m"
    )
    assert base_release_tag(str(tmp_path / "Qwen2.5-7B"), Quantization.Q8_0, settings) == "qwen2-5-7b-base-q8_0"


def test_a_run_is_not_exported_over_another_base_gguf_than_it_trained_on(
    settings: Settings, store: ArtifactStore, tmp_path: Path
) -> None:
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF not the model the run trained on")
    run = TrainingRun(
        run_id="run-20261206-120000-ef56",
        dataset_id="ds-0000000000000001",
        base_model="smollm2",
        base_digest="0123456789abcdef",
        method="dpo",
        device="cpu",
        dtype="float32",
        started_at=datetime.now(timezone.utc),
    )
    store.publish(run, {})
    moved = settings.model_copy(update={"base_gguf": other})
    with pytest.raises(
        ExportError,
        match=r"run run-20261206-120000-ef56 was trained on a base GGUF with sha256 "
        r"0123456789abcdef\.\.\., but other.gguf \(PREFLOOP_BASE_GGUF\) is now",
    ):
        export(run.run_id, [Quantization.Q4_K_M], moved, store, io.StringIO(), mode=ExportMode.ADAPTER)
    assert store.ids(Release) == []  # nothing published

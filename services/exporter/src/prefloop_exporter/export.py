"""The export recipe: a training run -> verified GGUF file(s) -> a tagged release.

merged:  base + adapter(s) merged in fp32 -> `convert_hf_to_gguf.py` f16 -> `llama-quantize` -> release
         with the quantized model(s).
adapter: adapter(s) -> `convert_lora_to_gguf.py` -> release with the GGUF LoRA(s) only, applied by
         llama-server over a base release (`<base-short>-base-<quant>`: f16 + quantized base GGUF),
         which is exported the first time a base is needed and reused afterwards.

Nothing is published until the checks in `verify` pass (in adapter mode the quantization loss is the
base's, checked once when its release is made; the LoRA stays f16). Tags are `<base-short>-<method>-<YYYYMMDD>-<n>`
and immutable. Temporary space is checked before starting and freed on success and on failure.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from prefloop_core.changelog import changelog_line
from prefloop_core.chat_templates import describe
from prefloop_core.contracts import (
    ChatTemplate,
    DatasetManifest,
    ExportMode,
    JobResult,
    Quantization,
    Release,
    TrainingRun,
)
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactConflict, ArtifactStore
from prefloop_core.toolchain import LlamaCpp, ToolchainError, llama_cpp
from prefloop_exporter import verify
from prefloop_exporter.disk import check_free_space
from prefloop_exporter.gguf_tools import Converter, convert_lora, convert_to_f16, mean_nll, quantize
from prefloop_exporter.merge import fetch_adapters, merged_model
from prefloop_exporter.tags import base_release_tag, next_tag, release_of
from prefloop_ml.base_model import base_mismatch, hf_checkpoint, load_tokenizer


class ExportError(RuntimeError):
    """The run cannot be exported as asked; the message says why and what to do."""


class Steps:
    """`[export i/N] ...` lines, flushed, so a terminal or a flow log shows where the export is."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.done, self.out, self.started = total, 0, out, time.monotonic()

    def __call__(self, message: str) -> None:
        self.done += 1
        print(f"[export {self.done}/{self.total}] {message}", file=self.out, flush=True)

    def note(self, message: str) -> None:
        print(f"  {message}", file=self.out, flush=True)


def _tools(settings: Settings) -> LlamaCpp:
    """The pinned llama.cpp build, with the perplexity tool the quantization-loss check needs."""
    tools = llama_cpp(settings)
    if not tools.perplexity.is_file():
        raise ToolchainError(f"{tools.perplexity} is missing: rebuild llama.cpp with infra/llama_cpp/build.sh")
    return tools


def export(
    run_id: str,
    quants: list[Quantization],
    settings: Settings,
    store: ArtifactStore,
    out: TextIO = sys.stdout,
    mode: ExportMode = ExportMode.MERGED,
    again: bool = False,
) -> Release:
    """Export run `run_id` as a new release; one that already holds it (same mode, these quantizations) is returned
    instead unless `again`. Either way the last line written to `out` is the release's `PREFLOOP_RESULT`."""
    run = store.require(TrainingRun, run_id)
    if problem := base_mismatch(run_id, run.base_model, run.base_digest, settings):
        raise ExportError(problem)
    if not again and (done := release_of(store, run, mode, quants, settings)) is not None:
        print(
            f"release {done.tag} already holds run {run_id} ({mode.value}, {', '.join(q.value for q in quants)}): "
            "not exporting again (--again makes a new release)",
            file=out,
            flush=True,
        )
        print(JobResult(tag=done.tag, run_id=run_id, reused=True).line(), file=out, flush=True)
        return done
    tools = _tools(settings)
    if mode is ExportMode.ADAPTER and len(quants) != 1:
        raise ExportError("adapter mode serves the LoRA over one base GGUF: give exactly one --quant")
    if mode is ExportMode.BASE:
        raise ExportError("base releases are made by adapter exports; choose --mode merged or adapter")
    work_root = Path(tempfile.gettempdir())
    check_free_space(work_root, run.base_model, quants, mode, store, settings)
    work = Path(tempfile.mkdtemp(prefix=f"prefloop-export-{run_id}-", dir=work_root))
    try:
        adapters = fetch_adapters(run, store, work)
        if not adapters:
            raise ExportError(f"run {run_id} has no adapter to export (its files: {', '.join(sorted(run.files)) or 'none'})")
        steps = Steps(4, out)
        # llama.cpp's model converter, when this export will convert a model (merged mode, or a base release not made
        # yet): its process starts now and does its imports during the merge.
        converts_model = (
            mode is ExportMode.MERGED or store.get(Release, base_release_tag(run.base_model, quants[0], settings)) is None
        )
        converter = Converter(tools, tools.convert_hf) if converts_model else None
        with ThreadPoolExecutor(max_workers=1) as pool, converter or nullcontext():
            # Adapter mode: llama.cpp's LoRA converter runs alongside the merge (it only needs the base's config).
            loras = (
                pool.submit(_convert_loras, tools, adapters, _local_checkpoint(run.base_model, settings, work), work)
                if mode is ExportMode.ADAPTER
                else None
            )
            steps(
                f"merging {run_id}'s adapter{'s' if len(adapters) > 1 else ''} into {run.base_model} (fp32)"
                + (", converting the adapter with convert_lora_to_gguf.py alongside" if loras else "")
            )
            model = merged_model(run.base_model, adapters, settings)
            tokenizer = load_tokenizer(run.base_model, settings, run.chat_template)
            if loras is None:
                assert converter is not None
                files, base_tag = _merged(model, tokenizer, quants, tools, converter, work, steps), None
            else:
                files, base_tag = _adapter(
                    run, model, tokenizer, quants[0], loras, tools, converter, store, settings, work, steps
                )
        dataset = store.get(DatasetManifest, run.dataset_id)
        release = _publish_new(
            store, run, mode, quants, base_tag, tools, dataset.pair_count if dataset else None, files, settings
        )
        print(
            f"release {release.tag} published in {time.monotonic() - steps.started:.0f} s "
            f"({sum(e.size for e in release.files.values()) / 1e6:.1f} MB)",
            file=out,
            flush=True,
        )
        print(f"changelog: {changelog_line(release, None)}", file=out, flush=True)
        print(JobResult(tag=release.tag, run_id=run_id).line(), file=out, flush=True)
        return release
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_base(
    base_model: str,
    quant: Quantization,
    settings: Settings,
    store: ArtifactStore,
    out: TextIO = sys.stdout,
    chat_template: ChatTemplate | None = None,
) -> Release:
    """The base release (`<base-short>-base-<quant>`) on its own, made and verified once, so the base itself can be
    served in the quantization its adapter releases are served over (a like-for-like QA gate from the first round).
    `chat_template`: the template a base without one is given (the runs trained on it must name the same)."""
    tools = _tools(settings)
    work_root = Path(tempfile.gettempdir())
    check_free_space(work_root, base_model, [quant], ExportMode.ADAPTER, store, settings)
    work = Path(tempfile.mkdtemp(prefix="prefloop-export-base-", dir=work_root))
    try:
        reused = store.get(Release, base_release_tag(base_model, quant, settings)) is not None
        release = _base_release(
            base_model,
            load_tokenizer(base_model, settings, chat_template),
            chat_template,
            quant,
            tools,
            store,
            settings,
            work,
            Steps(1, out),
        )
        print(JobResult(tag=release.tag, reused=reused).line(), file=out, flush=True)
        return release
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _merged(
    model: Any, tokenizer: Any, quants: list[Quantization], tools: LlamaCpp, converter: Converter, work: Path, steps: Steps
) -> dict[str, Path]:
    merged = work / "merged"
    model.save_pretrained(merged)
    tokenizer.save_pretrained(merged)
    steps("converting to f16 GGUF with llama.cpp's convert_hf_to_gguf.py")
    f16 = convert_to_f16(tools, merged, work / "model-F16.gguf", converter)
    shutil.rmtree(merged)
    files: dict[str, Path] = {}
    for quant in quants:
        target = work / f"model-{quant.value}.gguf"
        files[target.name] = f16 if quant is Quantization.F16 else quantize(tools, f16, target, quant)
    steps("quantized: " + ", ".join(f"{name} {path.stat().st_size / 1e6:.1f} MB" for name, path in files.items()))
    steps("verifying (loads, chat template, greedy vs HF, quantization loss)")
    _verify(tools, model, tokenizer, f16, {q: files[f"model-{q.value}.gguf"] for q in quants}, [], work, steps)
    return files


def _convert_loras(tools: LlamaCpp, adapters: list[Path], base_config: Path, work: Path) -> dict[str, Path]:
    return {
        f"lora-{i}-{folder.name}.gguf": convert_lora(tools, folder, base_config, work / f"lora-{i}-{folder.name}.gguf")
        for i, folder in enumerate(adapters, start=1)
    }


def _adapter(
    run: TrainingRun,
    model: Any,
    tokenizer: Any,
    quant: Quantization,
    loras: Future[dict[str, Path]],
    tools: LlamaCpp,
    converter: Converter | None,
    store: ArtifactStore,
    settings: Settings,
    work: Path,
    steps: Steps,
) -> tuple[dict[str, Path], str]:
    base = _base_release(run.base_model, tokenizer, run.chat_template, quant, tools, store, settings, work, steps, converter)
    base_files = store.fetch(base, work / "base")
    files = loras.result()
    steps("GGUF LoRA: " + ", ".join(f"{name} {path.stat().st_size / 1e6:.1f} MB" for name, path in files.items()))
    # The quantization loss is the base's (the LoRA stays f16): checked once, when the base release was made.
    steps(f"verifying over base release {base.tag} (loads, chat template, greedy vs HF)")
    quantized = {quant: base_files[f"model-{quant.value}.gguf"]}
    _verify(tools, model, tokenizer, base_files["model-F16.gguf"], quantized, list(files.values()), work, steps, loss=False)
    return files, base.tag


def _local_checkpoint(base_model: str, settings: Settings, work: Path, tokenizer: Any = None) -> Path:
    """The base as a local HF folder (what llama.cpp's converters read); a hub id is saved once into `work`. With
    `tokenizer` (one given a chat template), a folder in `work` holding that tokenizer's files (so the converter
    writes its template into the GGUF) beside links to the checkpoint's config and weights."""
    checkpoint = hf_checkpoint(base_model, settings)
    if not isinstance(checkpoint, Path):
        checkpoint = work / "base-hf"
        if not checkpoint.is_dir():
            merged_model(base_model, [], settings).save_pretrained(checkpoint)
            load_tokenizer(base_model, settings).save_pretrained(checkpoint)
    if tokenizer is None:
        return checkpoint
    folder = work / "base-hf-chat"
    if not folder.is_dir():
        tokenizer.save_pretrained(folder)
        for item in checkpoint.iterdir():
            if item.name in ("config.json", "generation_config.json") or item.name.endswith(
                (".safetensors", ".bin", ".safetensors.index.json")
            ):
                (folder / item.name).symlink_to(item.resolve())
    return folder


def _base_release(
    base_model: str,
    tokenizer: Any,
    chat_template: ChatTemplate | None,
    quant: Quantization,
    tools: LlamaCpp,
    store: ArtifactStore,
    settings: Settings,
    work: Path,
    steps: Steps,
    converter: Converter | None = None,
) -> Release:
    """The base GGUF release adapter releases of this base are served over: reused, or exported now once."""
    tag = base_release_tag(base_model, quant, settings)
    existing = store.get(Release, tag)
    if existing is not None:
        if existing.chat_template != chat_template:
            raise ExportError(
                f"base release {tag} carries chat template {describe(existing.chat_template)}, this export "
                f"asks for {describe(chat_template)}: the LoRA would be served under another format than "
                "it was trained with. Train with the base release's template (model.chat_template), "
                "or export in merged mode"
            )
        steps(f"reusing base release {tag}")
        return existing
    steps(
        f"exporting the base once as release {tag} (f16 + {quant.value})"
        + (f", chat template {chat_template.label()}" if chat_template else "")
    )
    checkpoint = _local_checkpoint(base_model, settings, work, tokenizer if chat_template else None)
    f16 = convert_to_f16(tools, checkpoint, work / "model-F16.gguf", converter)
    files = {f16.name: f16}
    if quant is not Quantization.F16:
        files[f"model-{quant.value}.gguf"] = quantize(tools, f16, work / f"model-{quant.value}.gguf", quant)
    _verify(
        tools,
        merged_model(base_model, [], settings),
        tokenizer,
        f16,
        {quant: files[f"model-{quant.value}.gguf"]},
        [],
        work,
        steps,
    )
    release = Release(
        tag=tag,
        base_model=base_model,
        chat_template=chat_template,
        mode=ExportMode.BASE,
        quantizations=sorted({Quantization.F16, quant}, key=lambda q: q.value),
        llama_cpp_version=tools.version,
        created_at=datetime.now(timezone.utc),
    )
    try:
        return store.publish(release, files)
    except ArtifactConflict:  # another export published this base first: use theirs
        return store.require(Release, tag)


def _verify(
    tools: LlamaCpp,
    model: Any,
    tokenizer: Any,
    f16: Path,
    quantized: dict[Quantization, Path],
    loras: list[Path],
    work: Path,
    steps: Steps,
    loss: bool = True,
) -> None:
    with verify.LlamaServer(tools, f16, loras, work / "llama-server-f16.log", parallel=len(verify.GREEDY_QUESTIONS)) as server:
        verify.check_chat_template(server, tokenizer)
        steps.note("chat template and special tokens: HF and llama-server agree")
        verify.check_greedy_agreement(server, model, tokenizer)
        steps.note(f"greedy answers on {len(verify.GREEDY_QUESTIONS)} prompts: f16 GGUF agrees with the merged HF model")
    f16_nll: float | None = None
    for quant, path in quantized.items():
        with verify.LlamaServer(tools, path, loras, work / f"llama-server-{quant.value}.log") as server:
            verify.check_loads_and_answers(server)
        if quant is Quantization.F16 or not loss:
            steps.note(f"{quant.value} loads and answers")
            continue
        if f16_nll is None:
            f16_nll = mean_nll(tools, f16, loras, verify.LOGLIK_TEXT)
        rise = verify.check_quantization_loss(tools, f16_nll, path, quant, loras)
        steps.note(
            f"{quant.value} loads and answers; loses {rise:+.4f} nats/token against f16 "
            f"(bound {verify.quantization_loss_bound(tools):.4f})"
        )


def _publish_new(
    store: ArtifactStore,
    run: TrainingRun,
    mode: ExportMode,
    quants: list[Quantization],
    base_tag: str | None,
    tools: LlamaCpp,
    pairs: int | None,
    files: dict[str, Path],
    settings: Settings,
) -> Release:
    """Publish under the next free tag; if another export takes that tag first, take the one after it."""
    for _ in range(5):
        now = datetime.now(timezone.utc)
        release = Release(
            tag=next_tag(store, run, now, settings),
            base_model=run.base_model,
            chat_template=run.chat_template,
            mode=mode,
            quantizations=quants,
            dataset_id=run.dataset_id,
            run_id=run.run_id,
            base_release=base_tag,
            llama_cpp_version=tools.version,
            pairs=pairs,
            created_at=now,
        )
        try:
            return store.publish(release, files)
        except ArtifactConflict:
            continue
    raise ExportError("five other exports took the next release tag while this one published; run it again")

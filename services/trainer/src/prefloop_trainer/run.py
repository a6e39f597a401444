"""The training recipe, top to bottom: plan (hardware, memory, time), data, model, TRL, publish.

Checkpoints go to the bucket as they are saved; started again with the same run id, a run
resumes from its last checkpoint. Fewer pairs than the minimum, a NaN loss or an out-of-memory
error stop the run with a message that says what to change.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from transformers import PrinterCallback, TrainerCallback

from prefloop_core.chat_templates import bundled_names, configured_chat_template, describe
from prefloop_core.contracts import ChatTemplate, Checkpoint, JobResult, TrainingMethod, TrainingRun
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_trainer import data as datasets_
from prefloop_trainer.callbacks import Metrics, NaNGuard, Progress
from prefloop_trainer.config import TrainConfig
from prefloop_trainer.identity import LIBRARIES, run_id_for
from prefloop_trainer.hardware import Hardware, Resolved, detect, resolve
from prefloop_trainer.lm_head import answer_only_lm_head
from prefloop_trainer.memory import GiB, Estimate, Shape, fit
from prefloop_ml.base_model import base_digest, base_mismatch, base_title, load_config, load_model, load_tokenizer
from prefloop_trainer.plots import plot_run

PREFERENCE = {TrainingMethod.DPO, TrainingMethod.ORPO, TrainingMethod.SFT_DPO}
DPO_STAGE = {TrainingMethod.DPO, TrainingMethod.SFT_DPO}  # the methods that train with TRL's DPOTrainer


class TrainingOOM(RuntimeError):
    pass


class UploadCheckpoints(TrainerCallback):
    """Publish every checkpoint the trainer saves, so a killed run can resume elsewhere."""

    def __init__(self, store: ArtifactStore, run_id: str, stage: str) -> None:
        self.store, self.run_id, self.stage = store, run_id, stage

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
        self.store.publish(
            Checkpoint(
                checkpoint_id=Checkpoint.id_for(self.run_id, self.stage, state.global_step),
                run_id=self.run_id,
                stage=self.stage,
                step=state.global_step,
            ),
            files,
        )


def latest_checkpoint(store: ArtifactStore, run_id: str, stage: str, out: Path) -> Path | None:
    """Fetch the run's last published checkpoint of this stage into `out`, or None to start fresh."""
    ids = store.ids(Checkpoint, prefix=f"{run_id}-{stage}-")
    if not ids:
        return None
    checkpoint = store.require(Checkpoint, ids[-1])
    folder = out / f"checkpoint-{checkpoint.step}"
    store.fetch(checkpoint, folder)
    return folder


class InitAdapter(NamedTuple):
    run_id: str
    folder: Path
    r: int


def init_adapter(
    store: ArtifactStore, config: TrainConfig, chat_template: ChatTemplate | None, work: Path, settings: Settings
) -> InitAdapter | None:
    """The earlier run's adapter to continue (`model.init_run`), fetched; refused before any weights load when it
    does not fit this run (another base, or another chat template)."""
    run_id = config.model.init_run
    if not run_id:
        return None
    run = store.get(TrainingRun, run_id)
    if run is None:
        raise ValueError(f"model.init_run: there is no run {run_id} in the bucket")
    if run.base_model != config.model.base:
        raise ValueError(
            f"model.init_run: run {run_id} was trained on {run.base_model}, not {config.model.base}; "
            "its adapter fits only that base (set model.base to it, or leave model.init_run unset)"
        )
    if problem := base_mismatch(run_id, run.base_model, run.base_digest, settings):
        raise ValueError(f"model.init_run: {problem}")
    if run.chat_template != chat_template:
        raise ValueError(
            f"model.init_run: run {run_id} was trained with chat template {describe(run.chat_template)}, "
            f"this run formats with {describe(chat_template)}; continue it with the same model.chat_template"
        )
    if run.method is TrainingMethod.SFT_DPO:
        raise ValueError(
            f"model.init_run: run {run_id} is sft+dpo, its adapter sits over an SFT-merged model; "
            "start from a dpo, orpo, kto or sft run, or from the base"
        )
    fetched = store.fetch(run, work / "init", [name for name in run.files if name.startswith("adapter/")])
    config_file = fetched.get("adapter/adapter_config.json")
    if config_file is None:
        raise ValueError(f"model.init_run: run {run_id} has no adapter/adapter_config.json")
    return InitAdapter(run_id, config_file.parent, int(json.loads(config_file.read_text())["r"]))


def rss_bytes() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss)


def peak_memory_gib(device: str) -> float:
    """What `run.json` holds against the estimate: the CUDA allocator's peak reservation, or the peak RSS."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_reserved() / GiB
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / GiB * (1 if sys.platform == "darwin" else 1024)


def _chat_tokens(tokenizer: Any, messages: list[dict[str, Any]], **kwargs: Any) -> int:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)  # transformers 5 returns a BatchEncoding


class Lengths(NamedTuple):
    longest: int  # tokens of the longest prompt + answer, capped at max_length: what memory is sized for
    mean: float  # mean tokens of a prompt + answer: what time is estimated from
    longest_pair: int  # the most tokens one pair runs with its prompt once (prompt + both answers; shared_prompt.py)
    mean_pair: float
    longest_answer: int  # the most answer tokens of one sequence: what an LM head scoring answers only sees
    longest_answers: int  # ... of one pair's two sequences


def example_lengths(tokenizer: Any, pairs: list[dict[str, Any]], max_length: int) -> Lengths:
    """Token lengths of the prompts + answers in the data (capped at max_length).

    Refuses data whose every prompt fills max_length: TRL would drop every pair as fully truncated and fail
    with an unreadable error.
    """
    lengths, packed, answers, shortest_prompt = [], [], [], None
    for pair in pairs:
        prompt = _chat_tokens(tokenizer, pair["prompt"], add_generation_prompt=True)
        shortest_prompt = prompt if shortest_prompt is None else min(shortest_prompt, prompt)
        chosen, rejected = (
            min(_chat_tokens(tokenizer, pair["prompt"] + answer), max_length) for answer in (pair["chosen"], pair["rejected"])
        )
        lengths += [chosen, rejected]
        packed.append(chosen + rejected - min(prompt, chosen, rejected))
        answers.append((max(chosen - prompt, 0), max(rejected - prompt, 0)))
    if shortest_prompt is not None and shortest_prompt >= max_length:
        raise ValueError(
            f"every prompt is at least data.max_length={max_length} tokens long (the shortest has "
            f"{shortest_prompt}), so no answer would be trained on: raise data.max_length "
            f"(e.g. --set data.max_length={max(256, 2 * shortest_prompt)})"
        )
    return Lengths(
        max(lengths, default=0),
        sum(lengths) / len(lengths) if lengths else 0.0,
        max(packed, default=0),
        sum(packed) / len(packed) if packed else 0.0,
        max((max(a) for a in answers), default=0),
        max((sum(a) for a in answers), default=0),
    )


def planned_steps(n_train: int, config: TrainConfig, resolved: Resolved) -> int:
    """Optimizer steps as transformers counts them: whole batches per epoch (the last one may be short)."""
    if config.training.max_steps > 0:
        return config.training.max_steps
    per_epoch = math.ceil(n_train / resolved.batch_size / resolved.grad_accumulation)
    return max(1, math.ceil(per_epoch * config.training.epochs))


def rough_seconds(shape: Shape, steps: int, resolved: Resolved, hw: Hardware, example_tokens: float) -> float:
    """A rough time estimate: ~8 FLOPs per parameter per token (forward, backward, reference pass) at what the
    device sustains: ~70 GFLOP/s per core on CPU (SmolLM2-135M, DPO + LoRA r16 on 2 cores: 38 pairs of ~250 tokens,
    3 epochs, took 7.4 min), ~30% of peak on a GPU."""
    tokens = steps * resolved.batch_size * resolved.grad_accumulation * example_tokens
    flops_per_s = 70e9 * hw.cores if hw.device == "cpu" else 60e12
    return 8 * shape.params * tokens / flops_per_s


def plan_lines(
    hw: Hardware,
    resolved: Resolved,
    est: Estimate,
    budget: float,
    seconds: float,
    steps: int,
    n_train: int,
    n_eval: int,
    config: TrainConfig,
    run_id: str,
    settings: Settings,
    init: InitAdapter | None = None,
) -> list[str]:
    lines = [
        f"run {run_id}: {config.method.name.value} on {base_title(config.model.base, settings)}, dataset "
        f"{config.data.dataset_id}",
        f"  data        {n_train} training pairs, {n_eval} for evaluation; {config.training.epochs:g} epochs, ~{steps} steps",
        f"  device      {hw.name} ({hw.device}), dtype {resolved.dtype}, 4-bit {'on' if resolved.load_in_4bit else 'off'}",
        f"  batch       micro-batch {resolved.batch_size} x accumulation {resolved.grad_accumulation}"
        f"{', grouped by length' if resolved.group_by_length else ''}"
        f"{', each pair runs its prompt once' if resolved.share_prompts else ''}; "
        f"gradient checkpointing {'on' if resolved.gradient_checkpointing else 'off'}; optimizer {resolved.optimizer}",
        (
            f"  LoRA        run {init.run_id}'s adapter (r {init.r}), trained further; the reference is that run's model"
            if init
            else f"  LoRA        r {config.lora.r}, alpha {config.lora.alpha}, targets {config.lora.target_modules}"
        )
        + f"; lr {config.training.learning_rate:g}, beta {config.method.beta:g}",
        f"  memory      estimated {est.total / GiB:.2f} GiB of {budget:.2f} GiB available",
        *est.lines(),
        f"  time        roughly {seconds / 60:.1f} min (the progress line refines it)",
    ]
    return lines + [f"  note        {note}" for note in resolved.notes]


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), **{n: version(n) for n in LIBRARIES}}


def train(
    config: TrainConfig, settings: Settings, store: ArtifactStore, out: TextIO = sys.stdout, hardware: Hardware | None = None
) -> TrainingRun:
    from datasets import Dataset
    from peft import LoraConfig, PeftModel

    started = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    if not config.data.dataset_id:
        raise ValueError("data.dataset_id is not set: `prefloop snapshot` publishes one and prints its id")
    run_id = config.run_id or run_id_for(config, config.data.dataset_id, settings)
    if (done := store.get(TrainingRun, run_id)) is not None:
        why = "that id was given (run_id)" if config.run_id else "the same dataset, config, base and trainer made it"
        print(
            f"run {run_id} is already published ({why}): not training again; --set run_id=<a new id> trains anew under that name",
            file=out,
            flush=True,
        )
        print(JobResult(run_id=run_id, reused=True).line(), file=out, flush=True)
        return done
    work = settings.home / "trainer" / run_id
    manifest, pairs = datasets_.load_pairs(store, config.data.dataset_id, work)
    warning = datasets_.check_count(pairs.train, config.data)
    splits = datasets_.split(pairs, config.data, config.training.seed)

    hw = hardware or detect()
    method = config.method.name
    sequences = 2 if method in PREFERENCE else 1
    resolved = resolve(config, hw)
    resolved.share_prompts = config.training.share_prompts and method in DPO_STAGE
    if config.training.precompute_ref_log_probs == "auto":
        resolved.precompute_ref_log_probs = method in DPO_STAGE | {TrainingMethod.KTO}
    chat_template = configured_chat_template(config.model.chat_template, settings)
    init = init_adapter(store, config, chat_template, work, settings)
    shape = Shape.of(load_config(config.model.base, settings))
    tokenizer = load_tokenizer(config.model.base, settings, chat_template)
    if not tokenizer.chat_template:
        raise ValueError(
            f"{config.model.base} has no chat template (a base model, not an instruct one), so nothing says "
            f"how a conversation becomes tokens: give one with model.chat_template "
            f"({', '.join(bundled_names())}, or a Jinja file; the model card says which fits) or "
            "PREFLOOP_BASE_CHAT_TEMPLATE, and export over a base release made with the same"
        )
    lengths = example_lengths(tokenizer, splits.train + splits.eval, config.data.max_length)
    budget = config.training.memory_budget_gb or hw.memory_gb
    baseline = rss_bytes() if hw.device == "cpu" else 0.6 * GiB  # what is in use before weights: process / CUDA context
    # TRL's fused LM head scores answer tokens only (lm_head.py); ORPO computes its own logits over every token.
    scored = 0 if method is TrainingMethod.ORPO else lengths.longest_answers if sequences == 2 else lengths.longest_answer
    resolved, est = fit(
        shape,
        resolved,
        init.r if init else config.lora.r,
        lengths.longest,
        sequences,
        baseline,
        budget,
        checkpointing_fixed=config.training.gradient_checkpointing != "auto",
        packing=config.training.pack_micro_batches,
        pair_tokens=lengths.longest_pair if resolved.share_prompts else 0,
        scored_tokens=scored,
    )
    grouping = config.training.group_by_length
    resolved.group_by_length = method in DPO_STAGE and (grouping == "on" or (grouping == "auto" and resolved.batch_size > 1))
    if grouping == "on" and not resolved.group_by_length:
        resolved.notes.append(f"training.group_by_length applies to DPO only; {method.value} draws pairs at random")
    if splits.given:
        resolved.notes.append(f"evaluates on the dataset's {len(splits.eval)} pairs imported for it (--split eval)")
    steps = planned_steps(len(splits.train), config, resolved)
    seconds = rough_seconds(shape, steps, resolved, hw, lengths.mean_pair if resolved.share_prompts else sequences * lengths.mean)
    for line in plan_lines(
        hw, resolved, est, budget, seconds, steps, len(splits.train), len(splits.eval), config, run_id, settings, init
    ):
        print(line, file=out, flush=True)
    if warning:
        print(f"  warning     {warning}", file=out, flush=True)
    timings["plan"] = time.monotonic() - t0
    plan = {
        **{k: v for k, v in vars(resolved).items() if k != "notes"},
        "memory_estimate_gib": round(est.total / GiB, 3),
        "memory_in_use_gib": round(est.baseline / GiB, 3),
        "longest_tokens": lengths.longest,
        "memory_budget_gib": round(budget, 3),
        "planned_steps": steps,
        "estimated_seconds": round(seconds, 1),
    }

    t1 = time.monotonic()
    model = load_model(config.model.base, settings, resolved.dtype, resolved.load_in_4bit)
    if init:
        model = PeftModel.from_pretrained(model, init.folder, is_trainable=True)
    timings["load"] = time.monotonic() - t1
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(work / "tb")
    metrics = Metrics()
    outputs: dict[str, Path] = {}

    def run_stage(stage_method: TrainingMethod, stage: str, model_in: Any, epochs: float | None = None) -> Any:
        with answer_only_lm_head():  # from building the trainer on: TRL precomputes reference log-probs there
            guard = NaNGuard()
            stage_dir = work / stage
            trainer = _trainer(
                stage_method,
                config,
                resolved,
                model_in,
                tokenizer,
                splits,
                stage_dir,
                [Progress(stage, out), metrics, guard, UploadCheckpoints(store, run_id, stage)],
                None if isinstance(model_in, PeftModel) else lora,
                epochs,
                Dataset,
            )
            resume = latest_checkpoint(store, run_id, stage, stage_dir)
            if resume is not None:
                print(f"[{stage}] resuming from {resume.name} (published checkpoint)", file=out, flush=True)
            try:
                trainer.train(resume_from_checkpoint=str(resume) if resume else None)
            except RuntimeError as exc:
                if "out of memory" in str(exc).lower():
                    raise TrainingOOM(_oom_advice(est, budget, resolved, config)) from exc
                raise
            guard.check()
            return trainer

    t2 = time.monotonic()
    if method is TrainingMethod.SFT_DPO:
        sft = run_stage(TrainingMethod.SFT, "sft", model, epochs=config.method.sft_epochs)
        sft.model.save_pretrained(work / "sft_adapter")
        outputs.update(_folder_files(work / "sft_adapter", "sft_adapter"))
        # base -> SFT -> DPO: the SFT adapter is merged, so DPO's reference is the SFT model.
        model = sft.model.merge_and_unload()
        final = run_stage(TrainingMethod.DPO, "dpo", model)
    else:
        final = run_stage(method, method.value, model)
    timings["train"] = time.monotonic() - t2
    # Only the trained adapter: TRL keeps a frozen copy of an init adapter as "ref" beside it.
    final.model.save_pretrained(work / "adapter", selected_adapters=["default"])
    tokenizer.save_pretrained(work / "adapter")
    outputs.update(_folder_files(work / "adapter", "adapter"))

    (work / "metrics.json").write_text(
        json.dumps({"steps": metrics.steps, "eval": metrics.eval, "summary": metrics.summary}, indent=1)
    )
    outputs["metrics.json"] = work / "metrics.json"
    for plot in plot_run(metrics.steps, metrics.eval, work / "plots"):
        outputs[f"plots/{plot.name}"] = plot
    outputs.update(_folder_files(work / "tb", "tb"))
    last = metrics.steps[-1] if metrics.steps else {}
    run = TrainingRun(
        run_id=run_id,
        dataset_id=manifest.dataset_id,
        base_model=config.model.base,
        base_digest=base_digest(config.model.base, settings),
        chat_template=chat_template,
        method=method,
        config=config.model_dump(mode="json"),
        versions=_versions(),
        device=f"{hw.device} ({hw.name})",
        dtype=resolved.dtype,
        started_at=started,
        finished_at=datetime.now(timezone.utc),
        timings={**timings, "total": time.monotonic() - t0},
        final_metrics={k: float(v) for k, v in last.items() if k != "step"} | {"pairs": float(len(splits.train))},
        plan=plan,
        peak_memory_gib=round(peak_memory_gib(hw.device), 3),
    )
    published = store.publish(run, outputs)
    print(f"run {run_id} published: {len(outputs)} files (adapter, metrics.json, plots, TensorBoard)", file=out, flush=True)
    print(JobResult(run_id=run_id).line(), file=out, flush=True)
    shutil.rmtree(work / "dataset", ignore_errors=True)
    return published


def _folder_files(folder: Path, prefix: str) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {f"{prefix}/{p.relative_to(folder).as_posix()}": p for p in sorted(folder.rglob("*")) if p.is_file()}


def _trainer(
    method: TrainingMethod,
    config: TrainConfig,
    resolved: Resolved,
    model: Any,
    tokenizer: Any,
    splits: datasets_.Splits,
    out: Path,
    callbacks: list[Any],
    lora: Any,
    epochs: float | None,
    dataset_cls: Any,
) -> Any:
    from prefloop_trainer.methods import build_trainer

    train = dataset_cls.from_list(datasets_.for_method(splits.train, method))
    eval_ = dataset_cls.from_list(datasets_.for_method(splits.eval, method)) if splits.eval else None
    trainer = build_trainer(method, config, resolved, model, tokenizer, train, eval_, out, callbacks, lora, epochs)
    trainer.remove_callback(PrinterCallback)  # it prints each log as a dict: the Progress callback shows them already
    return trainer


def _oom_advice(est: Estimate, budget: float, resolved: Resolved, config: TrainConfig) -> str:
    return (
        f"out of memory: the estimate was {est.total / GiB:.2f} GiB of {budget:.2f} GiB "
        f"(micro-batch {resolved.batch_size}, checkpointing {'on' if resolved.gradient_checkpointing else 'off'}). "
        f"Suggested: --set training.batch_size=1 --set training.grad_accumulation={resolved.batch_size * resolved.grad_accumulation * 4} "
        f"--set training.gradient_checkpointing=on --set data.max_length={max(128, config.data.max_length // 2)}"
        + ("" if resolved.load_in_4bit else " and 4-bit on a CUDA GPU (quantization.load_in_4bit=on)")
    )

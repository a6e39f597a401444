"""One TRL trainer per method, configured from the resolved settings. No loss or loop of our own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop_core.contracts import TrainingMethod
from prefloop_trainer.config import TrainConfig
from prefloop_trainer.hardware import Resolved
from prefloop_trainer.shared_prompt import sharing_prompts_in


def _common(config: TrainConfig, resolved: Resolved, out: Path, has_eval: bool, epochs: float) -> dict[str, Any]:
    t = config.training
    return {
        "output_dir": str(out),
        "learning_rate": t.learning_rate,
        "num_train_epochs": epochs,
        "max_steps": t.max_steps,
        "per_device_train_batch_size": resolved.batch_size,
        "per_device_eval_batch_size": resolved.batch_size,
        "gradient_accumulation_steps": resolved.grad_accumulation,
        "activation_checkpointing": resolved.gradient_checkpointing,  # transformers 5.2x's name for it
        "bf16": resolved.dtype == "bfloat16",
        "fp16": resolved.dtype == "float16",
        "use_cpu": resolved.device == "cpu",
        "optim": resolved.optimizer,
        "warmup_steps": t.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of the total steps
        "seed": t.seed,
        "logging_steps": t.logging_steps,
        "logging_nan_inf_filter": False,  # the NaN guard must see a NaN loss, not a filtered average
        "save_strategy": "steps",
        "save_steps": t.checkpoint_steps,
        "save_total_limit": 2,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": max(t.checkpoint_steps // 2, 1) if has_eval else None,
        "report_to": ["tensorboard"],
        "disable_tqdm": True,
        "max_length": config.data.max_length,
    }


def grouped_by_length(trainer_cls: type) -> type:
    """`trainer_cls` (TRL's DPOTrainer) drawing its micro-batches with transformers' LengthGroupedSampler.

    transformers' own `train_sampling_strategy="group_by_length"` cannot be used: it reads a `length` (or
    `input_ids`) column, and TRL's DPO keeps only its tokenized prompt/chosen/rejected ids. The length of a pair is
    what its padded rows will hold: the prompt plus the longer answer.
    """
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class GroupedByLength(trainer_cls):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            dataset = self.train_dataset if train_dataset is None else train_dataset
            lengths = [
                len(p) + max(len(c), len(r))
                for p, c, r in zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"])
            ]
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=lengths)

    return GroupedByLength


def build_trainer(
    method: TrainingMethod,
    config: TrainConfig,
    resolved: Resolved,
    model: Any,
    tokenizer: Any,
    train: Any,
    eval_: Any,
    out: Path,
    callbacks: list[Any],
    peft_config: Any,
    epochs: float | None = None,
) -> Any:
    common = _common(config, resolved, out, eval_ is not None, epochs if epochs is not None else config.training.epochs)
    m = config.method
    if method is TrainingMethod.DPO:
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(
            **common,
            beta=m.beta,
            loss_type=m.loss_type,
            loss_weights=m.loss_weights,
            precompute_ref_log_probs=resolved.precompute_ref_log_probs,
        )
        trainer_cls = grouped_by_length(DPOTrainer) if resolved.group_by_length else DPOTrainer
        if resolved.share_prompts:
            trainer_cls = sharing_prompts_in(trainer_cls)
        return trainer_cls(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=eval_,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    if method is TrainingMethod.KTO:
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer(
            model=model,
            args=KTOConfig(**common, beta=m.beta, precompute_ref_log_probs=resolved.precompute_ref_log_probs),
            train_dataset=train,
            eval_dataset=eval_,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    if method is TrainingMethod.ORPO:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" notice: ORPO lives in trl.experimental since TRL 1.x
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer
        return ORPOTrainer(
            model=model,
            args=ORPOConfig(**common, beta=m.beta),
            train_dataset=train,
            eval_dataset=eval_,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    if method is TrainingMethod.SFT:
        from trl import SFTConfig, SFTTrainer

        return SFTTrainer(
            model=model,
            args=SFTConfig(**common, completion_only_loss=True),
            train_dataset=train,
            eval_dataset=eval_,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    raise ValueError(f"no single trainer for {method.value}; sft+dpo runs sft then dpo")

"""What this machine can do, and the settings that follow from it, decided before any weights load.

- device: CUDA, else Apple MPS, else CPU;
- dtype: bf16 only where the GPU supports it (the source's cuBLAS failure came from bf16 on an
  older card), else fp16 on a GPU; fp32 on CPU (`training.dtype` picks another, where the hardware can);
- 4-bit NF4 base weights and 8-bit/paged optimizers only on CUDA (bitsandbytes); elsewhere a
  note says so and the unquantized path is taken.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prefloop_trainer.config import TrainConfig


@dataclass(frozen=True)
class Hardware:
    device: str  # cuda, mps or cpu
    name: str
    memory_gb: float  # what training may use: free GPU memory, or 80% of available RAM
    bf16: bool  # native bf16: the GPU's, or on a CPU AMX / AVX512-BF16
    cores: int = 1


def detect() -> Hardware:
    import psutil
    import torch

    cores = os.cpu_count() or 1
    if torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return Hardware("cuda", torch.cuda.get_device_name(0), free / 2**30, torch.cuda.is_bf16_supported(), cores)
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return Hardware("mps", "Apple GPU (MPS)", psutil.virtual_memory().available * 0.7 / 2**30, False, cores)
    native_bf16 = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    return Hardware("cpu", f"CPU ({cores} cores)", psutil.virtual_memory().available * 0.8 / 2**30, native_bf16, cores)


@dataclass
class Resolved:
    device: str
    dtype: str  # bfloat16, float16, float32
    load_in_4bit: bool
    optimizer: str
    gradient_checkpointing: bool
    batch_size: int
    grad_accumulation: int
    precompute_ref_log_probs: bool
    group_by_length: bool = False  # decided once the micro-batch is (run.py)
    share_prompts: bool = False  # DPO runs each pair's prompt once (shared_prompt.py); decided in run.py
    notes: list[str] = field(default_factory=list)


def resolve(config: TrainConfig, hw: Hardware) -> Resolved:
    """The settings this hardware gets; memory-driven choices are made later by `memory.fit`."""
    notes: list[str] = []
    if hw.device == "cuda":
        dtype = "bfloat16" if hw.bf16 else "float16"
        if not hw.bf16:
            notes.append(f"{hw.name} has no bf16: training in fp16")
    elif hw.device == "mps":
        dtype = "float16"
    else:
        dtype = "float32"
    wanted = config.training.dtype
    if wanted == "bfloat16" and not hw.bf16 and hw.device != "cpu":
        raise ValueError(
            f"training.dtype=bfloat16: {hw.name} has no bf16 (on such cards bf16 fails in cuBLAS); use float16 or auto"
        )
    if wanted == "float16" and hw.device == "cpu":
        raise ValueError("training.dtype=float16: fp16 training needs a GPU; on CPU use float32 (auto) or bfloat16")
    if wanted != "auto" and wanted != dtype:
        dtype = wanted
        if dtype == "bfloat16" and not hw.bf16:
            notes.append("this CPU has no native bf16 (AMX or AVX512-BF16): bf16 will be slower than fp32")

    want_4bit = config.quantization.load_in_4bit
    load_in_4bit = hw.device == "cuda" and want_4bit != "off"
    if want_4bit == "on" and hw.device != "cuda":
        notes.append(f"4-bit needs CUDA (bitsandbytes); on {hw.device} the base loads unquantized in {dtype}")

    optimizer = config.training.optimizer
    if optimizer != "adamw_torch" and hw.device != "cuda":
        notes.append(f"{optimizer} needs CUDA (bitsandbytes); using adamw_torch")
        optimizer = "adamw_torch"

    return Resolved(
        device=hw.device,
        dtype=dtype,
        load_in_4bit=load_in_4bit,
        optimizer=optimizer,
        gradient_checkpointing=config.training.gradient_checkpointing == "on",
        batch_size=config.training.batch_size,
        grad_accumulation=config.training.grad_accumulation,
        precompute_ref_log_probs=config.training.precompute_ref_log_probs == "on",
        notes=notes,
    )

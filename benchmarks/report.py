"""The one way a benchmark hands back its results: printed, and appended to --out when given."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def emit(lines: list[str], out: Path | None) -> None:
    text = "\n".join(lines)
    print(text)
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(text + "\n\n")


def machine() -> str:
    """The CPU, its widest vector ISA and its cores: the machine line of a result (training and quantized inference
    round differently on AVX-512 and AVX2 machines)."""
    info = Path("/proc/cpuinfo").read_text()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    isa = "AVX-512" if " avx512f" in info else "AVX2" if " avx2" in info else "no AVX2"
    return f"{cpu} ({isa}), {os.cpu_count()} cores"

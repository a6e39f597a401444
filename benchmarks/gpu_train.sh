#!/usr/bin/env bash
# benchmarks/gpu_train.py on a CUDA machine that has torch, transformers, peft and accelerate but no package index
# (the device tool's H200 image, Python 3.12; .library/device/KINDS.md lists what it holds).
#
#   benchmarks/gpu_train.sh prepare   here: the wheels it lacks (pinned as constraints.txt pins them) and SmolLM2's
#                                     tokenizer into .gpu/ (git-ignored through .git/info/exclude; 32 MB)
#   benchmarks/gpu_train.sh run [ARGS...]
#                                     there, from the repo root, with .gpu carried: installs the wheels into
#                                     /tmp/site, runs the 7B-shaped 4-bit training twice (planned for a 16 GB card,
#                                     then for the card it is on), writes $OUT/gpu_train.md and nvidia-smi's memory
#                                     readings ($OUT/nvidia_smi.csv); ARGS, if any, go to one gpu_train.py instead
#
# As one device call: run(command="bash benchmarks/gpu_train.sh run", carry=[".gpu"], timeout_s=540)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GPU_DIR="$ROOT/.gpu"
# What the image lacks: our libraries' pydantic and minio stacks, TRL and datasets, bitsandbytes for NF4;
# transformers and peft at our pins (the image's transformers is older than ours).
WHEELS=(trl datasets bitsandbytes transformers peft dill multiprocess pydantic pydantic-core pydantic-settings
        annotated-types typing-inspection python-dotenv minio argon2-cffi argon2-cffi-bindings cffi pycparser pycryptodome)

pin() {  # NAME -> NAME==VERSION from constraints.txt (bitsandbytes is not in it: the CPU venvs never install it)
  local line
  line="$(grep -i -E "^$1==" "$ROOT/constraints.txt" || true)"
  if [[ -n "$line" ]]; then echo "$line"; elif [[ "$1" == bitsandbytes ]]; then echo "bitsandbytes==0.50.2"; else
    echo "gpu_train.sh: $1 is not pinned in constraints.txt" >&2; exit 1; fi
}

case "${1:-}" in
  prepare)
    grep -qx '/.gpu/' "$ROOT/.git/info/exclude" 2>/dev/null || { mkdir -p "$ROOT/.git/info"; echo '/.gpu/' >>"$ROOT/.git/info/exclude"; }
    rm -rf "$GPU_DIR"; mkdir -p "$GPU_DIR/wheels"
    platforms=()
    for n in 39 35 34 31 28 27 24 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    for name in "${WHEELS[@]}"; do
      python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" --platform manylinux2014_x86_64 -d "$GPU_DIR/wheels" "$(pin "$name")"
    done
    # bitsandbytes carries a library per CUDA and ROCm version (129 MB unpacked): keep CUDA 13's and the CPU one, so
    # that the wheels fit the device tool's 64 MiB (the image's torch is built for CUDA 13.0).
    python3 - "$GPU_DIR"/wheels/bitsandbytes-*.whl <<'PY'
import re, sys, zipfile
from pathlib import Path
path = Path(sys.argv[1])
drop = re.compile(r"bitsandbytes/libbitsandbytes_(cuda1[0-2]\d|rocm\d+|xpu\d+)\.so$")
with zipfile.ZipFile(path) as old:
    items = [(info, old.read(info)) for info in old.infolist() if not drop.search(info.filename)]
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as new:
    for info, data in items:
        if info.filename.endswith(".dist-info/RECORD"):
            data = b"".join(line + b"\n" for line in data.splitlines() if not drop.search(line.split(b",")[0].decode()))
        new.writestr(info, data)
PY
    set -a; source "$ROOT/.venvs/env"; set +a
    "$ROOT/.venvs/trainer/bin/python" - "$GPU_DIR/tokenizer" <<'EOF'
import sys
from transformers import AutoConfig, AutoTokenizer
from prefloop_core.settings import Settings
from prefloop_ml.base_model import hf_checkpoint
checkpoint = hf_checkpoint("smollm2", Settings())
AutoTokenizer.from_pretrained(checkpoint).save_pretrained(sys.argv[1])
AutoConfig.from_pretrained(checkpoint).save_pretrained(sys.argv[1])  # gpu_server.sh builds a model of this shape
EOF
    du -sh "$GPU_DIR"
    ;;
  run)
    shift
    [[ -d "$GPU_DIR/wheels" ]] || { echo "gpu_train.sh: no .gpu/wheels: run 'benchmarks/gpu_train.sh prepare' here and carry .gpu" >&2; exit 2; }
    OUT="${OUT:-$ROOT/.gpu/out}"; mkdir -p "$OUT"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$GPU_DIR"/wheels/*.whl
    export PYTHONPATH="/tmp/site:$ROOT/libs/core/src:$ROOT/libs/ml/src:$ROOT/services/trainer/src" PYTHONUNBUFFERED=1
    python3 -c 'import torch, transformers, trl, peft, bitsandbytes; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0), "| transformers", transformers.__version__, "trl", trl.__version__, "peft", peft.__version__, "bitsandbytes", bitsandbytes.__version__)'
    nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu --format=csv -lms 500 >"$OUT/nvidia_smi.csv" &
    smi=$!
    status=0
    if (($#)); then
      python3 "$ROOT/benchmarks/gpu_train.py" --tokenizer "$GPU_DIR/tokenizer" --work /tmp --out "$OUT/gpu_train.md" "$@" || status=$?
    else  # as a 16 GB card would plan it (the source's claim), then as this card plans it; the model is made once
      for budget in "--set training.memory_budget_gb=15" ""; do
        echo "=== gpu_train.py ${budget:-(the free memory of this card as the budget)}"
        # shellcheck disable=SC2086
        python3 "$ROOT/benchmarks/gpu_train.py" --tokenizer "$GPU_DIR/tokenizer" --work /tmp --out "$OUT/gpu_train.md" $budget || status=$?
      done
    fi
    kill "$smi" 2>/dev/null || true
    echo "nvidia-smi peak memory.used: $(awk -F', ' 'NR > 1 {sub(/ MiB/, "", $2); if ($2 > m) m = $2} END {print m " MiB"}' "$OUT/nvidia_smi.csv")" \
      | tee -a "$OUT/gpu_train.md"
    exit "$status"
    ;;
  *)
    sed -n 2,13p "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

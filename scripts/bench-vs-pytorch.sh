#!/usr/bin/env bash
# Training throughput of assay against PyTorch on the CPU, measured side by side: the reference
# LeNet (experiments/quickstart.toml's model: conv 1->16 3x3 pad 1, ReLU, max-pool 2; conv
# 16->32 3x3 pad 1, ReLU, max-pool 2; dense 1568->128, ReLU; dense 128->10), batch 64 of
# 1x28x28, AdamW lr 1e-3, forward + backward + optimizer step on prepared batches.
# `assay bench --json` and scripts/pytorch_lenet.py run in alternation (several rounds, the
# order flipping every round) with the same thread count, warm-up and step count; prints
# images/s of both, their ratio, and peak memory (max RSS; for torch also after `import torch`).
#
#   scripts/bench-vs-pytorch.sh                      # 1 and 2 threads, 5 rounds, 200 steps
#   scripts/bench-vs-pytorch.sh --threads 1 --rounds 3 --steps 100
#
# The PyTorch peer lives in a venv under target/torch-venv (TORCH_VENV=... to move it), created
# on first use with `pip install torch` (the PyPI build with CUDA libraries, about 5 GB; it runs
# on the CPU). OMP_WAIT_POLICY=PASSIVE keeps OpenMP threads from spinning on a shared machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

THREADS="1,2"
ROUNDS=5
STEPS=200
JSON=""
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --steps) STEPS="$2"; shift 2 ;;
        --json) JSON="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "bench-vs-pytorch.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

VENV="${TORCH_VENV:-target/torch-venv}"
PY="$VENV/bin/python"
if ! [ -x "$PY" ] || ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    echo "setting up the PyTorch peer in $VENV (pip install torch, about 5 GB) ..." >&2
    mkdir -p "$(dirname "$VENV")"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check torch
fi

cargo build --release --quiet
ASSAY="target/release/assay"

export OMP_WAIT_POLICY=PASSIVE
args=(--assay "$ASSAY" --python "$PY" --spec experiments/quickstart.toml
      --threads "$THREADS" --rounds "$ROUNDS" --steps "$STEPS")
if [ -n "$JSON" ]; then
    args+=(--json "$JSON")
fi
exec "${PYTHON:-python3}" scripts/bench_vs_pytorch.py "${args[@]}"

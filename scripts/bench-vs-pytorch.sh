#!/usr/bin/env bash
# Training throughput of assay against PyTorch on the CPU, measured side by side on one model:
#   lenet               experiments/quickstart.toml's LeNet, 1×28×28, batch 64 (peer:
#                       scripts/pytorch_lenet.py)
#   vgg-bn              experiments/bench/vgg-bn.toml, 3×32×32, batch 128
#   gray128-bn          experiments/bench/gray128-bn.toml, 1×128×128, batch 32
#   resnet20            CIFAR ResNet-20, 3×32×32, batch 128
#   efficientnet_lite0  EfficientNet-Lite0, 3×128×128, batch 32
#   vit_tiny            ViT-Tiny (depth 12, width 192, 3 heads) with patch 4, 3×32×32, batch 128
# (peers of all but lenet: scripts/pytorch_arch_bench.py, whose architectures are the reference
# modules tests/arch_conformance.rs proves equal to assay's). AdamW lr 1e-3, forward + backward
# + optimizer step on 16 prepared batches of the MNIST subset or random images. `assay bench
# --json` and the peer run in alternation (the order flipping every round) with the same thread
# count, warm-up and step count; prints images/s of both, their ratio, peak memory (max RSS,
# and what training adds to it) and assay's page faults per step.
#
#   scripts/bench-vs-pytorch.sh                          # lenet, 1 and 2 threads, 5 rounds
#   scripts/bench-vs-pytorch.sh --model vgg-bn --threads 1 --rounds 3 --steps 20
#   scripts/bench-vs-pytorch.sh --model vgg-bn --batch 256 --threads 2
#
# The PyTorch peer lives in a venv under target/torch-venv (TORCH_VENV=... to move it), created
# on first use with `pip install torch torchvision safetensors` (the PyPI build with CUDA
# libraries, about 5 GB; it runs on the CPU). OMP_WAIT_POLICY=PASSIVE keeps OpenMP threads from
# spinning on a shared machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL="lenet"
BATCH=""
THREADS="1,2"
ROUNDS=5
STEPS=""
JSON=""
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL="$2"; shift 2 ;;
        --batch) BATCH="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --steps) STEPS="$2"; shift 2 ;;
        --json) JSON="$2"; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "bench-vs-pytorch.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$STEPS" ]; then
    # About 10-30 seconds a round on one core of the development machine.
    case "$MODEL" in
        lenet) STEPS=200 ;;
        gray128-bn) STEPS=40 ;;
        efficientnet_lite0) STEPS=8 ;;
        *) STEPS=15 ;;
    esac
fi

VENV="${TORCH_VENV:-target/torch-venv}"
PY="$VENV/bin/python"
if ! [ -x "$PY" ] || ! "$PY" -c 'import torch, torchvision' >/dev/null 2>&1; then
    echo "setting up the PyTorch peer in $VENV (pip install torch torchvision, about 5 GB) ..." >&2
    mkdir -p "$(dirname "$VENV")"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check torch torchvision safetensors
fi

cargo build --release --quiet
export OMP_WAIT_POLICY=PASSIVE
args=(--assay target/release/assay --python "$PY" --model "$MODEL"
      --threads "$THREADS" --rounds "$ROUNDS" --steps "$STEPS")
if [ -n "$BATCH" ]; then args+=(--batch "$BATCH"); fi
if [ -n "$JSON" ]; then args+=(--json "$JSON"); fi
exec "${PYTHON:-python3}" scripts/bench_vs_pytorch.py "${args[@]}"

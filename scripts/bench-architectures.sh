#!/usr/bin/env bash
# Training throughput of the built-in architectures against PyTorch on the CPU, side by side:
# resnet20 (3×32×32, batch 64), efficientnet_lite0 (3×128×128, batch 32) and vit tiny
# (3×224×224, batch 16), AdamW lr 1e-3, forward + backward + optimizer step on prepared
# batches. `assay bench --json` on experiments/bench/*.toml and scripts/pytorch_arch_bench.py
# (the same models, proven equal by tests/arch_conformance.rs) run in alternation with the
# same thread count, warm-up and step count; prints images/s of both and their ratio.
#
#   scripts/bench-architectures.sh                         # 1 thread, 2 rounds
#   scripts/bench-architectures.sh --threads 2 --rounds 3 --only resnet20
#
# The PyTorch peer is the venv of scripts/bench-vs-pytorch.sh (target/torch-venv, or TORCH_VENV).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
THREADS=1
ROUNDS=2
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "bench-architectures.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
VENV="${TORCH_VENV:-target/torch-venv}"
PY="$VENV/bin/python"
if ! [ -x "$PY" ] || ! "$PY" -c 'import torch, torchvision' >/dev/null 2>&1; then
    echo "setting up the PyTorch peer in $VENV (pip install torch torchvision, about 5 GB) ..." >&2
    mkdir -p "$(dirname "$VENV")"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check torch torchvision safetensors
fi
cargo build --release --quiet
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
#       name               spec                                    image       batch steps
MODELS="resnet20           experiments/bench/resnet20.toml          3,32,32     64    20
efficientnet_lite0 experiments/bench/efficientnet-lite0.toml 3,128,128   32    5
vit_tiny           experiments/bench/vit-tiny.toml           3,224,224   16    3"
printf '%-20s %12s %12s %7s\n' model "assay img/s" "torch img/s" ratio
while read -r name spec image batch steps; do
    if [ -n "$ONLY" ] && [ "$ONLY" != "$name" ]; then continue; fi
    for round in $(seq "$ROUNDS"); do
        a=$(target/release/assay bench "$spec" --json --threads "$THREADS" --steps "$steps" \
            | "${PYTHON:-python3}" -c 'import json,sys; print(json.load(sys.stdin)["train_images_per_sec"])')
        t=$("$PY" scripts/pytorch_arch_bench.py "$name" --image "$image" --batch "$batch" \
            --threads "$THREADS" --steps "$steps" \
            | "${PYTHON:-python3}" -c 'import json,sys; print(json.load(sys.stdin)["train_images_per_sec"])')
        "${PYTHON:-python3}" -c "import sys; a, t = float(sys.argv[2]), float(sys.argv[3]); print(f'{sys.argv[1]:<20} {a:12.1f} {t:12.1f} {a / t:7.2f}')" \
            "$name (round $round)" "$a" "$t"
    done
done <<< "$MODELS"
echo "threads $THREADS; torch $("$PY" -c 'import torch; print(torch.__version__)')"

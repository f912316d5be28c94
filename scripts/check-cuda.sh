#!/usr/bin/env bash
# Keeps the `cuda` feature compiling on a machine without a GPU: installs the pinned CUDA 13.0
# toolkit from PyPI into a cached virtual environment (nvcc, the runtime headers, CCCL, NVVM;
# no driver), then runs `cargo check --features cuda --all-targets` in a cached target
# folder. The first check takes about 8 minutes on 2 cores (nearly all nvcc compiling candle's
# kernels); later ones reuse the cache.
#   ASSAY_CUDA_CACHE  where the toolkit and the target folder live (~/.cache/assay/cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${ASSAY_CUDA_CACHE:-$HOME/.cache/assay/cuda}"
venv="$cache/toolkit"
wheels=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
    nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88)
stamp="$venv/.installed-$(printf '%s ' "${wheels[@]}" | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${wheels[@]}"
    touch "$stamp"
fi
site="$("$venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
export CUDA_HOME="$site/nvidia/cu13"
export CUDA_PATH="$CUDA_HOME"
export PATH="$CUDA_HOME/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
nvcc --version | tail -n 2
CARGO_TARGET_DIR="$cache/target" cargo check --features cuda --all-targets "$@"

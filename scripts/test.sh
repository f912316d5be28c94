#!/usr/bin/env bash
# The whole test suite: sets up the Python TensorBoard used by the real-reader tests, then
# runs every Rust test with optimisation (training in a debug build is far too slow).
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/tb-venv.sh | tail -n 1)"
export ASSAY_TB_PYTHON="$python"
cargo test --release "$@"

#!/usr/bin/env bash
# Creates (once) a Python venv with TensorBoard, used by the tests that read event files back
# with TensorBoard's own reader (tests/tensorboard_reader.rs via scripts/tb_read.py).
#
#   scripts/tb-venv.sh            # venv at target/tb-venv (relative to the repo root)
#   ASSAY_TB_VENV=/x scripts/tb-venv.sh
#
# Idempotent: when the venv is already set up it does nothing. The last line of output is the
# venv's python; tests find it at target/tb-venv/bin/python or through $ASSAY_TB_PYTHON.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

TB_VERSION="2.21.0"
VENV="${ASSAY_TB_VENV:-target/tb-venv}"
STAMP="$VENV/.assay-tensorboard-$TB_VERSION"

venv_python() {
    if [ -x "$VENV/bin/python" ]; then
        echo "$VENV/bin/python"
    else
        echo "$VENV/Scripts/python.exe"
    fi
}

absolute() {
    echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}

PY="$(venv_python)"
if [ -f "$STAMP" ] && [ -x "$PY" ]; then
    absolute "$PY"
    exit 0
fi

if [ ! -x "$PY" ]; then
    BASE_PYTHON="${PYTHON:-}"
    if [ -z "$BASE_PYTHON" ]; then
        for candidate in python3 python3.13 python3.12 python3.11 python3.10 python; do
            if command -v "$candidate" >/dev/null 2>&1; then
                BASE_PYTHON="$candidate"
                break
            fi
        done
    fi
    if [ -z "$BASE_PYTHON" ]; then
        echo "tb-venv.sh: no python3 found (set PYTHON=/path/to/python3)" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$VENV")"
    "$BASE_PYTHON" -m venv --clear "$VENV"
    PY="$(venv_python)"
fi

"$PY" -m pip install --quiet --disable-pip-version-check "tensorboard==$TB_VERSION" "setuptools"
"$PY" -c 'import tensorboard
from tensorboard.backend.event_processing import event_accumulator, event_multiplexer
from tensorboard.plugins.hparams import plugin_data_pb2' >/dev/null
touch "$STAMP"
absolute "$PY"

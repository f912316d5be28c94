#!/usr/bin/env bash
# Sweep throughput: runs experiments/quickstart-sweep.toml (12 jobs) with --jobs 1 and with
# --jobs 2 on all cores, and prints the wall times, the speed-up, and the orchestration
# overhead per job (wall time of the --jobs 1 run minus the time its workers spent in epochs,
# per job: process start, data loading, test evaluation, checkpoints and bookkeeping).
#   scripts/bench-sweep.sh [SPEC]
set -euo pipefail
cd "$(dirname "$0")/.."
spec="${1:-experiments/quickstart-sweep.toml}"
cargo build --release -q
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
declare -A wall
for jobs in 1 2; do
  start=$(date +%s.%N)
  target/release/assay run "$spec" --runs-dir "$out/jobs$jobs" --jobs "$jobs" > "$out/jobs$jobs.log"
  end=$(date +%s.%N)
  wall[$jobs]=$(python3 -c "print($end - $start)")
done
python3 - "$out/jobs1" "${wall[1]}" "${wall[2]}" <<'PY'
import json, pathlib, sys
runs, wall1, wall2 = pathlib.Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
metrics = [json.loads(p.read_text()) for p in runs.glob("*/*/metrics.json")]
epoch_seconds = sum(e["seconds"] for m in metrics for e in m["history"])
n = len(metrics)
print(f"jobs: {n}")
print(f"--jobs 1: {wall1:7.1f} s wall")
print(f"--jobs 2: {wall2:7.1f} s wall")
print(f"speed-up of --jobs 2 over --jobs 1: {wall1 / wall2:.2f}x")
print(f"orchestration overhead per job (--jobs 1): {(wall1 - epoch_seconds) / n:.2f} s "
      f"({epoch_seconds:.1f} s of {wall1:.1f} s were epochs)")
PY

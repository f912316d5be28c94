"""Driver of scripts/bench-vs-pytorch.sh: runs `assay bench --json` and scripts/pytorch_lenet.py
in alternation (the order flips every round), same model, batch, steps and thread count, and
prints images/s, their ratio and peak memory. Peak memory is each process's max RSS, taken
from wait4(); for torch also the RSS right after `import torch`.
"""

import argparse
import json
import os
import statistics
import sys


def run_rss(cmd, env):
    """Runs cmd and returns (parsed JSON of its stdout, its own max RSS in MiB)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            os.execvpe(cmd[0], cmd, env)
        finally:
            os._exit(127)
    os.close(w)
    chunks = []
    with os.fdopen(r) as f:
        chunks.append(f.read())
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed ({os.waitstatus_to_exitcode(status)}): {' '.join(cmd)}")
    return json.loads("".join(chunks)), usage.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--assay", required=True)
    ap.add_argument("--python", required=True, help="the torch venv's python")
    ap.add_argument("--spec", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--json", help="also write all measurements to this file")
    args = ap.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    peer = os.path.join(here, "pytorch_lenet.py")
    overrides = ["--set", "optimizer.kind=adamw", "--set", "optimizer.lr=0.001",
                 "--set", "train.batch_size=64"]
    results = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        env = dict(os.environ)
        env.update({
            "OMP_WAIT_POLICY": "PASSIVE",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "RAYON_NUM_THREADS": str(threads),
        })
        assay_cmd = [args.assay, "bench", args.spec, *overrides, "--json",
                     "--threads", str(threads), "--steps", str(args.steps)]
        torch_cmd = [args.python, peer, "--threads", str(threads), "--steps", str(args.steps),
                     "--optimizer", "adamw", "--lr", "0.001", "--batch", "64"]
        rounds = []
        for r in range(args.rounds):
            order = [("assay", assay_cmd), ("torch", torch_cmd)]
            if r % 2 == 1:
                order.reverse()
            row = {}
            for name, cmd in order:
                out, rss = run_rss(cmd, env)
                row[name] = {"images_per_sec": out["train_images_per_sec"], "max_rss_mib": rss}
                if name == "torch":
                    row[name]["rss_after_import_mib"] = out["rss_after_import_mib"]
                    row[name]["version"] = out["torch_version"]
            row["ratio"] = row["assay"]["images_per_sec"] / row["torch"]["images_per_sec"]
            rounds.append(row)
            print(f"  {threads} thread(s), round {r + 1}: assay {row['assay']['images_per_sec']:8.0f} "
                  f"images/s, torch {row['torch']['images_per_sec']:8.0f} images/s, "
                  f"ratio {row['ratio']:.2f}", flush=True)
        results[threads] = rounds

    print()
    print(f"reference LeNet, batch 64, AdamW lr 1e-3, {args.steps} timed steps after 3 warm-up, "
          f"{args.rounds} alternating rounds; medians (min-max)")
    print(f"{'threads':>7}  {'assay img/s':>20}  {'torch img/s':>20}  {'ratio':>17}")
    for threads, rounds in results.items():
        def col(get):
            v = [get(r) for r in rounds]
            return statistics.median(v), min(v), max(v)
        a = col(lambda r: r["assay"]["images_per_sec"])
        t = col(lambda r: r["torch"]["images_per_sec"])
        q = col(lambda r: r["ratio"])
        print(f"{threads:>7}  {a[0]:8.0f} ({a[1]:.0f}-{a[2]:.0f})  {t[0]:8.0f} ({t[1]:.0f}-{t[2]:.0f})  "
              f"{q[0]:5.2f} ({q[1]:.2f}-{q[2]:.2f})")
    print()
    print("peak memory (max RSS, MiB; largest over rounds)")
    for threads, rounds in results.items():
        a = max(r["assay"]["max_rss_mib"] for r in rounds)
        t = max(r["torch"]["max_rss_mib"] for r in rounds)
        ti = max(r["torch"]["rss_after_import_mib"] for r in rounds)
        print(f"  {threads} thread(s): assay {a:.0f}; torch {t:.0f} (after `import torch`: {ti:.0f}, "
              f"training adds {t - ti:.0f})")
    version = next(iter(results.values()))[0]["torch"]["version"]
    print(f"torch {version}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

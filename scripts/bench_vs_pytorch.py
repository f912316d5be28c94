"""Driver of scripts/bench-vs-pytorch.sh: runs `assay bench --json` and its PyTorch peer in
alternation (the order flips every round), same model, batch, steps and thread count, and
prints images/s, their ratio, peak memory and assay's page faults per step. Peak memory is
each process's max RSS, taken from wait4(); beside it what training adds: for torch the peak
minus the RSS right after `import torch`, for assay the peak minus the RSS with the data set
decoded (before the network is built). Both peers prepare 16 batches before timing.
"""

import argparse
import json
import os
import statistics

# name: (spec, assay overrides, PyTorch peer and its arguments, default batch)
MODELS = {
    "lenet": ("experiments/quickstart.toml",
              ["optimizer.kind=adamw", "optimizer.lr=0.001"],
              ["pytorch_lenet.py", "--optimizer", "adamw", "--lr", "0.001"], 64),
    "vgg-bn": ("experiments/bench/vgg-bn.toml", [],
               ["pytorch_arch_bench.py", "vgg_bn", "--image", "3,32,32"], 128),
    "gray128-bn": ("experiments/bench/gray128-bn.toml", [],
                   ["pytorch_arch_bench.py", "gray128_bn", "--image", "1,128,128"], 32),
    "resnet20": ("experiments/bench/resnet20.toml", [],
                 ["pytorch_arch_bench.py", "resnet20", "--image", "3,32,32"], 128),
    "efficientnet_lite0": ("experiments/bench/efficientnet-lite0.toml", [],
                           ["pytorch_arch_bench.py", "efficientnet_lite0", "--image", "3,128,128"], 32),
    "vit_tiny": ("experiments/bench/vit-tiny.toml",
                 ["data.image_size=[32, 32]", "model.patch=4"],
                 ["pytorch_arch_bench.py", "vit_tiny", "--image", "3,32,32", "--patch", "4"], 128),
}


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
    with os.fdopen(r) as f:
        text = f.read()
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed ({os.waitstatus_to_exitcode(status)}): {' '.join(cmd)}")
    return json.loads(text), usage.ru_maxrss / 1024.0


def spread(values):
    return statistics.median(values), min(values), max(values)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--assay", required=True)
    ap.add_argument("--python", required=True, help="the torch venv's python")
    ap.add_argument("--model", default="lenet", choices=sorted(MODELS))
    ap.add_argument("--batch", type=int, help="the batch size (default: the model's)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--json", help="also write all measurements to this file")
    args = ap.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    spec, sets, peer, default_batch = MODELS[args.model]
    batch = args.batch or default_batch
    overrides = []
    for s in sets + [f"train.batch_size={batch}"]:
        overrides += ["--set", s]
    results = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        env = dict(os.environ)
        env.update({
            "OMP_WAIT_POLICY": "PASSIVE",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "RAYON_NUM_THREADS": str(threads),
        })
        assay_cmd = [args.assay, "bench", spec, *overrides, "--json",
                     "--threads", str(threads), "--steps", str(args.steps)]
        torch_cmd = [args.python, os.path.join(here, peer[0]), *peer[1:], "--batch", str(batch),
                     "--threads", str(threads), "--steps", str(args.steps)]
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
                    row[name]["base_rss_mib"] = out["rss_after_import_mib"]
                    row[name]["version"] = out["torch_version"]
                else:
                    row[name]["base_rss_mib"] = out["rss_before_training_mib"]
                    row[name]["page_faults_per_step"] = out["train_page_faults_per_step"]
            row["ratio"] = row["assay"]["images_per_sec"] / row["torch"]["images_per_sec"]
            rounds.append(row)
            print(f"  {threads} thread(s), round {r + 1}: assay {row['assay']['images_per_sec']:8.1f} "
                  f"images/s, torch {row['torch']['images_per_sec']:8.1f} images/s, "
                  f"ratio {row['ratio']:.2f}", flush=True)
        results[threads] = rounds

    print()
    print(f"{args.model}, batch {batch}, AdamW lr 1e-3, {args.steps} timed steps after 3 warm-up, "
          f"{args.rounds} alternating rounds; medians (min-max)")
    print(f"{'threads':>7}  {'assay img/s':>22}  {'torch img/s':>22}  {'ratio':>17}")
    for threads, rounds in results.items():
        a = spread([r["assay"]["images_per_sec"] for r in rounds])
        t = spread([r["torch"]["images_per_sec"] for r in rounds])
        q = spread([r["ratio"] for r in rounds])
        print(f"{threads:>7}  {a[0]:8.1f} ({a[1]:.1f}-{a[2]:.1f})  {t[0]:8.1f} ({t[1]:.1f}-{t[2]:.1f})  "
              f"{q[0]:5.2f} ({q[1]:.2f}-{q[2]:.2f})")
    print()
    print("peak memory (max RSS, MiB; largest over rounds) and what training adds to it")
    for threads, rounds in results.items():
        a = max(r["assay"]["max_rss_mib"] for r in rounds)
        ab = min(r["assay"]["base_rss_mib"] for r in rounds)
        t = max(r["torch"]["max_rss_mib"] for r in rounds)
        tb = min(r["torch"]["base_rss_mib"] for r in rounds)
        faults = statistics.median(r["assay"]["page_faults_per_step"] for r in rounds)
        print(f"  {threads} thread(s): assay {a:.0f} (data decoded: {ab:.0f}, training adds {a - ab:.0f}); "
              f"torch {t:.0f} (after `import torch`: {tb:.0f}, training adds {t - tb:.0f}); "
              f"assay page faults per step {faults:.0f}")
    version = next(iter(results.values()))[0]["torch"]["version"]
    print(f"torch {version}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "batch": batch, "rounds": results}, f, indent=1)


if __name__ == "__main__":
    main()

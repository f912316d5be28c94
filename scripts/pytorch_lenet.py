"""The PyTorch peer of `assay bench` for the reference LeNet.

Model (the same layers, shapes and initialisation family as assay's spec):
    conv 1->16, 3x3, stride 1, padding 1, bias; ReLU; max-pool 2x2 stride 2
    conv 16->32, 3x3, stride 1, padding 1, bias; ReLU; max-pool 2x2 stride 2
    flatten (32*7*7 = 1568); dense 1568->128, bias; ReLU; dense 128->10, bias
Loss: cross-entropy (mean over the batch). Optimizer: AdamW (or Adam), lr 1e-3,
betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on conv and dense weights only, as assay.

What is timed, as in `assay bench`: 16 batches of 64 images are prepared first (the MNIST
subset shipped with the repo, normalised with the training mean/std, float32 NCHW);
then 3 warm-up steps and STEPS timed steps, each forward + backward + optimizer step
(zero_grad included), cycling through the prepared batches.

Prints one JSON object: images/s, the thread count, peak RSS (ru_maxrss) and the RSS right
after `import torch`, both in MiB.

    python scripts/pytorch_lenet.py --threads 1 --steps 200
"""

import argparse
import gzip
import json
import os
import resource
import struct
import sys
import time


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N (timing waits for the GPU)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--optimizer", choices=["adamw", "adam"], default="adamw")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "experiments", "data", "mnist-subset"))
    args = ap.parse_args()

    rss_before = rss_mib()
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    rss_after_import = rss_mib()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    (n, h, w), pixels = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    _, labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    images = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(n, 1, h, w)
    targets = torch.frombuffer(bytearray(labels), dtype=torch.uint8).long()
    x_all = images.float() / 255.0
    x_all = (x_all - x_all.mean()) / x_all.std()
    batches = [
        (x_all[i * args.batch:(i + 1) * args.batch].contiguous(),
         targets[i * args.batch:(i + 1) * args.batch].contiguous())
        for i in range(min(16, n // args.batch))
    ]

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.fc1 = nn.Linear(32 * 7 * 7, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = F.relu(self.fc1(torch.flatten(x, 1)))
            return self.fc2(x)

    device = torch.device(args.device)
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    model = LeNet().to(device)
    decay = [p for name, p in model.named_parameters() if name.endswith("weight")]
    no_decay = [p for name, p in model.named_parameters() if not name.endswith("weight")]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    if args.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=args.lr)
    else:
        opt = torch.optim.Adam(groups, lr=args.lr)

    def step(i):
        x, y = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for i in range(args.warmup):
        step(i)
    started = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started

    print(json.dumps({
        "peer": "pytorch",
        "device": str(device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch,
        "steps": args.steps,
        "train_images_per_sec": args.steps * args.batch / seconds,
        "rss_before_import_mib": rss_before,
        "rss_after_import_mib": rss_after_import,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))


if __name__ == "__main__":
    sys.exit(main())

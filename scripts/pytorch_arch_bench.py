"""The PyTorch peer of `assay bench` for the built-in architectures and the batch-norm layer
lists: the same model (for architectures the reference modules of scripts/make-arch-fixtures.py
and scripts/arch_fixtures/, which the conformance tests prove equal to assay's; for `vgg_bn`
and `gray128_bn` the layers of experiments/bench/vgg-bn.toml and gray128-bn.toml, below),
batch, image shape, optimizer (AdamW, lr 1e-3, weight decay 0.01 on conv and dense weights
only) and step count.

What is timed, as in `assay bench`: 16 prepared batches of random images (float32 NCHW), then
3 warm-up steps and STEPS timed steps, each forward + backward + optimizer step in training
mode. Prints one JSON object: images/s, threads, batch, steps, torch version, peak RSS
(ru_maxrss) and the RSS right after `import torch`.

    python scripts/pytorch_arch_bench.py resnet20 --image 3,32,32 --batch 64 --steps 20
    python scripts/pytorch_arch_bench.py efficientnet_lite0 --image 3,128,128 --batch 32
    python scripts/pytorch_arch_bench.py vit_tiny --image 3,224,224 --batch 16
"""

import argparse
import json
import os
import sys
import time


def conv_bn_relu_stack(channels, plan, classes):
    """Conv2d(k, stride, padding) -> BatchNorm2d -> ReLU per ("conv", filters, k, stride,
    padding), MaxPool2d(2) per "pool", then AdaptiveAvgPool2d(1), Flatten, Linear."""
    import torch.nn as nn

    layers, c = [], channels
    for item in plan:
        if item == "pool":
            layers.append(nn.MaxPool2d(2))
            continue
        _, filters, k, stride, padding = item
        layers += [nn.Conv2d(c, filters, k, stride, padding), nn.BatchNorm2d(filters), nn.ReLU()]
        c = filters
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*layers)


VGG_BN = [("conv", 32, 3, 1, 1), ("conv", 32, 3, 1, 1), "pool", ("conv", 64, 3, 1, 1),
          ("conv", 64, 3, 1, 1), "pool", ("conv", 128, 3, 1, 1), ("conv", 128, 3, 1, 1)]
GRAY128_BN = [("conv", 16, 5, 2, 2), "pool", ("conv", 32, 3, 1, 1), "pool", ("conv", 64, 3, 1, 1)]


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def build(name, image, classes, patch=16):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import importlib.util

    spec = importlib.util.spec_from_file_location("fixtures", os.path.join(here, "make-arch-fixtures.py"))
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    c, h, w = image
    if name == "vgg_bn":
        return conv_bn_relu_stack(c, VGG_BN, classes)
    if name == "gray128_bn":
        return conv_bn_relu_stack(c, GRAY128_BN, classes)
    if name.startswith("resnet") and int(name[6:]) in (20, 32, 44, 56, 110):
        return fixtures.CifarResNet(int(name[6:]), classes)
    if name == "efficientnet_lite0":
        from arch_fixtures.mobilenet import EfficientNetLite

        return EfficientNetLite(0, classes)
    if name == "mobilenet_v2":
        import torchvision

        return torchvision.models.mobilenet_v2(num_classes=classes)
    if name == "vit_tiny":
        from arch_fixtures.vit import VisionTransformer

        return VisionTransformer((h, w), patch, 12, 192, 3, classes, channels=c)
    raise SystemExit(f"unknown model {name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--image", default="3,32,32")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N (timing waits for the GPU)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=16, help="the ViT's patch side")
    args = ap.parse_args()

    import resource

    import torch
    import torch.nn.functional as F

    rss_after_import = rss_mib()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = tuple(int(v) for v in args.image.split(","))
    device = torch.device(args.device)
    model = build(args.model, image, args.classes, args.patch).to(device)
    model.train()
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    rest = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.dim() > 1)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": rest, "weight_decay": 0.0}], lr=1e-3)
    batches = [(torch.randn((args.batch,) + image, device=device),
                torch.randint(0, args.classes, (args.batch,), device=device))
               for _ in range(16)]

    def step(i):
        x, y = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
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
        "model": args.model,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch,
        "steps": args.steps,
        "train_images_per_sec": args.steps * args.batch / seconds,
        "rss_after_import_mib": rss_after_import,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))


if __name__ == "__main__":
    sys.exit(main())

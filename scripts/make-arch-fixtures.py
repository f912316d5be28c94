#!/usr/bin/env python3
"""Writes the PyTorch fixtures the architecture conformance tests (tests/arch_conformance.rs)
compare assay's models with: for each architecture, random weights, one input batch and its
targets, the logits in training and evaluation mode, the gradient of every parameter after one
backward pass of the mean cross-entropy, and the batch-norm running statistics after that step.

Needs PyTorch and torchvision (pip install torch torchvision safetensors); CI does not run it,
the fixtures it writes are committed. PyTorch computes in float64 (saved as float32), so a
difference is assay's own rounding. Usage: scripts/make-arch-fixtures.py [NAME ...]

Tensors in each tests/fixtures/arch/NAME.safetensors, under assay's parameter names:
  param.<name>   starting weights         buffer.<name>  starting running statistics
  input, target  the batch                logits.train, logits.eval
  grad.<name>    gradients after backward after.<name>   running statistics after the step
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "arch"))


def randomize_batch_norms(model, gen):
    """Non-trivial starting statistics and affine parameters, so that evaluation mode and the
    running-statistics update are really exercised."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            with torch.no_grad():
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(1 + 0.2 * torch.rand(m.running_var.shape, generator=gen))


def step(model, x, target):
    """One training forward and backward, then an evaluation forward: what the tests compare."""
    params = dict(model.named_parameters())
    buffers = {n: b for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")}
    out = {}
    model.train()
    logits = model(x)
    F.cross_entropy(logits, target).backward()
    out["logits.train"] = logits.detach().clone()
    for n, p in params.items():
        out["grad." + n] = p.grad.detach().clone()
    for n, b in buffers.items():
        out["after." + n] = b.detach().clone()
    model.eval()
    with torch.no_grad():
        out["logits.eval"] = model(x).detach().clone()
    return out


def comparison_scale(key, tensors):
    """What a difference in `tensors[key]` is relative to: its largest magnitude, except for a
    bias gradient that is zero in exact arithmetic (a batch norm's shift that reaches the loss
    only through a 1×1 convolution and a batch norm in training, which removes any shift, as in
    MobileNetV2 and EfficientNet-Lite): that is compared with its layer's weight gradient, as
    tests/arch_conformance.rs does."""
    own = tensors[key].abs().max().double()
    if key.startswith("grad.") and key.endswith(".bias"):
        weight = tensors.get(key[: -len("bias")] + "weight")
        if weight is not None:
            w = weight.abs().max().double()
            if own < 1e-6 * w:
                return w
    return own.clamp_min(1e-12)


class ReluInputs:
    """Records every input of a ReLU or ReLU6 (with its kinks: 0, or 0 and 6), in call order,
    while the model runs."""

    def __init__(self):
        self.seen = []

    def _note(self, x, *kinks):
        self.seen.append((x.detach().double().clone(), kinks))

    def __enter__(self):
        self.saved = (F.relu, F.relu6, F.hardtanh)
        relu, relu6, hardtanh = self.saved

        def r(x, *a, **k):
            self._note(x, 0.0)
            return relu(x, *a, **k)

        def r6(x, *a, **k):
            self._note(x, 0.0, 6.0)
            return relu6(x, *a, **k)

        def ht(x, min_val=-1.0, max_val=1.0, *a, **k):
            self._note(x, min_val, max_val)
            return hardtanh(x, min_val, max_val, *a, **k)

        F.relu, F.relu6, F.hardtanh = r, r6, ht
        return self

    def __exit__(self, *exc):
        F.relu, F.relu6, F.hardtanh = self.saved


def on_a_kink(exact, single, factor):
    """Whether some ReLU input of the float64 run lies closer to its kink than `factor`
    times PyTorch's own float32 error at that value (plus KINK_MARGIN of the tensor's scale):
    there float32 may take the other side of the kink, and the gradients differ for a reason
    that is no fault of either implementation."""
    for (x64, kinks), (x32, _) in zip(exact.seen, single.seen):
        error = (x32 - x64).abs()
        slack = factor * error + KINK_MARGIN * x64.abs().max()
        for k in kinks:
            if bool(((x64 - k).abs() < slack).any()):
                return True
    return False


# An input batch is redrawn while a ReLU input sits on its kink (see on_a_kink), or while
# PyTorch's own float32 step is further than MAX_FLOAT32_ERROR from its float64 step.
KINK_FACTOR = 2.0
KINK_MARGIN = 1e-7
MAX_FLOAT32_ERROR = 1e-3


def write(name, model, input_shape, classes, rename=lambda n: n, batch=4, seed=0, kink_factor=KINK_FACTOR):
    """Runs one step of `model` on a seeded batch in float64 and saves everything under
    assay's names (`rename` maps a PyTorch name to assay's). It also runs the step in float32
    and stores, as `reference.float32_error`, how far PyTorch's own float32 result is from the
    float64 one (the largest relative difference over every compared tensor): on deep models
    with batch norm over small batches that exceeds 1e-4, and the tests allow twice as much.
    The batch is drawn from `seed`, or the next seed while some ReLU input sits on its kink
    (see on_a_kink) or PyTorch's float32 is off by more than MAX_FLOAT32_ERROR."""
    import copy

    target = torch.arange(batch) % classes
    start = copy.deepcopy(model)
    for seed in range(seed, seed + 100):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((batch,) + tuple(input_shape), generator=gen)
        with ReluInputs() as seen64:
            exact = step(copy.deepcopy(start).double(), x.double(), target)
        with ReluInputs() as seen32:
            single = step(copy.deepcopy(start).float(), x.float(), target)
        if on_a_kink(seen64, seen32, kink_factor):
            continue
        error = max(
            ((single[k].double() - v).abs().max() / comparison_scale(k, exact)).item()
            for k, v in exact.items()
        )
        if error < MAX_FLOAT32_ERROR:
            break
    else:
        raise SystemExit(f"{name}: no batch is clear of ReLU kinks with PyTorch's float32 close to float64")
    model = start
    tensors = {"input": x, "target": target.to(torch.int64)}
    for n, p in model.named_parameters():
        tensors["param." + rename(n)] = p.detach().clone()
    for n, b in model.named_buffers():
        if not n.endswith("num_batches_tracked"):
            tensors["buffer." + rename(n)] = b.detach().clone()
    for k, v in exact.items():
        kind, _, n = k.partition(".")
        tensors[k if kind == "logits" else kind + "." + rename(n)] = v
    tensors["reference.float32_error"] = torch.tensor([error])
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + ".safetensors")
    save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}, path)
    count = sum(p.numel() for p in model.parameters())
    print(f"{path}: {count} parameters, {len(tensors)} tensors, batch seed {seed}, PyTorch float32 off by {error:.1e}")


# ---------------------------------------------------------------- ResNet (torchvision)

class CifarResNet(nn.Module):
    """Three stages of torchvision basic blocks (16-32-64 channels), a 3×3 stem without pool
    and projection shortcuts: the CIFAR-style ResNet assay builds for depths 20–110."""

    def __init__(self, depth, classes, width=1.0):
        super().__init__()
        from torchvision.models.resnet import BasicBlock, conv1x1

        n = (depth - 2) // 6
        c = [round(16 * width), round(32 * width), round(64 * width)]
        self.conv1 = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        inplanes = c[0]
        for stage in range(3):
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                down = None
                if stride != 1 or inplanes != c[stage]:
                    down = nn.Sequential(conv1x1(inplanes, c[stage], stride), nn.BatchNorm2d(c[stage]))
                blocks.append(BasicBlock(inplanes, c[stage], stride, down))
                inplanes = c[stage]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet_fixtures():
    import torchvision

    torch.manual_seed(1)
    m = CifarResNet(20, classes=10)
    randomize_batch_norms(m, torch.Generator().manual_seed(11))
    write("resnet20", m, (3, 32, 32), 10)
    import torchvision.models.resnet as R

    # ResNet-18 and -50 at an eighth of their width (the structure is theirs: the 7×7 stem
    # and max-pool, basic blocks or bottlenecks with the stride on the 3×3).
    torch.manual_seed(2)
    m = narrow_resnet(R.BasicBlock, [2, 2, 2, 2], classes=7, width=0.125)
    randomize_batch_norms(m, torch.Generator().manual_seed(12))
    write("resnet18_w0125", m, (3, 64, 64), 7)
    torch.manual_seed(3)
    m = narrow_resnet(R.Bottleneck, [3, 4, 6, 3], classes=5, width=0.125)
    randomize_batch_norms(m, torch.Generator().manual_seed(13))
    write("resnet50_w0125", m, (3, 64, 64), 5)


def narrow_resnet(block, layers, classes, width):
    """torchvision's ResNet with every stage's channels scaled by `width`, as assay's `width`
    key does (64·w stem, planes 64·w … 512·w)."""
    import torchvision.models.resnet as R

    class Narrow(R.ResNet):
        def __init__(self):
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes = round(64 * width)
            self.dilation = 1
            self.groups = 1
            self.base_width = 64
            self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make_layer(block, round(64 * width), layers[0])
            self.layer2 = self._make_layer(block, round(128 * width), layers[1], stride=2)
            self.layer3 = self._make_layer(block, round(256 * width), layers[2], stride=2)
            self.layer4 = self._make_layer(block, round(512 * width), layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(round(512 * width) * block.expansion, classes)

    return Narrow()


FIXTURES = {"resnet": resnet_fixtures}


def main():
    torch.set_num_threads(1)
    for module in ("mobilenet", "vit"):
        try:
            mod = __import__(f"arch_fixtures.{module}", fromlist=["FIXTURES"])
            FIXTURES.update(mod.FIXTURES)
        except ModuleNotFoundError:
            pass
    names = sys.argv[1:] or list(FIXTURES)
    for name in names:
        FIXTURES[name]()


if __name__ == "__main__":
    main()

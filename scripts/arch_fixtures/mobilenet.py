"""Fixtures for MobileNetV2 (torchvision's own model) and EfficientNet-Lite (a short reference
module below, with the parameter names of the lukemelas EfficientNet-PyTorch layout that the
published Lite weights use): see scripts/make-arch-fixtures.py for what a fixture holds.

EfficientNet-Lite here: MBConv blocks without squeeze-excitation, ReLU6, TensorFlow "SAME"
padding (any odd zero on the bottom and right), batch norm eps 1e-3 and momentum 0.01 (PyTorch
terms), stem (32) and head (1280) not scaled by the width coefficient, and the repeats of the
first and last stage not scaled by the depth coefficient.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Per stage: repeats, kernel, stride, expansion, input and output channels (lite0).
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
# (width, depth) coefficients of lite0 … lite4.
COEFFICIENTS = [(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8)]
BN = dict(momentum=0.01, eps=1e-3)


def round_filters(c, width):
    scaled = c * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    if rounded < 0.9 * scaled:
        rounded += 8
    return int(rounded)


class SameConv(nn.Conv2d):
    """A bias-free convolution with TensorFlow's SAME padding: output ceil(input / stride)."""

    def __init__(self, cin, cout, k, stride=1, groups=1):
        super().__init__(cin, cout, k, stride, 0, groups=groups, bias=False)

    def forward(self, x):
        pads = []
        for size in (x.shape[3], x.shape[2]):
            s, k = self.stride[0], self.kernel_size[0]
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConv(nn.Module):
    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, **BN)
        self._depthwise_conv = SameConv(hidden, hidden, k, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, **BN)
        self._project_conv = SameConv(hidden, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, **BN)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite(nn.Module):
    """`width` multiplies the variant's width coefficient (the blocks only), as assay's key."""

    def __init__(self, variant, classes, width=1.0):
        super().__init__()
        wc, dc = COEFFICIENTS[variant]
        wc *= width
        self._conv_stem = SameConv(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        blocks = []
        cin = 32
        for i, (r, k, s, e, _, cout) in enumerate(STAGES):
            cout = round_filters(cout, wc)
            repeats = r if i in (0, len(STAGES) - 1) else int(math.ceil(dc * r))
            for j in range(repeats):
                blocks.append(MBConv(cin, cout, k, s if j == 0 else 1, e))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(cin, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, **BN)
        self._fc = nn.Linear(1280, classes)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def count(m):
    return sum(p.numel() for p in m.parameters())


def mobilenet_fixtures():
    import __main__ as fx  # scripts/make-arch-fixtures.py: write, randomize_batch_norms
    import torchvision

    assert count(torchvision.models.mobilenet_v2(num_classes=1000)) == 3_504_872
    assert count(EfficientNetLite(0, 1000)) == 4_652_008, count(EfficientNetLite(0, 1000))

    torch.manual_seed(4)
    m = torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25, dropout=0.0)
    fx.randomize_batch_norms(m, torch.Generator().manual_seed(14))
    fx.write("mobilenet_v2_w025", m, (3, 64, 64), 10)

    torch.manual_seed(5)
    m = EfficientNetLite(0, classes=6, width=0.25)
    fx.randomize_batch_norms(m, torch.Generator().manual_seed(15))
    fx.write("efficientnet_lite0_w025", m, (3, 48, 48), 6)


FIXTURES = {"mobilenet": mobilenet_fixtures}

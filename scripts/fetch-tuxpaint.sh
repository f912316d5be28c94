#!/usr/bin/env bash
# Builds the Tux Paint stamps image folder used by experiments/{finetune,scratch}-tuxpaint.toml:
# photo cut-outs of four categories from Debian's `tuxpaint-stamps-default` package (GPL-2),
# each composited over white (the stamps are RGBA with transparent backgrounds).
#
#   scripts/fetch-tuxpaint.sh [OUT]     # default OUT: experiments/data/tuxpaint
#
# Writes OUT/<category>/<stamp>.png for animals, food, plants and vehicles (every PNG below
# the category, at any depth; a stamp's name is its path below the category with `/` → `-`).
# Needs `apt-get download` (Debian's archive) and PyPI for Pillow (in a venv under target/).
# Idempotent: does nothing when OUT already holds the images.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT="${1:-experiments/data/tuxpaint}"
CATEGORIES="animals food plants vehicles"
STAMP="$OUT/.complete"
if [ -f "$STAMP" ]; then
    echo "$OUT is ready"
    exit 0
fi
WORK="target/tuxpaint"
mkdir -p "$WORK"
if ! ls "$WORK"/tuxpaint-stamps-default_*.deb >/dev/null 2>&1; then
    (cd "$WORK" && apt-get download tuxpaint-stamps-default)
fi
rm -rf "$WORK/extracted"
dpkg-deb -x "$WORK"/tuxpaint-stamps-default_*.deb "$WORK/extracted"
VENV="target/pillow-venv"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet pillow==11.3.0
fi
rm -rf "$OUT"
"$VENV/bin/python" - "$WORK/extracted/usr/share/tuxpaint/stamps" "$OUT" $CATEGORIES <<'PY'
import pathlib, sys
from PIL import Image
stamps, out, categories = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
for c in categories:
    files = sorted(p for p in (stamps / c).rglob("*.png") if not p.name.endswith("_mirror.png"))
    (out / c).mkdir(parents=True, exist_ok=True)
    for p in files:
        img = Image.open(p).convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(white, img).convert("RGB")
        name = "-".join(p.relative_to(stamps / c).with_suffix("").parts) + ".png"
        flat.save(out / c / name)
    print(f"{c}: {len(files)} images")
PY
touch "$STAMP"
echo "written: $OUT"

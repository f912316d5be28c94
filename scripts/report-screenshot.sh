#!/usr/bin/env bash
# Takes a screenshot of RUN_DIR/report.html with headless Chromium, to check the report renders.
# Usage: scripts/report-screenshot.sh RUN_DIR OUT.png
# Installs the Debian package `chromium` with apt-get if it is missing (needs root).
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 RUN_DIR OUT.png" >&2
    exit 2
fi
run_dir=$1
out=$2
report="$run_dir/report.html"
if [ ! -f "$report" ]; then
    echo "error: $report not found (run \`assay report $run_dir\` first)" >&2
    exit 2
fi

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "installing chromium with apt-get..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    browser=$(command -v chromium)
fi

abs_report=$(cd "$(dirname "$report")" && pwd)/$(basename "$report")
case "$out" in
    /*) abs_out=$out ;;
    *) abs_out=$(pwd)/$out ;;
esac
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --screenshot="$abs_out" --window-size=1200,3000 \
    "file://$abs_report" 2>/dev/null
test -s "$abs_out"
echo "screenshot: $abs_out"

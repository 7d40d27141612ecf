"""Hostile files made when a case runs, in its own temporary folder: weights files that lie,
pickles that carry code, zip bombs, broken images.

A case asks for one with ``{"make": NAME, "args": {...}}`` in its ``files``; the runner calls
``MAKERS[NAME](**args)`` and writes the bytes. Big files are made here, in the test's tmp_path,
never kept in the repository, and only for the cases that run.
"""

from __future__ import annotations

import functools
import io
import json
import pickle
import struct
import zipfile
import zlib


# ---- safetensors ------------------------------------------------------------------------------
def safetensors(header=None, raw_header: str | None = None, length: int | None = None,
                data_bytes: int = 0) -> bytes:
    """A ``.safetensors`` file whose header says whatever ``header`` (or ``raw_header``) says,
    its length field ``length`` (default: the true one), then ``data_bytes`` zero bytes."""
    text = (raw_header if raw_header is not None else json.dumps(header)).encode()
    n = len(text) if length is None else length
    return struct.pack("<Q", n) + text + b"\0" * data_bytes


def lenet5_weights(scale: float | None = None, rename: bool = False) -> bytes:
    """netc's seeded weights of ``lenet5`` as safetensors (``scale``: every value times it, so
    nan or inf; ``rename``: keys a state dict of another program would have)."""
    import numpy as np
    from safetensors.numpy import save

    from netc.compiler.frontend.loader import load
    from netc.compiler.numerics.seeded_weights import init_weights

    weights = init_weights(load("lenet5"))
    if scale is not None:
        weights = {k: (v * np.float32(scale)).astype(np.float32) for k, v in weights.items()}
    if rename:
        weights = {f"module.features.{i}.{k.rsplit('.', 1)[1]}": v
                   for i, (k, v) in enumerate(weights.items())}
    return save(weights)


def spec_weights(text: str) -> bytes:
    """netc's seeded weights of the first net of spec ``text``, as safetensors: a file that
    fits that spec, for a case that changes the spec's input (``--input``)."""
    from safetensors.numpy import save

    from netc.compiler.frontend.loader import load_text
    from netc.compiler.numerics.seeded_weights import init_weights

    return save(init_weights(load_text(text, "weights.net")))


# ---- PyTorch files ------------------------------------------------------------------------------
class _Runs:
    """Pickles as ``os.system(command)``: what a malicious checkpoint holds."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def pickle_code(command: str = "touch pwned", zipped: bool = False) -> bytes:
    """A pickle that runs ``command`` when loaded without ``weights_only``; ``zipped``: inside
    the zip layout of ``torch.save`` (``archive/data.pkl``)."""
    payload = pickle.dumps({"w": _Runs(command)}, protocol=2)
    if not zipped:
        return payload
    return _torch_zip({"archive/data.pkl": payload})


def _torch_zip(entries: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as z:
        z.writestr("archive/version", b"3\n")
        z.writestr("archive/byteorder", b"little")
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


@functools.lru_cache(maxsize=2)  # 4 GiB takes half a minute to deflate: once per runner
def zip_bomb(megabytes: int = 256) -> bytes:
    """A ``torch.save``-shaped zip (``archive/version``, ``archive/byteorder``) whose
    ``archive/data.pkl`` inflates to ``megabytes`` MiB of zeros from a few hundred KiB."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\0" * 2**20
    crc = 0
    parts = []
    for _ in range(megabytes):
        parts.append(comp.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    body = b"".join(parts) + comp.flush()
    entries = [(b"archive/version", b"3\n", zlib.crc32(b"3\n"), 2, 0),
               (b"archive/byteorder", b"little", zlib.crc32(b"little"), 6, 0),
               (b"archive/data.pkl", body, crc, megabytes * 2**20, 8)]
    local, central = b"", b""
    for name, data, crc32, size, method in entries:
        offset = len(local)
        local += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0, crc32,
                             len(data), size, len(name), 0) + name + data
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0,
                               crc32, len(data), size, len(name), 0, 0, 0, 0, 0,
                               offset) + name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                      len(central), len(local), 0)
    return local + central + end


def torch_file(truncate_to: float | None = None) -> bytes:
    """A real ``torch.save`` of a small state dict, cut to ``truncate_to`` of its length."""
    import torch

    buf = io.BytesIO()
    torch.save({"c1.weight": torch.zeros(6, 1, 5, 5), "c1.bias": torch.zeros(6)}, buf)
    data = buf.getvalue()
    return data if truncate_to is None else data[:int(len(data) * truncate_to)]


# ---- caffemodel (protobuf written by hand: the lies a protobuf library would not write) -------
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _blob(dims, values: int, data_length: int | None = None) -> bytes:
    shape = _field(1, b"".join(_varint(d) for d in dims))  # BlobShape.dim, packed
    data = b"\0" * (4 * values)
    length = len(data) if data_length is None else data_length
    return _field(7, shape) + _varint(5 << 3 | 2) + _varint(length) + data


def _layer(name: str, kind: str, blobs: list[bytes]) -> bytes:
    return _field(1, name.encode()) + _field(2, kind.encode()) + b"".join(
        _field(7, b) for b in blobs)


def caffemodel(kind: str = "good", truncate_to: float | None = None,
               count: int = 200_000) -> bytes:
    """A NetParameter: ``good`` (lenet5's c1 as a Caffe conv), ``huge-dims`` (a blob declaring
    10^12 values), ``negative-dims`` (-1 x -6 over 6 values), ``overflow-dims`` (2^62 x 4, whose
    product wraps to 0), ``data-past-end`` (a data field longer than the file), ``many-layers``
    (``count`` empty layers)."""
    if kind == "good":
        body = _layer("c1", "Convolution", [_blob((6, 1, 5, 5), 150), _blob((6,), 6)])
    elif kind == "huge-dims":
        body = _layer("c1", "Convolution", [_blob((10**6, 10**6), 6)])
    elif kind == "negative-dims":
        body = _layer("c1", "Convolution", [_blob((-1, -6), 6)])
    elif kind == "overflow-dims":
        body = _layer("c1", "Convolution", [_blob((2**62, 4), 0)])
    elif kind == "data-past-end":
        body = _layer("c1", "Convolution", [_blob((6,), 6, data_length=2**31)])
    elif kind == "many-layers":
        return _field(1, b"n") + _field(100, _layer("", "ReLU", [])) * count
    else:
        raise ValueError(kind)
    data = _field(1, b"lenet") + _field(100, body)
    return data if truncate_to is None else data[:int(len(data) * truncate_to)]


# ---- images -----------------------------------------------------------------------------------
def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, kind, data and its CRC (also corpus.py's whole PNGs)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` over one row of data (a bomb, or 0x0)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"\0" + b"\x80" * (3 * max(width, 1))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(raw[:3 * 1000 + 1])) + png_chunk(b"IEND", b""))


def image(mode: str = "RGB", size: int = 12, fmt: str = "PNG", frames: int = 1,
          truncate_to: float | None = None) -> bytes:
    """A ``size`` x ``size`` picture in Pillow ``mode`` (CMYK, I;16, P, RGBA, 1, ...) saved as
    ``fmt``; ``frames`` > 1 makes an animation; cut to ``truncate_to`` of its bytes."""
    from PIL import Image

    pictures = [Image.linear_gradient("L").resize((size, size)).convert(mode)
                if mode not in ("I;16",) else
                Image.linear_gradient("L").resize((size, size)).convert("I").point(
                    lambda v: v * 257).convert("I;16") for _ in range(frames)]
    buf = io.BytesIO()
    extra = {"save_all": True, "append_images": pictures[1:]} if frames > 1 else {}
    pictures[0].save(buf, fmt, **extra)
    data = buf.getvalue()
    return data if truncate_to is None else data[:int(len(data) * truncate_to)]


MAKERS = {"safetensors": safetensors, "lenet5_weights": lenet5_weights,
          "pickle_code": pickle_code, "zip_bomb": zip_bomb, "torch_file": torch_file,
          "caffemodel": caffemodel, "png_header": png_header, "image": image,
          "spec_weights": spec_weights}

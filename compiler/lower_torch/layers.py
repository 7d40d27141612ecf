"""PyTorch modules for the ops torch has no single module for: asymmetric padding, transposed
convolution with a cropped output, crops, channel slices, channel shuffle, broadcasting joins.

The op registry (``compiler/ops/``) returns these from its ``to_torch`` faces; this module
imports torch at the top, so only the PyTorch lowering imports it. Modules with weights subclass
the torch module they extend (``nn.Conv2d``, ``nn.ConvTranspose2d``), so their state-dict keys
stay ``weight`` and ``bias``, the names the ONNX lowering and weight import use.

Padding tuples here are netc's (top, left, bottom, right); ``F.pad`` wants (left, right, top,
bottom), which :func:`_fpad` gives.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _fpad(pads: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    t, left, b, r = pads
    return (left, r, t, b)


class PaddedConv2d(nn.Conv2d):
    """A convolution whose padding differs between top/bottom or left/right: ``F.pad`` first
    (TensorFlow's ``SAME`` with an even kernel or a stride), then an unpadded conv."""

    def __init__(self, pads: tuple[int, int, int, int], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pads = tuple(pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, _fpad(self.pads)))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pads={self.pads}"


class CroppedConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution with asymmetric padding: the full (unpadded) output, then
    (top, left, bottom, right) rows and columns cut off, as ONNX ConvTranspose's ``pads``."""

    def __init__(self, pads: tuple[int, int, int, int], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pads = tuple(pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        t, left, b, r = self.pads
        return y[:, :, t:y.shape[2] - b, left:y.shape[3] - r]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pads={self.pads}"


class PaddedPool(nn.Module):
    """Max or average pooling with asymmetric padding, as ONNX MaxPool/AveragePool compute it.

    ``kind``: ``max`` (padding never wins: -inf), ``avg`` (padding counts as zeros in every
    window's divisor) or ``avg_valid`` (each window divides by its real pixels only: the
    windowed sum of the zero-padded input over the windowed sum of a padded ones mask).
    """

    def __init__(self, pads, kind: str, kernel, stride):
        super().__init__()
        self.pads, self.kind = tuple(pads), kind
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _fpad(self.pads)
        if self.kind == "max":
            return F.max_pool2d(F.pad(x, pads, value=float("-inf")), self.kernel, self.stride)
        y = F.avg_pool2d(F.pad(x, pads), self.kernel, self.stride)
        if self.kind == "avg":
            return y
        ones = F.pad(torch.ones_like(x[:1, :1]), pads)
        return y / F.avg_pool2d(ones, self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"{self.kind}, kernel={self.kernel}, stride={self.stride}, pads={self.pads}"


class Crop(nn.Module):
    """The first input cut to ``size`` from ``offsets`` along the dimensions from ``axis`` on
    (Caffe's Crop; the second input only gives the size, and is not read)."""

    def __init__(self, axis: int, offsets: tuple[int, ...], size: tuple[int, ...]):
        super().__init__()
        self.axis, self.offsets, self.size = axis, tuple(offsets), tuple(size)

    def forward(self, x: torch.Tensor, *_refs: torch.Tensor) -> torch.Tensor:
        for k, (o, n) in enumerate(zip(self.offsets, self.size)):
            x = x.narrow(self.axis + k, o, n)
        return x

    def extra_repr(self) -> str:
        return f"axis={self.axis}, offsets={self.offsets}, size={self.size}"


class FitConcat(nn.Module):
    """``concat(fit=crop|pad)``: each input cut or zero-padded by its (top, left, bottom,
    right), then concatenated along channels."""

    def __init__(self, how: str, offsets, size):
        super().__init__()
        self.how, self.offsets, self.size = how, [tuple(o) for o in offsets], tuple(size)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        fitted = []
        for x, (t, left, b, r) in zip(xs, self.offsets):
            if self.how == "crop":
                x = x[:, :, t:t + self.size[0], left:left + self.size[1]]
            elif (t, left, b, r) != (0, 0, 0, 0):
                x = F.pad(x, (left, r, t, b))
            fitted.append(x)
        return torch.cat(fitted, dim=1)

    def extra_repr(self) -> str:
        return f"fit={self.how}, size={self.size}"


class ResizeTo(nn.Module):
    """``resize[x, ref]``: ``x`` interpolated to ``size`` (``ref``'s, known when compiling)."""

    def __init__(self, size, mode: str, align_corners: bool):
        super().__init__()
        self.size, self.mode = tuple(size), mode
        self.align_corners = align_corners if mode == "bilinear" else None

    def forward(self, x: torch.Tensor, *_refs: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"size={self.size}, mode={self.mode}"


class Slice(nn.Module):
    """Indices ``start`` .. ``end`` − 1 along dimension ``axis`` (a channel split)."""

    def __init__(self, axis: int, start: int, end: int):
        super().__init__()
        self.axis, self.start, self.end = axis, start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.narrow(self.axis, self.start, self.end - self.start)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, start={self.start}, end={self.end}"


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (g, C/g) channel groups transposed to (C/g, g)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2)
        return x.reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class Broadcast(nn.Module):
    """An element-wise join (``add``, ``mul``, ``max``) whose inputs broadcast: a flat vector
    of C values acts as a C×1×1 map, and every other size-1 axis stretches (NumPy's rule)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        four = any(x.dim() == 4 for x in xs)
        xs = [x[:, :, None, None] if four and x.dim() == 2 else x for x in xs]
        out = xs[0]
        for x in xs[1:]:
            if self.kind == "add":
                out = out + x
            elif self.kind == "mul":
                out = out * x
            else:
                out = torch.maximum(out, x)
        return out

    def extra_repr(self) -> str:
        return self.kind

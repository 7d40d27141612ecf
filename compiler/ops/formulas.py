"""Formulas several ops and the Caffe importer share: window sizes, padding, the transposed
convolution's size, and weight initialisers. Written once here, so a shape netc infers and a
shape the importer computes for Caffe cannot drift apart.

- :func:`window_out`: (W + 2P − F)/S + 1, floored or in Caffe's and PyTorch's ceil mode;
- :func:`caffe_pool_size`: Caffe's pooling rule, which keeps a last window PyTorch drops;
- :func:`deconv_out`: a transposed convolution's output length;
- :func:`same_pads`, :func:`resolve_pads`: TensorFlow's ``SAME`` padding and a ``pad`` attribute
  as (top, left, bottom, right);
- :func:`kaiming_normal`, :func:`xavier_uniform`, :func:`fan_in_uniform`,
  :func:`bilinear_kernel`: the initialisers of the weight layers (He et al., Glorot and Bengio,
  torch's ``nn.Linear`` default, Caffe's ``bilinear`` filler).
"""

from __future__ import annotations

import math

import numpy as np


# ---- sliding windows ------------------------------------------------------------------------
def window_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1,
               ceil: bool = False) -> int:
    """Output length of a sliding window: (W + 2P − F)/S + 1, floored (or Caffe's ceil).

    ``F`` is the dilated extent d·(k−1)+1. In ceil mode a last window that would start inside
    the right padding is dropped, as Caffe and PyTorch both do.

    >>> window_out(5, 3, 2, 1)   # the lecture's example: W=5, P=1, F=3, S=2
    3
    """
    extent = dilation * (kernel - 1) + 1
    span = size + 2 * pad - extent
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def caffe_pool_size(size: int, kernel: int, stride: int, pad: int, ceil: bool = True) -> int:
    """Caffe's pooling output length (pooling_layer.cpp): ``ceil((H + 2P − K) / S) + 1``
    (``floor`` with ``ceil=false``), one less when ``P > 0`` and the last window would start at
    or past ``H + P``. Unlike :func:`window_out` it keeps, with pad 0, a last window that starts
    past the input.

    >>> caffe_pool_size(75, 3, 2, 2)   # the conformance case layer_pooling_max
    39
    """
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def deconv_out(size: int, kernel: int, stride: int, pad_total: int, dilation: int = 1,
               output_pad: int = 0) -> int:
    """Output length of a transposed convolution along one axis: (W − 1)·S − (P_before +
    P_after) + d·(F − 1) + output_pad + 1 (ONNX ConvTranspose's, torch's and Caffe's rule).

    >>> deconv_out(28, 2, 2, 0)        # U-Net's 2x2 up-convolution doubles the size
    56
    >>> deconv_out(7, 3, 2, 2, output_pad=1)   # the inverse of conv(3, stride=2, pad=1) on 14
    14
    """
    return (size - 1) * stride - pad_total + dilation * (kernel - 1) + output_pad + 1


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``SAME`` padding of one axis: (before, after).

    The output is ceil(W/S); the padding that needs, (out−1)·S + F − W (F the dilated extent),
    is split with the extra pixel after (bottom or right), as TensorFlow and Keras do.

    >>> same_pads(224, 3, 2), same_pads(225, 3, 2), same_pads(8, 2, 1)
    ((0, 1), (1, 1), (0, 1))
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_pads(pad, hw, kernel, stride, dilation=(1, 1)) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a window op's ``pad`` on an input of spatial size ``hw``.

    ``pad`` is an attribute as the ops keep it: ``(ph, pw)`` (symmetric), ``(t, l, b, r)``, or
    ``"same"`` (TensorFlow's rule, :func:`same_pads`, which depends on the input size).
    """
    if pad == "same":
        (t, b), (left, r) = (same_pads(n, k, s, d) for n, k, s, d in zip(hw, kernel, stride,
                                                                            dilation))
        return t, left, b, r
    if len(pad) == 2:
        return pad[0], pad[1], pad[0], pad[1]
    return tuple(pad)


# ---- initialisers ---------------------------------------------------------------------------
def xavier_uniform(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """Glorot and Bengio's uniform initialiser: U(−b, b), b = √(6 / (fan_in + fan_out))."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def kaiming_normal(rng: np.random.Generator, shape, fan: int) -> np.ndarray:
    """He et al.'s normal initialiser for ReLU nets: N(0, 2 / fan)."""
    return (rng.standard_normal(size=shape) * math.sqrt(2.0 / fan)).astype(np.float32)


def fan_in_uniform(rng: np.random.Generator, shape, fan_in: int) -> np.ndarray:
    """U(−b, b) with b = 1/√fan_in: torch's ``nn.Linear`` default (and its bias's)."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def bilinear_kernel(kh: int, kw: int) -> np.ndarray:
    """Caffe's ``bilinear`` filler (FCN's upsampling): (1 − |x/f − c|)·(1 − |y/f − c|) with
    f = ceil(k/2), c = (2f − 1 − f mod 2)/(2f), per axis."""
    def axis(k):
        f = math.ceil(k / 2)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        return 1 - np.abs(np.arange(k) / f - c)
    return np.outer(axis(kh), axis(kw)).astype(np.float32)

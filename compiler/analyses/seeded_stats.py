"""Batch-norm running statistics for seeded weights, computed analytically (no data, no torch).

A fresh batch norm's running statistics (mean 0, variance 1) make it the identity in eval mode,
so a seeded net in eval mode is its bare convolutions: under torchvision's own init (kaiming
``fan_out``) a depthwise 3x3 conv over C channels scales its input's variance by 2/C, and
MobileNet-V2's seeded logits come out near 5e-9; a pre-activation ResNet-1001, whose bodies end
in a conv, multiplies its activations by about 2 per block and overflows to NaN; DenseNet's
concatenations reach 3e7. In training mode every bn normalises, so none of this happens.

So the seeded initialiser gives each bn the statistics it would measure on standard-normal input
images: one pass over the graph carries each channel's mean and variance, under the usual
independence approximation (inputs of a weighted sum are independent; spatial positions too).
Each op declares its rule, the ``seeded_moments`` face of its registry entry
(:mod:`netc.compiler.ops`; the helpers are :mod:`netc.compiler.numerics.moments`); among them:

- conv/fc/deconv: mean = Σ w·μ + b, variance = Σ w²·σ² over the channels a weight reads (its
  actual drawn weights, per output channel);
- bn: running_mean, running_var := the incoming mean and variance; out: mean β, variance γ²;
- pointwise activations: the mean and variance of f(X), X ~ N(μ, σ²), by Gauss–Hermite
  quadrature on the op's numpy form;
- residual/add: sums (the body scaled by its survival, as in eval mode); mean join: the average
  of independent inputs; mul (squeeze-excitation gates): E[xy] = μx·μy, E[x²y²] = E[x²]·E[y²];
- max pool: the largest of its window's values taken as independent normals; concat: the
  channels side by side; shortcut_pad: zero channels appended; flatten: each channel's moments
  repeated over its positions; average pools and vanishing ops keep the moments;
- the other ops declare ``keep_moments``: the moments of their first input. Here, an op whose
  output has another channel count than those moments gets their average on every channel.

It is the data-free counterpart of ``NetModule.calibrate_batchnorm``: deterministic, cheap (one
matrix-vector product per conv), the same numbers for torch and ONNX, and it changes no
parameter, only buffers, so every torch↔ONNX Runtime comparison still sees every layer.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ir import Graph


class _NodeWeights:
    """The arrays of one node in the graph's weights, by local name (``weight`` for
    ``conv1.weight``); writing one writes the graph's."""

    def __init__(self, weights: dict[str, np.ndarray], node: str):
        self.weights, self.prefix = weights, node + "."

    def __getitem__(self, key: str) -> np.ndarray:
        return self.weights[self.prefix + key]

    def __setitem__(self, key: str, array: np.ndarray) -> None:
        self.weights[self.prefix + key] = array

    def get(self, key: str, default=None):
        return self.weights.get(self.prefix + key, default)


class BatchNormStatistics:
    """Every bn's running statistics set to the analytic moments of its input for
    standard-normal input images (see the module docstring), one node at a time, in graph
    order: the seeded initialiser feeds it each node as soon as that node's weights are drawn,
    so the statistics are computed while later nodes are still being drawn in other threads."""

    def __init__(self, graph: Graph):
        self.moments: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for node in graph.inputs:
            c = graph[node].shape[0]
            self.moments[node] = (np.zeros(c), np.ones(c))

    @classmethod
    def of(cls, graph: Graph) -> BatchNormStatistics | None:
        """The pass for ``graph``, or None when it has no running statistics to set."""
        if any(node.opdef.running_statistics for node in graph if node.op != "input"):
            return cls(graph)
        return None

    def add(self, node, weights: dict[str, np.ndarray]) -> None:
        """Carry the moments through ``node`` (its inputs already added), setting its running
        statistics in ``weights`` if it has any."""
        c = node.shape[0]
        ins = [self.moments[i] for i in node.inputs]
        mu, var = node.opdef.seeded_moments(node.attrs, ins, node.shape,
                                            _NodeWeights(weights, node.name))
        if len(mu) != c:  # an op that rearranges channels: their average, broadcast
            mu, var = np.full(c, mu.mean()), np.full(c, var.mean())
        self.moments[node.name] = (mu, var)

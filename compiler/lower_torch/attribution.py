"""Backward rules at ReLUs for attribution: saliency, deconvnet and guided backpropagation.

The three methods compute "the gradient" of one unit with respect to the image, and differ only
in what a ReLU does on the way back (Springenberg et al. 2015, Fig. 1). With ``x`` the ReLU's
forward input and ``g`` the signal arriving from above:

- ``saliency`` (Simonyan et al. 2014): ``g · [x > 0]``, the true gradient (the forward mask);
- ``deconvnet`` (Zeiler & Fergus 2014): ``max(g, 0)``, a ReLU of the signal, ignoring the
  forward sign;
- ``guided`` (guided backpropagation): ``max(g, 0) · [x > 0]``, both.

Everything else goes back by its ordinary gradient. That is what Zeiler and Fergus prescribe:
a max-pool's gradient routes the signal to the recorded argmax, their "switches"; a conv's
gradient is the convolution with the transposed filters. Other activations (tanh, sigmoid, ...)
keep their true gradient in all three methods.

The rule is applied where the network is built, not with hooks: :class:`NetModule` calls
:func:`relu` for every ``relu`` node while ``net.relu_rule`` is set (see :func:`backward_rule`),
so a ReLU written once in the spec and the module it lowers to cannot disagree.
"""

from __future__ import annotations

import contextlib

import torch

METHODS = ("saliency", "deconvnet", "guided")


class _RuleReLU(torch.autograd.Function):
    """max(x, 0) forward; the backward of one of :data:`METHODS`."""

    @staticmethod
    def forward(ctx, x, rule: str):
        ctx.rule = rule
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if ctx.rule == "deconvnet":
            return g.clamp_min(0), None
        if ctx.rule == "guided":
            return g.clamp_min(0) * (x > 0).to(g.dtype), None
        return g * (x > 0).to(g.dtype), None


def relu(x: torch.Tensor, rule: str) -> torch.Tensor:
    """A ReLU whose backward follows ``rule`` (one of :data:`METHODS`)."""
    return _RuleReLU.apply(x, rule)


@contextlib.contextmanager
def backward_rule(net, rule: str):
    """Within the block, every ReLU of ``net`` (a :class:`NetModule`) goes back by ``rule``.

    >>> with backward_rule(net, "guided"):          # doctest: +SKIP
    ...     net(x, taps=["conv5_3"])["conv5_3"][0, 7].max().backward()
    """
    if rule not in METHODS:
        raise ValueError(f"unknown attribution rule {rule!r}; expected one of {METHODS}")
    saved = net.relu_rule
    net.relu_rule = rule
    try:
        yield net
    finally:
        net.relu_rule = saved

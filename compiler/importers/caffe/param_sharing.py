"""Caffe's weight sharing by name: ``param { name: "conv1_w" }`` (V1: ``param: "conv1_w"``).

Caffe gives each of a layer's blobs (weights, bias) an optional name; two layers that name the
same blob learn one set of numbers (the MNIST siamese net's two towers). The rules:

1. A layer whose named blobs were all first named by one earlier layer *shares* that layer: it
   must be the same layer (the same netc call), and the written spec applies one ``share``
   block at both places (``share conv1_w = conv(20, 5, stride=1)``, then ``data -> conv1_w
   as conv1`` and ``data_p -> conv1_w as conv1_p``), so the weights exist once in netc too.
2. A layer that names blobs nobody named before owns them.
3. netc shares whole layers: a layer naming some blobs of one layer and some of another, or
   of one layer and new ones, or the same layer with other settings, is a located error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netc.compiler.importers.caffe.fields import Fields, error
from netc.compiler.importers.caffe.textformat import Message


@dataclass
class _Owner:
    """A layer that owns named blobs: its node, and the call its weights belong to."""

    node: object  # net.Node
    call: str
    caffe_name: str


@dataclass
class ParamSharing:
    """The named blobs of a net, as its layers are read (rules in the module docstring)."""

    owners: dict[str, _Owner] = field(default_factory=dict)  # blob name -> the layer owning it
    # The block name of each owner some layer shares, and every sharing layer's owner.
    blocks: dict[int, str] = field(default_factory=dict)  # owner node index -> share name
    calls: dict[str, str] = field(default_factory=dict)  # share name -> the call it binds

    def read(self, fields: Fields, node, caffe_name: str, make_name) -> None:
        """Record the blob names of the layer just read into ``node`` (rules 1-3); a sharing
        layer's weighted call (its last) becomes the shared block's name. ``make_name``
        makes a unique netc name from a Caffe blob name."""
        names = blob_names(fields)
        named = [(n, span) for n, span in names if n]
        if not named:
            return
        known = [self.owners.get(n) for n, _ in named]
        if not any(known):  # rule 2
            owner = _Owner(node, node.calls[-1], caffe_name)
            for n, _ in named:
                self.owners[n] = owner
            return
        first = known[0]
        if node.pending_scale or first.node.pending_scale:  # a Scale completes its call
            raise error(named[0][1], f"layer {caffe_name!r}: netc does not import a "
                                     "BatchNorm's blobs shared by name")
        if any(k is not first for k in known):  # rule 3
            raise error(named[0][1], f"layer {caffe_name!r} names blobs of several layers (or "
                                     "new ones beside shared ones); netc shares whole layers")
        if node.calls[-1] != first.call:
            raise error(named[0][1], f"layer {caffe_name!r} shares the blobs of "
                                     f"{first.caffe_name!r} but is another layer "
                                     f"({node.calls[-1]}, not {first.call}); netc shares "
                                     "whole layers")
        block = self.blocks.get(first.node.index)
        if block is None:
            block = self.blocks[first.node.index] = make_name(named[0][0])
            self.calls[block] = first.call
            first.node.calls[-1] = block
        node.calls[-1] = block


def blob_names(fields: Fields) -> list[tuple[str | None, object]]:
    """(name or None, span) of each ``param`` of a layer, in blob order."""
    out = []
    for f in fields.message.all("param"):
        if isinstance(f.value, Message):  # param { name: "conv1_w" lr_mult: 1 }
            inner = f.value.one("name")
            name = None if inner is None or isinstance(inner.value, Message) \
                else str(inner.value.value) or None
            out.append((name, inner.span if inner is not None else f.span))
        else:  # the V1 format: param: "conv1_w"
            out.append((str(f.value.value) or None, f.span))
    return out

#!/usr/bin/env bash
# Remakes the pictures of the README's "Seeing inside a network" section, with the commands the
# README shows (run from the repository root; about a minute on 2 CPU cores).
set -euo pipefail
netc() { python -m runtime.cli "$@"; }
out=docs/inside
tmp=$(mktemp -d)
weights=$tmp/lenet5.safetensors
netc draw fractalnet --depth 3 -o $out/fractalnet.svg
netc explain vgg16 astronaut --layer conv5_3 --method all --size 160 -o $out/explain_vgg16.png
netc train lenet5 --data digits --optimizer adam --lr 0.003 --epochs 8 -o "$weights" \
  --checkpoint "$tmp/lenet5.ckpt.pt" --no-progress
netc top-activations lenet5 --weights "$weights" --images digits --layer c3 --units 0-7 --k 8 \
  -o $out/top_c3.png
netc embed lenet5 --weights "$weights" --images digits:400 --layer output --tile 24 \
  -o $out/tsne_digits.png

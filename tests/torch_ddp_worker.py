"""Run by tests/test_train.py under torchrun: train the tiny net, save this rank's state dict.

Usage: torchrun --standalone --nproc_per_node 2 tests/torch_ddp_worker.py OUTDIR
"""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compiler.loader import load  # noqa: E402
from runtime.train import TrainConfig, train  # noqa: E402

out = Path(sys.argv[1])
torch.set_num_threads(1)
graph = load(str(Path(__file__).parent / "specs" / "torch_nets.net") + ":tiny")
cfg = TrainConfig(data="digits", epochs=2, batch_size=16, steps_per_epoch=4, lr=0.1, seed=3,
                  augment=True, checkpoint=str(out / "ckpt.pt"),
                  output=str(out / "final.safetensors"), progress=False)
result = train(graph, cfg, log=lambda line: None)
rank = os.environ["RANK"]
torch.save(result.module.state_dict(), out / f"rank{rank}.pt")

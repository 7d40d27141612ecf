"""Run by tests/test_train.py under torchrun: train a small net, save this rank's state dict.

Usage: torchrun --standalone --nproc_per_node 2 tests/torch_ddp_worker.py OUTDIR [NET [BATCH]]
(NET from tests/specs/torch_nets.net, default ``tiny``; BATCH per process, default 16).
"""

import os
import sys
from pathlib import Path

import torch

from netc.compiler.frontend.loader import load
from netc.runtime.train import TrainConfig, train

out = Path(sys.argv[1])
net = sys.argv[2] if len(sys.argv) > 2 else "tiny"
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 16
torch.set_num_threads(1)
graph = load(str(Path(__file__).parent / "specs" / "torch_nets.net") + ":" + net)
cfg = TrainConfig(data="digits", epochs=2, batch_size=batch, steps_per_epoch=4, lr=0.1, seed=3,
                  augment=net == "tiny", checkpoint=str(out / "ckpt.pt"),
                  output=str(out / "final.safetensors"), progress=False)
result = train(graph, cfg, log=lambda line: None)
rank = os.environ["RANK"]
torch.save(result.module.state_dict(), out / f"rank{rank}.pt")

"""How fast is the front end? Parse + elaborate big nets, and whole `netc` processes.

Compares, in one run: parsing and elaborating the 1,202-layer CIFAR ResNet, and a whole
`netc summary resnet50` process against a process that only runs `import torch` (what every
PyTorch-based tool pays before it starts). Writes its section of benchmarks/RESULTS.md.

    python benchmarks/elaborate.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from _results import machine, write_section

CIFAR_1202 = """
def basic(ch, stride=1) =
  residual(conv(ch, 3, stride=stride, pad=1, bias=false) -> bn -> relu
           -> conv(ch, 3, pad=1, bias=false) -> bn, shortcut=pad) -> relu
net cifar_resnet(n=200) {
  input image: 3x32x32
  image -> conv(16, 3, pad=1, bias=false) -> bn -> relu
        -> basic(16) * n -> basic(32, stride=2) -> basic(32) * (n - 1)
        -> basic(64, stride=2) -> basic(64) * (n - 1) -> gap -> flatten -> fc(10)
}
"""


def best_of(fn, repeat=7) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def process(argv) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    from compiler.elaborate import Elaborator
    from compiler.loader import load
    from dsl import ast
    from dsl.parser import parse

    def front_end():
        module = parse(CIFAR_1202, "<bench>")
        net = [i for i in module.items if isinstance(i, ast.Net)][0]
        defs = {d.name: d for d in module.items if isinstance(d, ast.Definition)}
        return Elaborator(defs).net(net)

    graph = front_end()
    fe_best, fe_med = best_of(front_end)
    fractal_best, _ = best_of(lambda: load("fractalnet"))
    py = sys.executable
    netc = [process([py, "-m", "runtime.cli", "summary", "resnet50"]) for _ in range(5)]
    torch = [process([py, "-c", "import torch"]) for _ in range(5)]
    ratio = statistics.median(torch) / statistics.median(netc)
    text = f"""## Front end: parsing and elaboration (`benchmarks/elaborate.py`)

Machine: {machine()}.

| what | time |
|---|---|
| parse + elaborate the 1,202-layer CIFAR ResNet ({len(graph):,} nodes) | best {fe_best * 1e3:.0f} ms, median {fe_med * 1e3:.0f} ms |
| load `fractalnet` (B=5, C=4, 40 layers deep) | best {fractal_best * 1e3:.0f} ms |
| whole process `netc summary resnet50` | median {statistics.median(netc) * 1e3:.0f} ms |
| whole process `python -c "import torch"` | median {statistics.median(torch) * 1e3:.0f} ms |

A whole `netc summary` process takes {1 / ratio:.2f}× the time of merely importing torch.
"""
    print(text)
    write_section("elaborate", text)


if __name__ == "__main__":
    main()

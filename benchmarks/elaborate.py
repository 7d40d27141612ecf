"""How fast is the front end? Parse + elaborate big nets, and whole `netc` processes.

Compares, in one run: parsing and elaborating the 1,202-layer CIFAR ResNet, and a whole
`netc summary resnet50` process against a process that only runs `import torch` (what every
PyTorch-based tool pays before it starts). Writes its section of benchmarks/RESULTS.md.

``--linear`` measures instead whether the front end is linear in the nodes it makes (issue
10): time per node at 1k, 10k and 100k nodes for a chain, a repeated label and residual blocks
with projection shortcuts, sizes alternating turn by turn, in-process at Python's default
recursion limit. It writes the ``elaborate-linear`` section.

    python benchmarks/elaborate.py
    python benchmarks/elaborate.py --linear
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
    from netc.compiler.frontend.elaborate import Elaborator
    from netc.compiler.frontend.loader import load
    from netc.dsl import ast
    from netc.dsl.parser import parse

    def front_end():
        module = parse(CIFAR_1202, "<bench>")
        net = [i for i in module.items if isinstance(i, ast.Net)][0]
        defs = {d.name: d for d in module.items if isinstance(d, ast.Definition)}
        return Elaborator(defs).net(net)

    graph = front_end()
    fe_best, fe_med = best_of(front_end)
    fractal_best, _ = best_of(lambda: load("fractalnet"))
    py = sys.executable
    netc = [process([py, "-m", "netc.runtime.cli", "summary", "resnet50"]) for _ in range(5)]
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


SHAPES = {
    # name: (body for n nodes, nodes it makes besides the input)
    "chain `image -> relu -> relu ...`": (lambda n: "image" + " -> relu" * n, lambda n: n),
    "repeated label `(relu as r) * n`": (lambda n: f"image -> (relu as r) * {n}", lambda n: n),
    "residual blocks, `shortcut=conv`": (
        lambda n: f"image -> conv(8, 3, pad=1) -> residual(conv(8, 3, pad=1) -> bn, "
                  f"shortcut=conv) * {(n - 1) // 5}", lambda n: 1 + 5 * ((n - 1) // 5)),
}
SIZES = (1_000, 10_000, 100_000)


def linear(repeat: int = 3) -> None:
    from netc.compiler.frontend.elaborate import Elaborator
    from netc.compiler.frontend.loader import run_deep
    from netc.dsl import ast
    from netc.dsl.parser import parse

    sys.setrecursionlimit(1000)  # Python's default: nothing may depend on a raised limit
    parse_t: dict[tuple, list[float]] = {}
    elab_t: dict[tuple, list[float]] = {}
    made: dict[tuple, int] = {}
    for _ in range(repeat):
        for shape, (body, _count) in SHAPES.items():
            for n in SIZES:  # sizes alternate turn by turn, so load drift hits them all alike
                text = "net n {\n  input image: 3x8x8\n  " + body(n) + "\n}\n"
                t = time.perf_counter()
                module = parse(text, "<bench>")
                t_parse = time.perf_counter() - t
                net = next(i for i in module.items if isinstance(i, ast.Net))
                t = time.perf_counter()
                graph = run_deep(lambda: Elaborator({}, max_nodes=200_000).net(net))
                t_elab = time.perf_counter() - t
                parse_t.setdefault((shape, n), []).append(t_parse)
                elab_t.setdefault((shape, n), []).append(t_elab)
                made[(shape, n)] = len(graph) - 1
    rows = []
    for shape in SHAPES:
        per_node = {}
        for n in SIZES:
            k = made[(shape, n)]
            p, e = min(parse_t[(shape, n)]), min(elab_t[(shape, n)])
            per_node[n] = (p + e) / k
            rows.append(f"| {shape} | {k:,} | {p * 1e6 / k:.1f} | {e * 1e6 / k:.1f} | "
                        f"{(p + e) * 1e6 / k:.1f} |")
        ratio = per_node[SIZES[-1]] / per_node[SIZES[0]]
        rows.append(f"| {shape}: per-node time at {SIZES[-1]:,} / at {SIZES[0]:,} | | | | "
                    f"**{ratio:.2f}x** |")
    table = "\n".join(rows)
    text = f"""## Front end: linear in the nodes it makes (`benchmarks/elaborate.py --linear`)

Machine: {machine()}, shared with other jobs (timings are noisy: each number is the best of
{repeat} turns, the sizes alternating turn by turn). Parse and elaborate, in-process, at
Python's default recursion limit of 1,000. A per-node ratio near 1 between 1k and 100k nodes
is linear; a quadratic cost would make it ~100x (issue 10 measured 33 s for 10k repeated
labels and 58 s for 8k residual blocks before).

| net | nodes | parse µs/node | elaborate µs/node | total µs/node |
|---|---|---|---|---|
{table}
"""
    print(text)
    write_section("elaborate-linear", text)


if __name__ == "__main__":
    if "--linear" in sys.argv:
        linear()
    else:
        main()

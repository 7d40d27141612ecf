"""The README's figures that depend on a seed or a split, each over many, as mean ± sd.

Every figure here is what a ``netc`` command prints; this script runs those commands (as a
user would, in subprocesses), repeats them over seeds or splits where the command cannot, and
writes the "Figures over seeds and splits" section of RESULTS.md with each command beside its
figure. The README quotes these sections' numbers.

    python benchmarks/figures.py                 # the figures as the README states them
    python benchmarks/figures.py --quick         # a small run (what tests/test_figures.py does)

What varies: the eigenfaces face space is refitted on random 80/20 splits of lfw_subset's 100
faces (``netc eigenfaces detect --splits N``); identification draws the probes' shifts and
noise from each seed (``--seeds N``); t-SNE and random weights draw from ``--seed``; a trained
LeNet-5's figures vary with the training seed (``netc train --seed S``), so those are given over
training seeds, each with its own t-SNE seed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402

from netc.runtime.progress import mean_sd  # noqa: E402

TRAIN = "netc train lenet5 --data digits --optimizer adam --lr 0.003 --epochs 8 --seed {s} -o {w}"
PROBE_LAYERS = "image,c1_tanh,s2,c3_tanh,s4,c5_tanh,f6_tanh,output"
WIDE_LAYERS = "c1_tanh,s2,f6_tanh"


def netc(command: str) -> str:
    """Run one netc command line (as the README writes it) and return what it printed."""
    args = command.split()
    assert args[0] == "netc"
    done = subprocess.run([sys.executable, "-m", "netc.runtime.cli", *args[1:]],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{command} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def row(rows: list[str], line: str) -> None:
    """Add a table row, and show it at once: the whole run takes a while."""
    rows.append(line)
    print(line, flush=True)


def grab(pattern: str, text: str) -> str:
    m = re.search(pattern, text, re.M)
    if not m:
        raise SystemExit(f"no {pattern!r} in:\n{text}")
    return m.group(1)


def eigenfaces(splits: int, minor_splits: int, seeds: int, quick: bool) -> list[str]:
    rows = ["| figure | fixed split (fit 0–79, test 80–99) | over splits or seeds | command |",
            "|---|---|---|---|"]
    configs = [("AUC, k=5, unitnorm", "", splits),
               ("AUC, k=5, raw pixels", " --set normalize=false", splits),
               ("AUC, k=10, unitnorm", " --set k=10", minor_splits),
               ("AUC, k=20, unitnorm", " --set k=20", minor_splits)]
    for label, sets, n in configs[:1] if quick else configs:
        cmd = f"netc eigenfaces detect --splits {n}{sets}"
        out = netc(cmd)
        fixed = grab(r"ROC AUC (\S+) \(the fixed split", out)
        spread = grab(r"ROC AUC (\S+ ± \S+) \(mean", out)
        row(rows, f"| {label} | {fixed} | {spread} ({n} splits) | `{cmd}` |")
    cmd = f"netc eigenfaces identify --set k=20 --set normalize=false --seeds {seeds}"
    out = netc(cmd)
    fixed = netc(cmd.replace(f"--seeds {seeds}", "--seeds 1"))
    code = grab(r"code names (\S+ ± \S+)%", out)
    raw = grab(r"raw image (\S+ ± \S+)%", out)
    code0, raw0 = grab(r"code names (\S+)%", fixed), grab(r"raw image (\S+)%", fixed)
    row(rows, f"| identification, nearest code | {code0}% (seed 0) | {code}% ({seeds} seeds) "
                f"| `{cmd}` |")
    row(rows, f"| identification, nearest raw image | {raw0}% (seed 0) | {raw}% ({seeds} "
                "seeds) | same |")
    return rows


def lenet(train_seeds: int, tsne_seeds: int, folder: Path, digits: int) -> list[str]:
    weights = []
    for s in range(train_seeds):
        w = folder / f"lenet5_seed{s}.safetensors"
        netc(TRAIN.format(s=s, w=w))
        weights.append(w)
    rows = ["| figure | over seeds | commands |", "|---|---|---|"]
    for layer, n in (("output", digits), ("f6", digits + 100))[:1 if not weights else 2]:
        cmd = f"netc embed lenet5 --images digits:{n} --layer {layer} --seeds {tsne_seeds}"
        out = netc(cmd + f" -o {folder / 'r.png'}")
        spread = grab(r"over seeds [^:]+: ([\d.]+ ± [\d.]+)", out)
        row(rows, f"| t-SNE 5-NN, random weights, {layer}, {n} digits | {spread} "
                    f"({tsne_seeds} seeds of weights and t-SNE) | `{cmd}` |")
        if not weights:
            continue
        accs = []
        for s, w in enumerate(weights):
            out = netc(f"netc embed lenet5 --weights {w} --images digits:{n} --layer {layer} "
                       f"--seed {s} -o {folder / 't.png'}")
            accs.append(grab(r"5-NN accuracy of the 2-D points (\S+)", out).rstrip(";"))
        row(rows, f"| t-SNE 5-NN, trained, {layer}, {n} digits | {mean_sd(accs)} "
                    f"({train_seeds} training seeds, t-SNE seed = training seed) | "
                    f"`{TRAIN.format(s='S', w='w.safetensors')}`, then `netc embed lenet5 "
                    f"--weights w.safetensors --images digits:{n} --layer {layer} --seed S` |")
    if not weights:
        return rows
    probes = _probes(weights, f"--layers {PROBE_LAYERS} --features 64")
    row(rows, f"| linear probes, held-out %, 64 features | {probes} ({train_seeds} training "
              f"seeds) | `netc probe lenet5 --weights w.safetensors --layers {PROBE_LAYERS} "
              "--features 64` |")
    probes = _probes(weights, f"--layers {WIDE_LAYERS}")
    row(rows, f"| linear probes, held-out %, full width | {probes} ({train_seeds} training "
              f"seeds) | `netc probe lenet5 --weights w.safetensors --layers {WIDE_LAYERS}` |")
    untrained = []
    for s in range(tsne_seeds):
        out = netc(f"netc probe lenet5 --layers output --features 64 --seed {s}")
        untrained.append(float(grab(PROBE_ROW.replace(r"^(\S+)", "^output"), out)))
    row(rows, f"| linear probe, untrained net's output, held-out % | "
              f"{mean_sd(untrained, digits=1)} ({tsne_seeds} seeds of the random weights) | "
              f"`netc probe lenet5 --layers output --features 64 --seed S` |")
    return rows


PROBE_ROW = r"^(\S+)\s+[\d,]+\s+\S+\s+\S+%\s+(\S+)%$"  # layer, features, λ, train, held-out


def _probes(weights: list[Path], flags: str) -> str:
    """Each layer's held-out probe accuracy over the trained nets, as mean ± sd."""
    per_layer: dict[str, list[float]] = {}
    for w in weights:
        for m in re.finditer(PROBE_ROW, netc(f"netc probe lenet5 --weights {w} {flags}"), re.M):
            per_layer.setdefault(m.group(1), []).append(float(m.group(2)))
    return ", ".join(f"{k} {mean_sd(v, digits=1)}" for k, v in per_layer.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", type=int, default=500)
    ap.add_argument("--minor-splits", type=int, default=100,
                    help="splits for the AUC at k=10 and k=20")
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--train-seeds", type=int, default=3)
    ap.add_argument("--tsne-seeds", type=int, default=5)
    ap.add_argument("--quick", action="store_true",
                    help="a small run that checks the commands, writing nothing")
    ap.add_argument("--part", choices=["eigenfaces", "lenet", "all"], default="all",
                    help="measure one part (each writes its own section)")
    args = ap.parse_args()
    if args.quick:
        args.splits, args.seeds, args.train_seeds, args.tsne_seeds = 2, 2, 0, 2
    command = " ".join(["python benchmarks/figures.py", *sys.argv[1:]])
    if args.part in ("eigenfaces", "all"):
        rows = eigenfaces(args.splits, args.minor_splits, args.seeds, args.quick)
        if not args.quick:
            write_section("figures-eigenfaces", _section("eigenfaces on lfw_subset", command,
                                                         rows))
    if args.part in ("lenet", "all"):
        with tempfile.TemporaryDirectory() as tmp:
            rows = lenet(args.train_seeds, args.tsne_seeds, Path(tmp), 60 if args.quick else 500)
        if not args.quick:
            write_section("figures-lenet", _section("LeNet-5 on digits: t-SNE and probes",
                                                    command, rows))


def _section(title: str, command: str, rows: list[str]) -> str:
    text = "\n".join(rows)
    return f"""## Figures over seeds and splits: {title} (`benchmarks/figures.py`)

`{command}` on {machine()}: mean ± sample sd. Each row's command prints its own figure.

{text}"""


if __name__ == "__main__":
    main()

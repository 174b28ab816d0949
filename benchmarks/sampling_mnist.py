"""Samples of the CAE chain on MNIST, scored: the measurement behind docs/sampling.md.

Trains (unless ``--reuse``) three runs with ``contractive train`` on MNIST, 20 epochs each,
one sigmoid layer of 1000 units unless said: ``cae1`` (lambda 1), ``cae2`` (two greedy CAE
layers of 1000, lambda 1) and ``ae1`` (lambda 0). Then scores their samples with
``contractive sample RUN --out RUN/sampling --parzen`` (10000 samples, one per chain after
100 steps) and variants: CAE-1 and CAE-2 with ``--guard``, and CAE-1's chain as it was before
(100 chains, the last 100 of 200 steps). Writes ``OUT/sampling.md`` and
``OUT/sampling.json`` and exits with status 1 if CAE-1's score is below 121 (the stacked CAE
of the GAN paper's Table 1) or its chains visit fewer than 5 classes in 1000 steps.

Usage (training about 25 min; scoring 7-9 min a CAE-1 row, about 35 min the CAE-2 row, on
2 cores)::

    .venv/bin/python benchmarks/sampling_mnist.py --data-dir ../shared/data/mnist \\
        --out runs/s [--reuse]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from contractive.cli import main as cli

TRAIN = {
    "cae1": ["--hidden", "1000", "--contraction", "1"],
    "cae2": ["--hidden", "1000,1000", "--greedy", "--contraction", "1"],
    "ae1": ["--hidden", "1000", "--contraction", "0"],
}
#: Row name, run, output folder under the run's root, extra ``contractive sample`` options.
ROWS = (
    ("CAE-1 (the default chain)", "cae1", "cae1/sampling", []),
    ("CAE-1, --guard", "cae1", "cae1_guard", ["--guard"]),
    ("CAE-2, --guard", "cae2", "cae2/sampling", ["--guard"]),
    (
        "CAE-1, the chain before (100 chains, the last 100 of 200 steps)",
        "cae1",
        "cae1_before",
        ["--per-chain", "100", "--burn-in", "101", "--every", "1"],
    ),
    ("AE (lambda = 0)", "ae1", "ae1/sampling", []),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reuse", action="store_true", help="use runs trained by a former call")
    args = parser.parse_args()
    root = args.out
    common = ["--data", "mnist", "--data-dir", args.data_dir, "--epochs", "20", "--quiet"]
    for name, options in TRAIN.items():
        if not (args.reuse and (root / name / "model.safetensors").is_file()):
            status = cli(["train", *common, "--out", str(root / name), "--overwrite", *options])
            if status:
                return status
    table, rows = [], {}
    for label, run, folder, options in ROWS:
        out = root / folder
        if not (args.reuse and (out / "sampling.json").is_file()):
            t0 = time.perf_counter()
            argv = ["sample", str(root / run), "--out", str(out), "--parzen"]
            status = cli([*argv, "--data-dir", args.data_dir, *options])
            if status:
                return status
            print(f"{label}: {time.perf_counter() - t0:.0f} s")
        meta = json.loads((out / "sampling.json").read_text())
        rows[label] = meta
        model, mix = meta["parzen"]["model"], meta["mixing"]
        table.append(
            f"| {label} | {model['log_likelihood']:.1f} ± {model['standard_error']:.1f} | "
            f"{model['sigma']:.3g} | {100 * meta['guard']['refused_fraction']:.1f} % | "
            f"{mix['classes_visited']:.2f} | {100 * mix['left_start_class']:.0f} % |"
        )
    first = rows[ROWS[0][0]]["parzen"]
    for ref in ("training images", "noise around training images"):
        r = first[ref]
        table.append(
            f"| {ref} | {r['log_likelihood']:.1f} ± {r['standard_error']:.1f} | "
            f"{r['sigma']:.3g} | | | |"
        )
    head = (
        "| samples (10000) | Parzen log-likelihood | window σ | steps refused | classes "
        "visited in 1000 steps | chains that left their class |\n|---|---|---|---|---|---|"
    )
    text = head + "\n" + "\n".join(table) + "\n"
    (root / "sampling.md").write_text(text)
    (root / "sampling.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text)
    cae = rows[ROWS[0][0]]
    ok = cae["parzen"]["model"]["log_likelihood"] >= 121 and cae["mixing"]["classes_visited"] >= 5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

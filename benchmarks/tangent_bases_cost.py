"""Cost and precision of the two tangent-basis methods on a trained MNIST CAE.

Computes the k leading right singular vectors of J_f(x) at ``--n`` MNIST test images with
``method="svd"`` (full Jacobian and SVD per point: the reference) and ``method="subspace"``
at several iteration counts, and prints for each the seconds per 1000 points and the sine of
the largest principal angle to the SVD's subspace (median and 99th percentile over points).

Usage::

    .venv/bin/python benchmarks/tangent_bases_cost.py RUN --data-dir ../shared/data/mnist \\
        [--n 200] [--k 15] [--iterations 2,4,8,16] [--oversample 10]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from contractive.data import load_dataset
from contractive.runs import load_run
from contractive.tangents import subspace_angle, tangent_bases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--iterations", default="2,4,8,16")
    parser.add_argument("--oversample", default="10", help="comma-separated extra directions")
    args = parser.parse_args()
    run = load_run(args.run)
    X = run.prepare(load_dataset("mnist", split="test", data_dir=args.data_dir).X[: args.n])
    t0 = time.perf_counter()
    exact = tangent_bases(run.model, X, args.k, method="svd")
    per_1000 = 1000 * (time.perf_counter() - t0) / args.n
    print(
        f"svd: {per_1000:.1f} s per 1000 points; singular values at point 0: "
        + " ".join(f"{v:.3g}" for v in exact.values[0])
    )
    pairs = [
        (int(q), int(p)) for p in args.oversample.split(",") for q in args.iterations.split(",")
    ]
    for q, p in pairs:
        t0 = time.perf_counter()
        fast = tangent_bases(run.model, X, args.k, iterations=q, oversample=p)
        per_1000 = 1000 * (time.perf_counter() - t0) / args.n
        sines = subspace_angle(fast.vectors, exact.vectors)
        print(
            f"subspace, {q:>2} iterations, oversample {p:>2}: {per_1000:.1f} s per 1000 points; "
            "sine of the "
            f"largest angle to the SVD's subspace: median {np.median(sines):.2g}, "
            f"99th percentile {np.percentile(sines, 99):.2g}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

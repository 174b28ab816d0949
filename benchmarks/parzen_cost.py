"""Cost of the Parzen-window estimator at the protocol's sizes: time and peak memory.

10000 samples, 10000 validation and 10000 test points of 784 values (random, in [0, 1]: the
cost does not depend on the values), scored by :func:`contractive.parzen.parzen_log_likelihood`
with its 10 window widths. Prints the wall time and the process's peak resident memory, and
exits with status 1 if the peak exceeds ``--max-gb`` (2 GB, the target of issue 17).

Usage::

    .venv/bin/python benchmarks/parzen_cost.py [--n 10000] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from contractive.parzen import parzen_log_likelihood


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="samples, and points of each set")
    parser.add_argument("--d", type=int, default=784, help="values a point")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--max-gb", type=float, default=2.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    samples, X_val, X_test = (rng.random((args.n, args.d), dtype=np.float32) for _ in range(3))
    t0 = time.perf_counter()
    result = parzen_log_likelihood(samples, X_test, X_val=X_val, batch_size=args.batch_size)
    seconds = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(
        f"{args.n} samples x {args.n} validation + {args.n} test points x {args.d}: "
        f"{seconds:.1f} s, peak resident memory {peak_gb:.2f} GB "
        f"(log-likelihood {result.log_likelihood:.1f}, sigma {result.sigma:.3g})"
    )
    return 0 if peak_gb <= args.max_gb else 1


if __name__ == "__main__":
    sys.exit(main())

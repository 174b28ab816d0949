"""Cost of the tangent propagation penalty against a plain fine-tuning step.

One SGD step of a 784-1000-1000-10 sigmoid MLP on a batch of 64 random MNIST-sized inputs:
cross-entropy alone, then cross-entropy plus
:func:`contractive.tangent_prop.tangent_propagation_penalty` with k = 5, 15 and 30 tangents a
sample, exactly and estimated from ``--projections`` random-sign combinations. Prints the
median time of each over ``--repeats`` steps and its ratio to the plain step.

Usage::

    .venv/bin/python benchmarks/tangent_prop_cost.py [--batch-size 64] [--repeats 20] \
        [--k 5,15,30] [--projections 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

from contractive.tangent_prop import tangent_propagation_penalty


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--k", default="5,15,30", help="tangents a sample, comma-separated")
    parser.add_argument("--projections", default="1", help="random projections, comma-separated")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(784, 1000),
        nn.Sigmoid(),
        nn.Linear(1000, 1000),
        nn.Sigmoid(),
        nn.Linear(1000, 10),
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.rand(args.batch_size, 784)
    y = torch.randint(0, 10, (args.batch_size,))

    def step(tangents: torch.Tensor | None, projections: int | None = None) -> float:
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        if tangents is not None:
            penalty = tangent_propagation_penalty(net, x, tangents, projections=projections)
            loss = loss + 0.1 * penalty.mean()
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    def median(tangents: torch.Tensor | None, projections: int | None = None) -> float:
        step(tangents, projections)  # warm-up
        return statistics.median(step(tangents, projections) for _ in range(args.repeats))

    plain = median(None)
    print(f"threads {torch.get_num_threads()}, batch {args.batch_size}")
    print(f"plain step: {1000 * plain:.1f} ms")
    for k in (int(v) for v in args.k.split(",")):
        u = torch.randn(args.batch_size, k, 784)
        t = median(u)
        print(f"k = {k:>2}: {1000 * t:.1f} ms ({t / plain:.1f} x the plain step)")
        for m in (int(v) for v in args.projections.split(",")):
            t = median(u, m)
            print(f"k = {k:>2}, {m} projection(s): {1000 * t:.1f} ms ({t / plain:.1f} x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

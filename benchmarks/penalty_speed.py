"""Time one full training step (forward, backward, optimizer) per Jacobian-penalty method.

Compares, on the same shapes, the plain autoencoder, contractive's methods (through
``encode_with_penalty``, as training uses them) and the ways other CAE code computes the
penalty:

- ``materialised``: build the (batch, hidden, input) Jacobian tensor ``diag(s') W`` and sum
  its squares (the Theano deep-learning tutorial's ``cA.py``);
- ``vmap(jacrev)``: ``torch.func.vmap(torch.func.jacrev(encoder))``, then sum of squares;
- ``autograd loop``: one ``torch.autograd.grad`` per hidden unit, with ``create_graph``.

The methods are timed in rounds; within a round each method runs ``--steps`` steps, in an
order that alternates from round to round, so that drift (thermal, other load) hits all of
them alike. The median over rounds is reported, with its ratio to the plain autoencoder.

Usage::

    python benchmarks/penalty_speed.py                 # all cases, CPU
    python benchmarks/penalty_speed.py --device cuda   # on a GPU
    python benchmarks/penalty_speed.py --case mlp --rounds 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from contractive import encode_with_penalty
from contractive.losses import bce_loss
from contractive.nn import Autoencoder, conv_autoencoder, mlp_autoencoder

Step = Callable[[], None]


@dataclass
class Case:
    name: str
    description: str
    make_model: Callable[[], Autoencoder]
    input_shape: tuple[int, ...]
    batch: int
    methods: list[str]
    note: str = ""


def _materialised(model: Autoencoder, x: Tensor) -> tuple[Tensor, Tensor]:
    lin, act = model.encoder[0], model.encoder[1]
    h = act(lin(x))  # (B, d_h)
    s = h * (1 - h)
    jac = s[:, :, None] * lin.weight[None, :, :]  # (B, d_h, d_x): the whole Jacobian
    return h, jac.pow(2).sum(dim=(1, 2))


def _vmap_jacrev(model: Autoencoder, x: Tensor) -> tuple[Tensor, Tensor]:
    from torch.func import jacrev, vmap

    enc = model.encoder
    jac = vmap(jacrev(lambda xi: enc(xi.unsqueeze(0)).squeeze(0)))(x)
    return enc(x), jac.pow(2).flatten(1).sum(dim=1)


def _autograd_loop(model: Autoencoder, x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    h = model.encoder(x)
    flat = h.flatten(1)
    total = x.new_zeros(x.shape[0])
    for j in range(flat.shape[1]):  # one backward per hidden unit: row j of every J
        (g,) = torch.autograd.grad(flat[:, j].sum(), x, create_graph=True)
        total = total + g.pow(2).flatten(1).sum(dim=1)
    return h, total


def _make_step(model: Autoencoder, x: Tensor, method: str, lam: float = 0.1) -> Step:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def encode() -> tuple[Tensor, Tensor | None]:
        enc_in = model.prepare(x)
        if method == "plain":
            return model.encoder(enc_in), None
        if method.startswith("hutchinson"):
            probes = int(method.split("-")[1])
            return encode_with_penalty(model.encoder, enc_in, method="hutchinson", probes=probes)
        if method == "materialised":
            return _materialised(model, enc_in)
        if method == "vmap(jacrev)":
            return _vmap_jacrev(model, enc_in)
        if method == "autograd loop":
            return _autograd_loop(model, enc_in)
        return encode_with_penalty(model.encoder, enc_in, method=method)

    def step() -> None:
        h, pen = encode()
        out = model.reconstruct(h, x)
        loss = bce_loss(out.logits, x).mean()
        if pen is not None:
            loss = loss + lam * pen.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


CASES = {
    "mlp": Case(
        "mlp",
        "784-1000 sigmoid MLP, tied, batch 128",
        lambda: mlp_autoencoder([784, 1000]),
        (784,),
        128,
        [
            "plain",
            "analytic",
            "hutchinson-1",
            "hutchinson-4",
            "materialised",
            "exact",
            "vmap(jacrev)",
        ],
    ),
    "conv1": Case(
        "conv1",
        "Conv2d 1->32, 5x5, stride 2, padding 2, sigmoid, tied, 28x28, batch 128",
        lambda: conv_autoencoder((1, 28, 28), [32]),
        (784,),
        128,
        ["plain", "analytic", "hutchinson-1", "hutchinson-4"],
    ),
    "conv2": Case(
        "conv2",
        "2-layer conv encoder 1->32->64, 5x5, stride 2, padding 2, sigmoid, 28x28, batch 128",
        lambda: conv_autoencoder((1, 28, 28), [32, 64]),
        (784,),
        128,
        ["plain", "layerwise", "hutchinson-1", "hutchinson-4", "exact"],
    ),
    "deep": Case(
        "deep",
        "3-layer MLP 784-1000-500-100 sigmoid, tied, batch 128",
        lambda: mlp_autoencoder([784, 1000, 500, 100]),
        (784,),
        128,
        ["plain", "layerwise", "hutchinson-1", "hutchinson-4", "exact", "vmap(jacrev)"],
    ),
    "loop": Case(
        "loop",
        "784-100 sigmoid MLP, batch 32 (smaller: the autograd loop is too slow at 784-1000)",
        lambda: mlp_autoencoder([784, 100]),
        (784,),
        32,
        ["plain", "analytic", "autograd loop"],
    ),
}


def time_case(
    case: Case, rounds: int, steps: int, device: torch.device, slow_rounds: int
) -> dict[str, list[float]]:
    torch.manual_seed(0)
    x = torch.rand(case.batch, *case.input_shape, device=device)
    stepper: dict[str, Step] = {}
    for method in case.methods:
        torch.manual_seed(0)
        model = case.make_model().to(device)
        stepper[method] = _make_step(model, x, method)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    slow = {"exact", "vmap(jacrev)", "materialised", "autograd loop"}
    for method, fn in stepper.items():  # warm-up: allocator, kernels, lazy imports
        for _ in range(2 if slow_rounds or method not in slow else 0):
            fn()
    sync()
    times: dict[str, list[float]] = {m: [] for m in case.methods}
    for r in range(rounds):
        order = case.methods if r % 2 == 0 else list(reversed(case.methods))
        for method in order:
            if method in slow and r >= slow_rounds:
                continue
            n = 1 if method in slow else steps
            sync()
            t0 = time.perf_counter()
            for _ in range(n):
                stepper[method]()
            sync()
            times[method].append((time.perf_counter() - t0) / n)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=21, help="timing rounds (median is kept)")
    parser.add_argument("--steps", type=int, default=5, help="steps per method per round")
    parser.add_argument(
        "--slow-rounds", type=int, default=3, help="rounds for the slow baselines (0: skip them)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {machine}")
    print(
        f"{args.rounds} rounds x {args.steps} steps "
        f"(slow baselines: {args.slow_rounds} x 1), median ms/step\n"
    )
    results = []
    cases = CASES.values() if args.case == "all" else [CASES[args.case]]
    for case in cases:
        times = time_case(case, args.rounds, args.steps, device, args.slow_rounds)
        base = statistics.median(times["plain"])
        print(f"## {case.name}: {case.description}")
        print("| method | ms/step | x plain |\n|---|---:|---:|")
        for method in case.methods:
            if not times[method]:  # a slow baseline skipped with --slow-rounds 0
                continue
            med = statistics.median(times[method])
            if len(times[method]) == len(times["plain"]):
                # Paired within each round, then the median: drift between rounds cancels.
                ratio = statistics.median(
                    t / p for t, p in zip(times[method], times["plain"], strict=True)
                )
            else:
                ratio = med / base
            print(f"| {method} | {med * 1e3:.2f} | {ratio:.2f} |")
            results.append(
                {
                    "case": case.name,
                    "method": method,
                    "ms": med * 1e3,
                    "ratio": ratio,
                    "n": len(times[method]),
                }
            )
        print()
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"machine": machine, "torch": torch.__version__, "results": results}, fh, indent=2
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

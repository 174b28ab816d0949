"""``contractive sample``: chains along the learned manifold (:mod:`contractive.analysis`)."""

from __future__ import annotations

import argparse
import io

import numpy as np

from ..analysis import DEFAULT_SIGMA, DEFAULT_STEPS, sample_chain
from ..data import draw_indices
from ..validation import check_output_dir
from .argtypes import non_negative_float
from .common import Command, add_data_options, add_int_option, load_run_and_data

__all__ = ["COMMANDS"]


def _add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``contractive sample RUN --out DIR`` to ``parser``."""
    parser.add_argument("run", metavar="RUN", help="run folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the samples")
    add_data_options(parser)
    parser.add_argument(
        "--sigma",
        type=non_negative_float,
        default=DEFAULT_SIGMA,
        help=f"std of the code-space noise alpha (default: {DEFAULT_SIGMA:g})",
    )
    add_int_option(parser, "--steps", DEFAULT_STEPS, "chain steps")
    add_int_option(parser, "--chains", 8, "chains, each from its own data point")
    add_int_option(
        parser, "--seed", 0, "seed of the starting points and the noise", allow_zero=True
    )


def _sample(args: argparse.Namespace) -> int:
    """``contractive sample``: write ``samples.npy`` and (image data) ``samples.png``.

    ``samples.npy`` holds the chains as ``(steps + 1, chains, n_features)`` float32, in the
    model's scaled input space; row 0 holds the starting points, drawn from the data with
    ``--seed``.
    """
    from ..runs import atomic_write_bytes

    run, ds = load_run_and_data(args)
    out = check_output_dir(args.out)
    x0 = run.prepare(ds.X[draw_indices(ds.n_samples, args.chains, args.seed)])
    chain = sample_chain(run.model, x0, sigma=args.sigma, steps=args.steps, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, chain)
    atomic_write_bytes(out / "samples.npy", buffer.getvalue())
    print(
        f"Wrote {chain.shape[1]} chains of {chain.shape[0] - 1} steps from {ds.name} "
        f"to {out / 'samples.npy'}"
    )
    shape = run.meta.get("image_shape")
    if shape:
        from ..plots import plot_samples

        plot_samples(chain, tuple(shape), out / "samples.png")
        print(f"Wrote {out / 'samples.png'}")
    else:
        print("No samples.png: the run's data are not images.")
    return 0


COMMANDS: dict[str, Command] = {
    "sample": Command("sample along the learned manifold", _add_sample_arguments, _sample),
}
"""The command of this module."""

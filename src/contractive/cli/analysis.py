"""``contractive sample``: samples of the CAE chain, their picture and their score.

Without ``--parzen`` the command draws ``--n`` samples (default 1000) and pictures them with a
few chains. With ``--parzen`` it draws 10000 by default and scores them by the Parzen protocol
of :mod:`contractive.sampling_eval`, beside its reference points and a mixing figure.
"""

from __future__ import annotations

import argparse
import io
import json
from typing import Any

import numpy as np

from ..analysis import DEFAULT_SIGMA
from ..sampling import DEFAULT_BURN_IN, DEFAULT_EVERY
from ..validation import check_output_dir
from .argtypes import non_negative_float, positive_int
from .common import Command, UsageError, add_data_options, add_int_option, load_run_and_data

__all__ = ["COMMANDS", "PICTURED_STEPS"]

#: Steps of the chains drawn under the samples in samples.png (``--steps``).
PICTURED_STEPS = 200


def _add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``contractive sample RUN --out DIR`` to ``parser``."""
    parser.add_argument("run", metavar="RUN", help="run folder")
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for samples.npy, chains.npy, samples.png and sampling.json (RUN/sampling "
        "puts them in the run's report)",
    )
    add_data_options(parser)
    parser.add_argument(
        "--n",
        type=positive_int,
        default=None,
        metavar="N",
        help="samples to draw (default: 10000 with --parzen, as the protocol, else 1000)",
    )
    add_int_option(parser, "--per-chain", 1, "samples kept per chain")
    add_int_option(parser, "--burn-in", DEFAULT_BURN_IN, "steps before a chain's first sample")
    add_int_option(parser, "--every", DEFAULT_EVERY, "steps between two samples of one chain")
    parser.add_argument(
        "--sigma",
        type=non_negative_float,
        default=DEFAULT_SIGMA,
        help=f"std of the code-space noise alpha (default: {DEFAULT_SIGMA:g})",
    )
    parser.add_argument(
        "--guard",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="refuse a step whose result reconstructs worse than twice the data's 99th "
        "percentile: no runaway grey-bordered images, but chains can stall in dark frames "
        "(docs/sampling.md) (default: off, every step taken, as published)",
    )
    parser.add_argument(
        "--start",
        choices=("data", "noise"),
        default="data",
        help="start chains from random training images or from uniform noise (default: data)",
    )
    add_int_option(parser, "--steps", PICTURED_STEPS, "steps of the pictured chains")
    add_int_option(parser, "--chains", 8, "chains pictured under the samples")
    parser.add_argument(
        "--parzen",
        action="store_true",
        help="score the samples: Parzen log-likelihood of the test split (window chosen on "
        "the last 10000 training images), reference points and mixing (needs a built-in "
        "dataset with a test split)",
    )
    parser.add_argument(
        "--baseline",
        metavar="RUN",
        default=None,
        help="with --parzen: also sample and score this run (e.g. a plain autoencoder)",
    )
    add_int_option(parser, "--mixing-steps", 1000, "with --parzen: steps of the mixing chains")
    add_int_option(
        parser,
        "--mixing-chains",
        100,
        "with --parzen: chains of the mixing measure",
        allow_zero=True,
    )
    add_int_option(
        parser, "--seed", 0, "seed of the starting points and the noise", allow_zero=True
    )


def _save_npy(path: Any, array: np.ndarray) -> None:
    from ..runs import atomic_write_bytes

    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def _parzen_data(
    args: argparse.Namespace, run: Any
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Training images and labels, validation and test images of the run's dataset, scaled
    for the run."""
    from ..data import DATASETS, OWN_VALIDATION
    from ..workflow import load_run_data

    name = args.data or run.config.data
    if name not in DATASETS:
        raise UsageError(
            f"--parzen needs a built-in dataset with a test split ({', '.join(DATASETS)}); "
            f"got {name!r}"
        )

    def split(which: str) -> Any:
        return load_run_data(run, name, data_dir=args.data_dir, split=which)

    def scaled(ds: Any) -> np.ndarray:
        return np.asarray(run.prepare(ds.X), dtype=np.float32)

    train, test = split("train"), split("test")
    X, y = scaled(train), train.y
    if name in OWN_VALIDATION:
        X_val = scaled(split("valid"))
    else:
        # The protocol's validation images are MNIST's training images 50000-59999: the last
        # sixth of the training split; the chains start from, and are judged on, the rest.
        n_val = min(10_000, len(X) // 6)
        X, X_val = X[:-n_val], X[-n_val:]
        y = None if y is None else y[:-n_val]
    return X, y, X_val, scaled(test)


def _sample(args: argparse.Namespace) -> int:
    """``contractive sample``: write samples.npy, chains.npy, samples.png and sampling.json."""
    from ..runs import atomic_write_bytes, load_run
    from ..sampling import sample_chain
    from ..sampling_eval import SamplingSettings, chain_samples, measure_sampling, start_points

    if args.baseline is not None and not args.parzen:
        raise UsageError("--baseline is only used with --parzen")
    n = args.n if args.n is not None else (10_000 if args.parzen else 1000)
    run, ds = load_run_and_data(args)
    out = check_output_dir(args.out)
    settings = SamplingSettings(
        n_samples=n,
        per_chain=args.per_chain,
        sigma=args.sigma,
        burn_in=args.burn_in,
        every=args.every,
        guard=args.guard,
        start=args.start,
        mixing_chains=args.mixing_chains,
        mixing_steps=args.mixing_steps,
        seed=args.seed,
    )
    model = run.model.eval()
    X = np.asarray(run.prepare(ds.X), dtype=np.float32)
    results: dict[str, Any]
    if args.parzen:
        X, y, X_val, X_test = _parzen_data(args, run)
        baseline = load_run(args.baseline).model.eval() if args.baseline else None
        samples, results = measure_sampling(
            model,
            X_train=X,
            y_train=y,
            X_val=X_val,
            X_test=X_test,
            settings=settings,
            baseline=baseline,
            progress=True,
        )
    else:
        starts = start_points(X, settings.n_chains, args.start, seed=args.seed)
        samples, bound, refused = chain_samples(model, starts, X, settings, progress=True)
        results = {
            "settings": settings.__dict__ | {"mixing_chains": 0},
            "guard": {"max_error": bound, "refused_fraction": refused},
        }
    bound = results["guard"]["max_error"]
    pictured = start_points(X, args.chains, args.start, seed=args.seed + 3)
    chains = sample_chain(
        model, pictured, sigma=args.sigma, steps=args.steps, seed=args.seed, max_error=bound
    )
    out.mkdir(parents=True, exist_ok=True)
    _save_npy(out / "samples.npy", samples)
    _save_npy(out / "chains.npy", chains)
    results |= {"run": str(run.path), "data": ds.name, "n_samples": int(samples.shape[0])}
    atomic_write_bytes(out / "sampling.json", (json.dumps(results, indent=2) + "\n").encode())
    print(f"Wrote {samples.shape[0]} samples of {run.path} to {out / 'samples.npy'}")
    refused = results["guard"]["refused_fraction"]
    print(f"  the guard refused {100 * refused:.1f} % of the chain's steps")
    if args.parzen:
        for name, row in results["parzen"].items():
            print(
                f"  Parzen log-likelihood, {name}: {row['log_likelihood']:.1f} "
                f"± {row['standard_error']:.1f} (sigma {row['sigma']:.3g})"
            )
        base = results["parzen"].get("baseline")
        if base is not None and base["refused_fraction"] > 0.5:
            print(
                f"  the baseline's chain refused {100 * base['refused_fraction']:.1f} % of its "
                "steps: its samples are mostly its starting images (drop --guard)"
            )
        if results["mixing"]:
            mix = results["mixing"]
            print(
                f"  mixing: {mix['classes_visited']:.2f} of 10 classes visited in "
                f"{mix['steps']} steps (mean of {mix['chains']} chains)"
            )
    shape = run.meta.get("image_shape")
    if shape:
        from ..plots import plot_samples

        plot_samples(chains, tuple(shape), out / "samples.png", samples=samples)
        print(f"Wrote {out / 'samples.png'}")
    else:
        print("No samples.png: the run's data are not images.")
    print(f"Wrote {out / 'sampling.json'}")
    return 0


COMMANDS: dict[str, Command] = {
    "sample": Command("draw and score samples of the CAE chain", _add_sample_arguments, _sample),
}
"""The command of this module."""

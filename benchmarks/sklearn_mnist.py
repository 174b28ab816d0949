"""MNIST: Pipeline(ContractiveAutoencoder, LogisticRegression) against LogisticRegression on pixels.

Both models are fitted on the first ``--n-train`` MNIST training images (10000 by default) and
scored on the official 10000 test images; pixels are divided by 255 (``load_dataset``'s default
scaling), so the CAE trains with its default cross-entropy loss. The same LogisticRegression
settings are used on both inputs. Prints both accuracies and wall times, and writes them as JSON
with ``--out``::

    python benchmarks/sklearn_mnist.py --out results.json

The figures recorded in docs/estimator.md come from this script with its defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from contractive.data import load_dataset
from contractive.estimator import ContractiveAutoencoder


def _default_data_dir() -> str:
    env = os.environ.get("CONTRACTIVE_DATA_DIR")
    if env:
        return env
    return str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=_default_data_dir(), help="folder of the MNIST .gz files")
    p.add_argument("--download", action="store_true", help="download MNIST if it is missing")
    p.add_argument("--n-train", type=int, default=10000, help="first N training images")
    p.add_argument("--n-components", type=int, default=1000, help="CAE code size")
    p.add_argument("--contraction", type=float, default=0.1, help="CAE lambda")
    p.add_argument("--epochs", type=int, default=20, help="CAE epochs")
    p.add_argument("--batch-size", type=int, default=128, help="CAE minibatch size")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="CAE Adam step size")
    p.add_argument("--C", type=float, default=1.0, help="LogisticRegression inverse regularisation")
    p.add_argument("--max-iter", type=int, default=2000, help="LogisticRegression iterations")
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--device", default="auto", help="CAE device: auto, cpu, cuda")
    p.add_argument("--verbose", type=int, default=1, help="CAE verbosity (0, 1, 2)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    return p.parse_args(argv)


def _logistic(args: argparse.Namespace) -> LogisticRegression:
    return LogisticRegression(C=args.C, max_iter=args.max_iter)


def _timed_fit_score(
    model: Any, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray
) -> dict[str, Any]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
    start = time.perf_counter()
    accuracy = float(model.score(X_test, y_test))
    score_s = time.perf_counter() - start
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {
        "accuracy": accuracy,
        "fit_seconds": round(fit_s, 2),
        "score_seconds": round(score_s, 2),
        "logistic_converged": converged,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    train = load_dataset("mnist", split="train", data_dir=args.data_dir, download=args.download)
    test = load_dataset("mnist", split="test", data_dir=args.data_dir, download=args.download)
    assert train.y is not None
    assert test.y is not None
    X_train, y_train = train.X[: args.n_train], train.y[: args.n_train]
    X_test, y_test = test.X, test.y
    print(f"MNIST: {len(X_train)} training images, {len(X_test)} test images", file=sys.stderr)

    raw = _timed_fit_score(_logistic(args), X_train, y_train, X_test, y_test)
    print(f"LogisticRegression on pixels: accuracy {raw['accuracy']:.4f}", file=sys.stderr)

    cae = ContractiveAutoencoder(
        n_components=args.n_components,
        contraction=args.contraction,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        random_state=args.random_state,
        device=args.device,
        verbose=args.verbose,
    )
    pipe = Pipeline([("cae", cae), ("logistic", _logistic(args))])
    piped = _timed_fit_score(pipe, X_train, y_train, X_test, y_test)
    fitted = pipe.named_steps["cae"]
    piped["cae_final_loss"] = round(fitted.loss_curve_[-1], 4)
    piped["cae_loss"] = fitted.loss_
    piped["cae_mean_jacobian_norm_test"] = float(fitted.jacobian_norm(X_test).mean())

    results = {
        "command": "python " + shlex.join(["benchmarks/sklearn_mnist.py", *(argv or sys.argv[1:])]),
        "n_train": len(X_train),
        "n_test": len(X_test),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "logistic_on_pixels": raw,
        "cae_then_logistic": piped,
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": str(fitted.model_.encoder[0].weight.device),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sklearn": sklearn.__version__,
        },
    }
    print(f"{'model':<40} {'accuracy':>9} {'fit s':>8} {'score s':>8}")
    for name, row in (
        ("LogisticRegression (pixels)", raw),
        ("ContractiveAutoencoder + LogisticRegression", piped),
    ):
        print(
            f"{name:<40} {row['accuracy']:>9.4f} {row['fit_seconds']:>8.1f} "
            f"{row['score_seconds']:>8.1f}"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"Wrote {args.out}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()

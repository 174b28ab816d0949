"""Fine-tuning variants of one pre-trained CAE on MNIST: validation error only.

The exploration behind the fine-tuning settings of ``contractive reproduce table1`` (see
docs/reproduction.md). One CAE is pre-trained with the full protocol's settings (1000
sigmoid units, tied, cross-entropy, Adam lr 1e-3, batch 128) on the first 50000 MNIST
training images, cached, then fine-tuned once per variant with
:func:`contractive.evaluate.finetune` (SGD momentum 0.9, batch 64, cosine decay, unless a
key says otherwise); each prints the best validation error on the last 10000 training
images and the error after every epoch. The test set is never read.

A variant is ``key=value[,key=value...]``. The keys ``lr`` (0.1 unless given), ``epochs``
(30), ``batch_size`` (64), ``weight_decay``, ``momentum``, ``dropout`` on the hidden layer,
``input_dropout`` and ``seed`` (the shuffling order and the dropout masks, 0 by default) are
``finetune``'s own options; ``contraction`` adds the hidden layer's analytic
``lambda ||J_f(x)||_F^2`` (batch mean) to the cross-entropy while fine-tuning, through
``finetune``'s ``extra_loss``. The keys ``ema`` and ``hidden_lr_scale`` of earlier versions
are refused: they were measured with the script's own loop in commit fe2c75d and rejected
(their figures are in docs/reproduction.md).

Usage (with one thread: pre-training about 3 min, a fine-tuning epoch 5-6 s, 8 s with
dropout)::

    python benchmarks/table1_finetune_variants.py --contraction 1 lr=0.1 lr=0.03 \\
        lr=0.1,batch_size=32 lr=0.1,weight_decay=1e-4 lr=0.1,dropout=0.5 lr=0.1,contraction=0.1
    python benchmarks/table1_finetune_variants.py --contraction 1 \\
        lr=0.2,dropout=0.5,input_dropout=0.2,epochs=100
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from contractive.evaluate import finetune, train_stack
from contractive.experiments.runner import load_mnist
from contractive.experiments.table1 import FULL, pretrain_config
from contractive.penalties import jacobian_penalty

REPO = Path(__file__).resolve().parents[1]
FINETUNE_KEYS = {
    "lr",
    "epochs",
    "batch_size",
    "weight_decay",
    "momentum",
    "seed",
    "dropout",
    "input_dropout",
}
KEYS = FINETUNE_KEYS | {"contraction"}
# Options of the script's own fine-tuning loop, measured and rejected; that loop is gone.
DROPPED_KEYS = {"ema", "hidden_lr_scale"}
DROPPED_IN = "fe2c75d"


def _variant(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if key in DROPPED_KEYS:
            raise argparse.ArgumentTypeError(
                f"{key!r} is no longer a key: it was measured with the loop in commit "
                f"{DROPPED_IN}, which still has it (figures in docs/reproduction.md)"
            )
        if not sep or key not in KEYS:
            raise argparse.ArgumentTypeError(
                f"expected key=value with key one of {sorted(KEYS)}; got {item!r}"
            )
        out[key] = float(value)
    return out


def _contraction(weight: float) -> Callable[[nn.Sequential, Tensor, Tensor], Tensor]:
    """finetune's ``extra_loss``: ``weight`` times the batch mean of the hidden layer's
    analytic ``||J_f(x)||_F^2`` (its first ``nn.Linear`` and the activation after it, on the
    inputs before dropout)."""

    def term(classifier: nn.Sequential, xb: Tensor, yb: Tensor) -> Tensor:
        first = next(i for i, m in enumerate(classifier) if isinstance(m, nn.Linear))
        hidden = classifier[first : first + 2]  # (B, 784) -> (B, d_h)
        return weight * jacobian_penalty(hidden, xb, method="analytic").mean()

    return term


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_dir = os.environ.get("CONTRACTIVE_DATA_DIR") or str(REPO.parent / "shared/data/mnist")
    p.add_argument("variants", nargs="+", type=_variant, metavar="key=value[,...]")
    p.add_argument("--data-dir", default=default_dir, help="folder with the MNIST .gz files")
    p.add_argument("--contraction", type=float, default=1.0, help="the CAE's lambda (1)")
    p.add_argument("--pretrain-epochs", type=int, default=FULL.pretrain_epochs)
    p.add_argument("--pretrain-batch-size", type=int, default=FULL.pretrain_batch_size)
    p.add_argument("--pretrain-optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--pretrain-lr", type=float, default=FULL.pretrain_lr)
    p.add_argument("--cache", default=str(REPO / "runs" / "finetune_variants"), help="folder")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not Path(args.data_dir, "train-images-idx3-ubyte.gz").exists():
        print(f"MNIST not found in {args.data_dir}; pass --data-dir.", file=sys.stderr)
        return 1
    protocol = dataclasses.replace(
        FULL, pretrain_epochs=args.pretrain_epochs, pretrain_batch_size=args.pretrain_batch_size
    )
    data = load_mnist(args.data_dir, protocol)
    config = pretrain_config(protocol, "CAE", args.contraction, "cpu").replace(
        optimizer=args.pretrain_optimizer, lr=args.pretrain_lr
    )
    name = f"cae-l{args.contraction:g}-e{args.pretrain_epochs}-b{args.pretrain_batch_size}"
    if (args.pretrain_optimizer, args.pretrain_lr) != ("adam", FULL.pretrain_lr):
        name += f"-{args.pretrain_optimizer}{args.pretrain_lr:g}"
    cached = Path(args.cache, name + ".safetensors")
    t0 = time.perf_counter()
    if cached.exists():
        (ae,) = train_stack(data.X_train[:8], [config.replace(epochs=1)], device="cpu")
        ae.load_state_dict(load_file(cached))
        print(f"{name}: pre-trained encoder read from {cached}")
    else:
        (ae,) = train_stack(data.X_train, [config], device="cpu")
        cached.parent.mkdir(parents=True, exist_ok=True)
        save_file(ae.state_dict(), cached)
        print(f"{name}: pre-trained in {time.perf_counter() - t0:.0f} s")
    for v in args.variants:
        t0 = time.perf_counter()
        label = ",".join(f"{k}={x:g}" for k, x in v.items())
        options = {"lr": 0.1, "epochs": 30.0, "batch_size": 64.0, "seed": 0.0, **v}
        contraction = options.pop("contraction", 0.0)
        _, result = finetune(
            ae,
            data.X_train,
            data.y_train,
            data.X_val,
            data.y_val,
            lr=options.pop("lr"),
            epochs=int(options.pop("epochs")),
            batch_size=int(options.pop("batch_size")),
            n_classes=10,
            seed=int(options.pop("seed")),
            extra_loss=_contraction(contraction) if contraction else None,
            **options,  # weight_decay, momentum, dropout, input_dropout
        )
        errors = [epoch.val_error for epoch in result.history]
        best = min(errors)
        print(
            f"{name} {label}: best val error {100 * best:.2f}% at epoch "
            f"{errors.index(best) + 1}/{len(errors)} ({time.perf_counter() - t0:.0f} s); "
            f"per epoch: {' '.join(f'{100 * e:.2f}' for e in errors)}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

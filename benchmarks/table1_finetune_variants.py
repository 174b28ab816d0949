"""Fine-tuning variants of one pre-trained CAE on MNIST: validation error only.

The exploration behind the fine-tuning settings of ``contractive reproduce table1`` (see
docs/reproduction.md). One CAE is pre-trained with the full protocol's settings (1000
sigmoid units, tied, cross-entropy, Adam lr 1e-3, batch 128) on the first 50000 MNIST
training images, cached, then fine-tuned once per variant; each prints the best validation
error on the last 10000 training images and the error after every epoch. The test set is
never read.

A variant is ``key=value[,key=value...]``. Keys of :func:`contractive.evaluate.finetune`
(``lr``, ``epochs``, ``batch_size``, ``weight_decay``, ``momentum``, ``dropout`` on the
hidden layer, ``input_dropout``, ``seed``: the shuffling order and the dropout masks, 0 by
default) go to that function; ``ema`` (decay of an exponential moving average of the
weights, evaluated instead of the weights), ``hidden_lr_scale`` (the pre-trained layer's
learning rate as a fraction of ``lr``) and ``contraction`` (the hidden layer's
``lambda ||J_f(x)||_F^2`` added to the cross-entropy while fine-tuning) switch to a loop
written here, with the same initialisation, shuffling, SGD momentum 0.9 and cosine schedule.

Usage (with one thread: pre-training about 3 min, a fine-tuning epoch 5-6 s, 8 s with
dropout)::

    python benchmarks/table1_finetune_variants.py --contraction 1 lr=0.1 lr=0.03 \\
        lr=0.1,batch_size=32 lr=0.1,weight_decay=1e-4 lr=0.1,dropout=0.5 lr=0.1,ema=0.999
    python benchmarks/table1_finetune_variants.py --contraction 1 \\
        lr=0.2,dropout=0.5,input_dropout=0.2,epochs=100
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from contractive.evaluate import build_classifier, finetune, test_error, train_stack
from contractive.experiments.runner import load_mnist
from contractive.experiments.table1 import FULL, pretrain_config
from contractive.nn import Autoencoder

REPO = Path(__file__).resolve().parents[1]
LIBRARY_KEYS = {
    "lr",
    "epochs",
    "batch_size",
    "weight_decay",
    "momentum",
    "seed",
    "dropout",
    "input_dropout",
}
LOOP_KEYS = {"ema", "hidden_lr_scale", "contraction"}


def _variant(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or key not in LIBRARY_KEYS | LOOP_KEYS:
            raise argparse.ArgumentTypeError(
                f"expected key=value with key one of {sorted(LIBRARY_KEYS | LOOP_KEYS)}; "
                f"got {item!r}"
            )
        out[key] = float(value)
    return out


def _loop(ae: Autoencoder, data: object, v: dict[str, float]) -> list[float]:
    """Fine-tuning with the options finetune() does not have; validation error per epoch."""
    lr, epochs = v.get("lr", 0.1), int(v.get("epochs", 30))
    batch = int(v.get("batch_size", 64))
    clf = build_classifier(ae, 784, 10)
    hidden, act, top = list(clf)
    model = nn.Sequential(
        nn.Dropout(v.get("input_dropout", 0.0)), hidden, act, nn.Dropout(v.get("dropout", 0.0)), top
    )
    scale = v.get("hidden_lr_scale", 1.0)
    groups = [{"params": hidden.parameters(), "scale": scale}, {"params": top.parameters()}]
    opt = torch.optim.SGD(groups, lr=lr, momentum=v.get("momentum", 0.9))
    average = copy.deepcopy(model) if v.get("ema") else None
    gen = torch.Generator().manual_seed(int(v.get("seed", 0)))
    X, y = data.X_train, data.y_train  # type: ignore[attr-defined]
    errors, step = [], 0
    for epoch in range(epochs):
        for group in opt.param_groups:
            factor = group.get("scale", 1.0)
            group["lr"] = factor * 0.5 * lr * (1.0 + math.cos(math.pi * epoch / epochs))
        model.train()
        perm = torch.randperm(X.shape[0], generator=gen)
        for i in range(0, X.shape[0], batch):
            idx = perm[i : i + batch]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            if v.get("contraction"):
                # the hidden layer's analytic ||J_f(x)||_F^2, batch mean: (B, d_h) . (d_h,)
                h = torch.sigmoid(hidden(X[idx]))
                s = (h * (1 - h)).square()
                loss = loss + v["contraction"] * (s @ hidden.weight.square().sum(1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if average is not None:
                decay = min(v["ema"], (1 + step) / (10 + step))
                with torch.no_grad():
                    for pa, pm in zip(average.parameters(), model.parameters(), strict=True):
                        pa.lerp_(pm, 1.0 - decay)
        evaluated = average if average is not None else model
        evaluated.eval()
        errors.append(test_error(evaluated, data.X_val, data.y_val))  # type: ignore[attr-defined]
    return errors


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
        torch.manual_seed(0)  # dropout masks
        t0 = time.perf_counter()
        label = ",".join(f"{k}={x:g}" for k, x in v.items())
        if LOOP_KEYS & v.keys():
            errors = _loop(ae, data, v)
        else:
            kwargs = {"lr": 0.1, "epochs": 30.0, "batch_size": 64.0, "seed": 0.0, **v}
            history: list[float] = []
            finetune(
                ae,
                data.X_train,
                data.y_train,
                data.X_val,
                data.y_val,
                lr=kwargs.pop("lr"),
                epochs=int(kwargs.pop("epochs")),
                batch_size=int(kwargs.pop("batch_size")),
                n_classes=10,
                seed=int(kwargs.pop("seed")),
                on_epoch=lambda e, seen=history: seen.append(e.val_error),
                **kwargs,  # weight_decay, momentum, dropout, input_dropout
            )
            errors = history
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

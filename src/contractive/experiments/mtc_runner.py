"""Running the Manifold Tangent Classifier experiment: :func:`run_mtc`.

Stages, in the order they run (each writes ``mtc.json`` / ``mtc.md`` / ``mtc_run.json`` again
when it ends, so an interrupted run keeps every finished row):

1. pre-train CAE+H layer 1 on the training images, without labels;
2. for each stack depth in ``protocol.depths`` (layer ``d`` is pre-trained on the codes of
   layer ``d - 1`` when first needed): the tangents of the stack at every training image
   (``tangents_<d>.npy``, float16, memory-mapped); ``k`` and beta chosen on the validation
   set by short fine-tunings on ``select_size`` labelled images; then the final fine-tuning
   of the stack without and with tangent propagation (rows ``CAE+H-d`` and ``MTC-d``);
3. the semi-supervised rows after the stack ``semi_depth`` is done: for each label count, a
   class-stratified subset of the training images, fine-tuned without and with tangent
   propagation, and for 1000 labels (or the count nearest it) from random initialisation.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..evaluate import FinetuneResult, finetune, test_error
from ..exceptions import ConfigError
from ..nn import Autoencoder
from ..runs import atomic_write_bytes, save_tensors
from ..stacking import encode, stack_encoder, train_stack
from ..tangents import tangent_bases
from .mtc import (
    KINGMA_MTC,
    PAPER_MTC,
    MTCProtocol,
    check_mtc_protocol,
    epochs_for,
    layer_config,
    split_protocol,
)
from .render import fmt_time
from .runner import environment
from .splits import Split, load_split
from .table2_runner import standard_error

__all__ = ["labelled_subset", "markdown", "run_mtc"]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def labelled_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` rows of ``y``, as evenly spread over the classes as ``n`` allows.

    The classes take ``n // n_classes`` rows each (the first ``n % n_classes`` classes one
    more), drawn at random within the class; the indices come back sorted.

    Examples
    --------
    >>> y = np.repeat(np.arange(3), 10)
    >>> idx = labelled_subset(y, 7, seed=0)
    >>> np.bincount(y[idx]).tolist(), len(set(idx.tolist()))
    ([3, 2, 2], 7)
    """
    classes = np.unique(y)
    if n < len(classes):
        raise ConfigError(
            "The 'label_counts' parameter must hold counts of at least the number of classes "
            f"({len(classes)}). Got {n} instead."
        )
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    for i, c in enumerate(classes):
        rows = np.flatnonzero(y == c)
        want = n // len(classes) + (1 if i < n % len(classes) else 0)
        if want > len(rows):
            raise ConfigError(
                f"The 'label_counts' parameter's {n} labels need {want} training images of "
                f"class {c}; the training set has {len(rows)}. Got {n} instead."
            )
        picked.append(rng.choice(rows, size=want, replace=False))
    return np.sort(np.concatenate(picked))


class _Run:
    """The state of one run: data, layers, rows, timings; writes the outputs."""

    def __init__(
        self,
        out: Path,
        data: Split,
        protocol: MTCProtocol,
        device: torch.device,
        meta: dict[str, Any],
        log: Callable[[str], None],
    ) -> None:
        self.out, self.data, self.p, self.device = out, data, protocol, device
        self.meta, self.log = meta, log
        self.layers: list[Autoencoder] = []
        self.rows: list[dict[str, Any]] = []
        self.selected: dict[int, dict[str, Any]] = {}
        self.tangents: dict[int, np.ndarray] = {}

    # -- outputs ------------------------------------------------------------------------
    def write(self) -> None:
        self.meta["peak_rss_gb"] = round(_peak_rss_gb(), 2)
        self.meta["total_seconds"] = round(time.perf_counter() - self.meta["_start"], 1)
        meta = {k: v for k, v in self.meta.items() if not k.startswith("_")}
        atomic_write_bytes(self.out / "mtc.json", (json.dumps(self.rows, indent=2) + "\n").encode())
        atomic_write_bytes(self.out / "mtc_run.json", (json.dumps(meta, indent=2) + "\n").encode())
        atomic_write_bytes(self.out / "mtc.md", markdown(self.rows, meta).encode())

    def stage(self, name: str, seconds: float) -> None:
        self.meta["stages"][name] = round(seconds, 1)
        self.write()

    # -- pre-training and tangents --------------------------------------------------------
    def stack(self, depth: int) -> list[Autoencoder]:
        """The first ``depth`` layers, pre-training the missing ones."""
        X = self.data.X_train
        while len(self.layers) < depth:
            layer = len(self.layers)
            t0 = time.perf_counter()
            codes = encode(self.layers, X) if self.layers else X  # (n, d_in) of this layer
            self.log(f"pre-training CAE+H layer {layer + 1} on {tuple(codes.shape)} ...")
            config = layer_config(self.p, layer, self.device.type)
            (ae,) = train_stack(codes, [config], device=self.device)
            self.layers.append(ae)
            save_tensors(self.out / f"layer{layer + 1}.safetensors", ae.state_dict())
            seconds = time.perf_counter() - t0
            self.log(f"layer {layer + 1} pre-trained in {fmt_time(seconds)}")
            self.stage(f"pretrain_layer{layer + 1}", seconds)
        return self.layers[:depth]

    def bases(self, depth: int) -> np.ndarray:
        """``(n_train, max k, d_x)`` float16 tangents of the stack ``depth``, memory-mapped."""
        if depth not in self.tangents:
            layers = self.stack(depth)
            t0 = time.perf_counter()
            k = max(self.p.n_tangents)
            self.log(f"tangents of CAE+H-{depth}: k = {k} at {self.data.X_train.shape[0]} images")
            result = tangent_bases(
                stack_encoder(layers),
                self.data.X_train,
                k,
                iterations=self.p.tangent_iterations,
                oversample=self.p.tangent_oversample,
                out=self.out / f"tangents_{depth}.npy",
                dtype="float16",
                seed=self.p.seed,
                progress=True,
            )
            self.tangents[depth] = result.vectors
            if math.isqrt(self.data.n_features) ** 2 == self.data.n_features:
                self.picture(depth)  # square images only: tabular data has nothing to draw
            seconds = time.perf_counter() - t0
            self.log(f"tangents of CAE+H-{depth} in {fmt_time(seconds)}")
            self.stage(f"tangents_{depth}", seconds)
        return self.tangents[depth]

    def picture(self, depth: int) -> None:
        """``tangents_<depth>.png``: six test images, their tangents, moves along the first."""
        from ..plots_tangents import plot_tangent_moves
        from ..stacking import stack_autoencoder

        layers = self.stack(depth)
        model = layers[0] if depth == 1 else stack_autoencoder(layers)
        x = self.data.X_test[:6]  # (6, d_x)
        scale = float(x.norm(dim=1).mean())  # moves of a quarter and a half of a digit's norm
        plot_tangent_moves(
            model,
            x,
            k=min(5, max(self.p.n_tangents)),
            steps=(-scale / 2, -scale / 4, 0.0, scale / 4, scale / 2),
            path=self.out / f"tangents_{depth}.png",
        )

    # -- fine-tuning ----------------------------------------------------------------------
    def finetune(
        self,
        encoder: Any,
        rows: np.ndarray | slice,
        *,
        epochs: int,
        lr: float,
        k: int = 0,
        beta: float = 0.0,
        tangents: np.ndarray | None = None,
        dropout: bool = True,
    ) -> tuple[nn.Sequential, FinetuneResult]:
        d = self.data
        basis = None
        if beta > 0:
            assert tangents is not None
            # A slice of the memory map stays a map; labelled subsets are read once (n, k, d).
            basis = tangents[rows, :k] if isinstance(rows, slice) else tangents[rows][:, :k]
        return finetune(
            encoder,
            d.X_train[rows],
            d.y_train[rows],
            d.X_val,
            d.y_val,
            epochs=epochs,
            lr=lr,
            batch_size=self.p.finetune_batch_size,
            seed=self.p.seed,
            dropout=self.p.dropout if dropout else 0.0,
            input_dropout=self.p.input_dropout if dropout else 0.0,
            tangents=basis,
            tangent_weight=beta,
            tangent_target=self.p.tangent_target,
            tangent_projections=self.p.tangent_projections,
            n_classes=d.n_classes,
            device=self.device,
        )

    def select(self, depth: int) -> dict[str, Any]:
        """``k`` and beta of the stack ``depth``, by validation error on ``select_size``."""
        if depth in self.selected:
            return self.selected[depth]
        layers, tangents = self.stack(depth), self.bases(depth)
        p, t0 = self.p, time.perf_counter()
        grid = [(k, b) for k in p.n_tangents for b in p.betas]
        rows = slice(0, min(p.select_size, self.data.X_train.shape[0]))
        points: list[dict[str, Any]] = []
        if len(grid) > 1:
            for k, beta in grid:
                _, res = self.finetune(
                    layers,
                    rows,
                    epochs=p.select_epochs,
                    lr=p.select_lr,
                    k=k,
                    beta=beta,
                    tangents=tangents,
                    dropout=False,
                )
                points.append({"k": k, "beta": beta, "val_error": round(100 * res.val_error, 2)})
                error = points[-1]["val_error"]
                self.log(f"  MTC-{depth} k={k} beta={beta:g}: validation {error} %")
        best = min(points, key=lambda q: q["val_error"]) if points else None
        k, beta = (best["k"], best["beta"]) if best else grid[0]
        self.selected[depth] = {"k": k, "beta": beta, "grid": points}
        self.meta["selected"][str(depth)] = self.selected[depth]
        self.stage(f"select_{depth}", time.perf_counter() - t0)
        return self.selected[depth]

    def row(
        self,
        model: str,
        depth: int,
        labels: int,
        classifier: nn.Module,
        result: FinetuneResult,
        seconds: float,
        settings: dict[str, Any],
    ) -> None:
        d = self.data
        err = test_error(classifier, d.X_test, d.y_test)
        row = {
            "model": model,
            "depth": depth,
            "labels": labels,
            "test_error": round(100 * err, 2),
            "test_se": round(100 * standard_error(err, d.X_test.shape[0]), 2),
            "val_error": round(100 * result.val_error, 2),
            "best_epoch": result.best_epoch,
            "epochs": result.epochs_run,
            "settings": settings,
            "seconds": round(seconds, 1),
        }
        self.rows.append(row)
        self.log(
            f"{model} ({labels} labels): test {row['test_error']:.2f} ± {row['test_se']:.2f} %, "
            f"validation {row['val_error']:.2f} % (epoch {result.best_epoch}) in "
            f"{fmt_time(seconds)}"
        )
        self.write()

    def full_rows(self, depth: int) -> None:
        layers, chosen, p = self.stack(depth), self.select(depth), self.p
        n = self.data.X_train.shape[0]
        for model, beta in ((f"CAE+H-{depth}", 0.0), (f"MTC-{depth}", chosen["beta"])):
            t0 = time.perf_counter()
            k = chosen["k"] if beta else 0
            clf, res = self.finetune(
                layers,
                slice(0, n),
                epochs=p.finetune_epochs,
                lr=p.finetune_lr,
                k=k,
                beta=beta,
                tangents=self.tangents[depth],
            )
            settings = {"k": k, "beta": beta, "lr": p.finetune_lr, "dropout": p.dropout}
            self.row(model, depth, n, clf, res, time.perf_counter() - t0, settings)

    def semi_rows(self) -> None:
        p, depth = self.p, self.p.semi_depth
        layers, chosen = self.stack(depth), self.select(depth)
        y = self.data.y_train.numpy()
        nearest = min(p.label_counts, key=lambda n: abs(n - 1000)) if p.label_counts else None
        for n in p.label_counts:
            idx = labelled_subset(y, n, seed=p.seed)
            epochs = epochs_for(p.semi_steps, n, p.finetune_batch_size)
            runs: list[tuple[str, Any, float]] = [
                (f"CAE+H-{depth}", layers, 0.0),
                (f"MTC-{depth}", layers, chosen["beta"]),
            ]
            if n == nearest:
                runs.append((f"random init-{depth}", self.random_stack(depth), 0.0))
            for model, encoder, beta in runs:
                t0 = time.perf_counter()
                k = chosen["k"] if beta else 0
                clf, res = self.finetune(
                    encoder,
                    idx,
                    epochs=epochs,
                    lr=p.finetune_lr,
                    k=k,
                    beta=beta,
                    tangents=self.tangents[depth],
                )
                settings = {"k": k, "beta": beta, "lr": p.finetune_lr, "epochs": epochs}
                self.row(model, depth, n, clf, res, time.perf_counter() - t0, settings)

    def random_stack(self, depth: int) -> list[nn.Linear]:
        """Layers of the stack's sizes with PyTorch's default initialisation, seeded."""
        sizes = [self.data.X_train.shape[1], *self.p.hidden[:depth]]
        with torch.random.fork_rng(devices=[]):  # the caller's generator state is left as it was
            torch.manual_seed(self.p.seed)
            return [nn.Linear(a, b) for a, b in itertools.pairwise(sizes)]


def _peak_rss_gb() -> float:
    # ru_maxrss is in KiB on Linux: the peak resident set of this process so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_mtc(
    out: str | os.PathLike[str],
    *,
    protocol: MTCProtocol,
    dataset: str = "mnist",
    data_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    command: str | None = None,
    log: Callable[[str], None] = _stderr,
) -> list[dict[str, Any]]:
    """Run the MTC experiment and write ``out/mtc.md``, ``mtc.json`` and ``mtc_run.json``.

    Parameters
    ----------
    out : path-like
        Folder of the outputs (created); also receives ``layer<i>.safetensors`` and the
        tangents ``tangents_<depth>.npy`` (+ ``.values.npy``).
    protocol : MTCProtocol
        :data:`~contractive.experiments.mtc.FULL`, ``QUICK`` or a replace of one.
    dataset : str
        A dataset name of :func:`~contractive.experiments.splits.load_split` or a labelled
        ``.npz`` / ``.csv`` file; pixels in [0, 1].
    data_dir : path-like, optional
        Where the dataset's files are.
    device : torch.device or str
        Where every stage runs.
    command : str, optional
        The command line, recorded in ``mtc_run.json``.
    log : callable
        Receives each progress line (default: stderr).

    Returns
    -------
    list of dict
        The rows of ``mtc.json``.

    Examples
    --------
    >>> import dataclasses, tempfile
    >>> from contractive.experiments.mtc import QUICK
    >>> tiny = dataclasses.replace(QUICK, train_size=300, val_size=100, hidden=(16,),
    ...     pretrain_epochs=1, n_tangents=(3,), finetune_epochs=1, label_counts=(20,),
    ...     semi_steps=2)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     rows = run_mtc(out, protocol=tiny, dataset="digits", log=lambda line: None)
    >>> [(r["model"], r["labels"]) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    [('CAE+H-1', 300), ('MTC-1', 300), ('CAE+H-1', 20), ('MTC-1', 20),
     ('random init-1', 20)]
    """
    start = time.perf_counter()
    dev = torch.device(device)
    data = load_split(dataset, split_protocol(protocol), data_dir=data_dir)
    check_mtc_protocol(protocol, n_features=data.n_features)
    for n in protocol.label_counts:  # refused before hours of pre-training, not after
        labelled_subset(data.y_train.numpy(), n, seed=protocol.seed)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "_start": start,
        "experiment": "mtc",
        "protocol": protocol.as_dict(),
        "dataset": data.name,
        "data": data.description,
        "command": command or "contractive reproduce mtc",
        "environment": environment(dev, 1),
        "stages": {},
        "selected": {},
    }
    run = _Run(out_dir, data, protocol, dev, meta, log)
    log(
        f"mtc ({protocol.name}): CAE+H stack {list(protocol.hidden)} on {data.sizes[0]} images; "
        f"depths {list(protocol.depths)}; labels {list(protocol.label_counts) or 'all only'}"
    )
    for depth in protocol.depths:
        run.full_rows(depth)
        if depth == protocol.semi_depth and protocol.label_counts:
            run.semi_rows()
    if protocol.label_counts and protocol.semi_depth not in protocol.depths:
        run.semi_rows()
    run.write()
    log(f"mtc ({protocol.name}) done in {fmt_time(meta['total_seconds'])}")
    return run.rows


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """``mtc.md``: test error % ± standard error per model and label count, the settings.

    Examples
    --------
    >>> rows = [{"model": "MTC-1", "depth": 1, "labels": 1000, "test_error": 3.5,
    ...          "test_se": 0.18, "val_error": 3.2, "best_epoch": 9, "epochs": 10,
    ...          "settings": {"k": 15, "beta": 1.0}, "seconds": 30.0}]
    >>> print(markdown(rows, {"protocol": {"name": "quick"}}).splitlines()[4])
    | MTC-1 | 1000 | 3.50 ± 0.18 | 3.20 | 3.64 | k=15, beta=1 | 30 s |
    """
    p = meta.get("protocol", {})
    lines = [
        f"# The Manifold Tangent Classifier ({p.get('name', '?')} protocol)",
        "",
        "| model | labels | test error % | validation error % | paper % | settings | time |",
        "|---|---|---|---|---|---|---|",
    ]
    n_all = p.get("train_size")
    for r in rows:
        paper = ""
        if r["model"].startswith("MTC"):
            if r["labels"] == n_all and n_all is not None and n_all >= 50000:
                paper = f"{PAPER_MTC:.2f}"
            elif r["labels"] in KINGMA_MTC:
                paper = f"{KINGMA_MTC[r['labels']]:.2f}"
        settings = ", ".join(f"{k}={v:g}" for k, v in r["settings"].items() if k in ("k", "beta"))
        lines.append(
            f"| {r['model']} | {r['labels']} | {r['test_error']:.2f} ± {r['test_se']:.2f} | "
            f"{r['val_error']:.2f} | {paper} | {settings} | {fmt_time(r['seconds'])} |"
        )
    lines += [
        "",
        "CAE+H-d: the stack of d CAE+H layers fine-tuned without tangent propagation; MTC-d: the "
        "same stack fine-tuned with it; random init-d: the same network from PyTorch's default "
        "initialisation. Paper: the MTC's 0.81 % with all labels as widely cited, and the "
        "semi-supervised figures Kingma et al. (2014) cite for it; neither confirmed here.",
    ]
    if "total_seconds" in meta:
        lines += [
            "",
            f"Wall time {fmt_time(meta['total_seconds'])}; peak resident memory "
            f"{meta.get('peak_rss_gb', '?')} GB; stages: "
            + ", ".join(f"{k} {fmt_time(v)}" for k, v in meta.get("stages", {}).items())
            + ".",
        ]
    if meta.get("command"):
        lines += ["", f"Command: `{meta['command']}`"]
    return "\n".join(lines) + "\n"

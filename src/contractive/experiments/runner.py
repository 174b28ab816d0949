"""The runner: pre-train each grid value once, fine-tune each grid point, select, test.

:func:`run_model` makes one model's row from a protocol; :func:`run_table1` runs every model
(in this process, or in worker processes with ``jobs``), holds the output folder's lock, and
rewrites the outputs after every model.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..analysis import mean_jacobian_norm, saturation
from ..evaluate import FinetuneResult, encode, finetune, linear_probe, test_error, train_stack
from ..locking import RunLock
from ..nn import Autoencoder
from ..stacking import EncoderLike
from ..train import Callback, EpochMetrics, Trainer, resolve_device
from ..validation import check_output_dir
from .pool import WorkerPool, default_jobs, threads_per_job
from .protocol import Protocol, check_protocol, protocol_json, select_point
from .render import fmt_time, write_outputs
from .splits import Split, load_split
from .table1 import (
    DEFINITIONS,
    FULL,
    KNOB_SYMBOLS,
    KNOBS,
    MODELS,
    PROBE_ITER,
    differences,
    paper_rows,
    planned_seconds,
    point_text,
    pretrain_config,
)

__all__ = [
    "ValueResult",
    "environment",
    "finetune_on",
    "finish_model",
    "load_mnist",
    "pretrain_value",
    "run_models",
    "run_table1",
]


class _LastMetrics(Callback):
    """Keeps the last epoch's metrics of a pre-training run."""

    def __init__(self) -> None:
        self.last: EpochMetrics | None = None

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self.last = metrics


def load_mnist(data_dir: str | os.PathLike[str] | None, protocol: Protocol) -> Split:
    """MNIST split as ``protocol`` says: :func:`load_split` of ``"mnist"``.

    The first ``train_size`` training images train, the last ``val_size`` validate, the
    10000 test images test.
    """
    return load_split("mnist", protocol, data_dir=data_dir)


def finetune_on(
    encoder: EncoderLike,
    data: Split,
    protocol: Protocol,
    device: torch.device,
    **options: Any,
) -> tuple[nn.Sequential, FinetuneResult]:
    """:func:`finetune` on the split's training and validation sets, with the protocol's batch
    size and seed and the split's number of classes; ``options`` are finetune's others.

    Examples
    --------
    >>> from torch import nn
    >>> from contractive.experiments import QUICK
    >>> data = load_split("digits", QUICK)
    >>> _, result = finetune_on(nn.Linear(64, 8), data, QUICK, torch.device("cpu"), epochs=1)
    >>> result.epochs_run
    1
    """
    return finetune(
        encoder,
        data.X_train,
        data.y_train,
        data.X_val,
        data.y_val,
        batch_size=protocol.finetune_batch_size,
        seed=protocol.seed,
        n_classes=data.n_classes,
        device=device,
        **options,
    )


@dataclass
class ValueResult:
    """One grid value of one model, pre-trained and fine-tuned at each of its learning rates.

    What a worker sends back to the scheduler (the modules travel by pickling between this
    run's own processes; nothing is written to disk).
    """

    model: str
    value: float | None
    autoencoder: Autoencoder
    stats: dict[str, Any]  # pre-training time and recon, mean ||J_f(x)||_F, SAT
    # Per grid point with this value: its index in the grid, its grid entry, its validation
    # error (a fraction) and its fine-tuned classifier.
    points: list[tuple[int, dict[str, Any], float, nn.Sequential]]
    seconds: float


def pretrain_value(
    model: str,
    value: float | None,
    protocol: Protocol,
    device: str,
    *,
    data: Split,
    log: Callable[[str], None],
) -> ValueResult:
    """Pre-train ``model`` at grid value ``value`` once and fine-tune it at every learning rate
    the grid pairs with that value: the unit of work the runner schedules."""
    start = time.perf_counter()
    dev = torch.device(device)
    grid = protocol.grids[model]
    knob = KNOBS[model]
    indices = [i for i, point in enumerate(grid) if point.value == value]
    config = pretrain_config(protocol, model, value, device)
    last = _LastMetrics()
    (ae,) = train_stack(data.X_train, [config], callbacks=[last], device=dev)
    seconds = time.perf_counter() - start
    sat = saturation(ae, data.X_val)
    assert sat is not None  # the protocol's codes are sigmoid units
    stats = {
        "pretrain_seconds": round(seconds, 1),
        "final_recon": None if last.last is None else round(last.last.recon, 4),
        "mean_jacobian_norm": mean_jacobian_norm(ae, data.X_val),
        "sat": 100.0 * sat,
    }
    what = "" if knob is None else f" {KNOB_SYMBOLS[knob]}={value:g}"
    log(
        f"[{model} {indices[0] + 1}/{len(grid)}] pre-trained{what}: {protocol.pretrain_epochs} "
        f"epochs in {fmt_time(seconds)} (recon {stats['final_recon']}, mean ||J_f(x)||_F "
        f"{stats['mean_jacobian_norm']:.4g}, SAT {stats['sat']:.1f}%)"
    )
    points = []
    for i in indices:
        point = grid[i]
        classifier, result = finetune_on(
            ae,
            data,
            protocol,
            dev,
            epochs=protocol.finetune_epochs,
            lr=point.finetune_lr,
            patience=protocol.patience,
        )
        log(
            f"[{model} {i + 1}/{len(grid)}] fine-tuned {point_text(model, point)}: val error "
            f"{100 * result.val_error:.2f}% (best epoch {result.best_epoch}/{result.epochs_run}) "
            f"in {fmt_time(result.seconds)}"
        )
        entry: dict[str, Any] = {
            "selected_by_validation": False,
            **({} if knob is None else {knob: point.value}),
            "finetune_lr": point.finetune_lr,
            "val_error": round(100 * result.val_error, 2),
            "best_epoch": result.best_epoch,
            "finetune_epochs_run": result.epochs_run,
            "finetune_seconds": round(result.seconds, 1),
            **stats,
        }
        points.append((i, entry, result.val_error, classifier))
    return ValueResult(model, value, ae, stats, points, time.perf_counter() - start)


def finish_model(
    model: str,
    protocol: Protocol,
    device: str,
    values: list[ValueResult],
    *,
    data: Split,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Select ``model``'s grid point, fine-tune it once more, test it: the table's row."""
    start = time.perf_counter()
    dev = torch.device(device)
    grid = protocol.grids[model]
    knob = KNOBS[model]
    by_index = {
        i: (entry, error, clf, r.autoencoder) for r in values for i, entry, error, clf in r.points
    }
    assert sorted(by_index) == list(range(len(grid)))
    points = [by_index[i][0] for i in range(len(grid))]
    index = select_point(
        [by_index[i][1] for i in range(len(grid))],
        [point.value for point in grid],
        n_val=int(data.X_val.shape[0]),
        rule=protocol.selection,
    )
    chosen, val_error, classifier, ae = by_index[index]
    chosen["selected_by_validation"] = True
    selection_val_error = val_error
    best_epoch = chosen["best_epoch"]
    final: dict[str, Any] | None = None
    if protocol.final_epochs:
        # Again from the pre-trained encoder, not from the grid point's fine-tuned classifier.
        classifier, result = finetune_on(
            ae,
            data,
            protocol,
            dev,
            epochs=protocol.final_epochs,
            lr=protocol.final_lr,
            patience=0,  # dropout makes the validation error noisy: keep the best epoch
            dropout=protocol.final_dropout,
            input_dropout=protocol.final_input_dropout,
        )
        val_error, best_epoch = result.val_error, result.best_epoch
        final = {
            "epochs": protocol.final_epochs,
            "lr": protocol.final_lr,
            "dropout": protocol.final_dropout,
            "input_dropout": protocol.final_input_dropout,
            "val_error": round(100 * val_error, 2),
            "best_epoch": best_epoch,
            "seconds": round(result.seconds, 1),
        }
        log(
            f"[{model}] final fine-tuning of {point_text(model, grid[index])}: "
            f"{protocol.final_epochs} epochs from lr {protocol.final_lr:g}, dropout "
            f"{protocol.final_dropout:g}/{protocol.final_input_dropout:g}: val error "
            f"{100 * val_error:.2f}% (best epoch {best_epoch}) in {fmt_time(result.seconds)}"
        )
    err = test_error(classifier, data.X_test, data.y_test)
    probe = linear_probe(
        encode(ae, data.X_train[: protocol.probe_size]),
        data.y_train[: protocol.probe_size],
        encode(ae, data.X_test),
        data.y_test,
        max_iter=PROBE_ITER,
    )
    paper = paper_rows(data.name).get(model)
    selected = {k: chosen[k] for k in ((knob,) if knob else ()) + ("finetune_lr",)}
    # Everything this row took, wherever its parts ran.
    wall = sum(r.seconds for r in values) + time.perf_counter() - start
    row = {
        "dataset": data.name,
        "model": model,
        "test_error": round(100 * err, 2),
        "val_error": round(100 * val_error, 2),
        "selection_val_error": round(100 * selection_val_error, 2),
        "paper_test_error": None if paper is None else paper.test_error,
        "selected": selected,
        "final": final,
        "mean_jacobian_norm": chosen["mean_jacobian_norm"],
        "paper_mean_jacobian_norm": None if paper is None else paper.jacobian_norm,
        "sat": round(chosen["sat"], 2),
        "paper_sat": None if paper is None else paper.sat,
        "probe_test_error": round(100 * probe.error, 2),
        "best_epoch": best_epoch,
        "wall_seconds": round(wall, 1),
        "protocol": protocol.name,
        "selection": protocol.selection,
        "grid": points,
    }
    log(
        f"[{model}] selected {point_text(model, grid[index])} (val error "
        f"{row['selection_val_error']:.2f}%, tested classifier {row['val_error']:.2f}%): "
        f"test error {row['test_error']:.2f}%"
        + ("" if paper is None else f" (paper {paper.test_error:.2f}%)")
        + f", linear probe {row['probe_test_error']:.2f}%, "
        f"{fmt_time(row['wall_seconds'])}"
    )
    return row


def run_models(
    protocol: Protocol, data: Split, device: torch.device, log: Callable[[str], None], jobs: int
) -> Iterator[dict[str, Any]]:
    """Every model's row, yielded as each is finished.

    The unit of work is one grid value (pre-training and its fine-tunings), not one model,
    so that ``jobs`` processes stay busy until the end. A model whose values are all done
    has its final fine-tuning started before any further grid value, so rows come out early.
    With ``jobs == 1`` everything runs here, model by model. Each task seeds itself, so the
    rows do not depend on ``jobs`` or on which process ran what.
    """
    if jobs == 1:
        for model in protocol.models:
            values = [
                pretrain_value(model, v, protocol, str(device), data=data, log=log)
                for v in protocol.values(model)
            ]
            yield finish_model(model, protocol, str(device), values, data=data, log=log)
        return
    queue = [(m, v) for m in protocol.models for v in protocol.values(m)]
    results: dict[str, list[ValueResult]] = {m: [] for m in protocol.models}
    ready: list[str] = []  # models whose grid values are all done
    with WorkerPool(data, jobs, log) as pool:
        running: dict[Future[Any], str] = {}  # task -> its model
        while queue or ready or running:
            while len(running) < jobs and (ready or queue):
                if ready:
                    model = ready.pop(0)
                    task = pool.submit(finish_model, model, protocol, str(device), results[model])
                else:
                    model, value = queue.pop(0)
                    task = pool.submit(pretrain_value, model, value, protocol, str(device))
                running[task] = model
            for task in pool.wait(running):
                model = running.pop(task)
                result = task.result()  # a worker's exception is raised here
                if isinstance(result, ValueResult):
                    results[model].append(result)
                    if len(results[model]) == len(protocol.values(model)):
                        ready.append(model)
                else:
                    yield result


def environment(device: torch.device, jobs: int) -> dict[str, Any]:
    """The machine and versions an experiment ran on, for its ``*_run.json``.

    Examples
    --------
    >>> environment(torch.device("cpu"), 2)["jobs"]
    2
    """
    return {
        "jobs": jobs,
        "threads_per_job": threads_per_job(jobs),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),  # of the process that starts the jobs
        "device": str(device),
    }


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_table1(
    out: str | os.PathLike[str],
    *,
    dataset: str | os.PathLike[str] = "mnist",
    data_dir: str | os.PathLike[str] | None = None,
    label_column: str | int | None = None,
    protocol: Protocol = FULL,
    device: str = "auto",
    jobs: int | None = None,
    command: str | None = None,
    log: Callable[[str], None] = _stderr,
) -> list[dict[str, Any]]:
    """Run the Table 1 experiment and write ``out/table1.md``, ``table1.json``, ``table1_run.json``.

    Parameters
    ----------
    out : path-like
        Output folder (created if missing); the three files are rewritten after every model.
    dataset : str or path-like
        ``"mnist"`` (the paper's), any other name in :data:`contractive.data.DATASETS`, or a
        labelled ``.npz`` / ``.csv`` file; split into training, validation and test sets by
        :func:`~contractive.experiments.splits.load_split`'s rules. The paper's figures are
        shown for MNIST and CIFAR-bw only, the datasets of its Table 1.
    data_dir : path-like, optional
        Folder of the dataset's files (else ``CONTRACTIVE_DATA_DIR``, the cache, or a
        download; see :func:`contractive.data.load_dataset`).
    label_column : str or int, optional
        A user file's label column (``.csv``) or array (``.npz``).
    protocol : Protocol
        :data:`FULL`, :data:`QUICK`, or a :func:`dataclasses.replace` of one.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    jobs : int, optional
        Models trained at once, each in a process of its own that gets an equal share of this
        process's torch threads (at least one). By default one job per torch thread on the
        CPU (two on a 2-core machine, one with ``torch.set_num_threads(1)``) and one on a GPU.
        The rows do not depend on ``jobs`` as long as each model runs with the same number of
        threads: every model has its own seeds.
    command : str, optional
        The command line, recorded in the outputs.
    log : callable
        Receives one progress line per pre-trained and per fine-tuned model (stderr by
        default).

    Returns
    -------
    list of dict
        One row per model, as in ``table1.json``: ``model``, ``test_error`` (%), ``val_error``
        (%), ``selected``, ``mean_jacobian_norm``, ``sat`` (%), ``probe_test_error`` (%), the
        paper's figures (``paper_*``), ``wall_seconds`` and the whole ``grid``.

    Raises
    ------
    ConfigError
        The protocol is invalid.
    DataError
        The dataset's files are missing or damaged, or it has no labels.
    """
    protocol = check_protocol(protocol, MODELS)
    dev = resolve_device(device)
    jobs = default_jobs(jobs, dev)
    # At most one process per grid value: more would have nothing to do.
    jobs = min(jobs, sum(len(protocol.values(m)) for m in protocol.models))
    out_dir = check_output_dir(out)
    # One writer per output folder: a second run into it is refused, not interleaved.
    with RunLock(out_dir):
        start = time.perf_counter()
        data = load_split(dataset, protocol, data_dir=data_dir, label_column=label_column)
        changed = differences(protocol)
        n_train = data.sizes[0]
        planned = planned_seconds(protocol, jobs=jobs, n_train=n_train, n_features=data.n_features)
        meta: dict[str, Any] = {
            "experiment": "table1",
            "dataset": data.name,
            "data": data.description,
            "provenance": data.provenance,
            "sizes": dict(zip(("train", "validation", "test"), data.sizes, strict=True)),
            "protocol": protocol_json(protocol),
            "differences": changed,
            "command": command or "contractive reproduce table1",
            "planned_seconds": round(planned, 1),
            "n_features": data.n_features,
            "n_classes": data.n_classes,
            "n_test": int(data.X_test.shape[0]),
            "total_seconds": 0.0,
            "environment": environment(dev, jobs),
            "definitions": DEFINITIONS,
        }
        n_pre = sum(len(protocol.values(m)) for m in protocol.models)
        n_fine = sum(len(g) for g in protocol.grids.values())
        log(
            f"table1 ({protocol.name}): {', '.join(protocol.models)}; {n_pre} pre-trainings x "
            f"{protocol.pretrain_epochs} epochs and {n_fine} fine-tunings x <= "
            f"{protocol.finetune_epochs} epochs"
            + (
                f", then {len(protocol.models)} final fine-tunings x {protocol.final_epochs} epochs"
                if protocol.final_epochs
                else ""
            )
            + f" on {n_train} images of {data.name}; {jobs} job(s); planned about "
            f"{fmt_time(planned)} on 2 CPU cores; device {dev}"
        )
        if changed:
            log(f"table1 ({protocol.name}) shortens the full protocol: {'; '.join(changed)}")
        rows: list[dict[str, Any]] = []
        for row in run_models(protocol, data, dev, log, jobs):
            rows.append(row)
            rows.sort(key=lambda r: MODELS.index(r["model"]))  # table order, whoever finished first
            meta["total_seconds"] = round(time.perf_counter() - start, 1)
            write_outputs(out_dir, rows, meta, protocol, done=len(rows) == len(protocol.models))
        log(f"table1 ({protocol.name}) done in {fmt_time(meta['total_seconds'])}")
        return rows

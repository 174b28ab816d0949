"""The Table 2 runner: greedy stacks and an SVM on each dataset, selected on validation.

The unit of work is one family at one grid value on one dataset (:func:`family_task`): its
layers are pre-trained greedily once, and every model the family makes (CAE-1 and CAE-2 from
the same two CAE layers) is fine-tuned at each learning rate the grid pairs with the value,
then tested at once, so that only numbers travel back. The SVM of a dataset is one task
(:func:`svm_task`). :func:`run_table2` hands the tasks to ``jobs`` processes, selects each
model's grid point on the validation errors and rewrites ``table2.md`` / ``table2.json`` /
``table2_run.json`` whenever a dataset is complete.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..evaluate import test_error, train_stack
from ..exceptions import ConfigError
from ..locking import RunLock
from ..runs import atomic_write_bytes
from ..train import resolve_device
from ..validation import check_output_dir
from .pool import WorkerPool, default_jobs
from .protocol import Protocol, check_protocol, protocol_json, select_point
from .render import fmt_time, ranking
from .runner import environment, finetune_on
from .splits import Split, load_split
from .table2 import (
    DATASETS,
    FAMILIES,
    FULL,
    MODELS,
    PAPER_TABLE2,
    SVM_GRID,
    differences,
    layer_configs,
    point_text,
)

__all__ = ["FamilyResult", "family_task", "run_table2", "standard_error", "svm_task"]


def standard_error(error: float, n: int) -> float:
    """Binomial standard error of an error rate measured on ``n`` examples, in its units.

    Examples
    --------
    >>> round(standard_error(0.025, 50_000), 5)
    0.0007
    """
    return math.sqrt(error * (1.0 - error) / n)


@dataclass
class FamilyResult:
    """What :func:`family_task` sends back: one entry per (model, grid point) it fine-tuned.

    Examples
    --------
    >>> FamilyResult("rectangles", "SAE", None, [], 1.0, 2.0).family
    'SAE'
    """

    dataset: str
    family: str
    value: float | None
    points: list[dict[str, Any]]  # model, index, val_error, test_error (fractions), timings
    pretrain_seconds: float
    seconds: float


def family_task(
    dataset: str,
    family: str,
    value: float | None,
    protocol: Protocol,
    device: str,
    *,
    data: dict[str, Split],
    log: Callable[[str], None],
) -> FamilyResult:
    """Pre-train ``family``'s layers at ``value`` on ``dataset``, fine-tune and test its models.

    Examples
    --------
    >>> import dataclasses
    >>> from contractive.experiments import table2
    >>> from contractive.experiments.splits import load_split
    >>> tiny = dataclasses.replace(table2.QUICK, hidden=8, pretrain_epochs=1, finetune_epochs=1)
    >>> data = {"digits": load_split("digits", tiny)}
    >>> result = family_task("digits", "CAE", 1.0, tiny, "cpu", data=data, log=lambda s: None)
    >>> [p["model"] for p in result.points]
    ['CAE-1', 'CAE-2']
    """
    start = time.perf_counter()
    split = data[dataset]
    dev = torch.device(device)
    configs = layer_configs(protocol, family, value, device)
    layers = train_stack(split.X_train, configs, device=dev)
    pretrain_seconds = time.perf_counter() - start
    fam = FAMILIES[family]
    grid = protocol.grids[family]
    what = "" if value is None else f" {fam.symbol}={value:g}"
    log(
        f"[{dataset} {family}{what}] pre-trained {len(layers)} layer(s) x "
        f"{protocol.pretrain_epochs} epochs in {fmt_time(pretrain_seconds)}"
    )
    points = []
    for model, depth in fam.models.items():
        for index, point in enumerate(grid):
            if point.value != value:
                continue
            classifier, result = finetune_on(
                layers[:depth],
                split,
                protocol,
                dev,
                epochs=protocol.finetune_epochs,
                lr=point.finetune_lr,
                patience=protocol.patience,
            )
            # Tested now (every point, though only the selected one is reported), so that
            # the classifiers need not travel back to the parent process.
            err = test_error(classifier, split.X_test, split.y_test)
            log(
                f"[{dataset} {model}] fine-tuned {point_text(family, point)}: val error "
                f"{100 * result.val_error:.2f}% (best epoch {result.best_epoch}/"
                f"{result.epochs_run}) in {fmt_time(result.seconds)}"
            )
            points.append(
                {
                    "model": model,
                    "index": index,
                    "value": value,
                    "finetune_lr": point.finetune_lr,
                    "val_error": result.val_error,
                    "test_error": err,
                    "best_epoch": result.best_epoch,
                    "epochs_run": result.epochs_run,
                    "finetune_seconds": round(result.seconds, 1),
                }
            )
    return FamilyResult(
        dataset, family, value, points, round(pretrain_seconds, 1), time.perf_counter() - start
    )


def svm_task(
    dataset: str,
    svm_grid: Sequence[tuple[float, float]],
    *,
    data: dict[str, Split],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """An RBF-kernel SVM on ``dataset``: C and gamma chosen on validation, then tested.

    gamma is a multiple of scikit-learn's ``"scale"``, ``1 / (n_features * X.var())``; the
    grid point with the lowest validation error is kept (ties: the earlier point).

    Examples
    --------
    >>> from contractive.experiments import table2
    >>> from contractive.experiments.splits import load_split
    >>> data = {"digits": load_split("digits", table2.QUICK)}
    >>> row = svm_task("digits", [(10.0, 1.0)], data=data, log=lambda s: None)
    >>> row["selected"]["C"], row["test_error"] < 0.05
    (10.0, True)
    """
    from sklearn.svm import SVC

    start = time.perf_counter()
    split = data[dataset]
    X, y = split.X_train.numpy(), split.y_train.numpy()
    scale = 1.0 / (X.shape[1] * float(X.var()))
    grid: list[dict[str, Any]] = []
    best: tuple[float, int, Any] | None = None
    for i, (c, g) in enumerate(svm_grid):
        t0 = time.perf_counter()
        svm = SVC(C=c, gamma=g * scale, kernel="rbf", cache_size=1000).fit(X, y)
        val_error = float(np.mean(svm.predict(split.X_val.numpy()) != split.y_val.numpy()))
        grid.append(
            {
                "C": c,
                "gamma_times_scale": g,
                "val_error": round(100 * val_error, 2),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        log(
            f"[{dataset} SVM-rbf] C={c:g}, gamma={g:g} x scale: val error "
            f"{100 * val_error:.2f}% in {fmt_time(time.perf_counter() - t0)}"
        )
        if best is None or val_error < best[0]:
            best = (val_error, i, svm)
    assert best is not None  # the grid is never empty
    val_error, index, svm = best
    err = float(np.mean(svm.predict(split.X_test.numpy()) != split.y_test.numpy()))
    grid[index]["selected_by_validation"] = True
    c, g = svm_grid[index]
    return {
        "model": "SVM-rbf",
        "selected": {"C": c, "gamma_times_scale": g, "gamma": scale * g},
        "val_error": val_error,
        "test_error": err,
        "grid": grid,
        "seconds": time.perf_counter() - start,
    }


def _row(dataset: str, model: str, split: Split, test: float, val: float) -> dict[str, Any]:
    paper = PAPER_TABLE2.get(dataset, {}).get(model)
    n_test = split.sizes[2]
    return {
        "dataset": dataset,
        "model": model,
        "test_error": round(100 * test, 2),
        "test_error_se": round(100 * standard_error(test, n_test), 2),
        "val_error": round(100 * val, 2),
        "paper_test_error": paper,
    }


def _model_rows(
    dataset: str,
    split: Split,
    protocol: Protocol,
    results: list[FamilyResult],
    models: Sequence[str],
) -> list[dict[str, Any]]:
    """Select each model's grid point on ``dataset`` and make its row."""
    rows = []
    for family, fam in FAMILIES.items():
        mine = [r for r in results if r.family == family]
        pretrain = sum(r.pretrain_seconds for r in mine)
        for model in fam.models:
            if model not in models:
                continue
            points = sorted(
                (p for r in mine for p in r.points if p["model"] == model),
                key=lambda p: p["index"],
            )
            chosen = points[
                select_point(
                    [p["val_error"] for p in points],
                    [p["value"] for p in points],
                    n_val=split.sizes[1],
                    rule=protocol.selection,
                )
            ]
            row = _row(dataset, model, split, chosen["test_error"], chosen["val_error"])
            row["selected"] = {
                **({} if fam.knob is None else {fam.knob: chosen["value"]}),
                "finetune_lr": chosen["finetune_lr"],
            }
            row["best_epoch"] = chosen["best_epoch"]
            row["wall_seconds"] = round(pretrain + sum(p["finetune_seconds"] for p in points), 1)
            row["grid"] = [
                {
                    **{k: v for k, v in p.items() if k not in ("val_error", "test_error")},
                    "val_error": round(100 * p["val_error"], 2),
                    "selected_by_validation": p is chosen,
                }
                for p in points
            ]
            rows.append(row)
    return rows


def _tasks(
    datasets: Sequence[str], protocol: Protocol, models: Sequence[str]
) -> list[tuple[str, str, float | None]]:
    """(dataset, family or "SVM-rbf", value) in the order they are handed out."""
    tasks: list[tuple[str, str, float | None]] = []
    for dataset in datasets:
        # The deepest stacks first, so that the cheap tasks fill in at the end.
        for family in sorted(protocol.grids, key=lambda f: -FAMILIES[f].depth):
            if any(m in models for m in FAMILIES[family].models):
                tasks += [(dataset, family, v) for v in protocol.values(family)]
        if "SVM-rbf" in models:
            tasks.append((dataset, "SVM-rbf", None))
    return tasks


def _run_tasks(
    tasks: list[tuple[str, str, float | None]],
    protocol: Protocol,
    svm_grid: Sequence[tuple[float, float]],
    data: dict[str, Split],
    device: torch.device,
    log: Callable[[str], None],
    jobs: int,
) -> Iterator[tuple[str, FamilyResult | dict[str, Any]]]:
    """Each task's result with its dataset, as tasks finish."""

    def call(pool: WorkerPool | None, task: tuple[str, str, float | None]) -> Any:
        dataset, family, value = task
        if family == "SVM-rbf":
            args: tuple[Any, ...] = (dataset, svm_grid)
            fn: Callable[..., Any] = svm_task
        else:
            args, fn = (dataset, family, value, protocol, str(device)), family_task
        if pool is None:
            return fn(*args, data=data, log=log)
        return pool.submit(fn, *args)

    if jobs == 1:
        for task in tasks:
            yield task[0], call(None, task)
        return
    queue = list(tasks)
    with WorkerPool(data, jobs, log) as pool:
        running: dict[Future[Any], str] = {}
        while queue or running:
            while queue and len(running) < jobs:
                task = queue.pop(0)
                running[call(pool, task)] = task[0]
            for future in pool.wait(running):
                yield running.pop(future), future.result()


def run_table2(
    out: str | os.PathLike[str],
    *,
    datasets: Sequence[str] = DATASETS,
    models: Sequence[str] = MODELS,
    data_dir: str | os.PathLike[str] | None = None,
    protocol: Protocol = FULL,
    svm_grid: Sequence[tuple[float, float]] = SVM_GRID,
    device: str = "auto",
    jobs: int | None = None,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run Table 2 and write ``out/table2.md``, ``table2.json`` and ``table2_run.json``.

    Parameters
    ----------
    out : path-like
        Output folder (created if missing); the files are rewritten as each dataset finishes.
    datasets : sequence of str
        Names of :data:`contractive.data.DATASETS` (the paper's: :data:`DATASETS`), each
        split by :func:`~contractive.experiments.splits.load_split`.
    models : sequence of str
        A subset of :data:`MODELS`.
    data_dir : path-like, optional
        Where the original ``.amat`` files are, or MNIST's for regenerating them.
    protocol : Protocol
        :data:`~contractive.experiments.table2.FULL`, ``QUICK``, or a replace of one; its
        grids are keyed by family (:data:`FAMILIES`).
    svm_grid : sequence of (C, gamma multiple)
        The SVM's grid.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    jobs : int, optional
        Tasks run at once, each in its own process (default: one per torch thread on the
        CPU, one on a GPU). The rows do not depend on it.
    command : str, optional
        The command line, recorded in the outputs.
    log : callable
        Receives the progress lines.

    Returns
    -------
    list of dict
        One row per dataset and model: ``dataset``, ``model``, ``test_error`` (%),
        ``test_error_se`` (its binomial standard error, %), ``val_error`` (%), ``selected``,
        ``paper_test_error``, ``wall_seconds`` and the ``grid``.
    """
    unknown = sorted(set(models) - set(MODELS)) or (["none"] if not models else [])
    if unknown:
        raise ConfigError(
            f"The 'models' parameter must name some of {', '.join(MODELS)}. "
            f"Got {', '.join(unknown)} instead."
        )
    families = {f for f, fam in FAMILIES.items() if any(m in models for m in fam.models)}
    protocol = check_protocol(protocol, list(FAMILIES))
    missing = sorted(families - set(protocol.grids))
    if missing:
        raise ConfigError(f"The protocol has no grid for the {', '.join(missing)} family.")
    if not datasets:
        raise ConfigError("The 'datasets' parameter must name at least one dataset.")
    dev = resolve_device(device)
    jobs = default_jobs(jobs, dev)
    out_dir = check_output_dir(out)
    with RunLock(out_dir):
        start = time.perf_counter()
        data = {name: load_split(name, protocol, data_dir=data_dir) for name in datasets}
        tasks = _tasks(datasets, protocol, models)
        jobs = min(jobs, len(tasks))
        meta: dict[str, Any] = {
            "experiment": "table2",
            "protocol": protocol_json(protocol),
            "svm_grid": [list(p) for p in svm_grid],
            "differences": differences(protocol),
            "command": command or "contractive reproduce table2",
            "datasets": {
                name: {"data": s.description, "provenance": s.provenance, "sizes": s.sizes}
                for name, s in data.items()
            },
            "total_seconds": 0.0,
            "environment": environment(dev, jobs),
        }
        log(
            f"table2 ({protocol.name}): {', '.join(models)} on {', '.join(datasets)}; "
            f"{len(tasks)} tasks, {jobs} job(s); device {dev}"
        )
        left = {name: sum(1 for t in tasks if t[0] == name) for name in datasets}
        done: dict[str, list[Any]] = {name: [] for name in datasets}
        rows: list[dict[str, Any]] = []
        for dataset, result in _run_tasks(tasks, protocol, svm_grid, data, dev, log, jobs):
            done[dataset].append(result)
            left[dataset] -= 1
            if left[dataset]:
                continue
            rows += _dataset_rows(dataset, data[dataset], protocol, done[dataset], models)
            rows.sort(key=lambda r: (datasets.index(r["dataset"]), MODELS.index(r["model"])))
            meta["total_seconds"] = round(time.perf_counter() - start, 1)
            _write(out_dir, rows, meta, datasets, models, complete=not any(left.values()))
        log(f"table2 ({protocol.name}) done in {fmt_time(meta['total_seconds'])}")
        return rows


def _dataset_rows(
    dataset: str,
    split: Split,
    protocol: Protocol,
    results: list[FamilyResult | dict[str, Any]],
    models: Sequence[str],
) -> list[dict[str, Any]]:
    families = [r for r in results if isinstance(r, FamilyResult)]
    rows = _model_rows(dataset, split, protocol, families, models)
    for svm in (r for r in results if isinstance(r, dict)):
        row = _row(dataset, "SVM-rbf", split, svm["test_error"], svm["val_error"])
        row.update(selected=svm["selected"], wall_seconds=round(svm["seconds"], 1))
        row["grid"] = svm["grid"]
        rows.append(row)
    return rows


def _cell(row: dict[str, Any] | None, paper: float | None) -> str:
    ours = "" if row is None else f"**{row['test_error']:.2f}** ± {row['test_error_se']:.2f}"
    theirs = "" if paper is None else f" ({paper:.2f})"
    return (ours + theirs).strip() or "-"


def markdown(
    rows: Sequence[dict[str, Any]],
    meta: dict[str, Any],
    datasets: Sequence[str],
    models: Sequence[str],
) -> str:
    """``table2.md``: test error % ± standard error (the paper's in brackets), the settings.

    Examples
    --------
    >>> row = {"dataset": "rectangles", "model": "CAE-1", "test_error": 2.0,
    ...        "test_error_se": 0.06, "val_error": 1.5, "selected": {}, "grid": []}
    >>> meta = {"protocol": {"name": "quick"}, "command": "c", "total_seconds": 60.0,
    ...         "differences": [], "datasets": {}}
    >>> print(markdown([row], meta, ["rectangles"], ["CAE-1"]).splitlines()[7])
    | rectangles | **2.00** ± 0.06 (1.48) |
    """
    by = {(r["dataset"], r["model"]): r for r in rows}
    finished = sorted({r["dataset"] for r in rows}, key=list(datasets).index)
    lines = [
        "# Table 2: contractive against Rifai et al. (2011)",
        "",
        f"- Protocol: **{meta['protocol']['name']}**. Command: `{meta['command']}`",
        f"- Wall time: {fmt_time(meta['total_seconds'])}; datasets done: {len(finished)} of "
        f"{len(datasets)}.",
    ]
    if meta["differences"]:
        lines.append("- Changed from the full protocol: " + "; ".join(meta["differences"]) + ".")
    lines += [
        "",
        "| dataset | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for dataset in finished:
        paper = PAPER_TABLE2.get(dataset, {})
        cells = [_cell(by.get((dataset, m)), paper.get(m)) for m in models]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Test error % on each dataset's test set ± its binomial standard error, the paper's "
        "figure in brackets.",
    ]
    for dataset in finished:
        ours = {m: by[(dataset, m)]["test_error"] for m in models if (dataset, m) in by}
        line = f"- {dataset}: ours {ranking(ours)}"
        paper = {m: e for m, e in PAPER_TABLE2.get(dataset, {}).items() if m in ours}
        if paper:
            line += f"; the paper's {ranking(paper)}"
        lines.append(line + ".")
    lines += ["", "## Data", ""]
    for _name, info in meta["datasets"].items():
        provenance = f" {info['provenance']}." if info.get("provenance") else ""
        lines.append(f"- {info['data']}.{provenance}")
    lines += ["", "## Selected points", "", "| dataset | model | selected | val error % |"]
    lines.append("|---|---|---|---|")
    for r in rows:
        selected = ", ".join(f"{k}={v:g}" for k, v in r["selected"].items())
        lines.append(f"| {r['dataset']} | {r['model']} | {selected} | {r['val_error']:.2f} |")
    return "\n".join(lines) + "\n"


def _write(
    out: Path,
    rows: list[dict[str, Any]],
    meta: dict[str, Any],
    datasets: Sequence[str],
    models: Sequence[str],
    *,
    complete: bool,
) -> None:
    meta = {**meta, "complete": complete}
    atomic_write_bytes(out / "table2.json", (json.dumps(rows, indent=2) + "\n").encode())
    atomic_write_bytes(out / "table2_run.json", (json.dumps(meta, indent=2) + "\n").encode())
    atomic_write_bytes(out / "table2.md", markdown(rows, meta, datasets, models).encode())

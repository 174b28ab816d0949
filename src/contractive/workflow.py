"""A user's main job in one call: load data, train into a run folder, resume, reload.

:func:`train_run` is what ``contractive train`` does; it is public so that notebooks and
scripts get the same run folders as the command line. With ``Config(greedy=True)`` it trains
the hidden layers one at a time (:func:`~contractive.stacking.train_stack`) and saves them as
one deep model (:func:`~contractive.stacking.stack_autoencoder`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .callbacks import EpochLogger, ProgressBar, RunWriter, config_summary, format_metrics
from .config import Config
from .data import (
    DATASETS,
    Dataset,
    check_unit_interval,
    load_dataset,
    parse_label_column,
    train_validation_split,
)
from .exceptions import CheckpointError, ConfigError
from .locking import RunLock
from .losses import reconstruction_loss
from .runs import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    Run,
    append_metrics,
    build_model,
    read_config,
    save_model,
    write_config,
    write_metrics,
)
from .stacking import greedy_layer_configs, stack_autoencoder, train_stack
from .train import Callback, EarlyStoppingLog, EpochMetrics, Trainer
from .validation import check_output_dir, parameter_error

__all__ = [
    "PreparedData",
    "layer_epochs",
    "load_run_data",
    "prepare_data",
    "resume_run",
    "train_run",
]

_RUN_FILES = (
    CONFIG_FILE,
    MODEL_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    "filters.png",
    "reconstructions.png",
)


@dataclass
class PreparedData:
    """Training and validation inputs as the trainer takes them, plus what to record."""

    X_train: torch.Tensor | np.ndarray
    X_val: torch.Tensor | None
    meta: dict[str, Any]
    dataset: Dataset


def _fingerprint(X: np.ndarray) -> str:
    # Enough to notice that a resumed run was given other data; reads the array once.
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(str(X.shape).encode())
    step = max(1, X.shape[0] // 4096)
    digest.update(np.ascontiguousarray(X[::step]).tobytes())
    return digest.hexdigest()


def prepare_data(config: Config, *, mmap: bool = False) -> PreparedData:
    """Load ``config.data``, split off validation data, scale, and check it fits the loss."""
    minmax = config.scale == "minmax"
    ds = load_dataset(
        config.data,
        split="train",
        data_dir=config.data_dir,
        scale="none" if minmax else config.scale,
        label_column=parse_label_column(config.label_column),
        mmap=mmap,
    )
    train_idx, val_idx = train_validation_split(
        ds.n_samples, config.validation_fraction, config.seed
    )
    meta: dict[str, Any] = {
        "n_features": ds.n_features,
        "image_shape": list(ds.image_shape) if ds.image_shape else None,
        "data": {
            "source": ds.name,
            "n_train": len(train_idx),
            "n_val": len(val_idx),
        },
        "scaling": None,
    }
    if ds.provenance:
        # e.g. that a variation was regenerated: comparable to, not the same as, the original.
        meta["data"]["provenance"] = ds.provenance
    if isinstance(ds.X, np.memmap):
        X_all: np.ndarray = ds.X
        X_train: torch.Tensor | np.ndarray = X_all  # batches are read from the file
        if len(val_idx):
            raise ConfigError(
                "A memory-mapped dataset is trained without a validation split: "
                "set validation_fraction = 0."
            )
        meta["data"]["fingerprint"] = _fingerprint(X_all)
        return PreparedData(X_train, None, meta, ds)
    X = ds.X
    if minmax:
        # Fitted on the training split only and stored, so encode applies the same map.
        lo = X[train_idx].min(axis=0)
        hi = X[train_idx].max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0).astype(np.float32)
        X = np.clip((X - lo) / span, 0.0, 1.0).astype(np.float32)
        meta["scaling"] = {"kind": "minmax", "min": lo.tolist(), "max": hi.tolist()}
    if config.loss == "bce":
        check_unit_interval(X, ds.name)
    meta["data"]["fingerprint"] = _fingerprint(X)
    X_train_t = torch.from_numpy(np.ascontiguousarray(X[train_idx]))
    X_val_t = torch.from_numpy(np.ascontiguousarray(X[val_idx])) if len(val_idx) else None
    return PreparedData(X_train_t, X_val_t, meta, ds)


def load_run_data(
    run: Run,
    data: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    split: str = "test",
    label_column: str | int | None = None,
) -> Dataset:
    """The data to use a trained run on, scaled as its training data were.

    What ``contractive encode``, ``reconstruct``, ``sample`` and ``report`` load. The samples
    have not been through :meth:`Run.prepare` yet: a run trained with ``scale="minmax"``
    replays there the map fitted on its training split, so it is not refitted here.

    Parameters
    ----------
    run : Run
        A loaded run (:func:`~contractive.runs.load_run`).
    data : str, optional
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` or a ``.npy``/``.npz``/``.csv`` path;
        default: the run's training data.
    data_dir : str or path-like, optional
        Where the dataset files are; default: the run's setting.
    split : {"test", "train", "all"}
        Split of a built-in dataset; files are loaded whole.
    label_column : str or int, optional
        The label column of a ``.csv`` (or label array of a ``.npz``) file, as in
        :func:`~contractive.data.parse_label_column`; default: the run's own when ``data`` is
        the run's training data, else none.

    Returns
    -------
    Dataset

    Examples
    --------
    A run trained on a CSV file whose first column holds labels (built here without training):

    >>> import numpy as np
    >>> from contractive.config import Config
    >>> from contractive.nn import mlp_autoencoder
    >>> rows = np.column_stack([np.arange(5) % 2, np.random.default_rng(0).random((5, 3))])
    >>> np.savetxt("points.csv", rows, delimiter=",", header="label,a,b,c", comments="")
    >>> config = Config(data="points.csv", label_column="label", hidden=[2])
    >>> run = Run(Path("cae"), config, {"n_features": 3}, mlp_autoencoder([3, 2]))
    >>> ds = load_run_data(run)  # the run's data, without its label column
    >>> ds.X.shape, ds.y.tolist()
    ((5, 3), [0, 1, 0, 1, 0])
    >>> load_run_data(run, "digits", split="all").X.shape
    (1797, 64)
    """
    source = data or run.config.data
    builtin = source.strip().lower() in DATASETS
    if label_column is None and source == run.config.data and not builtin:
        label_column = run.config.label_column
    # Min-max scaling is replayed from the run by Run.prepare, not refitted here.
    scale = "none" if run.config.scale == "minmax" else run.config.scale
    return load_dataset(
        source,
        split=split if builtin else "all",
        data_dir=data_dir if data_dir is not None else run.config.data_dir,
        scale=scale,
        label_column=parse_label_column(label_column),
    )


def _callbacks(run_dir: Path, meta: dict[str, Any], quiet: bool) -> list[Callback]:
    callbacks: list[Callback] = [RunWriter(run_dir, meta)]
    if not quiet and _rank() == 0:
        callbacks += [ProgressBar(), EpochLogger(), EarlyStoppingLog(_log)]
    return callbacks


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _launch_rank() -> int:
    # The rank torchrun gives this process, known before the process group is joined: only
    # process 0 writes the run folder, so only it takes the folder's lock.
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextlib.contextmanager
def distributed(config: Config) -> Iterator[torch.device | None]:
    """Join the process group that torchrun describes in the environment, if any.

    Yields the device this process trains on (``cuda:LOCAL_RANK`` with NCCL when CUDA is used,
    the CPU with gloo otherwise), or ``None`` when not launched by torchrun. The group is
    left again on exit.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        yield None
        return
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and config.device != "cpu"
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if use_cuda else None
    if device is not None:
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        yield device or torch.device("cpu")
        if owned:
            # Leave together: a process that tears gloo down while another still writes the
            # run's files was seen to abort (SIGABRT) once in CI. Not on an error, where the
            # other process may never reach the barrier.
            dist.barrier()
    finally:
        if owned:
            dist.destroy_process_group()


def _log(message: str) -> None:
    import sys

    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def _write_plots(run: Run, prepared: PreparedData) -> None:
    shape = prepared.meta.get("image_shape")
    if not shape:
        return
    from .plots import plot_filters, plot_reconstructions

    X = prepared.X_val if prepared.X_val is not None else prepared.X_train
    x = np.asarray(X[:10], dtype=np.float32)
    with torch.no_grad():
        x_hat = run.model(torch.from_numpy(x)).x_hat.numpy()
    plot_filters(run.model.encoder, tuple(shape), run.path / "filters.png")
    plot_reconstructions(x, x_hat, tuple(shape), run.path / "reconstructions.png")


def train_run(
    config: Config,
    out: str | Path,
    *,
    overwrite: bool = False,
    quiet: bool = False,
    plots: bool = True,
    mmap: bool = False,
) -> Run:
    """Train a model from ``config`` into the run folder ``out``.

    Parameters
    ----------
    config : Config
        All options.
    out : str or Path
        Run folder; created if missing. One that already holds a run is refused unless
        ``overwrite`` (which deletes only the run's own files).
    overwrite : bool
        Start again in a folder that holds a run.
    quiet : bool
        No progress bar or epoch lines.
    plots : bool
        Write ``filters.png`` and ``reconstructions.png`` when the data are images.
    mmap : bool
        Memory-map a ``.npy`` dataset instead of loading it.

    Returns
    -------
    Run
        The trained model, ready to encode.

    Raises
    ------
    ConfigError
        ``out`` already holds a run (without ``overwrite``); or ``config.greedy`` with
        ``mmap`` or under torchrun with several processes.

    Notes
    -----
    With ``config.greedy`` the layers are trained one after the other, each for
    ``config.epochs`` epochs with ``config``'s objective and the seed ``config.seed + k``
    (:func:`~contractive.stacking.greedy_layer_configs`), layer ``k + 1`` on the codes of
    layer ``k``. The run folder holds the deep model they make
    (:func:`~contractive.stacking.stack_autoencoder`), which loads like a jointly trained one;
    ``metrics.jsonl`` has a line per layer and epoch, with its ``layer`` (1-based), and
    ``config.json`` records under ``stack`` the deep model's reconstruction loss at the end.
    No checkpoint is written: a greedy run cannot be resumed.

    Examples
    --------
    >>> from contractive.config import Config
    >>> run = train_run(Config(epochs=1), "runs/doc", overwrite=True, quiet=True)  # doctest: +SKIP

    A greedy stack of two layers, on the bundled digits:

    >>> stack = Config(hidden=[16, 8], greedy=True, epochs=1)
    >>> run = train_run(stack, "runs/cae2", quiet=True, plots=False)
    >>> run.model.encoder
    Sequential(
      (0): Linear(in_features=64, out_features=16, bias=True)
      (1): Sigmoid()
      (2): Linear(in_features=16, out_features=8, bias=True)
      (3): Sigmoid()
    )
    >>> from contractive.runs import read_metrics
    >>> [(row["layer"], row["epoch"]) for row in read_metrics("runs/cae2/metrics.jsonl")]
    [(1, 1), (2, 1)]
    """
    run_dir = check_output_dir(out)
    if config.greedy:
        _check_greedy_launch(mmap)
    # Held before the folder is looked at, so that a second writer changes nothing.
    with RunLock(run_dir, enabled=_launch_rank() == 0):
        existing = [name for name in _RUN_FILES if (run_dir / name).exists()]
        if existing and not overwrite:
            raise ConfigError(
                f"{run_dir} already holds a run ({', '.join(existing)}): pass --resume "
                f"{run_dir} to continue it, or --overwrite to start again."
            )
        prepared = prepare_data(config, mmap=mmap)
        if config.greedy:
            for name in existing:
                (run_dir / name).unlink()
            return _train_greedy(config, run_dir, prepared, quiet=quiet, plots=plots)
        with distributed(config) as device:
            _barrier()  # every process has looked at the folder before process 0 changes it
            if _rank() == 0:
                for name in existing:
                    (run_dir / name).unlink()
            torch.manual_seed(config.seed)
            shape = prepared.meta["image_shape"]
            model = build_model(
                config, prepared.meta["n_features"], tuple(shape) if shape else None
            )
            trainer = Trainer(
                model, config, callbacks=_callbacks(run_dir, prepared.meta, quiet), device=device
            )
            prepared.meta["world_size"] = trainer.world_size
            if not quiet and trainer.rank == 0:
                _log(f"Training {config_summary(config)} on {prepared.dataset.name} -> {run_dir}")
            trainer.fit(prepared.X_train, prepared.X_val, handle_sigint=True)
            return _finish(trainer, run_dir, config, prepared, plots)


def _finish(
    trainer: Trainer, run_dir: Path, config: Config, prepared: PreparedData, plots: bool
) -> Run:
    model = trainer.model.to("cpu").eval()
    run = Run(run_dir, config, prepared.meta, model)  # type: ignore[arg-type]
    if plots and trainer.rank == 0:
        _write_plots(run, prepared)
    return run


def _check_greedy_launch(mmap: bool) -> None:
    """Refuse what a greedy stack cannot be trained with, before anything is loaded."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        raise parameter_error(
            "greedy",
            f"False when training with {world_size} processes (torchrun): a greedy stack "
            "trains in one process",
            True,
        )
    if mmap:
        raise parameter_error(
            "greedy",
            "False with a memory-mapped dataset (mmap): the layers above the first train on "
            "codes held in memory",
            True,
        )


@dataclass
class _LayerEpoch(EpochMetrics):
    """A line of a greedy run's ``metrics.jsonl``: an epoch of one layer (1-based)."""

    layer: int = 1


class _StackLog(Callback):
    """Numbers the layers of a greedy stack as each starts; writes and logs their epochs.

    :func:`~contractive.stacking.train_stack` gives the same callbacks to every layer's
    trainer, so the layer is counted at each ``on_train_begin``.
    """

    def __init__(self, run_dir: Path, sizes: list[int], log: Callable[[str], None] | None):
        self.run_dir = run_dir
        self.sizes = sizes  # [d_x, d_h1, ..., d_hK]
        self.log = log
        self.layer = 0

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def say(self, message: str) -> None:
        if self.log is not None:
            self.log(f"layer {self.layer}/{self.n_layers}  {message}")

    def on_train_begin(self, trainer: Trainer) -> None:
        self.layer += 1
        k = self.layer
        source = "the inputs" if k == 1 else f"the codes of layer {k - 1}"
        self.say(f"{self.sizes[k - 1]} -> {self.sizes[k]}, trained on {source}")

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        append_metrics(self.run_dir, _LayerEpoch(**asdict(metrics), layer=self.layer))
        self.say(format_metrics(metrics, trainer.config.epochs))


def layer_epochs(metrics: Sequence[Mapping[str, Any]], n_layers: int) -> list[int]:
    """Epochs done by each layer of a greedy run, from its ``metrics.jsonl`` rows.

    Parameters
    ----------
    metrics : sequence of dict
        The rows, as :func:`~contractive.runs.read_metrics` returns them; each row of a greedy
        run names its ``layer`` (1-based).
    n_layers : int
        The number of layers, ``len(config.hidden)``.

    Returns
    -------
    list of int
        ``n_layers`` counts, bottom layer first.

    Examples
    --------
    A stack of two layers stopped during the second layer's second epoch:

    >>> rows = [{"layer": 1, "epoch": 1}, {"layer": 1, "epoch": 2}, {"layer": 2, "epoch": 1}]
    >>> layer_epochs(rows, 2)
    [2, 1]
    """
    return [sum(1 for row in metrics if row.get("layer") == k) for k in range(1, n_layers + 1)]


def _mean_recon(model: torch.nn.Module, X: torch.Tensor, loss: str) -> float:
    """Mean per-sample reconstruction loss of ``model`` on ``X``, without noise."""
    total = 0.0
    with torch.no_grad():
        for i in range(0, X.shape[0], 1024):
            x = X[i : i + 1024]
            total += float(reconstruction_loss(model(x), x, loss).double().sum())
    return total / max(1, X.shape[0])


def _train_greedy(
    config: Config, run_dir: Path, prepared: PreparedData, *, quiet: bool, plots: bool
) -> Run:
    """Train ``config``'s layers greedily into ``run_dir`` (locked) and save the deep model."""
    meta = prepared.meta
    meta["world_size"] = 1
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, config, meta)
    write_metrics(run_dir, [])  # lines are appended as each layer's epochs end
    sizes = [int(meta["n_features"]), *config.hidden]
    stack_log = _StackLog(run_dir, sizes, None if quiet else _log)
    callbacks: list[Callback] = [stack_log]
    if not quiet:
        callbacks += [ProgressBar(), EarlyStoppingLog(stack_log.say)]
        _log(
            f"Training {config_summary(config)} greedily, one layer at a time, on "
            f"{prepared.dataset.name} -> {run_dir}"
        )
    assert isinstance(prepared.X_train, torch.Tensor)  # mmap is refused for greedy stacks
    layers = train_stack(
        prepared.X_train, greedy_layer_configs(config), X_val=prepared.X_val, callbacks=callbacks
    )
    model = stack_autoencoder(layers).to("cpu").eval()
    held_out = prepared.X_val is not None
    X = prepared.X_val if prepared.X_val is not None else prepared.X_train
    meta["stack"] = {
        "recon": _mean_recon(model, X, config.loss),
        "split": "validation" if held_out else "training",
    }
    write_config(run_dir, config, meta)
    save_model(run_dir, model)  # last: a folder with its model is a complete run
    run = Run(run_dir, config, meta, model)
    if plots:
        _write_plots(run, prepared)
    return run


def resume_run(
    run_dir: str | Path,
    *,
    epochs: int | None = None,
    quiet: bool = False,
    plots: bool = True,
    data_dir: str | None = None,
) -> Run:
    """Continue the run in ``run_dir`` from its checkpoint.

    The result is bitwise identical (on the CPU) to a run that was never interrupted.

    Parameters
    ----------
    run_dir : str or Path
        A run folder written by :func:`train_run`.
    epochs : int, optional
        A new total number of epochs (to train longer than first planned).
    quiet, plots
        As in :func:`train_run`.
    data_dir : str, optional
        Where the dataset files are now, if they moved.
    """
    run_dir = Path(run_dir)
    with RunLock(run_dir, create=False, enabled=_launch_rank() == 0):
        return _resume_locked(run_dir, epochs, quiet, plots, data_dir)


def _resume_locked(
    run_dir: Path, epochs: int | None, quiet: bool, plots: bool, data_dir: str | None
) -> Run:
    config, meta = read_config(run_dir)
    if config.greedy:
        raise ConfigError(
            f"{run_dir} is a greedy stack (greedy=True), which cannot be resumed: its layers "
            "are trained one after the other without checkpoints. Train it again with "
            "--overwrite."
        )
    changes: dict[str, Any] = {}
    if epochs is not None:
        changes["epochs"] = epochs
    if data_dir is not None:
        changes["data_dir"] = data_dir
    if changes:
        config = config.replace(**changes)
    prepared = prepare_data(config, mmap=False)
    if prepared.meta["data"]["fingerprint"] != meta.get("data", {}).get("fingerprint"):
        raise CheckpointError(
            f"The data loaded from {config.data!r} differ from the data {run_dir} was trained "
            "on; resume with the same data."
        )
    prepared.meta = {**meta, **{k: v for k, v in prepared.meta.items() if k == "data"}}
    with distributed(config) as device:
        torch.manual_seed(config.seed)
        image_shape = tuple(meta["image_shape"]) if meta.get("image_shape") else None
        model = build_model(config, int(meta["n_features"]), image_shape)
        trainer = Trainer(
            model, config, callbacks=_callbacks(run_dir, prepared.meta, quiet), device=device
        )
        if (run_dir / CHECKPOINT_FILE).is_file():
            RunWriter.prepare_resume(run_dir, trainer)
            where = f"epoch {trainer.state.epoch + 1}, step {trainer.state.step_in_epoch}"
        else:
            # Stopped before its first checkpoint: starting over gives the same run.
            where = "the beginning (no checkpoint was written yet)"
        _barrier()  # process 0 rewrites metrics.jsonl in prepare_resume
        if meta.get("world_size", 1) != trainer.world_size and trainer.rank == 0:
            _log(
                f"Note: {run_dir} was trained by {meta.get('world_size', 1)} process(es) and "
                f"continues with {trainer.world_size}; the result is equivalent, not bitwise."
            )
        prepared.meta["world_size"] = trainer.world_size
        if not quiet and trainer.rank == 0:
            _log(f"Resuming {run_dir} from {where}, for {config.epochs} epochs in all")
        trainer.fit(prepared.X_train, prepared.X_val, handle_sigint=True)
        return _finish(trainer, run_dir, config, prepared, plots)

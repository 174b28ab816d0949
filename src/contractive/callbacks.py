"""Callbacks for :class:`contractive.train.Trainer`: progress bar, epoch log, run folder.

Each does one job and can be left out: the Python API runs silently with none, the
``contractive train`` command uses all three.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .config import Config
from .exceptions import CheckpointError
from .runs import (
    CHECKPOINT_FILE,
    append_metrics,
    load_state,
    load_tensors,
    save_model,
    save_tensors,
    write_config,
    write_metrics,
)
from .train import Callback, EpochMetrics, Trainer

__all__ = ["EpochLogger", "ProgressBar", "RunWriter", "format_metrics"]


class ProgressBar(Callback):
    """A tqdm bar per epoch showing the loss parts of the latest batch.

    Parameters
    ----------
    file : text stream
        Where the bar goes (stderr by default, like tqdm).
    every : int
        Refresh the loss read-out every ``every`` steps (formatting is not free).
    """

    def __init__(self, *, file: TextIO | None = None, every: int = 10) -> None:
        self.file = file
        self.every = every
        self._bar: Any = None

    def on_epoch_begin(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=n_steps,
            initial=trainer.state.step_in_epoch,
            desc=f"epoch {epoch + 1}/{trainer.config.epochs}",
            unit="step",
            leave=False,
            file=self.file or sys.stderr,
            dynamic_ncols=True,
        )

    def on_batch_end(self, trainer: Trainer, parts: dict[str, float]) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        if trainer.state.step_in_epoch % self.every == 0:
            self._bar.set_postfix(
                {k: f"{v:.4g}" for k, v in parts.items() if k in ("recon", "penalty", "total")},
                refresh=False,
            )

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self._close()

    def on_train_end(self, trainer: Trainer) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def format_metrics(m: EpochMetrics, epochs: int) -> str:
    """The one-line epoch summary printed by :class:`EpochLogger`."""
    parts = [f"epoch {m.epoch:>{len(str(epochs))}}/{epochs}", f"recon {m.recon:.4f}"]
    if m.penalty is not None:
        parts.append(f"penalty {m.penalty:.4g}")
    if m.higher_order is not None:
        parts.append(f"cae+h {m.higher_order:.4g}")
    parts.append(f"total {m.total:.4f}")
    if m.val_total is not None:
        parts.append(f"val {m.val_total:.4f}")
    parts += [f"lr {m.lr:.3g}", f"{m.time:.1f}s"]
    return "  ".join(parts)


class EpochLogger(Callback):
    """One summary line per epoch (through tqdm.write, so it never breaks a bar)."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self._write = write

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        line = format_metrics(metrics, trainer.config.epochs)
        if self._write is not None:
            self._write(line)
        else:
            from tqdm.auto import tqdm

            tqdm.write(line, file=sys.stderr)


class RunWriter(Callback):
    """Keeps a run folder current: config.json, metrics.jsonl, model and checkpoint.

    At each epoch end the metrics line is appended first and the checkpoint written last, so
    a kill in between leaves a line that resuming drops (see :meth:`prepare_resume`) rather
    than a checkpoint without its line.

    Parameters
    ----------
    run_dir : Path
        The folder (created if missing).
    meta : dict
        What the run derived from the data (``n_features``, ``image_shape``, ``scaling``...).
    """

    def __init__(self, run_dir: Path, meta: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.meta = meta

    # Under torchrun every process runs this callback (a checkpoint gathers state from all of
    # them), and process 0 alone writes.

    def on_train_begin(self, trainer: Trainer) -> None:
        if trainer.rank != 0:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_config(self.run_dir, trainer.config, self.meta)
        if trainer.state.global_step == 0:
            write_metrics(self.run_dir, [])

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        if trainer.rank == 0:
            append_metrics(self.run_dir, metrics)
            save_model(self.run_dir, trainer.model)
        self.save_checkpoint(trainer)

    def on_checkpoint(self, trainer: Trainer) -> None:
        self.save_checkpoint(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        # After early stopping the best weights were restored: they are the model.
        if trainer.rank == 0:
            save_model(self.run_dir, trainer.model)

    def save_checkpoint(self, trainer: Trainer) -> None:
        """Write checkpoint.safetensors atomically (tensors + JSON state in its metadata)."""
        import json

        tensors, state = trainer.checkpoint()
        if trainer.rank == 0:
            save_tensors(self.run_dir / CHECKPOINT_FILE, tensors, {"state": json.dumps(state)})

    @staticmethod
    def prepare_resume(run_dir: Path, trainer: Trainer) -> None:
        """Load the checkpoint into ``trainer`` and drop metrics lines written after it."""
        import json

        tensors, metadata = load_tensors(Path(run_dir) / CHECKPOINT_FILE)
        try:
            state = json.loads(metadata["state"])
        except (KeyError, json.JSONDecodeError):
            raise CheckpointError(
                f"{Path(run_dir) / CHECKPOINT_FILE} has no readable training state."
            ) from None
        path = Path(run_dir) / CHECKPOINT_FILE
        model_tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        load_state(trainer.model, model_tensors, path)  # names the mismatching tensors
        try:
            trainer.load_checkpoint(tensors, state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            detail = " ".join(str(exc).split())  # torch's messages span several lines
            raise CheckpointError(f"{path} does not match config.json ({detail}).") from None
        # The checkpoint's own history is the truth: lines appended after it are dropped.
        write_metrics(Path(run_dir), trainer.history)


def config_summary(config: Config) -> str:
    """A short description of the model a config trains, for logs."""
    arch = "x".join(str(h) for h in config.hidden)
    return (
        f"{config.architecture} {arch} {config.activation}, "
        f"{'tied' if config.tied else 'untied'}, {config.loss}, "
        f"contraction {config.contraction:g} ({config.penalty})"
    )

"""Training: the objective, a narrow ``train_step``, the epoch loop, callbacks and resume.

The objective is assembled here from pieces that each do one job::

    total = recon(g(f(x~)), x)                        # reconstruction of the clean x
          + contraction  * mean_b ||J_f(x~_b)||_F^2    # CAE
          + higher_order * mean_b E||J_f(x~) - J_f(x~ + eps)||_F^2   # CAE+H
          + weight_decay * sum ||W||_F^2               # AE + weight decay

where ``x~`` is ``x`` with optional Gaussian (DAE-g) or masking (DAE-b) noise; every term is
zero-cost when its weight is zero, so the same loop trains AE, AE+wd, DAE-g, DAE-b, CAE and
CAE+H. The model itself only returns data (:class:`contractive.nn.AutoencoderOutput`).

Reproducibility: the shuffling of epoch ``e`` comes from a generator seeded with
``(seed, e)``, and the noise/probe generator is re-seeded at the start of every epoch and its
state saved in every checkpoint, so a run resumed from any checkpoint, even one taken
mid-epoch, ends with the same weights, bit for bit on the CPU, as an uninterrupted run.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .config import Config
from .exceptions import ConfigError, ContractiveError, TrainingDivergedError
from .losses import LOSSES
from .penalties import analytic_supported, encode_with_penalty, higher_order_penalty
from .stopping import EarlyStopping, StoppingState

__all__ = [
    "Callback",
    "EarlyStoppingLog",
    "EpochMetrics",
    "Trainer",
    "TrainingInterrupted",
    "fit",
    "resolve_device",
]

_PARTS = ("recon", "penalty", "higher_order", "weight_decay", "total")


class TrainingInterrupted(ContractiveError):
    """Training stopped on Ctrl-C after saving a checkpoint."""


@dataclass
class EpochMetrics:
    """One line of ``metrics.jsonl``. Losses are batch means of per-sample sums.

    ``penalty`` is mean ||J_f(x)||_F^2 without lambda (``None`` when not computed: lambda is 0
    and the encoder has no cheap analytic form). ``val_*`` are on the held-out split, without
    input noise; ``val_total`` = val_recon + contraction * val_penalty.
    """

    epoch: int
    recon: float
    penalty: float | None
    higher_order: float | None
    weight_decay: float | None
    total: float
    val_recon: float | None
    val_penalty: float | None
    val_total: float | None
    lr: float
    time: float
    steps: int


class Callback:
    """Hooks into :meth:`Trainer.fit`; every method does nothing by default."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first step (also when resuming)."""

    def on_epoch_begin(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        """At the start of epoch ``epoch`` (0-based), which has ``n_steps`` steps."""

    def on_batch_end(self, trainer: Trainer, parts: dict[str, float]) -> None:
        """After each optimizer step, with the batch's loss parts."""

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        """After each epoch's metrics are computed and the epoch counted as done."""

    def on_checkpoint(self, trainer: Trainer) -> None:
        """When a mid-epoch checkpoint is due (``checkpoint_every``, Ctrl-C)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch, early stop included (not after an error)."""


@dataclass
class TrainState(StoppingState):
    """The counters and sums a checkpoint restores besides tensors.

    The early-stopping counters (``best_val``, ``best_epoch``, ``bad_epochs``,
    ``stopped_early``) come from :class:`~contractive.stopping.StoppingState`, so that the
    trainer's :class:`~contractive.stopping.EarlyStopping` updates the checkpointed state.
    """

    epoch: int = 0  # finished epochs
    step_in_epoch: int = 0  # steps done in the unfinished epoch
    global_step: int = 0
    sums: dict[str, float] = field(default_factory=dict)  # sample-weighted sums this epoch
    n_seen: int = 0  # samples seen this epoch


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ContractiveError(
            f"device={name!r} was asked for, but CUDA is not available; use --device cpu."
        )
    return device


def _dist_info() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sampler(n: int, rank: int, world_size: int, seed: int) -> Any:
    from torch.utils.data.distributed import DistributedSampler

    # DistributedSampler only needs len(dataset); no per-sample Python in the loop.
    return DistributedSampler(
        range(n),  # type: ignore[arg-type]
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=seed,
        drop_last=False,
    )


class _ObjectiveModule(nn.Module):
    """The trainer's objective as a module, so that DistributedDataParallel can wrap it."""

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.model = trainer.model
        self._trainer = [trainer]  # a list keeps the trainer out of the module tree

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self._trainer[0].objective(x)


def _seed_for(seed: int, epoch: int, stream: int) -> int:
    # Distinct, reproducible seeds per (run seed, epoch, stream), all below 2**63.
    return (seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63 - 1)


class Trainer:
    """Trains an :class:`~contractive.nn.Autoencoder` on in-memory data.

    Parameters
    ----------
    model : nn.Module
        An :class:`~contractive.nn.Autoencoder` (or anything with ``encoder``, ``prepare``
        and ``reconstruct``).
    config : Config
        Objective and optimisation options.
    callbacks : sequence of Callback
        Progress, logging, checkpointing, early stopping.
    device : torch.device, optional
        Defaults to ``resolve_device(config.device)``.

    Examples
    --------
    >>> import torch
    >>> from contractive import mlp_autoencoder
    >>> from contractive.config import Config
    >>> cfg = Config(hidden=[8], epochs=2, batch_size=16, validation_fraction=0.0)
    >>> trainer = Trainer(mlp_autoencoder([16, 8]), cfg)
    >>> history = trainer.fit(torch.rand(64, 16))
    >>> len(history)
    2
    """

    def __init__(
        self,
        model: nn.Module,
        config: Config,
        *,
        callbacks: Sequence[Callback] = (),
        device: torch.device | None = None,
    ) -> None:
        self.config = config
        self.device = device or resolve_device(config.device)
        self.model = model.to(self.device)
        self.callbacks = list(callbacks)
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.noise_generator = torch.Generator(self.device)
        self.state = TrainState()
        self._stopper = EarlyStopping(config.patience, self.state)
        self.history: list[EpochMetrics] = []
        self._stop_requested = False
        self._loss_fn = LOSSES[config.loss][0]
        # The penalty is logged even for AE baselines (lambda 0) when it costs nothing.
        self._track_penalty = config.contraction > 0 or analytic_supported(self._encoder)
        self.rank, self.world_size = _dist_info()
        if config.batch_size % self.world_size:
            raise ConfigError(
                f"The 'batch_size' parameter ({config.batch_size}) is the global batch and must "
                f"be divisible by the number of processes ({self.world_size})."
            )
        # Under torchrun the objective runs inside DistributedDataParallel, whose backward
        # hooks average the gradients over processes; alone it is called directly.
        self._objective: Callable[[Tensor], tuple[Tensor, dict[str, Tensor]]] = self.objective
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(_ObjectiveModule(self), device_ids=ids)
            self._objective = self._ddp

    # -- building blocks -----------------------------------------------------------------

    @property
    def _encoder(self) -> nn.Module:
        return self.model.encoder  # type: ignore[return-value]

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.config.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.config.lr, momentum=self.config.momentum)
        return torch.optim.Adam(params, lr=self.config.lr)

    def _make_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler | None:
        if self.config.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=self.config.epochs
            )
        if self.config.schedule == "step":
            # A tenfold decay at half and again at three quarters of the run. LambdaLR keeps
            # the state JSON-serialisable (MultiStepLR's Counter is not).
            marks = (self.config.epochs // 2, 3 * self.config.epochs // 4)
            return torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda e: 0.1 ** sum(e >= m for m in marks if m > 0)
            )
        return None

    def _decayed_weights(self) -> list[Tensor]:
        # Weights only: decaying biases would shift the code, not regularise it.
        return [p for name, p in self.model.named_parameters() if name.endswith("weight")]

    def corrupt(self, x: Tensor) -> Tensor:
        """Input noise: Gaussian (``noise_std``) then masking (``mask_prob``)."""
        cfg = self.config
        if cfg.noise_std > 0:
            noise = torch.randn(
                x.shape, generator=self.noise_generator, device=x.device, dtype=x.dtype
            )
            x = x + cfg.noise_std * noise
        if cfg.mask_prob > 0:
            keep = torch.empty_like(x).bernoulli_(
                1.0 - cfg.mask_prob, generator=self.noise_generator
            )
            x = x * keep
        return x

    def objective(self, x: Tensor, *, noise: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss (scalar) and its parts for a batch ``x`` of flat inputs ``(B, d_x)``."""
        cfg = self.config
        model = self.model
        x_in = self.corrupt(x) if noise else x
        enc_in = model.prepare(x_in)  # type: ignore[operator]
        parts: dict[str, Tensor] = {}
        if self._track_penalty:
            h, pen = encode_with_penalty(
                self._encoder,
                enc_in,
                method=cfg.penalty,
                probes=cfg.probes,
                generator=self.noise_generator,
            )
            parts["penalty"] = pen.mean()
        else:
            h = self._encoder(enc_in)
        out = model.reconstruct(h, x)  # type: ignore[operator]
        recon = self._loss_fn(out, x).mean()
        parts["recon"] = recon
        total = recon
        if cfg.contraction > 0:
            total = total + cfg.contraction * parts["penalty"]
        if cfg.higher_order > 0:
            ho = higher_order_penalty(
                self._encoder,
                enc_in,
                sigma=cfg.ho_sigma,
                corruptions=cfg.ho_corruptions,
                generator=self.noise_generator,
                method="layerwise" if cfg.penalty == "layerwise" else cfg.penalty,
            ).mean()
            parts["higher_order"] = ho
            total = total + cfg.higher_order * ho
        if cfg.weight_decay > 0:
            wd = sum((w * w).sum() for w in self._decayed_weights())
            assert isinstance(wd, Tensor)
            parts["weight_decay"] = wd
            total = total + cfg.weight_decay * wd
        parts["total"] = total
        return total, parts

    def train_step(self, x: Tensor) -> dict[str, float]:
        """One optimizer step on batch ``x``; returns the loss parts as floats.

        Raises
        ------
        TrainingDivergedError
            The loss is NaN or infinite; no step is taken, the weights stay as they were.
        """
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        use_bf16 = self.config.bf16 and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            total, parts = self._objective(x)
        values = {k: float(v.detach()) for k, v in parts.items()}
        finite = math.isfinite(values["total"])
        if self.world_size > 1:
            # Every process must agree before backward (which all-reduces): one small
            # all-reduce carries "some loss is not finite" and "someone pressed Ctrl-C".
            import torch.distributed as dist

            flags = torch.tensor(
                [float(not finite), float(self._stop_requested)], device=self.device
            )
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            finite = not bool(flags[0])
            self._stop_requested = bool(flags[1])
        if not finite:
            raise TrainingDivergedError(
                f"The training loss became {values['total']} at epoch {self.state.epoch + 1}, "
                f"step {self.state.step_in_epoch + 1} (parts: "
                + ", ".join(f"{k} {v:.4g}" for k, v in values.items() if k != "total")
                + f"). Train again (--overwrite, or another --out) with a lower learning "
                f"rate (now {self.current_lr():g}, --lr) or contraction (--contraction), "
                "or check the data for extreme values."
            )
        total.backward()
        self.optimizer.step()
        return values

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @torch.no_grad()
    def evaluate(self, X: Tensor, *, batch_size: int = 1024) -> dict[str, float]:
        """Mean reconstruction and penalty on ``X`` without input noise."""
        self.model.eval()
        sums = {"recon": 0.0, "penalty": 0.0}
        cfg = self.config
        for i in range(0, X.shape[0], batch_size):
            x = X[i : i + batch_size].to(self.device)
            if self._track_penalty:
                # exact/hutchinson differentiate through the encoder: grad mode on, no graph kept
                with torch.enable_grad():
                    h, pen = encode_with_penalty(
                        self._encoder,
                        self.model.prepare(x),  # type: ignore[operator]
                        method=cfg.penalty,
                        probes=cfg.probes,
                        generator=self.noise_generator,
                    )
                h, pen = h.detach(), pen.detach()
                sums["penalty"] += float(pen.sum())
            else:
                h = self.model.encode(x)  # type: ignore[operator]
            out = self.model.reconstruct(h, x)  # type: ignore[operator]
            sums["recon"] += float(self._loss_fn(out, x).sum())
        n = max(1, X.shape[0])
        return {k: v / n for k, v in sums.items()}

    # -- state ----------------------------------------------------------------------------

    @property
    def best_weights(self) -> dict[str, Tensor] | None:
        """The best epoch's weights under early stopping (``None`` when it is off)."""
        return self._stopper.best_weights

    def checkpoint(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Everything needed to resume: tensors and a JSON-serialisable state."""
        tensors: dict[str, Tensor] = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_state = self.optimizer.state_dict()
        opt_scalars: dict[str, dict[str, Any]] = {}
        for idx, entry in opt_state["state"].items():
            for key, value in entry.items():
                if isinstance(value, Tensor):
                    tensors[f"optimizer.{idx}.{key}"] = value
                else:
                    opt_scalars.setdefault(str(idx), {})[key] = value
        tensors["rng.noise"] = self.noise_generator.get_state()
        if self.world_size > 1:
            # Each process draws its own noise: keep every process's generator state.
            import torch.distributed as dist

            states = [torch.empty_like(tensors["rng.noise"]) for _ in range(self.world_size)]
            dist.all_gather_object(states, tensors["rng.noise"])
            tensors.update({f"rng.noise.{r}": st for r, st in enumerate(states)})
        if self.best_weights is not None:
            tensors.update({f"best.{k}": v for k, v in self.best_weights.items()})
        state = {
            "train": asdict(self.state),
            "optimizer": {
                "param_groups": opt_state["param_groups"],
                "scalars": opt_scalars,
                "tensor_keys": sorted(
                    {k.split(".", 2)[2] for k in tensors if k.startswith("optimizer.")}
                ),
            },
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "history": [asdict(m) for m in self.history],
        }
        return tensors, state

    def load_checkpoint(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        """Restore what :meth:`checkpoint` saved."""
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        opt = state["optimizer"]
        per_param: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, idx, name = key.split(".", 2)
                per_param.setdefault(int(idx), {})[name] = value.to(self.device)
        for idx, scalars in opt["scalars"].items():
            per_param.setdefault(int(idx), {}).update(scalars)
        self.optimizer.load_state_dict({"state": per_param, "param_groups": opt["param_groups"]})
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        own = tensors.get(f"rng.noise.{self.rank}", tensors["rng.noise"])
        self.noise_generator.set_state(own.cpu() if self.device.type == "cpu" else own)
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        self.state = TrainState(**state["train"])
        self._stopper = EarlyStopping(self.config.patience, self.state, best or None)
        self.history = [EpochMetrics(**m) for m in state["history"]]

    # -- the loop ---------------------------------------------------------------------------

    def _batch(self, X: Tensor | np.ndarray, idx: Tensor) -> Tensor:
        if isinstance(X, Tensor):
            return X[idx.to(X.device)].to(self.device, non_blocking=True)
        # Memory-mapped arrays: read rows in file order, then restore the shuffled order.
        order = torch.argsort(idx)
        rows = np.asarray(X[idx[order].numpy()], dtype=np.float32)
        batch = torch.empty((len(idx), rows.shape[1]), dtype=torch.float32)
        batch[order] = torch.from_numpy(rows)
        return batch.to(self.device)

    def request_stop(self) -> None:
        """Ask the loop to checkpoint and stop after the current step (what Ctrl-C does)."""
        self._stop_requested = True

    def fit(
        self,
        X: Tensor | np.ndarray,
        X_val: Tensor | np.ndarray | None = None,
        *,
        handle_sigint: bool = False,
    ) -> list[EpochMetrics]:
        """Train until ``config.epochs`` epochs are done (or early stopping), from the state.

        Parameters
        ----------
        X : Tensor or ndarray
            Training inputs ``(n, d_x)``, float32; a NumPy memmap is read batch by batch.
        X_val : Tensor or ndarray, optional
            Held-out inputs for validation metrics and early stopping.
        handle_sigint : bool
            Turn Ctrl-C into a checkpoint and :class:`TrainingInterrupted`.

        Returns
        -------
        list of EpochMetrics
            The whole history, resumed epochs included.
        """
        previous = None
        if handle_sigint and threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            self._fit(X, X_val)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return self.history

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_requested:  # a second Ctrl-C: stop now, without a checkpoint
            raise KeyboardInterrupt
        self._stop_requested = True

    def _fit(self, X: Tensor | np.ndarray, X_val: Tensor | np.ndarray | None) -> None:
        cfg = self.config
        n = X.shape[0]
        if isinstance(X_val, np.ndarray):
            X_val = torch.from_numpy(np.asarray(X_val, dtype=np.float32))
        local_batch = cfg.batch_size // self.world_size
        sampler = _sampler(n, self.rank, self.world_size, cfg.seed)
        n_steps = math.ceil(len(sampler) / local_batch)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        while self.state.epoch < cfg.epochs and not self.state.stopped_early:
            epoch = self.state.epoch
            # DistributedSampler: with N processes, process r takes every N-th sample of
            # one shared permutation, so together they see what one process would.
            sampler.set_epoch(epoch)
            perm = torch.tensor(list(sampler), dtype=torch.long)  # (n / N,)
            if self.state.step_in_epoch == 0:
                self.noise_generator.manual_seed(_seed_for(cfg.seed + self.rank, epoch, 2))
                self.state.sums = dict.fromkeys(_PARTS, 0.0)
                self.state.n_seen = 0
            for cb in self.callbacks:
                cb.on_epoch_begin(self, epoch, n_steps)
            start = time.perf_counter()
            while self.state.step_in_epoch < n_steps:
                step = self.state.step_in_epoch
                idx = perm[step * local_batch : (step + 1) * local_batch]
                values = self.train_step(self._batch(X, idx))
                b = len(idx)
                for k, v in values.items():
                    self.state.sums[k] = self.state.sums.get(k, 0.0) + v * b
                self.state.n_seen += b
                self.state.step_in_epoch += 1
                self.state.global_step += 1
                for cb in self.callbacks:
                    cb.on_batch_end(self, values)
                due = cfg.checkpoint_every and self.state.global_step % cfg.checkpoint_every == 0
                if (due or self._stop_requested) and self.state.step_in_epoch < n_steps:
                    for cb in self.callbacks:
                        cb.on_checkpoint(self)
                if self._stop_requested:
                    break
            if self._stop_requested and self.state.step_in_epoch < n_steps:
                raise TrainingInterrupted(
                    f"Interrupted at epoch {epoch + 1}, step {self.state.step_in_epoch}."
                )
            self._end_epoch(epoch, time.perf_counter() - start, X_val)
            if self._stop_requested and self.state.epoch < cfg.epochs:
                raise TrainingInterrupted(f"Interrupted after epoch {epoch + 1}.")
        if self.state.stopped_early:
            self._stopper.restore(self.model)
        for cb in self.callbacks:
            cb.on_train_end(self)

    def _end_epoch(self, epoch: int, seconds: float, X_val: Tensor | None) -> None:
        cfg = self.config
        sums, n_seen = self.state.sums, self.state.n_seen
        if self.world_size > 1:
            import torch.distributed as dist

            keys = sorted(sums)
            packed = torch.tensor([sums[k] for k in keys] + [n_seen], dtype=torch.float64)
            packed = packed.to(self.device)
            dist.all_reduce(packed)
            sums = dict(zip(keys, packed[:-1].tolist(), strict=True))
            n_seen = int(packed[-1])
        mean = {k: v / max(1, n_seen) for k, v in sums.items()}
        val = self.evaluate(X_val) if X_val is not None and len(X_val) else None
        val_total = None
        if val is not None:
            val_total = val["recon"] + (cfg.contraction * val["penalty"] if cfg.contraction else 0)
        tracked = {"penalty": self._track_penalty, "higher_order": cfg.higher_order > 0}
        tracked["weight_decay"] = cfg.weight_decay > 0
        metrics = EpochMetrics(
            epoch=epoch + 1,
            recon=mean["recon"],
            penalty=mean["penalty"] if tracked["penalty"] else None,
            higher_order=mean["higher_order"] if tracked["higher_order"] else None,
            weight_decay=mean["weight_decay"] if tracked["weight_decay"] else None,
            total=mean["total"],
            val_recon=val["recon"] if val else None,
            val_penalty=val["penalty"] if val and self._track_penalty else None,
            val_total=val_total,
            lr=self.current_lr(),
            time=seconds,
            steps=self.state.step_in_epoch,
        )
        if self.scheduler is not None:
            self.scheduler.step()
        self.state.epoch += 1
        self.state.step_in_epoch = 0
        self.state.sums = {}
        self.state.n_seen = 0
        self._early_stopping(metrics)
        self.history.append(metrics)
        for cb in self.callbacks:
            cb.on_epoch_end(self, metrics)

    def _early_stopping(self, metrics: EpochMetrics) -> None:
        if self.config.patience == 0:
            return  # off: no copies of the weights are made
        score = metrics.val_total if metrics.val_total is not None else metrics.total
        self._stopper.step(metrics.epoch, score, self.model)


class EarlyStoppingLog(Callback):
    """Early stopping is built into :class:`Trainer` through ``config.patience``.

    This callback only reports when it triggered, so that progress output says why the run
    ended before ``epochs``.
    """

    def __init__(self, log: Any = print) -> None:
        self.log = log

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.state.stopped_early:
            self.log(
                f"Early stopping: no improvement for {trainer.config.patience} epochs; "
                f"restored the weights of epoch {trainer.state.best_epoch}."
            )


def fit(
    model: nn.Module,
    X: Tensor | np.ndarray,
    config: Config,
    *,
    X_val: Tensor | np.ndarray | None = None,
    callbacks: Iterable[Callback] = (),
) -> list[EpochMetrics]:
    """Train ``model`` on ``X`` with ``config``: the one-call form of :class:`Trainer`.

    Parameters
    ----------
    model : Autoencoder
        Trained in place.
    X : Tensor or ndarray
        Training inputs ``(n, d_x)``.
    config : Config
        Options; ``config.epochs`` epochs are run.
    X_val : Tensor or ndarray, optional
        Validation inputs; by default ``config.validation_fraction`` of ``X`` is held out.
    callbacks : iterable of Callback
        E.g. :class:`contractive.callbacks.ProgressBar`.

    Returns
    -------
    list of EpochMetrics

    Examples
    --------
    >>> import torch
    >>> from contractive import mlp_autoencoder
    >>> from contractive.config import Config
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = mlp_autoencoder([16, 8])
    >>> history = fit(model, torch.rand(64, 16), Config(hidden=[8], epochs=3, batch_size=16))
    >>> history[-1].recon < history[0].recon
    True
    """
    if X_val is None and config.validation_fraction > 0:
        from .data import train_validation_split

        train_idx, val_idx = train_validation_split(
            int(X.shape[0]), config.validation_fraction, config.seed
        )
        X_val = torch.as_tensor(np.asarray(X[val_idx]), dtype=torch.float32)
        X = torch.as_tensor(np.asarray(X[train_idx]), dtype=torch.float32)
    elif isinstance(X, np.ndarray) and not isinstance(X, np.memmap):
        X = torch.as_tensor(X, dtype=torch.float32)
    trainer = Trainer(model, config, callbacks=list(callbacks))
    return trainer.fit(X, X_val)

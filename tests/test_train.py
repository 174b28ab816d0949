"""Trainer: the objective's terms, learning, determinism, resume, divergence, callbacks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from contractive import Config, Trainer, fit, jacobian_penalty, mlp_autoencoder
from contractive.exceptions import TrainingDivergedError
from contractive.losses import bce_loss
from contractive.nn import conv_autoencoder
from contractive.train import Callback, EpochMetrics, TrainingInterrupted


def _data(n: int = 96, d: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g)


def _cfg(**kw: object) -> Config:
    base = {"hidden": [6], "epochs": 3, "batch_size": 16, "validation_fraction": 0.0}
    base.update(kw)
    return Config.from_dict(base)


def test_objective_is_recon_plus_lambda_penalty() -> None:
    model = mlp_autoencoder([12, 6]).double()
    x = _data().double()[:16]
    trainer = Trainer(model, _cfg(contraction=0.7))
    total, parts = trainer.objective(x, noise=False)
    recon = bce_loss(model(x).logits, x).mean()
    pen = jacobian_penalty(model.encoder, x, method="exact").mean()
    assert torch.allclose(parts["recon"], recon)
    assert torch.allclose(parts["penalty"], pen)
    assert torch.allclose(total, recon + 0.7 * pen)


def test_objective_weight_decay_and_higher_order_terms() -> None:
    model = mlp_autoencoder([12, 6]).double()
    x = _data().double()[:16]
    trainer = Trainer(model, _cfg(contraction=0.0, weight_decay=0.01, higher_order=0.5))
    total, parts = trainer.objective(x, noise=False)
    wd = sum((p * p).sum() for n, p in model.named_parameters() if n.endswith("weight"))
    assert torch.allclose(parts["weight_decay"], wd)
    assert parts["higher_order"] > 0
    expected = parts["recon"] + 0.01 * wd + 0.5 * parts["higher_order"]
    assert torch.allclose(total, expected)


def test_penalty_gradient_reaches_encoder_weight() -> None:
    model = mlp_autoencoder([12, 6])
    x = _data()[:16]
    trainer = Trainer(model, _cfg(contraction=1.0))
    _, parts = trainer.objective(x, noise=False)
    (grad,) = torch.autograd.grad(parts["penalty"], [model.encoder[0].weight])
    assert grad.abs().sum() > 0


def test_noise_corrupts_input_only() -> None:
    trainer = Trainer(mlp_autoencoder([12, 6]), _cfg(noise_std=0.5, mask_prob=0.5))
    trainer.noise_generator.manual_seed(0)
    x = _data()
    x_in = trainer.corrupt(x)
    assert not torch.equal(x_in, x)
    # Masking zeroes about half of the 1152 entries: outside 0.4-0.6 with probability 1e-11
    # for any stream of fair draws.
    assert 0.4 < float((x_in == 0).float().mean()) < 0.6


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("schedule", ["none", "cosine", "step"])
def test_loss_decreases(optimizer: str, schedule: str) -> None:
    torch.manual_seed(0)
    model = mlp_autoencoder([12, 6])
    lr = 1e-2 if optimizer == "adam" else 0.5
    history = fit(model, _data(), _cfg(epochs=8, optimizer=optimizer, lr=lr, schedule=schedule))
    assert history[-1].recon < history[0].recon
    if schedule == "cosine":
        assert history[-1].lr < history[0].lr


def test_conv_model_trains_with_analytic_penalty() -> None:
    torch.manual_seed(0)
    model = conv_autoencoder((1, 8, 8), [4], kernel_size=3, stride=2, padding=1)
    history = fit(model, _data(64, 64), _cfg(epochs=4, hidden=[4], lr=1e-2))
    assert history[-1].total < history[0].total
    assert history[0].penalty is not None


def test_same_seed_same_weights() -> None:
    def run() -> dict[str, torch.Tensor]:
        torch.manual_seed(1)
        model = mlp_autoencoder([12, 6])
        fit(model, _data(), _cfg(noise_std=0.1, penalty="hutchinson", validation_fraction=0.2))
        return model.state_dict()

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fit_splits_validation_by_default() -> None:
    history = fit(mlp_autoencoder([12, 6]), _data().numpy(), _cfg(validation_fraction=0.25))
    assert history[0].val_total is not None
    assert history[0].val_recon is not None


def test_penalty_not_tracked_for_deep_ae_without_contraction() -> None:
    model = mlp_autoencoder([12, 8, 6])
    history = fit(model, _data(), _cfg(hidden=[8, 6], contraction=0.0, epochs=1))
    assert history[0].penalty is None


def _snapshot(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("stop_after", [1, 5, 13])
def test_resume_from_any_checkpoint_is_bitwise(stop_after: int) -> None:
    cfg = _cfg(epochs=3, noise_std=0.1, mask_prob=0.1, penalty="hutchinson", schedule="cosine")
    X = _data()

    torch.manual_seed(0)
    full = Trainer(mlp_autoencoder([12, 6]), cfg)
    full.fit(X)

    saved: dict[str, object] = {}

    class StopAt(Callback):
        def on_batch_end(self, trainer: Trainer, parts: dict[str, float]) -> None:
            if trainer.state.global_step == stop_after:
                trainer.request_stop()

        def on_checkpoint(self, trainer: Trainer) -> None:
            saved["ckpt"] = trainer.checkpoint()

        def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
            saved["ckpt"] = trainer.checkpoint()

    torch.manual_seed(0)
    first = Trainer(mlp_autoencoder([12, 6]), cfg, callbacks=[StopAt()])
    with pytest.raises(TrainingInterrupted, match="Interrupted"):
        first.fit(X)

    import json

    tensors, state = saved["ckpt"]  # type: ignore[misc]
    state = json.loads(json.dumps(state))  # what a checkpoint file holds
    torch.manual_seed(123)  # the resumed process starts from another global state
    second = Trainer(mlp_autoencoder([12, 6]), cfg)
    second.load_checkpoint(dict(tensors), state)
    second.fit(X)
    a, b = _snapshot(full), _snapshot(second)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m.recon for m in full.history] == [m.recon for m in second.history]


def test_divergence_raises_with_advice_and_keeps_weights() -> None:
    model = mlp_autoencoder([12, 6], output_activation="identity")
    X = _data()
    X[5, 3] = math.inf
    trainer = Trainer(model, _cfg(loss="mse", epochs=1, batch_size=96))
    before = _snapshot(trainer)
    with pytest.raises(
        TrainingDivergedError,
        match=r"became (nan|inf) at epoch 1, step 1.*with a lower learning rate",
    ):
        trainer.fit(X)
    after = _snapshot(trainer)
    assert all(torch.equal(before[k], after[k]) for k in before)


def _script_scores(monkeypatch: pytest.MonkeyPatch, scores: list[float], source: str) -> None:
    """Make early stopping see ``scores[e]`` after epoch ``e + 1``; the weights train for real.

    ``"validation"``: ``Trainer.evaluate`` reports a reconstruction of ``scores[e]`` and a
    penalty of 0, so ``val_total`` is the score. ``"training"``: every step trains as usual but
    reports ``total = scores[e]``, so the epoch's mean total is the score (the scores are
    dyadic fractions, whose means over batches are exact). Which epoch is best, and which ones
    tie, is then chosen by the test, not by how a CPU's kernels round one trajectory.
    """
    if source == "validation":

        def evaluate(self: Trainer, X: torch.Tensor, *, batch_size: int = 1024) -> dict[str, float]:
            return {"recon": scores[self.state.epoch], "penalty": 0.0}

        monkeypatch.setattr(Trainer, "evaluate", evaluate)
    else:
        real_step = Trainer.train_step

        def train_step(self: Trainer, x: torch.Tensor) -> dict[str, float]:
            return {**real_step(self, x), "total": scores[self.state.epoch]}

        monkeypatch.setattr(Trainer, "train_step", train_step)


class _Snapshots(Callback):
    """The weights at the end of every epoch, as early stopping saw them."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self.weights.append(_snapshot(trainer))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("source", ["validation", "training"])
@pytest.mark.parametrize(
    ("scores", "patience", "epochs", "best_epoch", "epochs_run", "stopped_early"),
    [
        # A tie is no improvement: the first of equal scores stays the best.
        ([0.5, 0.5, 0.5, 0.25], 2, 10, 1, 3, True),
        # Every improvement resets the count; ties and worse epochs after it add up.
        ([0.75, 0.5, 0.625, 0.5, 0.25, 0.25, 0.375, 0.25, 0.125], 3, 20, 5, 8, True),
        # Patience running out at the last epoch still counts as a stop (and restores).
        ([0.25, 0.5, 0.5], 2, 3, 1, 3, True),
        # Never patient long enough: every epoch runs.
        ([0.5, 0.75, 0.25, 0.375, 0.125], 2, 5, 5, 5, False),
        ([0.25, 0.5, 0.375, 0.5], 5, 4, 1, 4, False),
    ],
)
def test_early_stopping_restores_the_first_best_weights(
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    scores: list[float],
    patience: int,
    epochs: int,
    best_epoch: int,
    epochs_run: int,
    stopped_early: bool,
) -> None:
    _script_scores(monkeypatch, scores, source)
    fraction = 0.25 if source == "validation" else 0.0
    cfg = _cfg(epochs=epochs, patience=patience, lr=0.05, validation_fraction=fraction)
    snapshots = _Snapshots()
    trainer = Trainer(mlp_autoencoder([12, 6]), cfg, callbacks=[snapshots])
    X = _data(64)
    history = trainer.fit(X[:48], X[48:] if source == "validation" else None)
    watched = [m.val_total if source == "validation" else m.total for m in history]
    assert watched == scores[:epochs_run]
    assert len(snapshots.weights) == len(history) == epochs_run
    assert trainer.state.stopped_early is stopped_early
    assert trainer.state.best_epoch == best_epoch
    assert trainer.state.best_val == scores[best_epoch - 1]
    # Every epoch moved the weights, so the weights kept name exactly one epoch.
    kept = _snapshot(trainer)
    assert [_same(kept, w) for w in snapshots.weights].count(True) == 1
    # Stopped: the best epoch's weights come back. Not stopped: the last epoch's stay.
    assert _same(kept, snapshots.weights[best_epoch - 1 if stopped_early else -1])


def test_early_stopping_bookkeeping_on_a_real_run() -> None:
    # The rules that hold on any trajectory, with real validation scores: whichever epoch is
    # best on this CPU, the counts agree with it and its weights are the ones kept.
    torch.manual_seed(0)
    patience, epochs = 2, 30
    cfg = _cfg(epochs=epochs, patience=patience, lr=0.5, validation_fraction=0.25)
    trainer = Trainer(mlp_autoencoder([12, 6]), cfg)
    X = _data(200)
    trainer.fit(X[:150], X[150:])
    scores = [m.val_total for m in trainer.history]
    assert all(s is not None for s in scores)
    best = min(scores)  # type: ignore[type-var]
    assert trainer.state.best_val == best
    assert trainer.state.best_epoch == scores.index(best) + 1  # the first best epoch
    if trainer.state.stopped_early:
        assert len(scores) == trainer.state.best_epoch + patience <= epochs
        # The restored weights score what the best epoch scored (the same computation again).
        val = trainer.evaluate(X[150:])
        assert val["recon"] + cfg.contraction * val["penalty"] == best
    else:
        assert len(scores) == epochs


def test_memmap_training_matches_in_memory(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "x.npy"
    X = _data().numpy()
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    cfg = _cfg(epochs=2)
    torch.manual_seed(0)
    a = Trainer(mlp_autoencoder([12, 6]), cfg)
    a.fit(torch.from_numpy(X))
    torch.manual_seed(0)
    b = Trainer(mlp_autoencoder([12, 6]), cfg)
    b.fit(mm)
    sa, sb = _snapshot(a), _snapshot(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_callbacks_are_called_in_order() -> None:
    events: list[str] = []

    class Recorder(Callback):
        def on_train_begin(self, trainer: Trainer) -> None:
            events.append("begin")

        def on_epoch_begin(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
            events.append(f"epoch{epoch}:{n_steps}")

        def on_batch_end(self, trainer: Trainer, parts: dict[str, float]) -> None:
            events.append("b")

        def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
            events.append(f"end{metrics.epoch}")

        def on_train_end(self, trainer: Trainer) -> None:
            events.append("done")

    Trainer(mlp_autoencoder([12, 6]), _cfg(epochs=2, batch_size=48), callbacks=[Recorder()]).fit(
        _data()
    )
    assert events == ["begin", "epoch0:2", "b", "b", "end1", "epoch1:2", "b", "b", "end2", "done"]

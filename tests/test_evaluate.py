"""Tests of contractive.evaluate: fine-tuning, test error, linear probe, stacking, SAT, ||J||.

Everything runs on sklearn's 8x8 digits or on small synthetic tensors; references are written
out in the tests (closed forms, brute-force Jacobians from torch.autograd.functional).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from contractive import evaluate
from contractive.config import Config
from contractive.data import load_dataset
from contractive.evaluate import (
    FinetuneEpoch,
    build_classifier,
    encode,
    finetune,
    linear_probe,
    stack_encoder,
    train_stack,
)
from contractive.exceptions import ConfigError, DataError, TrainingDivergedError
from contractive.nn import Autoencoder, conv_autoencoder, mlp_autoencoder
from contractive.runs import build_model
from contractive.stacking import greedy_layer_configs, stack_autoencoder

# Imported under another name: pytest would collect a module-level ``test_error``.
error_rate = evaluate.test_error


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(2011)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: these tensors are tiny, and on a busy machine two threads wait
    for each other at every op (tens of times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """sklearn digits in [0, 1]: (X_train, y_train, X_val, y_val), 1000 / 437 images."""
    ds = load_dataset("digits", split="all")
    assert ds.y is not None
    X, y = torch.from_numpy(ds.X), torch.from_numpy(ds.y)
    return X[:1000], y[:1000], X[1000:], y[1000:]


def _trained_encoder(X: Tensor, hidden: int = 32, epochs: int = 10) -> Autoencoder:
    (ae,) = train_stack(X, [Config(hidden=[hidden], epochs=epochs, batch_size=32)])
    return ae


# ---------------------------------------------------------------------------------------------
# Building the classifier.


@pytest.mark.parametrize("kind", ["linear", "autoencoder", "sequential", "stack"])
def test_classifier_copies_the_encoder_exactly(kind: str) -> None:
    first = mlp_autoencoder([12, 7])
    second = mlp_autoencoder([7, 5])
    with torch.no_grad():  # non-default values, so that a fresh init cannot match by chance
        first.encoder[0].bias.uniform_(-2, 2)
        second.encoder[0].bias.uniform_(-2, 2)
    encoder: evaluate.EncoderLike = {
        "linear": first.encoder[0],
        "autoencoder": first,
        "sequential": first.encoder,
        "stack": [first, second],
    }[kind]
    clf = build_classifier(encoder, 12, 3)
    assert torch.equal(clf[0].weight, first.encoder[0].weight)
    assert torch.equal(clf[0].bias, first.encoder[0].bias)
    assert isinstance(clf[1], nn.Sigmoid)
    assert clf[0].weight.data_ptr() != first.encoder[0].weight.data_ptr()  # a copy
    if kind == "stack":
        assert torch.equal(clf[2].weight, second.encoder[0].weight)
        assert torch.equal(clf[2].bias, second.encoder[0].bias)
    head = clf[-1]
    assert isinstance(head, nn.Linear)
    assert head.out_features == 3
    assert head.in_features == (5 if kind == "stack" else 7)
    assert not head.weight.any()
    assert not head.bias.any()


def test_classifier_from_a_conv_encoder_takes_flat_rows() -> None:
    ae = conv_autoencoder((1, 8, 8), [4])
    clf = build_classifier(ae, 64, 10)
    assert clf(torch.rand(3, 64)).shape == (3, 10)
    assert torch.equal(clf[1].weight, ae.encoder[0].weight)


def test_finetune_starts_from_the_encoder_and_leaves_it_alone(
    digits: tuple[Tensor, ...],
) -> None:
    X, y, Xv, yv = digits
    ae = _trained_encoder(X)
    before = {k: v.clone() for k, v in ae.state_dict().items()}
    # A step size of 1e-12 keeps the trained weights where they started, to float precision.
    clf, _ = finetune(ae, X, y, Xv, yv, epochs=1, lr=1e-12)
    assert torch.allclose(clf[0].weight, before["encoder.0.weight"], atol=1e-9)
    assert torch.allclose(clf[0].bias, before["encoder.0.bias"], atol=1e-9)
    clf2, _ = finetune(ae, X, y, Xv, yv, epochs=2, lr=0.5)
    assert not torch.allclose(clf2[0].weight, before["encoder.0.weight"])
    for k, v in ae.state_dict().items():
        assert torch.equal(v, before[k]), k


# ---------------------------------------------------------------------------------------------
# Fine-tuning.


def test_finetune_learns_digits(digits: tuple[Tensor, ...]) -> None:
    X, y, Xv, yv = digits
    clf, res = finetune(_trained_encoder(X), X, y, Xv, yv, epochs=8, lr=0.5, batch_size=32)
    # Chance is 0.9 and logistic regression on pixels gets ~0.05; over seeds this gets
    # 0.065-0.08, so the bound holds with a margin that rounding cannot eat.
    assert res.val_error < 0.12
    assert error_rate(clf, Xv, yv) == res.val_error
    assert len(res.history) == res.epochs_run == 8
    assert all(isinstance(h, FinetuneEpoch) for h in res.history)
    assert res.history[-1].lr < res.history[0].lr  # cosine decay
    assert not clf.training


def _scripted_test_error(
    monkeypatch: pytest.MonkeyPatch, errors: list[float]
) -> list[dict[str, Tensor]]:
    """Make ``finetune`` see ``errors`` as its validation errors, one per epoch.

    ``finetune`` calls ``test_error`` by its module-global name once per epoch, right after the
    epoch's updates: the fake returns the next scripted value and keeps a copy of the weights
    it was shown, so that a test knows which weights belong to which epoch. Which epoch is
    best, and which ones tie, is then chosen by the test instead of by how a CPU's kernels
    round one SGD trajectory.
    """
    script = list(errors)
    snapshots: list[dict[str, Tensor]] = []

    def fake(classifier: nn.Module, X: Tensor, y: Tensor, **_: object) -> float:
        snapshots.append({k: v.detach().clone() for k, v in classifier.state_dict().items()})
        return script.pop(0)

    monkeypatch.setattr(evaluate, "test_error", fake)
    return snapshots


def _same_weights(module: nn.Module, state: dict[str, Tensor]) -> bool:
    current = module.state_dict()
    return current.keys() == state.keys() and all(torch.equal(current[k], state[k]) for k in state)


@pytest.mark.parametrize(
    ("errors", "patience", "epochs", "best_epoch", "epochs_run", "stopped_early"),
    [
        # A tie is no improvement: the first of equal errors is kept, and ties count as bad.
        ([0.3, 0.3, 0.3, 0.1], 2, 10, 1, 3, True),
        # Every improvement resets the count; ties and worse epochs after it add up.
        ([0.5, 0.3, 0.4, 0.3, 0.2, 0.2, 0.25, 0.2, 0.1], 3, 20, 5, 8, True),
        # Without patience every epoch runs, and the best epoch's weights still come back.
        ([0.4, 0.1, 0.2, 0.3], 0, 4, 2, 4, False),
        # Patience running out at the last epoch is not an early stop.
        ([0.1, 0.2, 0.3], 2, 3, 1, 3, False),
        # A late improvement is taken, and the run goes on to its end.
        ([0.3, 0.4, 0.2, 0.5, 0.1], 2, 5, 5, 5, False),
    ],
)
def test_early_stopping_keeps_the_first_best_validation_weights(
    monkeypatch: pytest.MonkeyPatch,
    errors: list[float],
    patience: int,
    epochs: int,
    best_epoch: int,
    epochs_run: int,
    stopped_early: bool,
) -> None:
    snapshots = _scripted_test_error(monkeypatch, errors)
    X = torch.rand(40, 6)
    y = (X[:, 0] > 0.5).long()
    seen: list[FinetuneEpoch] = []
    clf, res = finetune(
        nn.Linear(6, 5),
        X,
        y,
        X,
        y,
        epochs=epochs,
        lr=0.5,
        batch_size=10,
        patience=patience,
        schedule="constant",
        on_epoch=seen.append,
    )
    assert seen == res.history
    assert [h.epoch for h in res.history] == list(range(1, epochs_run + 1))
    assert [h.val_error for h in res.history] == errors[:epochs_run]
    assert len(snapshots) == res.epochs_run == epochs_run
    assert res.best_epoch == best_epoch
    assert res.val_error == errors[best_epoch - 1]
    assert res.stopped_early is stopped_early
    # Every epoch moved the weights, so the kept ones name exactly one epoch: the best.
    assert all(
        not _same_weights(clf, snapshots[i]) for i in range(epochs_run) if i != best_epoch - 1
    )
    assert _same_weights(clf, snapshots[best_epoch - 1])
    assert not clf.training


def test_early_stopping_bookkeeping_on_a_real_run() -> None:
    # The rules that hold on any trajectory, with the real validation error: whichever epoch
    # wins on this CPU, the kept weights reproduce its error and the counts agree with it.
    g = torch.Generator().manual_seed(2)
    X = torch.rand(200, 10, generator=g)
    y = (X[:, 0] > 0.5).long()
    Xv = torch.rand(100, 10, generator=g)
    yv = torch.randint(0, 2, (100,), generator=g)  # noise: the validation error wanders
    patience, epochs = 3, 50
    clf, res = finetune(
        nn.Linear(10, 16),
        X,
        y,
        Xv,
        yv,
        epochs=epochs,
        lr=2.0,
        batch_size=10,
        patience=patience,
        schedule="constant",
    )
    errors = [h.val_error for h in res.history]
    assert res.val_error == min(errors)
    assert errors.index(min(errors)) == res.best_epoch - 1  # the first best epoch
    assert res.epochs_run == len(errors)
    if res.stopped_early:
        assert res.epochs_run == res.best_epoch + patience < epochs
    else:
        assert res.epochs_run == epochs
    assert error_rate(clf, Xv, yv) == res.val_error  # the best epoch's weights were kept


def test_finetune_is_deterministic(digits: tuple[Tensor, ...]) -> None:
    X, y, Xv, yv = digits
    enc = nn.Linear(64, 16)
    a, ra = finetune(enc, X, y, Xv, yv, epochs=2, seed=3)
    b, rb = finetune(enc, X, y, Xv, yv, epochs=2, seed=3)
    c, _ = finetune(enc, X, y, Xv, yv, epochs=2, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert [h.train_loss for h in ra.history] == [h.train_loss for h in rb.history]
    assert not torch.equal(a[0].weight, c[0].weight)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_finetune_numpy_inputs_and_optimizers(optimizer: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((60, 5), dtype=np.float32)
    y = (X[:, 1] > 0.5).astype(np.int64)
    clf, res = finetune(
        nn.Linear(5, 4), X, y, X, y, epochs=2, optimizer=optimizer, lr=0.01, n_classes=3
    )
    assert clf[-1].out_features == 3
    assert res.epochs_run == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, r"The 'epochs' parameter must be an int in the range \[1, inf\)"),
        ({"lr": -1.0}, r"The 'lr' parameter must be a float in the range \(0, inf\)\. Got -1"),
        ({"lr": math.nan}, r"The 'lr' parameter must be a float in the range \(0, inf\)"),
        ({"batch_size": 2.5}, r"The 'batch_size' parameter must be an int"),
        ({"patience": -1}, r"The 'patience' parameter must be an int in the range \[0, inf\)"),
        ({"optimizer": "lbfgs"}, r"The 'optimizer' parameter must be a str among \{'sgd', 'adam"),
        ({"schedule": "step"}, r"The 'schedule' parameter must be a str among \{'constant', 'c"),
        ({"momentum": 1.0}, r"The 'momentum' parameter must be a float in the range \[0, 1\)"),
        (
            {"weight_decay": -1e-4},
            r"The 'weight_decay' parameter must be a float in the range \[0, inf\)\. Got -0\.0001",
        ),
        ({"n_classes": 1}, r"The 'n_classes' parameter must be an int of at least 2"),
        (
            {"dropout": 1.0},
            r"The 'dropout' parameter must be a float in the range \[0, 1\)\. Got 1",
        ),
        (
            {"input_dropout": -0.1},
            r"The 'input_dropout' parameter must be a float in the range \[0, 1\)\. Got -0\.1",
        ),
        (
            {"extra_loss": 0.5},
            r"^The 'extra_loss' parameter must be a callable or None\. Got 0\.5 instead\.$",
        ),
    ],
)
def test_finetune_rejects_bad_options(kwargs: dict[str, object], match: str) -> None:
    X = torch.rand(8, 3)
    y = torch.tensor([0, 1] * 4)
    with pytest.raises(ConfigError, match=match):
        finetune(nn.Linear(3, 2), X, y, X, y, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_finetune_weight_decay_shrinks_the_weights(optimizer: str) -> None:
    # With no signal in the labels, weight decay is what moves the weights: they shrink.
    # One epoch (8 steps), so that the weights kept are those after the decay.
    torch.manual_seed(0)
    X, y = torch.rand(64, 5), torch.tensor([0, 1] * 32)
    enc = nn.Linear(5, 4)
    norms = []
    for wd in (0.0, 1.0):
        clf, _ = finetune(
            enc, X, y, X, y, epochs=1, lr=0.05, batch_size=8, weight_decay=wd, optimizer=optimizer
        )
        norms.append(float(clf[0].weight.detach().norm()))
    assert norms[1] < 0.9 * norms[0]


def test_finetune_dropout_layers_and_their_seeding() -> None:
    torch.manual_seed(0)
    X, y = torch.rand(64, 5), torch.tensor([0, 1] * 32)
    stack = [nn.Linear(5, 4), nn.Linear(4, 3)]
    clf, _ = finetune(stack, X, y, X, y, epochs=2, batch_size=8, dropout=0.5, input_dropout=0.2)
    kinds = [type(m).__name__ for m in clf]
    # Input dropout first, then dropout on the input of every later layer with weights.
    assert kinds == [
        "Dropout", "Linear", "Sigmoid", "Dropout", "Linear", "Sigmoid", "Dropout", "Linear"
    ]  # fmt: skip
    assert [m.p for m in clf if isinstance(m, nn.Dropout)] == [0.2, 0.5, 0.5]
    assert not clf.training  # returned in eval mode: the masks are off
    # The masks come from ``seed``: the same seed gives the same run, and the caller's global
    # generator is left where it was.
    state = torch.get_rng_state()
    again, _ = finetune(stack, X, y, X, y, epochs=2, batch_size=8, dropout=0.5, input_dropout=0.2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(clf.parameters(), again.parameters(), strict=True))
    other, _ = finetune(
        stack, X, y, X, y, epochs=2, batch_size=8, dropout=0.5, input_dropout=0.2, seed=1
    )
    assert not torch.equal(other[-1].weight, clf[-1].weight)


def test_finetune_dropout_changes_training_only_when_asked() -> None:
    torch.manual_seed(0)
    X, y = torch.rand(64, 5), torch.tensor([0, 1] * 32)
    enc = nn.Linear(5, 4)
    plain, _ = finetune(enc, X, y, X, y, epochs=2, batch_size=8)
    zero, _ = finetune(enc, X, y, X, y, epochs=2, batch_size=8, dropout=0.0, input_dropout=0.0)
    dropped, _ = finetune(enc, X, y, X, y, epochs=2, batch_size=8, dropout=0.5)
    assert len(zero) == len(plain) == 3  # no Dropout modules at p = 0
    assert torch.equal(zero[-1].weight, plain[-1].weight)
    assert not torch.equal(dropped[-1].weight, plain[-1].weight)


def test_finetune_extra_loss_zero_changes_nothing() -> None:
    # A term that is exactly 0 adds nothing to the loss or its gradient: the run is the run
    # without a term, weight for weight. The hook sees the classifier it trains, in training
    # mode, and each minibatch on the device: inputs (B, d_x) and labels (B,).
    torch.manual_seed(0)
    X, y = torch.rand(60, 5), torch.tensor([0, 1, 2] * 20)
    enc = nn.Linear(5, 4)
    seen: list[tuple[bool, tuple[int, ...], tuple[int, ...]]] = []

    def zero(classifier: nn.Sequential, xb: Tensor, yb: Tensor) -> Tensor:
        seen.append((classifier.training, tuple(xb.shape), tuple(yb.shape)))
        return torch.zeros(())

    plain, rp = finetune(enc, X, y, X, y, epochs=2, batch_size=16, dropout=0.5)
    hooked, rh = finetune(enc, X, y, X, y, epochs=2, batch_size=16, dropout=0.5, extra_loss=zero)
    assert [h.train_loss for h in rh.history] == [h.train_loss for h in rp.history]
    assert all(
        torch.equal(a, b) for a, b in zip(plain.parameters(), hooked.parameters(), strict=True)
    )
    epoch = [(True, (16, 5), (16,))] * 3 + [(True, (12, 5), (12,))]  # 60 rows in batches of 16
    assert seen == epoch * 2


def test_finetune_extra_loss_gradient_reaches_the_weights() -> None:
    # The cross-entropy's gradients on the output biases sum to 0 (softmax is shift-invariant),
    # so from their zero start the biases keep a zero sum; a term pulling each bias to 1 moves
    # them all up: its gradient reaches the weights. The recorded train_loss stays the
    # cross-entropy alone.
    torch.manual_seed(0)
    X = torch.rand(64, 5)
    y = (X[:, 0] > 0.5).long()
    enc = nn.Linear(5, 4)

    def biases_to_one(classifier: nn.Sequential, xb: Tensor, yb: Tensor) -> Tensor:
        return (classifier[-1].bias - 1.0).square().sum()

    plain, _ = finetune(enc, X, y, X, y, epochs=2, batch_size=8)
    pulled, res = finetune(enc, X, y, X, y, epochs=2, batch_size=8, extra_loss=biases_to_one)
    assert abs(float(plain[-1].bias.detach().sum())) < 1e-5
    assert float(pulled[-1].bias.detach().min()) > 0.5
    assert all(0 < h.train_loss < 1 for h in res.history)  # about log 2, no (b - 1)^2 in it


def test_finetune_extra_loss_must_return_a_scalar_tensor() -> None:
    X, y = torch.rand(8, 3), torch.tensor([0, 1] * 4)
    enc = nn.Linear(3, 2)
    message = r"^extra_loss must return a scalar tensor \(0-d\) to add to the loss\. Got "
    with pytest.raises(ConfigError, match=message + r"shape \(8,\) instead\.$"):
        finetune(enc, X, y, X, y, batch_size=8, extra_loss=lambda c, xb, yb: xb.sum(dim=1))
    with pytest.raises(ConfigError, match=message + r"0\.5 instead\.$"):
        finetune(enc, X, y, X, y, extra_loss=lambda c, xb, yb: 0.5)


def test_finetune_rejects_bad_data() -> None:
    X, y = torch.rand(8, 3), torch.tensor([0, 1] * 4)
    enc = nn.Linear(3, 2)
    with pytest.raises(ConfigError, match=r"X_val has 4 features but X_train has 3"):
        finetune(enc, X, y, torch.rand(8, 4), y)
    with pytest.raises(ConfigError, match=r"'y_train' parameter must have shape \(8,\)"):
        finetune(enc, X, y[:5], X, y)
    with pytest.raises(ConfigError, match=r"'y_val' parameter must hold integer class labels"):
        finetune(enc, X, y, X, y.float())
    with pytest.raises(ConfigError, match=r"'y_train' parameter must hold labels >= 0"):
        finetune(enc, X, y - 1, X, y)
    with pytest.raises(ConfigError, match=r"'X_train' parameter must be 2-D"):
        finetune(enc, torch.rand(8), y, X, y)
    with pytest.raises(ConfigError, match=r"'X_val' parameter must be a Tensor or a numpy"):
        finetune(enc, X, y, [[0.0, 0.0, 0.0]], y)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'encoder' parameter must be an nn.Linear, an"):
        finetune("encoder", X, y, X, y)  # type: ignore[arg-type]


def test_finetune_divergence_is_reported() -> None:
    X = torch.rand(32, 3) * 100
    y = torch.tensor([0, 1] * 16)
    with pytest.raises(TrainingDivergedError, match=r"Fine-tuning diverged at epoch 1.*'lr'"):
        finetune(nn.Linear(3, 4), X, y, X, y, lr=1e30, batch_size=8, schedule="constant")


def test_test_error_known_values() -> None:
    clf = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        clf.weight.copy_(torch.eye(3, 2))
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0], [3.0, 0.0]])
    assert error_rate(clf, X, torch.tensor([0, 1, 1, 0])) == 0.0
    assert error_rate(clf, X, torch.tensor([0, 1, 2, 2]), batch_size=1) == 0.5
    assert clf.training  # the mode is restored
    with pytest.raises(ConfigError, match=r"'batch_size' parameter must be an int in the range"):
        error_rate(clf, X, torch.tensor([0, 1, 1, 0]), batch_size=0)


# ---------------------------------------------------------------------------------------------
# Linear probe.


def test_linear_probe_on_digit_codes(digits: tuple[Tensor, ...]) -> None:
    X, y, Xv, yv = digits
    ae = _trained_encoder(X)
    res = linear_probe(encode(ae, X), y, encode(ae, Xv), yv.numpy(), n_threads=1)
    # Chance is 0.9. Over seeds this probe gets 0.14-0.18 (even the codes of an untrained
    # encoder get 0.12-0.21): the bound checks the probe, with room for another trajectory.
    assert res.error < 0.3
    assert res.accuracy == pytest.approx(1.0 - res.error)
    assert res.classifier.coef_.shape == (10, 32)


def test_linear_probe_errors() -> None:
    F = torch.rand(6, 3)
    with pytest.raises(ConfigError, match=r"'y_train' parameter must hold at least two classes"):
        linear_probe(F, torch.zeros(6, dtype=torch.long), F, torch.zeros(6, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"features_val has 2 columns but features_train has 3"):
        linear_probe(F, torch.tensor([0, 1] * 3), torch.rand(6, 2), torch.tensor([0, 1] * 3))
    with pytest.raises(ConfigError, match=r"The 'C' parameter must be a float in the range"):
        linear_probe(F, torch.tensor([0, 1] * 3), F, torch.tensor([0, 1] * 3), C=0.0)
    with pytest.raises(ConfigError, match=r"The 'n_threads' parameter must be an int in the"):
        linear_probe(F, torch.tensor([0, 1] * 3), F, torch.tensor([0, 1] * 3), n_threads=0)


# ---------------------------------------------------------------------------------------------
# Greedy stacking.


def test_train_stack_trains_layer_two_on_layer_one_codes() -> None:
    X = torch.rand(96, 20)
    configs = [
        Config(hidden=[12], epochs=2, batch_size=32, seed=1),
        Config(hidden=[6], epochs=2, batch_size=32, seed=2, contraction=0.5),
    ]
    inputs: list[Tensor] = []
    layers = train_stack(X, configs, on_layer=lambda k, layer, x: inputs.append(x))
    assert [tuple(layer.encoder[0].weight.shape) for layer in layers] == [(12, 20), (6, 12)]
    assert torch.equal(inputs[0], X)
    codes = encode(layers[0], X)  # (96, 12)
    assert torch.equal(inputs[1], codes)
    # Training layer 2 alone on layer 1's codes, from the same seed, gives the same weights.
    (alone,) = train_stack(codes, configs[1:])
    assert torch.equal(alone.encoder[0].weight, layers[1].encoder[0].weight)
    assert stack_encoder(layers)(X).shape == (96, 6)
    assert encode(layers, X).shape == (96, 6)


def test_train_stack_depends_on_the_configs_alone() -> None:
    X = torch.rand(16, 4)
    cfg = [Config(hidden=[3], epochs=1, seed=7)]
    torch.manual_seed(5)
    (first,) = train_stack(X, cfg)
    after = torch.rand(3)
    torch.manual_seed(6)
    (second,) = train_stack(X, cfg)
    assert torch.equal(first.encoder[0].weight, second.encoder[0].weight)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(3), after)  # the caller's random stream was not consumed


def test_train_stack_then_finetune_the_stack(digits: tuple[Tensor, ...]) -> None:
    X, y, Xv, yv = digits
    configs = [
        Config(hidden=[32], epochs=10, batch_size=32),
        Config(hidden=[16], epochs=10, batch_size=32),
    ]
    layers = train_stack(X, configs, X_val=Xv)
    # lr 0.5 for 15 epochs learns on every seed tried (0.08-0.12); lr 1.0 for 8 epochs ended
    # anywhere between 0.10 and 0.76 depending on the seed, a coin flip around any bound.
    clf, res = finetune(layers, X, y, Xv, yv, epochs=15, lr=0.5, batch_size=32)
    assert [m.__class__ for m in clf] == [nn.Linear, nn.Sigmoid, nn.Linear, nn.Sigmoid, nn.Linear]
    assert res.val_error < 0.25


def test_train_stack_errors() -> None:
    X = torch.rand(8, 4)
    with pytest.raises(ConfigError, match=r"'configs' parameter must be a non-empty sequence"):
        train_stack(X, [])
    with pytest.raises(ConfigError, match=r"'configs' parameter must be a non-empty sequence"):
        train_stack(X, Config())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"configs\[0\] must be a Config\. Got dict instead"):
        train_stack(X, [{"hidden": [3]}])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"configs\[0\]: train_stack stacks MLP layers"):
        train_stack(X, [Config(architecture="conv")])
    with pytest.raises(DataError, match=r"X has values outside \[0, 1\]"):
        train_stack(X * 3, [Config(hidden=[3])])
    tanh = Config(hidden=[3], activation="tanh", loss="mse", epochs=1)
    with pytest.raises(DataError, match=r"the codes of layer 1 has values outside \[0, 1\]"):
        train_stack(X - 0.5, [tanh, Config(hidden=[2])])


def test_greedy_layer_configs_one_layer_each_with_its_own_seed() -> None:
    config = Config(hidden=[12, 6, 3], greedy=True, seed=4, contraction=0.7, epochs=3)
    configs = greedy_layer_configs(config)
    assert [(c.hidden, c.seed, c.greedy) for c in configs] == [
        ([12], 4, False),
        ([6], 5, False),
        ([3], 6, False),
    ]
    changed = {"hidden", "seed", "greedy"}
    for c in configs:
        same = {k: v for k, v in c.to_dict().items() if k not in changed}
        assert same == {k: v for k, v in config.to_dict().items() if k not in changed}
    with pytest.raises(ConfigError, match=r"The 'config' parameter must be a Config\. Got dict"):
        greedy_layer_configs({"hidden": [3]})  # type: ignore[arg-type]


# (activation, loss, tied): the combinations whose stack is one autoencoder.
STACKABLE = [("sigmoid", "bce", True), ("sigmoid", "bce", False), ("identity", "mse", True)]


@pytest.mark.parametrize(("activation", "loss", "tied"), STACKABLE)
def test_stack_autoencoder_encodes_and_reconstructs_as_the_stack(
    activation: str, loss: str, tied: bool
) -> None:
    X = torch.rand(64, 10)
    base = Config(hidden=[1], activation=activation, loss=loss, tied=tied, epochs=2)
    configs = greedy_layer_configs(base.replace(hidden=[7, 5, 3]))
    layers = train_stack(X, configs)
    deep = stack_autoencoder(layers)
    # The same class and parameters as the model Config(hidden=[7, 5, 3]) describes.
    plain = build_model(base.replace(hidden=[7, 5, 3]), 10, None)
    assert type(deep) is type(plain)
    assert type(deep.decoder) is type(plain.decoder)
    assert {k: v.shape for k, v in deep.state_dict().items()} == {
        k: v.shape for k, v in plain.state_dict().items()
    }
    with torch.no_grad():
        h = deep.encode(X)
        torch.testing.assert_close(h, stack_encoder(layers)(X), rtol=0, atol=1e-6)
        expected = layers[0].decode(layers[1].decode(layers[2].decode(h)))
        torch.testing.assert_close(deep(X).x_hat, expected, rtol=0, atol=1e-6)
    # Copies: training the deep model leaves the layers alone.
    before = layers[0].encoder[0].weight.clone()
    with torch.no_grad():
        deep.encoder[0].weight.add_(1.0)
    assert torch.equal(layers[0].encoder[0].weight, before)


def test_stack_autoencoder_of_one_layer_is_that_layer() -> None:
    layer = mlp_autoencoder([6, 4])
    deep = stack_autoencoder([layer])
    assert all(torch.equal(deep.state_dict()[k], v) for k, v in layer.state_dict().items())


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        (lambda: [], r"The 'layers' parameter must be a non-empty list of Autoencoder\. Got list"),
        (
            lambda: mlp_autoencoder([6, 4]),
            r"The 'layers' parameter must be a non-empty list of Autoencoder\. Got Autoencoder",
        ),
        (
            lambda: [conv_autoencoder((1, 4, 4), [2], kernel_size=3)],
            r"must hold one-layer MLP autoencoders .* Got layer 1: Autoencoder instead\.",
        ),
        (
            lambda: [mlp_autoencoder([6, 4]), mlp_autoencoder([4, 3, 2])],
            r"must hold one-layer MLP autoencoders .* Got layer 2: Autoencoder instead\.",
        ),
        (
            lambda: [mlp_autoencoder([6, 4]), nn.Linear(4, 3)],
            r"must hold one-layer MLP autoencoders .* Got layer 2: Linear instead\.",
        ),
        (
            lambda: [mlp_autoencoder([6, 4]), mlp_autoencoder([5, 3])],
            r"Layer 2 of the 'layers' parameter takes 5 inputs, but layer 1 gives 4 codes\.",
        ),
        (
            lambda: [mlp_autoencoder([6, 4]), mlp_autoencoder([4, 3], activation="tanh")],
            r"Layer 2 .* has activation 'tanh' and tied=True; layer 1 has 'sigmoid' and "
            r"tied=True\. The layers of one stack must agree\.",
        ),
        (
            lambda: [mlp_autoencoder([6, 4]), mlp_autoencoder([4, 3], tied=False)],
            r"Layer 2 .* has activation 'sigmoid' and tied=False; layer 1 has 'sigmoid' and "
            r"tied=True\.",
        ),
        (
            lambda: [
                mlp_autoencoder([6, 4]),
                mlp_autoencoder([4, 3], output_activation="identity"),
            ],
            r"Layer 2 of the 'layers' parameter decodes through 'identity', but the hidden "
            r"activation is 'sigmoid': the deep model could not reconstruct as the stack does",
        ),
    ],
)
def test_stack_autoencoder_errors(layers: Callable[[], object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        stack_autoencoder(layers())  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# SAT and ||J_f(x)||_F.


# ---------------------------------------------------------------------------------------------
# Tangent propagation in fine-tuning (the Manifold Tangent Classifier).


def _tangent_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, nn.Module]:
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(96, 6, generator=gen)
    y = (X[:, 0] + X[:, 1] > 1.0).long()
    tangents = torch.randn(96, 2, 6, generator=gen)
    torch.manual_seed(0)
    return X, y, tangents, nn.Linear(6, 5)


def test_finetune_with_zero_tangent_weight_is_plain_finetuning() -> None:
    X, y, tangents, enc = _tangent_problem()
    a, _ = finetune(enc, X, y, X, y, epochs=2, batch_size=16)
    b, _ = finetune(enc, X, y, X, y, epochs=2, batch_size=16, tangents=tangents)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


@pytest.mark.parametrize("projections", [None, 1])
@pytest.mark.parametrize("target", ["logits", "probabilities"])
def test_finetune_with_tangents_flattens_the_output_along_them(
    target: str, projections: int | None
) -> None:
    from contractive.tangent_prop import tangent_propagation_penalty

    X, y, tangents, enc = _tangent_problem()
    kwargs = {"epochs": 5, "batch_size": 16, "lr": 0.5, "tangents": tangents.numpy()}

    def flatness(classifier: nn.Module) -> float:
        net = classifier if target == "logits" else nn.Sequential(classifier, nn.Softmax(1))
        return float(tangent_propagation_penalty(net, X, tangents).mean().detach())

    plain, _ = finetune(enc, X, y, X, y, **kwargs)
    mtc, _ = finetune(
        enc,
        X,
        y,
        X,
        y,
        **kwargs,
        tangent_weight=10.0,
        tangent_target=target,
        tangent_projections=projections,
    )
    assert flatness(mtc) < 0.5 * flatness(plain)


def test_finetune_adds_extra_loss_to_the_tangent_penalty() -> None:
    # A zero extra term must leave the tangent-propagation objective as it is (it once
    # replaced it).
    X, y, tangents, enc = _tangent_problem()
    kwargs = {"epochs": 2, "batch_size": 16, "lr": 0.5, "tangents": tangents, "tangent_weight": 1.0}
    a, _ = finetune(enc, X, y, X, y, **kwargs)  # type: ignore[arg-type]
    b, _ = finetune(enc, X, y, X, y, **kwargs, extra_loss=lambda clf, xb, yb: torch.zeros(()))  # type: ignore[arg-type]
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_finetune_with_tangents_and_dropout_runs() -> None:
    X, y, tangents, enc = _tangent_problem()
    _, res = finetune(
        enc,
        X,
        y,
        X,
        y,
        epochs=1,
        dropout=0.3,
        input_dropout=0.1,
        tangents=tangents,
        tangent_weight=0.1,
    )
    assert res.epochs_run == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"tangents": torch.zeros(96, 2, 5)},
            r"'tangents' parameter must be an array of shape "
            r"\(n, k, d_x\) = \(96, k >= 1, 6\) to match X_train. Got 'shape \(96, 2, 5\)'",
        ),
        ({"tangents": torch.zeros(95, 2, 6)}, r"'tangents' parameter must be an array of shape"),
        ({"tangents": torch.zeros(96, 0, 6)}, r"'tangents' parameter must be an array of shape"),
        (
            {"tangent_weight": -1.0},
            r"'tangent_weight' parameter must be a float in the range "
            r"\[0, inf\)",
        ),
        ({"tangent_weight": float("nan")}, r"'tangent_weight' parameter must be a float"),
        ({"tangent_target": "softmax"}, r"'tangent_target' parameter must be a str among"),
        (
            {"tangent_projections": 0},
            r"'tangent_projections' parameter must be an int in the range \[1, inf\). Got 0",
        ),
    ],
)
def test_finetune_refuses_bad_tangent_options(kwargs: dict[str, object], match: str) -> None:
    X, y, _, enc = _tangent_problem()
    with pytest.raises(ConfigError, match=match):
        finetune(enc, X, y, X, y, epochs=1, **kwargs)  # type: ignore[arg-type]

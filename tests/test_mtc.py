"""Tests of contractive.mtc: scikit-learn's own checks, then the classifier's contract.

The rule tests rebuild what ``fit`` must do from the library's parts
(:func:`~contractive.tangents.tangent_bases`, :func:`~contractive.evaluate.finetune`) and ask
for the same classifier to the bit: the steps are wired as documented, not just "something
that learns".
"""

from __future__ import annotations

import os

# scikit-learn runs its array-API check only when SciPy was asked for array-API support; the
# variable must be set before SciPy is first imported to take effect there.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pickle
import re
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import contractive
from contractive.evaluate import finetune
from contractive.mtc import ManifoldTangentClassifier
from contractive.stacking import encode, stack_encoder
from contractive.tangents import tangent_bases

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]

#: A classifier that trains in a fraction of a second on a few hundred rows, yet learns
#: scikit-learn's blobs (> 0.83 training accuracy, every class predicted) at any seed tried.
TINY: dict[str, Any] = {
    "hidden": (16,),
    "n_tangents": 2,
    "pretrain_epochs": 1,
    "pretrain_lr": 1e-2,
    "finetune_epochs": 5,
    "finetune_lr": 0.5,
    "batch_size": 64,
}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


# ---------------------------------------------------------------------------------------------
# scikit-learn's estimator checks, in full, with no expected failures.


@parametrize_with_checks([ManifoldTangentClassifier(**TINY)])
def test_sklearn_compatible(estimator: ManifoldTangentClassifier, check: Any) -> None:
    check(estimator)


# ---------------------------------------------------------------------------------------------
# In scikit-learn's tools.


def test_pipeline_with_min_max_scaler_learns_digits() -> None:
    X, y = load_digits(return_X_y=True)  # raw pixels in 0..16: the scaler brings them to [0, 1]
    X_train, X_test, y_train, y_test = train_test_split(
        X[:600], y[:600], test_size=0.5, random_state=0
    )
    params = {**TINY, "hidden": (32,), "n_tangents": 4, "pretrain_epochs": 2}
    mtc = ManifoldTangentClassifier(**{**params, "finetune_lr": 0.3, "batch_size": 16})
    pipe = Pipeline([("scale", MinMaxScaler()), ("mtc", mtc.set_params(random_state=0))])
    pipe.fit(X_train, y_train)
    assert pipe.named_steps["mtc"].loss_ == "bce"  # the scaled data is in [0, 1]
    assert pipe.score(X_test, y_test) > 0.7  # chance is 0.1; about 0.88 here


def test_grid_search_over_tangent_weight(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    search = GridSearchCV(
        ManifoldTangentClassifier(**TINY, random_state=0), {"tangent_weight": [0.0, 0.5]}, cv=2
    ).fit(X, y)
    assert search.best_params_["tangent_weight"] in (0.0, 0.5)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.tangent_values_ is None or (
        search.best_estimator_.tangent_values_.shape == (300, 2)
    )


def test_exported_lazily_from_the_package() -> None:
    assert contractive.ManifoldTangentClassifier is ManifoldTangentClassifier
    assert "ManifoldTangentClassifier" in contractive.__all__


def test_clone_keeps_parameters_verbatim() -> None:
    sizes = [8, 4]
    est = ManifoldTangentClassifier(sizes, tangent_weight=0.3, random_state=3)
    params = est.get_params()
    assert params["hidden"] is sizes
    assert clone(est).get_params() == params


# ---------------------------------------------------------------------------------------------
# What fit does: the MTC's steps, rebuilt from the library's parts.


@pytest.mark.parametrize(("beta", "projections"), [(0.0, None), (0.3, None), (0.3, 1)])
def test_fit_is_stack_then_tangents_then_finetune(
    digits: tuple[np.ndarray, np.ndarray], beta: float, projections: int | None
) -> None:
    X, y = digits[0][:120], digits[1][:120]
    params = {**TINY, "n_tangents": 3, "validation_fraction": 0.25, "tangent_weight": beta}
    params["tangent_projections"] = projections
    est = ManifoldTangentClassifier(**params, random_state=5).fit(X, y)
    seed = est.configs_[0].seed
    assert seed == 5
    X32 = X.astype(np.float32)
    # The documented split: stratified, validation_fraction of the rows, seeded by the seed.
    train, val = train_test_split(np.arange(120), test_size=0.25, stratify=y, random_state=seed)
    train, val = np.sort(train), np.sort(val)
    assert est.n_validation_ == len(val) == 30
    tangents = None
    if beta > 0:
        bases = tangent_bases(
            stack_encoder(est.layers_), X32, 3, iterations=4, seed=seed, dtype="float16"
        )
        np.testing.assert_array_equal(est.tangent_values_, bases.values)
        tangents = bases.vectors[train]
    else:
        assert est.tangent_values_ is None
    classifier, result = finetune(
        est.layers_,
        X32[train],
        y[train],
        X32[val],
        y[val],
        epochs=5,
        lr=0.5,
        batch_size=64,
        seed=seed,
        tangents=tangents,
        tangent_weight=beta,
        tangent_target="probabilities",
        tangent_projections=projections,
        n_classes=10,
    )
    assert _without_times(result.history) == _without_times(est.finetune_result_.history)
    with torch.no_grad():
        logits = classifier(torch.from_numpy(X32)).numpy()  # (120, 10)
    np.testing.assert_array_equal(est.decision_function(X32), logits)
    np.testing.assert_array_equal(est.predict(X32), est.classes_[logits.argmax(axis=1)])


def _without_times(history: list[Any]) -> list[tuple[int, float, float, float]]:
    return [(e.epoch, e.train_loss, e.val_error, e.lr) for e in history]


def test_tangent_weight_changes_only_the_fine_tuning(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = digits[0][:120], digits[1][:120]
    plain = ManifoldTangentClassifier(**TINY, tangent_weight=0.0, random_state=0).fit(X, y)
    mtc = ManifoldTangentClassifier(**TINY, tangent_weight=1.0, random_state=0).fit(X, y)
    for a, b in zip(plain.layers_, mtc.layers_, strict=True):  # pre-training does not see beta
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    moved = [
        not torch.equal(p, q)
        for p, q in zip(plain.classifier_.parameters(), mtc.classifier_.parameters(), strict=True)
    ]
    assert all(moved)
    assert not np.array_equal(plain.predict_proba(X), mtc.predict_proba(X))


def test_tiny_data_chooses_the_epoch_on_the_training_rows() -> None:
    X = np.random.default_rng(0).random((5, 4))
    y = np.array(["a", "a", "b", "b", "c"])  # class "c" has one row: no stratified split
    est = ManifoldTangentClassifier(**TINY, random_state=0).fit(X, y)
    assert est.n_validation_ == 0
    assert est.tangent_values_.shape == (5, 2)
    assert est.finetune_result_.epochs_run == est.n_iter_ == 5


# ---------------------------------------------------------------------------------------------
# Outputs.


def test_labels_probabilities_and_decision_function() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((40, 5))
    y = np.array(["dog", "cat", "emu", "cat"] * 10)
    est = ManifoldTangentClassifier(**TINY, random_state=0).fit(X, y)
    assert est.classes_.tolist() == ["cat", "dog", "emu"]
    proba = est.predict_proba(X)
    assert proba.shape == (40, 3)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(proba >= 0)
    np.testing.assert_array_equal(est.predict(X), est.classes_[proba.argmax(axis=1)])
    assert est.decision_function(X).shape == (40, 3)
    assert est.predict_proba(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(est.predict_proba(X.astype(np.float32)), proba, atol=1e-6)
    assert est.score(X, y) == pytest.approx(np.mean(est.predict(X) == y))

    binary = ManifoldTangentClassifier(**TINY, random_state=0).fit(X, y == "cat")
    decision = binary.decision_function(X)
    assert decision.shape == (40,)
    p_true = binary.predict_proba(X)[:, 1]
    np.testing.assert_allclose(p_true, 1.0 / (1.0 + np.exp(-decision)), rtol=1e-12)


def test_same_random_state_same_classifier_and_global_rng_untouched() -> None:
    X = np.random.default_rng(1).random((30, 4))
    y = np.arange(30) % 3
    state = torch.get_rng_state()
    a = ManifoldTangentClassifier(**TINY, random_state=7).fit(X, y).predict_proba(X)
    assert torch.equal(torch.get_rng_state(), state)
    b = ManifoldTangentClassifier(**TINY, random_state=7).fit(X, y).predict_proba(X)
    c = ManifoldTangentClassifier(**TINY, random_state=8).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    d = ManifoldTangentClassifier(**TINY, random_state=np.random.RandomState(5)).fit(X, y)
    e = ManifoldTangentClassifier(**TINY, random_state=np.random.RandomState(5)).fit(X, y)
    assert d.configs_[0].seed == e.configs_[0].seed
    deep = ManifoldTangentClassifier((4, 3), **_no_hidden(TINY), random_state=2).fit(X, y)
    assert [(config.seed, config.hidden) for config in deep.configs_] == [(2, [4]), (3, [3])]


def _no_hidden(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "hidden"}


def test_verbose_prints_each_step(capsys: pytest.CaptureFixture[str]) -> None:
    X, y = np.random.default_rng(0).random((20, 4)), np.arange(20) % 2
    ManifoldTangentClassifier(**TINY, verbose=1, random_state=0).fit(X, y)
    err = capsys.readouterr().err
    assert "pre-training 1 layer(s) on 20 rows" in err
    assert "2 tangents at each of 20 rows" in err
    assert "fine-tune epoch 5/5" in err
    ManifoldTangentClassifier(**TINY, random_state=0).fit(X, y)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------
# Persistence: plain arrays, as ContractiveAutoencoder.


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_joblib_round_trip_with_dropout_and_two_layers(
    digits: tuple[np.ndarray, np.ndarray], tmp_path: Path, mmap_mode: str | None
) -> None:
    X, y = digits[0][:100], digits[1][:100]
    est = ManifoldTangentClassifier((12, 6), **_no_hidden(TINY), dropout=0.2, random_state=0)
    est.fit(X, y)
    assert not any(isinstance(m, torch.nn.Dropout) for m in est.classifier_)
    assert b"torch" not in pickle.dumps(est)
    joblib.dump(est, tmp_path / "mtc.joblib")
    loaded = joblib.load(tmp_path / "mtc.joblib", mmap_mode=mmap_mode)
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(encode(loaded.layers_, X), encode(est.layers_, X))
    assert isinstance(est.classifier_, torch.nn.Sequential)  # the original is untouched


# ---------------------------------------------------------------------------------------------
# Errors: every message pinned.

_X = np.random.default_rng(0).random((12, 4))
_Y = np.arange(12) % 2


_INVALID: list[tuple[dict[str, Any], str, str]] = [
    (
        {"hidden": ()},
        "an int in the range [1, inf) or a non-empty sequence of ints in the range [1, inf)",
        "()",
    ),
    (
        {"hidden": (4, 0)},
        "an int in the range [1, inf) or a non-empty sequence of ints in the range [1, inf)",
        "(4, 0)",
    ),
    ({"contraction": -1}, "a float in the range [0, inf)", "-1"),
    ({"higher_order": float("nan")}, "a float in the range [0, inf)", "nan"),
    ({"ho_sigma": 0.0}, "a float in the range (0, inf)", "0.0"),
    ({"loss": "ce"}, "a str among {'auto', 'bce', 'mse'}", "'ce'"),
    ({"pretrain_epochs": 0}, "an int in the range [1, inf)", "0"),
    ({"pretrain_lr": 0}, "a float in the range (0, inf)", "0"),
    ({"n_tangents": 0}, "an int in the range [1, inf)", "0"),
    ({"n_tangents": 2.0}, "an int in the range [1, inf)", "2.0"),
    ({"tangent_weight": -0.1}, "a float in the range [0, inf)", "-0.1"),
    ({"tangent_weight": float("inf")}, "a float in the range [0, inf)", "inf"),
    ({"tangent_weight": float("nan")}, "a float in the range [0, inf)", "nan"),
    (
        {"tangent_target": "outputs"},
        "a str among {'probabilities', 'logits'}",
        "'outputs'",
    ),
    ({"tangent_iterations": -1}, "an int in the range [0, inf)", "-1"),
    ({"finetune_epochs": True}, "an int in the range [1, inf)", "True"),
    ({"finetune_lr": -1.0}, "a float in the range (0, inf)", "-1.0"),
    ({"batch_size": 0}, "an int in the range [1, inf)", "0"),
    ({"dropout": 1.0}, "a float in the range [0, 1)", "1.0"),
    ({"validation_fraction": 1.0}, "a float in the range [0, 1)", "1.0"),
    ({"early_stopping": -1}, "an int in the range [0, inf)", "-1"),
    (
        {"random_state": -1},
        "an int in the range [0, 4294967295], an instance of "
        "'numpy.random.mtrand.RandomState' or None",
        "-1",
    ),
    (
        {"device": "gpu"},
        "a str among {'auto', 'cpu', 'cuda'} or a str of the form 'cuda:N'",
        "'gpu'",
    ),
    (
        {"verbose": -1},
        "an int in the range [0, inf), an instance of 'bool' or an instance of 'numpy.bool'",
        "-1",
    ),
    ({"tangent_projections": 0}, "None or an int in the range [1, inf)", "0"),
]


@pytest.mark.parametrize(("params", "constraint", "shown"), _INVALID)
def test_invalid_parameter_messages(params: dict[str, Any], constraint: str, shown: str) -> None:
    (name,) = params
    est = ManifoldTangentClassifier(**{**TINY, **params})  # __init__ never validates
    message = (
        f"The '{name}' parameter of ManifoldTangentClassifier must be {constraint}. "
        f"Got {shown} instead."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        est.fit(_X, _Y)


def test_every_parameter_has_a_pinned_message() -> None:
    assert {name for params, _, _ in _INVALID for name in params} == set(
        ManifoldTangentClassifier().get_params()
    )


@pytest.mark.parametrize(
    ("hidden", "n_features", "bound"), [((3,), 4, 3), ((8, 2), 4, 2), ((8,), 4, 4)]
)
def test_n_tangents_above_the_rank_of_the_jacobian(
    hidden: tuple[int, ...], n_features: int, bound: int
) -> None:
    est = ManifoldTangentClassifier(hidden, **{**_no_hidden(TINY), "n_tangents": 5})
    message = (
        f"The 'n_tangents' parameter of ManifoldTangentClassifier must be an int in the range "
        f"[1, {bound}]: at most min(min(hidden)={min(hidden)}, n_features={n_features}), the "
        "rank of the stack's Jacobian. Got 5 instead."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        est.fit(_X[:, :n_features], _Y)


def test_a_single_class_is_refused() -> None:
    with pytest.raises(
        ValueError,
        match=r"^ManifoldTangentClassifier needs samples of at least 2 classes in y; got 1 "
        r"class \('only'\)\. A classifier cannot learn from one class\.$",
    ):
        ManifoldTangentClassifier(**TINY).fit(_X, ["only"] * 12)


def test_continuous_targets_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^Unknown label type: continuous"):
        ManifoldTangentClassifier(**TINY).fit(_X, _X[:, 0])


@pytest.mark.parametrize(
    ("shift", "start"), [(-0.5, "Negative values in data"), (0.5, "Values above 1 in data")]
)
def test_bce_needs_the_unit_interval(shift: float, start: str) -> None:
    est = ManifoldTangentClassifier(**TINY, loss="bce")
    assert est.__sklearn_tags__().input_tags.positive_only
    with pytest.raises(
        ValueError,
        match=rf"^{start} passed to ManifoldTangentClassifier with loss='bce', which needs X "
        r"in \[0, 1\]",
    ):
        est.fit(_X + shift, _Y)
    auto = ManifoldTangentClassifier(**TINY, random_state=0).fit(_X + shift, _Y)
    assert auto.configs_[0].loss == "mse"
    assert auto.loss_ == "mse"


def test_methods_before_fit_raise_not_fitted() -> None:
    from sklearn.exceptions import NotFittedError

    for method in ("predict", "predict_proba", "decision_function"):
        with pytest.raises(NotFittedError):
            getattr(ManifoldTangentClassifier(), method)(_X)

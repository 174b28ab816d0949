"""Tests of contractive.estimator: scikit-learn's own checks, then the estimator's contract.

Reference values are computed independently of the code under test: Jacobian norms from
``torch.autograd.functional.jacobian`` in float64, reconstruction losses written out in NumPy.
"""

from __future__ import annotations

import os

# scikit-learn runs its array-API check only when SciPy was asked for array-API support; the
# variable must be set before SciPy is first imported to take effect there.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import json
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
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from contractive.cli import main as cli_main
from contractive.estimator import ContractiveAutoencoder
from contractive.exceptions import CheckpointError, ContractiveError
from contractive.runs import CONFIG_FILE, load_run
from contractive.train import Trainer

# torch itself warns when forward-mode AD first loads its decompositions.
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return data.data / 16.0, data.target


@pytest.fixture(scope="module")
def fitted(digits: tuple[np.ndarray, np.ndarray]) -> ContractiveAutoencoder:
    X, _ = digits
    return ContractiveAutoencoder(n_components=12, epochs=3, random_state=0).fit(X[:300])


# ---------------------------------------------------------------------------------------------
# scikit-learn's estimator checks, in full: the default estimator (only fewer epochs) and a
# deep one, whose penalty goes through the exact Jacobian instead of the closed form.


@parametrize_with_checks(
    [
        ContractiveAutoencoder(epochs=2),
        ContractiveAutoencoder(n_components=4, hidden_layer_sizes=(6,), epochs=2, batch_size=8),
    ]
)
def test_sklearn_compatible(estimator: ContractiveAutoencoder, check: Any) -> None:
    check(estimator)


# ---------------------------------------------------------------------------------------------
# In scikit-learn's tools.


def test_pipeline_with_logistic_regression_beats_baseline(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    pipe = Pipeline(
        [
            (
                "cae",
                ContractiveAutoencoder(
                    n_components=32, epochs=10, learning_rate=1e-2, random_state=0
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    ).fit(X_train, y_train)
    baseline = DummyClassifier().fit(X_train, y_train).score(X_test, y_test)
    accuracy = pipe.score(X_test, y_test)
    assert baseline < 0.15
    assert accuracy > 0.85


def test_grid_search_over_contraction(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    pipe = Pipeline(
        [
            ("cae", ContractiveAutoencoder(n_components=8, epochs=2, random_state=0)),
            ("clf", LogisticRegression(max_iter=200)),
        ]
    )
    search = GridSearchCV(pipe, {"cae__contraction": [0.0, 0.1]}, cv=2).fit(X[:200], y[:200])
    assert search.best_params_["cae__contraction"] in (0.0, 0.1)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_clone_get_params_set_params() -> None:
    sizes = [5, 3]
    est = ContractiveAutoencoder(7, contraction=0.5, hidden_layer_sizes=sizes, random_state=3)
    params = est.get_params()
    assert params["n_components"] == 7
    assert params["hidden_layer_sizes"] is sizes  # stored verbatim, not converted
    assert set(params) == {
        "n_components",
        "contraction",
        "hidden_layer_sizes",
        "activation",
        "tied",
        "loss",
        "penalty",
        "epochs",
        "batch_size",
        "learning_rate",
        "optimizer",
        "validation_fraction",
        "early_stopping",
        "random_state",
        "device",
        "verbose",
    }
    twin = clone(est)
    assert twin is not est
    assert twin.get_params() == params
    assert est.set_params(contraction=0.0, epochs=3) is est
    assert (est.contraction, est.epochs) == (0.0, 3)


def test_clone_of_fitted_is_unfitted(fitted: ContractiveAutoencoder) -> None:
    twin = clone(fitted)
    assert not hasattr(twin, "model_")
    with pytest.raises(NotFittedError):
        twin.transform(np.zeros((1, 64)))


# ---------------------------------------------------------------------------------------------
# Parameter validation: every message pinned.

_GOOD_X = np.random.default_rng(0).random((10, 4))


@pytest.mark.parametrize(
    ("params", "constraint", "shown"),
    [
        ({"n_components": 0}, "an int in the range [1, inf)", "0"),
        ({"n_components": 2.0}, "an int in the range [1, inf)", "2.0"),
        ({"contraction": -1}, "a float in the range [0, inf)", "-1"),
        ({"contraction": float("nan")}, "a float in the range [0, inf)", "nan"),
        (
            {"hidden_layer_sizes": (4, 0)},
            "None, an int in the range [1, inf) or a sequence of ints in the range [1, inf)",
            "(4, 0)",
        ),
        (
            {"hidden_layer_sizes": "64"},
            "None, an int in the range [1, inf) or a sequence of ints in the range [1, inf)",
            "'64'",
        ),
        (
            {"activation": "swish"},
            "a str among {'sigmoid', 'tanh', 'relu', 'leaky_relu', 'softplus', 'elu', 'gelu', "
            "'identity'}",
            "'swish'",
        ),
        ({"tied": 1}, "an instance of 'bool' or an instance of 'numpy.bool'", "1"),
        ({"loss": "ce"}, "a str among {'auto', 'bce', 'mse'}", "'ce'"),
        (
            {"penalty": "fast"},
            "a str among {'auto', 'analytic', 'exact', 'hutchinson', 'layerwise'}",
            "'fast'",
        ),
        ({"epochs": 0}, "an int in the range [1, inf)", "0"),
        ({"batch_size": -4}, "an int in the range [1, inf)", "-4"),
        ({"learning_rate": 0.0}, "a float in the range (0, inf)", "0.0"),
        ({"optimizer": "rmsprop"}, "a str among {'adam', 'sgd'}", "'rmsprop'"),
        ({"validation_fraction": 1.0}, "a float in the range [0, 1)", "1.0"),
        ({"early_stopping": True}, "an int in the range [0, inf)", "True"),
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
    ],
)
def test_invalid_parameter_messages(params: dict[str, Any], constraint: str, shown: str) -> None:
    (name,) = params
    est = ContractiveAutoencoder(**{"epochs": 1, **params})  # __init__ never validates
    message = (
        f"The '{name}' parameter of ContractiveAutoencoder must be {constraint}. "
        f"Got {shown} instead."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        est.fit(_GOOD_X)


def test_analytic_penalty_needs_one_layer() -> None:
    est = ContractiveAutoencoder(2, hidden_layer_sizes=(3,), penalty="analytic", epochs=1)
    with pytest.raises(ValueError, match=r"can be 'analytic' only for a one-layer encoder"):
        est.fit(_GOOD_X)


def test_valid_edge_values_are_accepted() -> None:
    est = ContractiveAutoencoder(
        np.int64(2),
        contraction=0,
        hidden_layer_sizes=np.array([3]),
        tied=np.bool_(False),
        random_state=np.random.RandomState(0),
        epochs=1,
        verbose=False,
    ).fit(_GOOD_X)
    assert est.transform(_GOOD_X).shape == (10, 2)
    assert est.config_.hidden == [3, 2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_an_error() -> None:
    with pytest.raises(ContractiveError, match="CUDA is not available"):
        ContractiveAutoencoder(2, device="cuda", epochs=1).fit(_GOOD_X)


# ---------------------------------------------------------------------------------------------
# Data: loss choice, range checks, shapes and dtypes.


def test_loss_auto_picks_bce_for_unit_interval_and_mse_otherwise() -> None:
    est = ContractiveAutoencoder(2, epochs=1, random_state=0)
    assert est.fit(_GOOD_X).loss_ == "bce"
    assert est.fit(_GOOD_X - 0.5).loss_ == "mse"
    assert est.config_.loss == "mse"


@pytest.mark.parametrize(
    ("shift", "start"), [(-0.5, "Negative values in data"), (0.5, "Values above 1 in data")]
)
def test_bce_rejects_data_outside_unit_interval(shift: float, start: str) -> None:
    est = ContractiveAutoencoder(2, loss="bce", epochs=1)
    with pytest.raises(ValueError, match=rf"^{start} passed to ContractiveAutoencoder with "):
        est.fit(_GOOD_X + shift)


def test_bce_score_rejects_data_outside_unit_interval() -> None:
    est = ContractiveAutoencoder(2, loss="bce", epochs=1, random_state=0).fit(_GOOD_X)
    with pytest.raises(
        ValueError,
        match=r"^Negative values in data passed to ContractiveAutoencoder with loss=.bce.",
    ):
        est.score(_GOOD_X - 1.0)


def test_positive_only_tag_follows_loss() -> None:
    assert not ContractiveAutoencoder().__sklearn_tags__().input_tags.positive_only
    assert ContractiveAutoencoder(loss="bce").__sklearn_tags__().input_tags.positive_only


@pytest.mark.parametrize("method", ["transform", "inverse_transform", "score", "jacobian_norm"])
def test_methods_before_fit_raise_not_fitted(method: str) -> None:
    with pytest.raises(NotFittedError):
        getattr(ContractiveAutoencoder(), method)(_GOOD_X)


def test_get_feature_names_out_and_save_before_fit_raise(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        ContractiveAutoencoder().get_feature_names_out()
    with pytest.raises(NotFittedError):
        ContractiveAutoencoder().save(tmp_path / "run")


def test_feature_count_mismatch(fitted: ContractiveAutoencoder) -> None:
    with pytest.raises(
        ValueError,
        match=r"X has 3 features, but ContractiveAutoencoder is expecting 64 features as input",
    ):
        fitted.transform(np.zeros((2, 3)))
    with pytest.raises(
        ValueError,
        match=r"X has 64 features, but ContractiveAutoencoder.inverse_transform is expecting 12 "
        r"features \(the code size, n_components\)",
    ):
        fitted.inverse_transform(np.zeros((2, 64)))


def test_shapes_dtypes_and_feature_names(
    fitted: ContractiveAutoencoder, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    X = digits[0][:5]
    for dtype in (np.float64, np.float32):
        codes = fitted.transform(X.astype(dtype))
        assert codes.shape == (5, 12)
        assert codes.dtype == dtype
        recon = fitted.inverse_transform(codes)
        assert recon.shape == (5, 64)
        assert recon.dtype == dtype
        assert fitted.jacobian_norm(X.astype(dtype)).dtype == dtype
    # float32 and float64 inference agree to float32 precision
    np.testing.assert_allclose(
        fitted.transform(X.astype(np.float32)), fitted.transform(X), rtol=1e-5, atol=1e-6
    )
    assert fitted.transform((X * 16).astype(np.int64) / 16).dtype == np.float64
    assert fitted.inverse_transform(fitted.transform(X)).min() >= 0.0  # sigmoid output for bce
    names = fitted.get_feature_names_out()
    assert names.tolist() == [f"contractiveautoencoder{i}" for i in range(12)]
    assert fitted.n_features_in_ == 64
    assert fitted.n_iter_ == 3
    assert len(fitted.loss_curve_) == 3
    assert fitted.validation_loss_curve_ is None


# ---------------------------------------------------------------------------------------------
# What the methods compute.


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_score_is_negative_mean_reconstruction_loss(loss: str) -> None:
    X = _GOOD_X
    est = ContractiveAutoencoder(3, loss=loss, epochs=5, random_state=0).fit(X)
    recon = est.inverse_transform(est.transform(X))
    if loss == "mse":
        per_sample = ((recon - X) ** 2).sum(axis=1)
    else:
        p = np.clip(recon, 1e-12, 1 - 1e-12)
        per_sample = -(X * np.log(p) + (1 - X) * np.log(1 - p)).sum(axis=1)
    assert est.score(X) == pytest.approx(-per_sample.mean(), rel=1e-6)


def test_training_lowers_the_objective(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X = digits[0][:500]
    est = ContractiveAutoencoder(16, epochs=8, random_state=0).fit(X)
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    untrained = ContractiveAutoencoder(16, epochs=1, learning_rate=1e-6, random_state=0).fit(X)
    assert est.score(X) > untrained.score(X)


def _brute_force_norms(est: ContractiveAutoencoder, X: np.ndarray) -> np.ndarray:
    encoder = _float64_copy(est).encoder
    norms = []
    for x in torch.from_numpy(X):
        jac = torch.autograd.functional.jacobian(lambda v: encoder(v[None])[0], x)
        norms.append(float(jac.pow(2).sum().sqrt()))
    return np.array(norms)


def _float64_copy(est: ContractiveAutoencoder) -> Any:
    import copy

    return copy.deepcopy(est.model_).to(torch.float64)


@pytest.mark.parametrize(
    "params",
    [
        {"activation": "sigmoid"},
        {"activation": "tanh", "loss": "mse"},
        {"activation": "softplus", "tied": False},
        {"hidden_layer_sizes": (4,), "penalty": "exact"},
    ],
)
def test_jacobian_norm_matches_brute_force(params: dict[str, Any]) -> None:
    X = _GOOD_X
    est = ContractiveAutoencoder(3, epochs=2, random_state=0, **params).fit(X)
    got = est.jacobian_norm(X[:4])
    assert got.shape == (4,)
    np.testing.assert_allclose(got, _brute_force_norms(est, X[:4]), rtol=1e-10)


def test_contraction_shrinks_the_jacobian(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X = digits[0][:400]
    norms = [
        ContractiveAutoencoder(16, contraction=c, epochs=10, random_state=0)
        .fit(X)
        .jacobian_norm(X)
        .mean()
        for c in (0.0, 1.0)
    ]
    assert norms[1] < norms[0]


def test_same_random_state_same_model_and_global_rng_untouched() -> None:
    X = _GOOD_X
    state = torch.get_rng_state()
    a = ContractiveAutoencoder(3, epochs=3, random_state=7).fit(X).transform(X)
    assert torch.equal(torch.get_rng_state(), state)
    b = ContractiveAutoencoder(3, epochs=3, random_state=7).fit(X).transform(X)
    c = ContractiveAutoencoder(3, epochs=3, random_state=8).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    rs = np.random.RandomState(5)
    d = ContractiveAutoencoder(3, epochs=1, random_state=rs).fit(X)
    e = ContractiveAutoencoder(3, epochs=1, random_state=np.random.RandomState(5)).fit(X)
    assert d.config_.seed == e.config_.seed


@pytest.mark.parametrize(
    ("scores", "patience", "n_iter", "best_epoch"),
    [
        # The first of tied scores is the best; ties and worse epochs count against patience.
        ([0.5, 0.25, 0.375, 0.25, 0.5, 0.125], 3, 5, 2),
        ([0.5, 0.5, 0.25], 1, 2, 1),
    ],
)
def test_validation_split_and_early_stopping(
    monkeypatch: pytest.MonkeyPatch,
    scores: list[float],
    patience: int,
    n_iter: int,
    best_epoch: int,
) -> None:
    # The validation scores are scripted (Trainer.evaluate returns them, with a penalty of 0,
    # so they are the objective): the stopping epoch is chosen by the test, not by how one
    # CPU's kernels round a training trajectory. The weights still train for real.
    weights: list[dict[str, torch.Tensor]] = []

    def evaluate(self: Trainer, X: torch.Tensor, *, batch_size: int = 1024) -> dict[str, float]:
        assert X.shape == (15, 5)  # the held-out quarter of the 60 samples
        weights.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return {"recon": scores[self.state.epoch], "penalty": 0.0}

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    X = np.random.default_rng(1).random((60, 5))
    est = ContractiveAutoencoder(
        3, validation_fraction=0.25, early_stopping=patience, epochs=200, random_state=0
    )
    est.fit(X)
    assert est.n_iter_ == n_iter == len(est.history_) == len(weights)
    assert est.validation_loss_curve_ == scores[:n_iter]
    assert est.history_[0].steps == 1  # 45 training samples, batch 128
    # The fitted model holds the weights of the best epoch, and only that epoch's.
    kept = est.model_.state_dict()
    same = [all(torch.equal(kept[k], w[k]) for k in w) for w in weights]
    assert same == [epoch == best_epoch for epoch in range(1, n_iter + 1)]


def test_verbose_prints_epoch_lines(capsys: pytest.CaptureFixture[str]) -> None:
    ContractiveAutoencoder(2, epochs=2, verbose=1, random_state=0).fit(_GOOD_X)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err
    assert "epoch 2/2" in err
    ContractiveAutoencoder(2, epochs=2, random_state=0).fit(_GOOD_X)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------
# Persistence.


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_joblib_round_trip(
    fitted: ContractiveAutoencoder,
    digits: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    mmap_mode: str | None,
) -> None:
    X = digits[0][:50]
    joblib.dump(fitted, tmp_path / "cae.joblib")
    loaded = joblib.load(tmp_path / "cae.joblib", mmap_mode=mmap_mode)
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(loaded.jacobian_norm(X), fitted.jacobian_norm(X))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.loss_curve_ == fitted.loss_curve_
    # the original is untouched by pickling
    assert isinstance(fitted.model_, torch.nn.Module)


def test_pickle_holds_no_torch_objects(fitted: ContractiveAutoencoder) -> None:
    assert b"torch" not in pickle.dumps(fitted)


def test_save_load_round_trip(
    fitted: ContractiveAutoencoder, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X = digits[0][:50]
    run_dir = fitted.save(tmp_path / "run")
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
    ]
    loaded = ContractiveAutoencoder.load(run_dir)
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.loss_ == fitted.loss_
    assert loaded.n_iter_ == fitted.n_iter_
    assert loaded.loss_curve_ == pytest.approx(fitted.loss_curve_)
    assert loaded.score(X) == pytest.approx(fitted.score(X))

    run = load_run(run_dir)  # the library's own loader
    np.testing.assert_allclose(
        run.encode(X.astype(np.float32)), fitted.transform(X.astype(np.float32)), atol=1e-6
    )
    assert run.meta["estimator"]["params"]["n_components"] == 12


def test_saved_folder_works_with_the_cli(
    fitted: ContractiveAutoencoder,
    digits: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    X = digits[0][:20].astype(np.float32)
    run_dir = fitted.save(tmp_path / "run")
    np.save(tmp_path / "x.npy", X)
    assert cli_main(["info", str(run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["epochs_done"] == 3
    assert info["n_features"] == 64
    out = tmp_path / "codes.npy"
    assert (
        cli_main(["encode", str(run_dir), "--data", str(tmp_path / "x.npy"), "--out", str(out)])
        == 0
    )
    np.testing.assert_allclose(np.load(out), fitted.transform(X), atol=1e-6)


def test_save_keeps_tuple_params_and_random_state_seed(tmp_path: Path) -> None:
    est = ContractiveAutoencoder(
        2, hidden_layer_sizes=[3], random_state=np.random.RandomState(0), epochs=1
    ).fit(_GOOD_X)
    loaded = ContractiveAutoencoder.load(est.save(tmp_path / "run"))
    assert loaded.hidden_layer_sizes == (3,)
    assert loaded.random_state == est.config_.seed
    np.testing.assert_array_equal(loaded.transform(_GOOD_X), est.transform(_GOOD_X))


def test_save_refuses_an_existing_run_unless_overwrite(
    fitted: ContractiveAutoencoder, tmp_path: Path
) -> None:
    fitted.save(tmp_path / "run")
    with pytest.raises(FileExistsError, match="already holds a run"):
        fitted.save(tmp_path / "run")
    fitted.save(tmp_path / "run", overwrite=True)


def test_load_refuses_folders_not_written_by_save(
    fitted: ContractiveAutoencoder, tmp_path: Path
) -> None:
    run_dir = fitted.save(tmp_path / "run")
    payload = json.loads((run_dir / CONFIG_FILE).read_text())
    del payload["estimator"]
    (run_dir / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match="has no 'estimator' entry"):
        ContractiveAutoencoder.load(run_dir)
    with pytest.raises(CheckpointError, match="No such run folder"):
        ContractiveAutoencoder.load(tmp_path / "missing")

"""Tests of contractive.experiments.mtc and mtc_runner: the MTC experiment on the digits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from cli_helpers import cli_error, cli_ok, expect
from contractive.exceptions import ConfigError
from contractive.experiments import mtc
from contractive.experiments.mtc import QUICK, check_mtc_protocol, epochs_for, layer_config
from contractive.experiments.mtc_runner import labelled_subset, markdown, run_mtc

# The quick protocol shrunk to the digits: 16 and 12 units, 3 tangents, two betas (a grid).
TINY = dataclasses.replace(
    QUICK,
    train_size=400,
    val_size=150,
    hidden=(16, 12),
    depths=(1, 2),
    pretrain_epochs=1,
    n_tangents=(2, 3),
    betas=(0.5, 5.0),
    select_size=200,
    select_epochs=1,
    finetune_epochs=2,
    label_counts=(20, 50),
    semi_steps=4,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]]]:
    out = tmp_path_factory.mktemp("mtc")
    lines: list[str] = []
    rows = run_mtc(out, protocol=TINY, dataset="digits", log=lines.append)
    return out, rows


def test_rows_cover_every_stack_and_label_count(
    tiny_run: tuple[Path, list[dict[str, object]]],
) -> None:
    _, rows = tiny_run
    got = [(r["model"], r["labels"]) for r in rows]
    assert got == [
        ("CAE+H-1", 400),
        ("MTC-1", 400),
        ("CAE+H-1", 20),
        ("MTC-1", 20),
        ("CAE+H-1", 50),
        ("MTC-1", 50),
        ("random init-1", 50),  # the count nearest 1000
        ("CAE+H-2", 400),
        ("MTC-2", 400),
    ]
    for r in rows:
        plain = not str(r["model"]).startswith("MTC")
        settings = r["settings"]
        assert isinstance(settings, dict)
        assert (settings["beta"] == 0) == plain
        assert 0 <= float(r["test_error"]) <= 100  # type: ignore[arg-type]


def test_selection_is_the_lowest_validation_error(
    tiny_run: tuple[Path, list[dict[str, object]]],
) -> None:
    out, rows = tiny_run
    meta = json.loads((out / "mtc_run.json").read_text())
    for depth in ("1", "2"):
        chosen = meta["selected"][depth]
        grid = chosen["grid"]
        assert [(p["k"], p["beta"]) for p in grid] == [(2, 0.5), (2, 5.0), (3, 0.5), (3, 5.0)]
        best = min(grid, key=lambda p: p["val_error"])
        assert (chosen["k"], chosen["beta"]) == (best["k"], best["beta"])
        mtc_row = next(r for r in rows if r["model"] == f"MTC-{depth}")
        assert mtc_row["settings"]["k"] == chosen["k"]  # type: ignore[index]
        assert mtc_row["settings"]["beta"] == chosen["beta"]  # type: ignore[index]


def test_outputs_are_written(tiny_run: tuple[Path, list[dict[str, object]]]) -> None:
    out, rows = tiny_run
    assert json.loads((out / "mtc.json").read_text()) == rows
    meta = json.loads((out / "mtc_run.json").read_text())
    assert meta["protocol"]["hidden"] == [16, 12]
    assert meta["peak_rss_gb"] > 0
    assert set(meta["stages"]) == {
        "pretrain_layer1",
        "tangents_1",
        "select_1",
        "pretrain_layer2",
        "tangents_2",
        "select_2",
    }
    page = (out / "mtc.md").read_text()
    assert page.count("\n| ") == 1 + len(rows)  # the header row and one per result
    for depth, units in ((1, 16), (2, 12)):
        weights = load_file(out / f"layer{depth}.safetensors")
        assert any(w.shape[0] == units for w in weights.values())
        # The tangents: a float16 memory map of (n_train, max k, d_x), loaded without pickle.
        vectors = np.load(out / f"tangents_{depth}.npy", mmap_mode="r", allow_pickle=False)
        assert vectors.shape == (400, 3, 64)
        assert vectors.dtype == np.float16
        norms = np.linalg.norm(vectors.astype(np.float32), axis=2)
        np.testing.assert_allclose(norms, 1.0, atol=2e-3)
        assert (out / f"tangents_{depth}.png").read_bytes().startswith(b"\x89PNG")


def test_labelled_subset_spreads_the_classes() -> None:
    y = np.repeat(np.arange(10), [30, 5, 30, 30, 30, 30, 30, 30, 30, 30])
    idx = labelled_subset(y, 43, seed=3)
    counts = np.bincount(y[idx], minlength=10)
    assert counts.tolist() == [5, 5, 5, 4, 4, 4, 4, 4, 4, 4]
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats
    assert not np.array_equal(idx, labelled_subset(y, 43, seed=4))


@pytest.mark.parametrize(
    ("n", "match"),
    [
        (
            9,
            r"'label_counts' parameter must hold counts of at least the number of classes "
            r"\(10\). Got 9 instead",
        ),
        (
            70,
            r"'label_counts' parameter's 70 labels need 7 training images of class 1; the "
            r"training set has 5",
        ),
    ],
)
def test_labelled_subset_refuses_too_few_labels(n: int, match: str) -> None:
    y = np.repeat(np.arange(10), [30, 5, 30, 30, 30, 30, 30, 30, 30, 30])
    with pytest.raises(ConfigError, match=match):
        labelled_subset(y, n, seed=0)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"n_tangents": (13,)},
            r"'n_tangents' parameter must be at most min\(smallest hidden "
            r"layer, features\) = 12. Got 13 instead",
        ),
        ({"betas": (-1.0,)}, r"'betas' parameter must be a float in the range \(0, inf\)"),
        ({"betas": (float("nan"),)}, r"'betas' parameter must be a float"),
        ({"depths": (3,)}, r"'depths' parameter must be layer counts in \[1, 2\]. Got \(3,\)"),
        (
            {"label_counts": (5,)},
            r"'label_counts' parameter must be an int in the range "
            r"\[10, inf\). Got 5",
        ),
        ({"tangent_target": "softmax"}, r"'tangent_target' parameter must be a str among"),
        ({"dropout": 1.0}, r"'dropout' parameter must be a float in the range \[0, 1\)"),
    ],
)
def test_bad_protocols_are_refused(change: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_mtc_protocol(dataclasses.replace(TINY, **change), n_features=64)  # type: ignore[arg-type]


def test_n_tangents_is_bounded_by_the_features_too() -> None:
    wide = dataclasses.replace(TINY, hidden=(100,), depths=(1,), n_tangents=(80,))
    with pytest.raises(ConfigError, match=r"features\) = 64. Got 80 instead"):
        check_mtc_protocol(wide, n_features=64)


def test_layer_config_is_a_cae_h_layer() -> None:
    cfg = layer_config(TINY, 1, "cpu")
    assert cfg.hidden == [12]
    assert (cfg.contraction, cfg.higher_order, cfg.ho_sigma) == (0.5, 0.1, 0.1)
    assert cfg.seed == TINY.seed + 1


def test_epochs_for_makes_at_least_the_steps() -> None:
    for n in (10, 64, 65, 1000, 3000):
        epochs = epochs_for(500, n, 64)
        per_epoch = -(-n // 64)
        assert epochs * per_epoch >= 500 > (epochs - 1) * per_epoch or epochs == 1


def test_markdown_puts_the_cited_figures_beside_mtc_rows_only() -> None:
    row = {"depth": 1, "test_error": 3.0, "test_se": 0.2, "val_error": 2.5, "best_epoch": 3}
    row |= {"epochs": 4, "settings": {"k": 15, "beta": 1.0}, "seconds": 10.0}
    rows = [
        {**row, "model": "MTC-1", "labels": 600},
        {**row, "model": "CAE+H-1", "labels": 600},
        {**row, "model": "MTC-1", "labels": 50000},
    ]
    lines = markdown(rows, {"protocol": {"name": "full", "train_size": 50000}}).splitlines()
    assert "| 5.13 |" in lines[4]
    assert "| 3.00 ± 0.20 | 2.50 |  |" in lines[5]
    assert "| 0.81 |" in lines[6]


def test_cli_runs_mtc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    one_layer = dataclasses.replace(TINY, hidden=(16,), depths=(1,), label_counts=())
    monkeypatch.setattr(mtc, "QUICK", one_layer)
    out = cli_ok(
        capsys, "reproduce", "mtc", "--data", "digits", "--quick", "--out", tmp_path, "--seed", "2"
    )
    assert "| MTC-1 | 400 |" in out
    meta = json.loads((tmp_path / "mtc_run.json").read_text())
    assert meta["protocol"]["seed"] == 2
    assert "--seed 2" in meta["command"]


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--models", "CAE"], r"--models apply to table1/table2; mtc takes --data"),
        (["--jobs", "2", "--final-epochs", "3"], r"--final-epochs, --jobs apply to table1"),
    ],
)
def test_cli_refuses_table_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], match: str
) -> None:
    message = cli_error(capsys, "reproduce", "mtc", "--out", tmp_path, *flags, status=2)
    expect(message, match)

"""Tests of Table 2 (contractive.experiments.table2 and table2_runner) on tiny data."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from contractive import imagegen, variations
from contractive.cli.reproduce import add_reproduce_arguments, cmd_reproduce
from contractive.exceptions import ConfigError
from contractive.experiments import table2, table2_runner
from contractive.experiments.table2_runner import run_table2, standard_error

TINY = dataclasses.replace(
    table2.QUICK,
    train_size=300,
    val_size=100,
    hidden=8,
    pretrain_epochs=1,
    finetune_epochs=2,
    grids={
        "SAE": table2.grid((None,), (0.1,)),
        "DAE-b": table2.grid((0.25,), (0.1,)),
        "CAE": table2.grid((0.3, 1.0), (0.1,)),
    },
)
SVM = ((1.0, 1.0), (10.0, 1.0))


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONTRACTIVE_DATA_DIR", raising=False)
    spec = dataclasses.replace(
        variations.VARIATIONS["rectangles"], n_train=200, n_valid=60, n_test=80
    )
    monkeypatch.setitem(variations.VARIATIONS, "rectangles", spec)
    monkeypatch.setitem(imagegen.VARIATION_SIZES, "rectangles", (200, 60, 80))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_rows_selection_and_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = table2_runner.train_stack

    def counting(X: Any, configs: Any, **kw: Any) -> Any:
        calls.append(len(configs))
        return real(X, configs, **kw)

    monkeypatch.setattr(table2_runner, "train_stack", counting)
    rows = run_table2(
        tmp_path / "out",
        datasets=["rectangles", "digits"],
        protocol=TINY,
        svm_grid=SVM,
        device="cpu",
        jobs=1,
        log=lambda line: None,
    )
    # One greedy stack per family and value and dataset: CAE-1 and CAE-2 share theirs.
    assert sorted(calls) == sorted([3, 3, 2, 2] * 2)
    assert [(r["dataset"], r["model"]) for r in rows] == [
        (d, m) for d in ("rectangles", "digits") for m in table2.MODELS
    ]
    for row in rows:
        n_test = 80 if row["dataset"] == "rectangles" else 360
        err = row["test_error"] / 100
        assert row["test_error_se"] == pytest.approx(100 * standard_error(err, n_test), abs=0.01)
        selected = [p for p in row["grid"] if p.get("selected_by_validation")]
        assert len(selected) == 1
        assert row["val_error"] == selected[0]["val_error"]
    paper = {(r["dataset"], r["model"]): r["paper_test_error"] for r in rows}
    assert paper[("rectangles", "CAE-2")] == 1.21
    assert paper[("digits", "CAE-2")] is None
    md = (tmp_path / "out" / "table2.md").read_text()
    assert "| dataset | SVM-rbf | SAE-3 | DAE-b-3 | CAE-1 | CAE-2 |" in md
    assert "(1.21)" in md
    meta = json.loads((tmp_path / "out" / "table2_run.json").read_text())
    assert meta["complete"] is True
    assert "regenerated" in meta["datasets"]["rectangles"]["provenance"]
    saved = json.loads((tmp_path / "out" / "table2.json").read_text())
    assert saved == json.loads(json.dumps(rows))


def test_a_subset_of_models(tmp_path: Path) -> None:
    rows = run_table2(
        tmp_path / "out",
        datasets=["digits"],
        models=["CAE-2"],
        protocol=TINY,
        svm_grid=SVM,
        device="cpu",
        jobs=1,
        log=lambda line: None,
    )
    assert [r["model"] for r in rows] == ["CAE-2"]
    assert {p["value"] for p in rows[0]["grid"]} == {0.3, 1.0}


def test_jobs_give_the_same_rows(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {
        "datasets": ["digits"],
        "models": ["SAE-3", "CAE-1"],
        "protocol": TINY,
        "svm_grid": SVM,
        "device": "cpu",
        "log": lambda line: None,
    }
    one = run_table2(tmp_path / "one", jobs=1, **kwargs)
    two = run_table2(tmp_path / "two", jobs=2, **kwargs)
    for a, b in zip(one, two, strict=True):
        assert (a["model"], a["test_error"], a["val_error"], a["selected"]) == (
            b["model"],
            b["test_error"],
            b["val_error"],
            b["selected"],
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"models": ["RBM-3"]}, r"The 'models' parameter must name some of SVM-rbf, .*Got RBM-3"),
        ({"datasets": []}, r"The 'datasets' parameter must name at least one dataset"),
        (
            {"protocol": dataclasses.replace(TINY, grids={"SAE": TINY.grids["SAE"]})},
            r"The protocol has no grid for the CAE, DAE-b family",
        ),
    ],
)
def test_errors(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        run_table2(tmp_path / "out", **{"protocol": TINY, "datasets": ["digits"], **kwargs})


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_reproduce_arguments(parser)
    flags = ["--train-size", "300", "--val-size", "100", "--hidden", "8", "--pretrain-epochs"]
    flags += ["1", "--finetune-epochs", "2", "--device", "cpu", "--jobs", "1"]
    args = parser.parse_args(
        ["table2", "--datasets", "digits", "--models", "CAE-1,SVM-rbf", "--out",
         str(tmp_path / "out"), "--quick", *flags]
    )  # fmt: skip
    assert cmd_reproduce(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# Table 2: contractive against Rifai et al. (2011)")
    assert "[digits SVM-rbf] C=10, gamma=1 x scale: val error" in err
    meta = json.loads((tmp_path / "out" / "table2_run.json").read_text())
    assert meta["command"].startswith("contractive reproduce table2 --datasets digits --out")
    args = parser.parse_args(["table1", "--datasets", "digits", "--out", str(tmp_path / "o")])
    with pytest.raises(ConfigError, match=r"--datasets is for table2"):
        cmd_reproduce(args)
    args = parser.parse_args(["table1", "--models", "CAE-2", "--out", str(tmp_path / "o")])
    with pytest.raises(ConfigError, match=r"--models for table1 must be some of CAE,"):
        cmd_reproduce(args)


def test_the_paper_table_is_the_confirmed_one() -> None:
    assert table2.PAPER_TABLE2["mnist-basic"]["CAE-2"] == 2.48
    assert table2.PAPER_TABLE2["mnist-bg-rand"]["RBM-3"] == 6.73
    assert set(table2.PAPER_TABLE2) == set(table2.DATASETS)

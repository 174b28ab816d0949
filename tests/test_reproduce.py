"""Tests of contractive.experiments and the reproduce command: Table 1 end to end on a tiny
synthetic "MNIST".

The fake MNIST is written as real IDX ``.gz`` files (6x6 images of 10 noisy class prototypes)
and its md5s are made the expected ones, so the whole path from ``load_dataset`` to the
written table runs as it does on the real files, in a second or two.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from contractive import idx
from contractive.cli.reproduce import add_reproduce_arguments, cmd_reproduce
from contractive.exceptions import ConfigError
from contractive.experiments import (
    FULL,
    MODELS,
    PAPER_TABLE1,
    QUICK,
    GridPoint,
    Protocol,
    planned_seconds,
    run_table1,
    select_point,
)
from contractive.experiments import differences as protocol_differences

N_TRAIN, N_TEST = 160, 60
# Flags that shrink --quick to the fake data: 100 train, 60 validation, 8 hidden units.
TINY = [
    "--train-size",
    "100",
    "--val-size",
    "60",
    "--hidden",
    "8",
    "--pretrain-epochs",
    "1",
    "--finetune-epochs",
    "2",
    "--probe-size",
    "50",
    "--device",
    "cpu",
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: tiny tensors, and two threads stall each other on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _idx_gz(path: Path, arr: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (the MNIST format)."""
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes(), mtime=0))


@pytest.fixture
def fake_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of MNIST-format files holding 6x6 noisy prototypes of 10 classes."""
    monkeypatch.delenv("CONTRACTIVE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    prototypes = rng.random((10, 6, 6)) > 0.5
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        labels = rng.integers(0, 10, n)
        flips = rng.random((n, 6, 6)) < 0.1
        images = 255 * (prototypes[labels] ^ flips)
        _idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        _idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setitem(idx._MD5, "mnist", md5s)
    return folder


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="contractive reproduce")
    add_reproduce_arguments(parser)
    return parser.parse_args(argv)


def _tiny(protocol: Protocol = QUICK, **changes: object) -> Protocol:
    base = {
        "train_size": 100,
        "val_size": 60,
        "hidden": 8,
        "pretrain_epochs": 1,
        "finetune_epochs": 2,
        "probe_size": 50,
    }
    return dataclasses.replace(protocol, **{**base, **changes})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The command.


def test_reproduce_command_writes_table_and_json(
    fake_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = _parse(["table1", "--data-dir", str(fake_mnist), "--out", str(out), "--quick", *TINY])
    assert cmd_reproduce(args) == 0
    rows = json.loads((out / "table1.json").read_text())
    assert [row["model"] for row in rows] == list(MODELS)
    for row in rows:
        assert 0.0 <= row["test_error"] <= 100.0
        assert 0.0 <= row["val_error"] <= 100.0
        assert 0.0 <= row["sat"] <= 100.0
        assert row["mean_jacobian_norm"] > 0
        assert row["paper_test_error"] == PAPER_TABLE1[row["model"]].test_error
        assert row["wall_seconds"] >= 0
        assert len(row["grid"]) == 1
        assert row["grid"][0]["selected_by_validation"]
        assert "finetune_lr" in row["selected"]
    cae = rows[0]
    assert cae["selected"] == {"contraction": 1.0, "finetune_lr": 0.1}
    assert cae["grid"][0]["contraction"] == 1.0
    run = json.loads((out / "table1_run.json").read_text())
    assert run["complete"]
    assert run["models_done"] == list(MODELS)
    assert "pre-training epochs 20 -> 1" in run["differences"]
    assert run["command"].startswith("contractive reproduce table1 --data-dir")
    assert "--quick" in run["command"]
    table = (out / "table1.md").read_text()
    assert "| CAE | **" in table
    assert "| RBM-binary | not reproduced | 1.30 |" in table
    assert "Shortened or changed from the full protocol" in table
    assert "## Definitions" in table
    captured = capsys.readouterr()
    assert captured.out.startswith("# Table 1 (MNIST)")
    assert "shortens the full protocol" in captured.err
    assert "[CAE 1/1] pre-trained lambda=1" in captured.err
    assert "[AE 1/1] fine-tuned lr=0.1: val error" in captured.err
    assert "[AE+wd] selected wd=0.001, lr=0.1" in captured.err


def test_selection_is_by_validation_error_and_runs_are_reproducible(
    fake_mnist: Path, tmp_path: Path
) -> None:
    grids = {
        "CAE": (GridPoint(0.01, 0.05), GridPoint(1.0, 0.05), GridPoint(1.0, 0.5)),
        "AE": (GridPoint(None, 0.01), GridPoint(None, 0.5)),
    }
    # Small batches, so that even this little data is learned (the classes are 10 prototypes).
    protocol = _tiny(
        grids=grids,
        selection="min",
        pretrain_batch_size=16,
        finetune_batch_size=16,
        hidden=16,
        finetune_epochs=10,
    )
    lines: list[str] = []
    rows = run_table1(tmp_path / "a", data_dir=fake_mnist, protocol=protocol, log=lines.append)
    assert [r["model"] for r in rows] == ["CAE", "AE"]
    for row in rows:
        errors = [p["val_error"] for p in row["grid"]]
        chosen = [p for p in row["grid"] if p["selected_by_validation"]]
        assert len(chosen) == 1
        assert chosen[0]["val_error"] == row["val_error"] == min(errors)
        assert chosen[0] is row["grid"][errors.index(min(errors))]  # ties: the first point
        assert row["test_error"] < 50  # chance is 90
    # lambda=1.0 is pre-trained once and fine-tuned at two learning rates.
    assert sum("pre-trained" in line for line in lines if line.startswith("[CAE")) == 2
    assert sum("fine-tuned" in line for line in lines if line.startswith("[CAE")) == 3
    again = run_table1(tmp_path / "b", data_dir=fake_mnist, protocol=protocol, log=lambda _: None)
    assert _no_times(rows) == _no_times(again)  # seeds fixed: only the timings differ


def _no_times(rows: list[dict[str, object]]) -> str:
    """The rows as JSON with every timing removed (the rest must match run to run)."""

    def clean(value: object) -> object:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if "seconds" not in k}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(rows), sort_keys=True)


# Floats that come out of float arithmetic, with the unit of the last decimal the rows keep
# (0: not rounded). In another process they may round otherwise (other kernels, other
# reductions), so they are compared to 1e-5 relative or one unit when rounded. Everything
# else in a row is counted (error rates are counts / n), chosen (the selected point, best
# epochs) or configured, and must be equal.
_COMPUTED = {"mean_jacobian_norm": 0.0, "sat": 0.01, "final_recon": 1e-4}


def _assert_same_results(a: object, b: object, key: str = "rows") -> None:
    """``a`` and ``b`` hold the same results: equal but for timings and ``_COMPUTED`` floats."""
    if isinstance(a, dict):
        assert isinstance(b, dict), key
        assert a.keys() == b.keys(), key
        for k in a:
            if "seconds" not in k:
                _assert_same_results(a[k], b[k], k)
    elif isinstance(a, list):
        assert isinstance(b, list), key
        assert len(a) == len(b), key
        for x, y in zip(a, b, strict=True):
            _assert_same_results(x, y, key)
    elif key in _COMPUTED and isinstance(a, float):
        # 1.5 units: values one unit apart differ by a little more than a unit in binary.
        assert b == pytest.approx(a, rel=1e-5, abs=1.5 * _COMPUTED[key]), key
    else:
        assert a == b, (key, a, b)


@pytest.mark.parametrize(
    ("errors", "strengths", "rule", "expected"),
    [
        # min: the lowest error, ties to the earlier point.
        ([0.0139, 0.0138, 0.0138], [0.3, 1.0, 3.0], "min", 1),
        # one-se: one standard error at 1.38% on 10000 images is 0.117 points.
        ([0.0138, 0.0139, 0.0163], [0.3, 1.0, 3.0], "one-se", 1),
        ([0.0138, 0.0139, 0.0149], [0.3, 1.0, 3.0], "one-se", 2),
        ([0.0138, 0.0139, 0.0150], [0.3, 1.0, 3.0], "one-se", 1),  # 0.12 > 0.117
        ([0.0163, 0.0169, 0.0172], [0.1, 0.25, 0.5], "one-se", 2),
        # Points without a strength (the AE's learning rates) are compared by error alone.
        ([0.0191, 0.0187, 0.0190], [None, None, None], "one-se", 1),
        # Two points of one strength: the lower error of the two.
        ([0.0140, 0.0139, 0.0145], [1.0, 1.0, 0.3], "one-se", 1),
    ],
)
def test_select_point(
    errors: list[float], strengths: list[float | None], rule: str, expected: int
) -> None:
    assert select_point(errors, strengths, n_val=10_000, rule=rule) == expected


def test_select_point_errors() -> None:
    with pytest.raises(
        ConfigError,
        match=r"The 'selection' parameter must be a str among \{'min', 'one-se'\}\. Got 'best'",
    ):
        select_point([0.1], [1.0], n_val=10, rule="best")
    with pytest.raises(
        ConfigError, match=r"one strength per error and at least one point\. Got 2 error\(s\) and 1"
    ):
        select_point([0.1, 0.2], [1.0], n_val=10)
    with pytest.raises(ConfigError, match=r"The 'selection' parameter must be a str among \{'min'"):
        run_table1("unused", protocol=_tiny(selection="best"))


def test_final_fine_tuning_is_the_tested_classifier(fake_mnist: Path, tmp_path: Path) -> None:
    grids = {"CAE": (GridPoint(0.3, 0.05), GridPoint(1.0, 0.05))}
    base = _tiny(grids=grids, pretrain_batch_size=16, finetune_batch_size=16, hidden=16)
    protocol = dataclasses.replace(base, final_epochs=3, final_lr=0.3)
    lines: list[str] = []
    (row,) = run_table1(tmp_path / "a", data_dir=fake_mnist, protocol=protocol, log=lines.append)
    (plain,) = run_table1(tmp_path / "b", data_dir=fake_mnist, protocol=base, log=lambda _: None)
    # The grid and its selection do not depend on the final stage.
    assert _no_times(row["grid"]) == _no_times(plain["grid"])
    assert row["selection_val_error"] == plain["selection_val_error"] == plain["val_error"]
    final = row["final"]
    assert final is not None
    assert plain["final"] is None
    assert {k: final[k] for k in ("epochs", "lr", "dropout", "input_dropout")} == {
        "epochs": 3,
        "lr": 0.3,
        "dropout": 0.5,
        "input_dropout": 0.2,
    }
    assert row["val_error"] == final["val_error"]
    assert row["best_epoch"] == final["best_epoch"] <= 3
    assert any(line.startswith("[CAE] final fine-tuning of lambda=") for line in lines)
    table = (tmp_path / "a" / "table1.md").read_text()
    assert (
        "Final fine-tuning of the selected point: from the pre-trained encoder again, 3 epochs"
        in table
    )
    assert "- Final fine-tuning: none" in (tmp_path / "b" / "table1.md").read_text()


def test_jobs_run_models_in_processes_with_the_same_results(
    fake_mnist: Path, tmp_path: Path
) -> None:
    protocol = _tiny(grids={m: QUICK.grids[m] for m in ("CAE", "DAE-b", "AE")})
    lines: list[str] = []
    # By default, one job per torch thread: 2 threads make 2 processes of 1 thread each.
    torch.set_num_threads(2)
    try:
        parallel = run_table1(
            tmp_path / "a", data_dir=fake_mnist, protocol=protocol, log=lines.append
        )
    finally:
        torch.set_num_threads(1)
    serial = run_table1(
        tmp_path / "b", data_dir=fake_mnist, protocol=protocol, jobs=1, log=lambda _: None
    )
    assert [r["model"] for r in parallel] == ["CAE", "DAE-b", "AE"]  # table order
    _assert_same_results(parallel, serial)
    # Every worker's progress lines reached the caller's log.
    for model in ("CAE", "DAE-b", "AE"):
        assert any(line.startswith(f"[{model} 1/1] pre-trained") for line in lines)
        assert any(line.startswith(f"[{model}] selected") for line in lines)
    run = json.loads((tmp_path / "a" / "table1_run.json").read_text())
    assert run["complete"]
    assert run["environment"]["jobs"] == 2
    assert run["environment"]["threads_per_job"] == 1


def test_outputs_are_written_after_every_model(fake_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    def log(line: str) -> None:
        if line.startswith("[DAE-g 1/1] pre-trained"):
            raise KeyboardInterrupt  # as if the user stopped the run during the second model

    with pytest.raises(KeyboardInterrupt):
        run_table1(out, data_dir=fake_mnist, protocol=_tiny(), log=log)
    rows = json.loads((out / "table1.json").read_text())
    assert [r["model"] for r in rows] == ["CAE"]
    assert "**In progress**: 1 of 5 models done." in (out / "table1.md").read_text()
    assert not json.loads((out / "table1_run.json").read_text())["complete"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_models_option_runs_a_subset(fake_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["table1", "--data-dir", str(fake_mnist), "--out", str(out), "--quick"]
    args = _parse([*argv, "--models", "AE", *TINY])
    assert cmd_reproduce(args) == 0
    assert [r["model"] for r in json.loads((out / "table1.json").read_text())] == ["AE"]
    table = (out / "table1.md").read_text()
    assert "| CAE | not run |" in table
    assert "models left out: CAE, DAE-g, DAE-b, AE+wd" in table


# ---------------------------------------------------------------------------------------------
# Errors.


def test_too_many_images_shrink_to_the_dataset(fake_mnist: Path, tmp_path: Path) -> None:
    # The protocol's sizes are MNIST's: on a smaller dataset the validation set is at most a
    # sixth of the training images and the training set the rest, and the outputs say so.
    rows = run_table1(tmp_path / "out", data_dir=fake_mnist, protocol=_tiny(train_size=150))
    meta = json.loads((tmp_path / "out" / "table1_run.json").read_text())
    assert meta["sizes"] == {"train": 134, "validation": 26, "test": N_TEST}
    assert "train_size + val_size = 150 + 60 is more than its 160 training images" in meta["data"]
    assert {r["dataset"] for r in rows} == {"mnist"}


def test_the_protocol_on_another_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse(
        [
            "table1",
            "--data",
            "digits",
            "--out",
            str(tmp_path / "out"),
            "--quick",
            "--models",
            "CAE,AE",
            *TINY,
        ]
    )
    assert cmd_reproduce(args) == 0
    rows = json.loads((tmp_path / "out" / "table1.json").read_text())
    assert [(r["dataset"], r["model"]) for r in rows] == [("digits", "CAE"), ("digits", "AE")]
    # The paper has no digits figures: none are shown or written.
    assert all(r["paper_test_error"] is None and r["paper_sat"] is None for r in rows)
    table = (tmp_path / "out" / "table1.md").read_text()
    assert table.startswith("# Table 1 (digits): contractive (the paper has no figures for it)")
    assert "RBM-binary" not in table
    meta = json.loads((tmp_path / "out" / "table1_run.json").read_text())
    assert meta["command"].startswith("contractive reproduce table1 --data digits --out ")
    assert meta["sizes"] == {"train": 100, "validation": 60, "test": 360}
    assert meta["n_features"] == 64
    assert meta["n_classes"] == 10


def test_bad_protocols_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"The 'hidden' parameter must be an int in the range"):
        run_table1(tmp_path, protocol=_tiny(hidden=0))
    with pytest.raises(ConfigError, match=r"The 'models' parameter must name at least one of"):
        run_table1(tmp_path, protocol=_tiny(grids={}))
    with pytest.raises(ConfigError, match=r"Got RBM instead"):
        run_table1(tmp_path, protocol=_tiny(grids={"RBM": (GridPoint(None, 0.1),)}))
    for changes, match in (
        (
            {"final_epochs": -1},
            r"The 'final_epochs' parameter must be an int in the range \[0, inf\)",
        ),
        (
            {"final_lr": 0.0},
            r"The 'final_lr' parameter must be a float in the range \(0, inf\)\. Got 0",
        ),
        (
            {"final_dropout": 1.0},
            r"The 'final_dropout' parameter must be a float in the range \[0, 1\)",
        ),
        (
            {"final_input_dropout": -0.5},
            r"The 'final_input_dropout' parameter must be a float in the range \[0, 1\)\. Got -0.5",
        ),
    ):
        with pytest.raises(ConfigError, match=match):
            run_table1(tmp_path, protocol=_tiny(**changes))
    with pytest.raises(ConfigError, match=r"Every model's grid must hold at least one GridPoint"):
        run_table1(tmp_path, protocol=_tiny(grids={"AE": ()}))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--out .*file exists and is not a folder"):
        run_table1(tmp_path / "file", protocol=_tiny())


class _Raising(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["table3", "--out", "o"], r"argument experiment: invalid choice: 'table3'"),
        (
            ["table2", "--out", "o", "--datasets", "mnist-rotated"],
            r"comma-separated list of digits,",
        ),
        (["table1"], r"the following arguments are required: --out"),
        (["table1", "--out", "o", "--models", "CAE,RBM"], r"comma-separated subset of CAE,"),
        (["table1", "--out", "o", "--hidden", "0"], r"expected a positive integer, got '0'"),
        (["table1", "--out", "o", "--threads", "x"], r"expected a positive integer, got 'x'"),
        (["table1", "--out", "o", "--jobs", "0"], r"expected a positive integer, got '0'"),
        (["table1", "--out", "o", "--final-lr", "0"], r"expected a finite number > 0, got '0'"),
        (
            ["table1", "--out", "o", "--final-dropout", "1"],
            r"expected a number in \[0, 1\), got '1'",
        ),
        (["table1", "--out", "o", "--final-epochs", "-1"], r"expected an integer >= 0, got '-1'"),
    ],
)
def test_command_line_errors(argv: list[str], match: str) -> None:
    parser = _Raising(prog="contractive reproduce")
    add_reproduce_arguments(parser)
    with pytest.raises(ValueError, match=match):
        parser.parse_args(argv)


def test_negative_seed_is_refused(tmp_path: Path) -> None:
    args = _parse(["table1", "--out", str(tmp_path), "--seed", "-1"])
    with pytest.raises(
        ConfigError,
        match=r"The 'seed' parameter must be an int in the range \[0, inf\)\. Got -1 inst",
    ):
        cmd_reproduce(args)


# ---------------------------------------------------------------------------------------------
# The protocols themselves.


def test_jobs_must_be_positive(fake_mnist: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"The 'jobs' parameter must be an int in the range \[1, inf\). Got 0 instead.",
    ):
        run_table1(tmp_path, data_dir=fake_mnist, protocol=_tiny(), jobs=0)


def test_planned_seconds_with_jobs() -> None:
    one = planned_seconds(FULL)
    two = planned_seconds(FULL, jobs=2)
    assert one / 2 <= two < one
    # More processes than cores share the cores, at a cost: five on 2 cores plan longer
    # than two (as measured), five on 5 cores shorter.
    five = planned_seconds(FULL, jobs=len(MODELS))
    assert five > two
    assert planned_seconds(FULL, jobs=99) == five
    assert planned_seconds(FULL, jobs=len(MODELS), cores=len(MODELS)) < two


def test_protocol_budgets() -> None:
    # On 2 cores with the default 2 jobs (or 1 for --quick).
    assert planned_seconds(QUICK, jobs=2) < planned_seconds(QUICK) < 10 * 60
    assert planned_seconds(FULL, jobs=2) < 85 * 60
    assert all(len(FULL.grids[m]) == 3 for m in MODELS if m != "AE")
    assert len(FULL.grids["AE"]) == 1  # one encoder, re-fine-tuned at the final lr
    assert all(len(grid) == 1 for grid in QUICK.grids.values())
    assert FULL.models == QUICK.models == MODELS


def test_quick_says_what_it_shortens() -> None:
    changes = protocol_differences(QUICK)
    assert "pre-training epochs 20 -> 4" in changes
    assert "fine-tuning epochs 20 -> 15" in changes
    assert "CAE grid: 1 point(s) instead of 3 (lambda=1, lr=0.1)" in changes
    assert protocol_differences(FULL) == []


def test_paper_table_is_the_confirmed_one() -> None:
    assert PAPER_TABLE1["CAE"].test_error == 1.14
    assert PAPER_TABLE1["AE"].test_error == 1.78
    assert PAPER_TABLE1["CAE"].sat == 86.36
    ranking = sorted(PAPER_TABLE1, key=lambda m: PAPER_TABLE1[m].test_error)
    assert ranking == ["CAE", "DAE-g", "RBM-binary", "DAE-b", "AE+wd", "AE"]


def test_final_fine_tuning_flags_change_the_protocol() -> None:
    from contractive.cli.reproduce import _protocol_from_args, _rebuild_flags

    argv = ["table1", "--out", "o", "--final-epochs", "0", "--final-dropout", "0"]
    args = _parse([*argv, "--final-lr", "0.05", "--final-input-dropout", "0.1"])
    protocol = _protocol_from_args(args)
    assert protocol.name == "full (changed)"
    assert (protocol.final_epochs, protocol.final_dropout) == (0, 0.0)
    assert (protocol.final_lr, protocol.final_input_dropout) == (0.05, 0.1)
    assert "final fine-tuning dropout on the codes 0.5 -> 0" in protocol_differences(protocol)
    assert (
        _protocol_from_args(_parse(["table1", "--out", "o", "--selection", "min"])).selection
        == "min"
    )
    assert "grid selection rule one-se -> min" in protocol_differences(
        _protocol_from_args(_parse(["table1", "--out", "o", "--selection", "min"]))
    )
    flags = " ".join(_rebuild_flags(args))
    assert "--final-epochs 0 --final-lr 0.05 --final-dropout 0 --final-input-dropout 0.1" in flags
    # The defaults change nothing.
    assert _protocol_from_args(_parse(["table1", "--out", "o"])) is FULL

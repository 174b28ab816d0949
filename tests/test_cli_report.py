"""Tests of contractive.cli.report: the ``contractive report`` command.

The command is exercised through its ``Command`` (options added to a small argparse parser,
then run), as ``contractive report`` wires it. What the page holds is tested in
``tests/test_report.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from contractive.cli.report import COMMANDS
from contractive.config import Config
from contractive.workflow import train_run

REPORT = COMMANDS["report"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contractive report")
    REPORT.add_arguments(parser)
    return parser


def test_report_prints_the_table_and_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((120, 10)).astype(np.float32))
    sig, relu = tmp_path / "sig", tmp_path / "relu"
    train_run(Config(data=str(data), hidden=[4], epochs=2), sig, quiet=True)
    train_run(Config(data=str(data), hidden=[4], epochs=2, activation="relu"), relu, quiet=True)
    out = tmp_path / "report"
    args = _parser().parse_args([str(sig), str(relu), "--out", str(out), "--n-points", "50"])
    assert REPORT.run(args) == 0
    assert "(whole file), 50 points" in (out / "report.html").read_text(encoding="utf-8")
    # The command prints the table (without the long model/objective columns) and the path.
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["run", "epochs", "val", "recon"]
    assert lines[1].startswith("sig ")
    assert lines[2].startswith("relu ")
    assert "n/a" in lines[2]
    assert lines[3] == f"Wrote {out / 'report.html'}"


def test_report_parser(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["a", "b", "--out", "o", "--data", "mnist", "--data-dir", "d"])
    assert (args.runs, args.out, args.data, args.data_dir) == (["a", "b"], "o", "mnist", "d")
    assert (args.split, args.n_points, args.spectrum_points, args.seed) == ("test", 500, 200, 0)
    with pytest.raises(SystemExit):
        _parser().parse_args(["a", "--out", "o", "--n-points", "0"])
    assert "expected a positive integer, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["--out", "o"])


def test_report_compares_a_greedy_stack_with_one_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The paper's CAE-1 against its CAE-2 (two layers trained greedily), on the digits.
    cae1, cae2 = tmp_path / "cae1", tmp_path / "cae2"
    train_run(Config(hidden=[12], epochs=1), cae1, quiet=True, plots=False)
    train_run(Config(hidden=[12, 6], greedy=True, epochs=2), cae2, quiet=True, plots=False)
    out = tmp_path / "report"
    argv = [str(cae1), str(cae2), "--out", str(out), "--n-points", "40", "--spectrum-points", "8"]
    assert REPORT.run(_parser().parse_args(argv)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("cae1  ")
    assert lines[2].startswith("cae2: CAE-2 (greedy)  2 + 2 ")
    assert (out / "figures" / "contraction.png").is_file()

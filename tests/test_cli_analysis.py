"""Tests of contractive.cli.analysis: the ``contractive sample`` command.

The command is exercised through its ``Command`` (options added to a small argparse parser,
then run), as ``contractive sample`` wires it, and once through ``main``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli_error, cli_ok
from contractive.cli.analysis import COMMANDS
from contractive.config import Config
from contractive.exceptions import ConfigError
from contractive.workflow import train_run

SAMPLE = COMMANDS["sample"]


def _sample_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contractive sample")
    SAMPLE.add_arguments(parser)
    return parser


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "cae"
    train_run(Config(data="digits", hidden=[16], epochs=1), out, quiet=True, plots=False)
    return out


def test_cmd_sample_writes_npy_and_png(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "samples"
    args = _sample_parser().parse_args(
        [str(digits_run), "--out", str(out), "--steps", "3", "--chains", "2", "--sigma", "0.2"]
    )
    assert SAMPLE.run(args) == 0
    chain = np.load(out / "samples.npy")
    assert chain.shape == (4, 2, 64)
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Wrote 2 chains of 3 steps from digits" in capsys.readouterr().out
    # Same seed, same chains.
    again = tmp_path / "again"
    args = _sample_parser().parse_args(
        [str(digits_run), "--out", str(again), "--steps", "3", "--chains", "2", "--sigma", "0.2"]
    )
    SAMPLE.run(args)
    np.testing.assert_array_equal(np.load(again / "samples.npy"), chain)


def test_cmd_sample_on_tabular_data_writes_only_the_array(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((30, 6)).astype(np.float32))
    run = tmp_path / "tab"
    train_run(Config(data=str(data), hidden=[3], epochs=1), run, quiet=True)
    args = _sample_parser().parse_args([str(run), "--out", str(tmp_path / "s"), "--steps", "2"])
    assert SAMPLE.run(args) == 0
    assert np.load(tmp_path / "s" / "samples.npy").shape == (3, 8, 6)
    assert not (tmp_path / "s" / "samples.png").exists()
    assert "not images" in capsys.readouterr().out


def test_sample_parser_refuses_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    parser = _sample_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--out", "o", "--sigma", "-0.1"])
    assert "expected a finite number >= 0, got '-0.1'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--out", "o", "--steps", "0"])
    assert "expected a positive integer, got '0'" in capsys.readouterr().err


def test_cmd_sample_refuses_a_file_as_out(digits_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    args = _sample_parser().parse_args([str(digits_run), "--out", str(target)])
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        SAMPLE.run(args)


def test_sample_through_the_command(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s"
    stdout = cli_ok(capsys, "sample", digits_run, "--out", out, "--steps", "2", "--chains", "3")
    assert np.load(out / "samples.npy").shape == (3, 3, 64)
    assert f"Wrote {out / 'samples.png'}" in stdout
    message = cli_error(capsys, "sample", digits_run, "--out", out, "--chains", "0", status=2)
    assert message == (
        "argument --chains: expected a positive integer, got '0' (see 'contractive sample --help')"
    )

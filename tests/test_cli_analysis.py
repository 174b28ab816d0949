"""Tests of contractive.cli.analysis: the ``contractive sample`` command.

The command is exercised through its ``Command`` (options added to a small argparse parser,
then run), as ``contractive sample`` wires it, and once through ``main``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli_error, cli_ok
from contractive.cli.analysis import COMMANDS
from contractive.cli.common import UsageError
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


def test_cmd_sample_writes_samples_chains_png_and_json(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "samples"
    argv = [str(digits_run), "--out", str(out), "--n", "12", "--per-chain", "3", "--burn-in", "4"]
    argv += ["--every", "2", "--steps", "3", "--chains", "2", "--sigma", "0.2"]
    assert SAMPLE.run(_sample_parser().parse_args(argv)) == 0
    samples, chains = np.load(out / "samples.npy"), np.load(out / "chains.npy")
    assert samples.shape == (12, 64)
    assert chains.shape == (4, 2, 64)
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((out / "sampling.json").read_text())
    assert meta["settings"]["per_chain"] == 3
    assert meta["n_samples"] == 12
    assert meta["guard"] == {"max_error": None, "refused_fraction": 0.0}  # off by default
    assert f"Wrote 12 samples of {digits_run}" in capsys.readouterr().out
    # Same seed, same samples; --guard sets a bound and counts the steps it refuses.
    again = tmp_path / "again"
    SAMPLE.run(_sample_parser().parse_args([*argv[:2], str(again), *argv[3:]]))
    np.testing.assert_array_equal(np.load(again / "samples.npy"), samples)
    free = tmp_path / "free"
    SAMPLE.run(_sample_parser().parse_args([*argv[:2], str(free), *argv[3:], "--guard"]))
    meta = json.loads((free / "sampling.json").read_text())
    assert meta["guard"]["max_error"] > 0
    assert 0.0 <= meta["guard"]["refused_fraction"] <= 1.0


def test_cmd_sample_on_tabular_data_writes_only_the_arrays(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((30, 6)).astype(np.float32))
    run = tmp_path / "tab"
    train_run(Config(data=str(data), hidden=[3], epochs=1), run, quiet=True)
    args = _sample_parser().parse_args(
        [str(run), "--out", str(tmp_path / "s"), "--steps", "2", "--n", "5", "--burn-in", "2"]
    )
    assert SAMPLE.run(args) == 0
    assert np.load(tmp_path / "s" / "samples.npy").shape == (5, 6)
    assert np.load(tmp_path / "s" / "chains.npy").shape == (3, 8, 6)
    assert not (tmp_path / "s" / "samples.png").exists()
    assert "not images" in capsys.readouterr().out


def test_cmd_sample_parzen_scores_samples_beside_references(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p"
    argv = [str(digits_run), "--out", str(out), "--parzen", "--n", "40", "--burn-in", "3"]
    argv += ["--mixing-chains", "4", "--mixing-steps", "6", "--baseline", str(digits_run)]
    assert SAMPLE.run(_sample_parser().parse_args(argv)) == 0
    meta = json.loads((out / "sampling.json").read_text())
    rows = meta["parzen"]
    assert set(rows) == {"model", "training images", "noise around training images", "baseline"}
    # The baseline is the same run, sampled by the same chain: the same figure.
    assert rows["baseline"]["log_likelihood"] == rows["model"]["log_likelihood"]
    assert rows["model"]["n_samples"] == 40
    assert rows["model"]["n_test"] == 360  # digits' test split
    assert meta["mixing"]["chains"] == 4
    stdout = capsys.readouterr().out
    assert "Parzen log-likelihood, training images:" in stdout
    assert "classes visited in 6 steps (mean of 4 chains)" in stdout


def test_cmd_sample_refuses_parzen_options_it_cannot_use(digits_run: Path, tmp_path: Path) -> None:
    args = _sample_parser().parse_args(
        [str(digits_run), "--out", str(tmp_path / "o"), "--baseline", str(digits_run)]
    )
    with pytest.raises(UsageError, match="--baseline is only used with --parzen"):
        SAMPLE.run(args)
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((30, 6)).astype(np.float32))
    run = tmp_path / "tab"
    train_run(Config(data=str(data), hidden=[3], epochs=1), run, quiet=True)
    args = _sample_parser().parse_args([str(run), "--out", str(tmp_path / "o"), "--parzen"])
    with pytest.raises(
        UsageError,
        match=r"--parzen needs a built-in dataset with a test split "
        r"\(digits, mnist, .*\); got '.*x.npy'",
    ):
        SAMPLE.run(args)


def test_sample_parser_refuses_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    parser = _sample_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--out", "o", "--sigma", "-0.1"])
    assert "expected a finite number >= 0, got '-0.1'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--out", "o", "--steps", "0"])
    assert "expected a positive integer, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--out", "o", "--n", "-3"])
    assert "argument --n: expected a positive integer, got '-3'" in capsys.readouterr().err


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
    stdout = cli_ok(
        capsys, "sample", digits_run, "--out", out, "--steps", "2", "--chains", "3", "--n", "4"
    )
    assert np.load(out / "chains.npy").shape == (3, 3, 64)
    assert f"Wrote {out / 'samples.png'}" in stdout
    message = cli_error(capsys, "sample", digits_run, "--out", out, "--chains", "0", status=2)
    assert message == (
        "argument --chains: expected a positive integer, got '0' (see 'contractive sample --help')"
    )

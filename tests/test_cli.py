"""The contractive command (contractive.cli, .cli.common, .cli.train): options from Config,
the shared data options, one-line errors, exit statuses; train, info, encode, reconstruct.

``sample`` and ``report`` have their own files: tests/test_cli_analysis.py, test_cli_report.py.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli_error, expect
from contractive.cli import analysis, main, report, train
from contractive.cli.common import UsageError, report_error


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    code = main(
        [
            "train",
            "--data",
            "digits",
            "--out",
            str(out),
            "--hidden",
            "12",
            "--epochs",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    return out


def test_train_prints_run_folder(trained: Path) -> None:
    assert (trained / "model.safetensors").is_file()
    assert (trained / "filters.png").is_file()


def test_progress_and_epoch_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "train", "--out", str(tmp_path / "r"), "--hidden", "4", "--epochs", "2"
    )
    assert code == 0
    assert f"Run folder: {tmp_path / 'r'}" in out
    assert "epoch 1/2  recon" in err
    assert "epoch 2/2  recon" in err
    assert "penalty" in err


def test_quiet_prints_no_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        capsys, "train", "--out", str(tmp_path / "r"), "--hidden", "4", "--epochs", "1", "--quiet"
    )
    assert code == 0
    assert err == ""


def test_every_config_field_is_a_flag() -> None:
    from contractive.config import Config

    parser = argparse.ArgumentParser(prog="contractive train")
    train.COMMANDS["train"].add_arguments(parser)
    help_text = parser.format_help()
    for name in Config.field_names():
        assert "--" + name.replace("_", "-") in help_text


def test_toml_config_and_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "exp.toml"
    toml.write_text("hidden = [6]\nepochs = 1\ncontraction = 0.5\n[optim]\nlr = 0.01\n")
    code, _, err = _run(
        capsys,
        "train",
        "--config",
        str(toml),
        "--out",
        str(tmp_path / "r"),
        "--contraction",
        "0.25",
        "--quiet",
    )
    assert code == 0, err
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert (cfg["hidden"], cfg["contraction"], cfg["lr"]) == ([6], 0.25, 0.01)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--epochs", "x", "--out", "r"], "argument --epochs: invalid int value: 'x'"),
        (
            ["train", "--activation", "swish", "--out", "r"],
            "argument --activation: invalid choice: 'swish'",
        ),
        (["train", "--hidden", "10,a", "--out", "r"], "expected comma-separated integers"),
        (
            ["train", "--epochs", "0", "--out", "r"],
            "The 'epochs' parameter must be an int in the range",
        ),
        (
            ["train", "--contraction", "-1", "--out", "r"],
            "The 'contraction' parameter must be a float in the range",
        ),
        (
            ["train", "--contraction", "nan", "--out", "r"],
            "The 'contraction' parameter must be a float",
        ),
        (["train"], "train needs --out RUN"),
        (
            ["train", "--resume", "r", "--lr", "0.1"],
            "only --epochs, --data-dir may be given \\(got --lr\\)",
        ),
        (["train", "--resume", "r", "--out", "x"], "--resume RUN continues RUN"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
        (["encode", "r", "--out", "x.txt"], "expected a .npy, .npz or .csv file name"),
    ],
)
def test_usage_errors_exit_2_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    expect(cli_error(capsys, *argv, status=2), message)


def test_unknown_toml_key_lists_valid_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "exp.toml"
    toml.write_text("lamda = 0.1\n")
    code, _, err = _run(capsys, "train", "--config", str(toml), "--out", str(tmp_path / "r"))
    assert code == 2
    assert "Unknown key(s) in " in err
    assert "Valid keys: data, data_dir," in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "nothing.npy", "--out", "r"], "No such file: nothing.npy"),
        (["train", "--data", "foo", "--out", "r"], "Unknown dataset 'foo'"),
        (["info", "missing"], "No such run folder: missing"),
        (["encode", "missing", "--out", "x.npy"], "No such run folder: missing"),
    ],
)
def test_runtime_errors_exit_1_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    expect(cli_error(capsys, *argv, status=1), re.escape(message))


def test_existing_run_is_a_usage_error(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "train", "--out", str(trained), "--epochs", "1")
    assert code == 2
    assert "already holds a run" in err


def test_diverging_loss_exits_1_with_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "big.npy"
    np.save(data, np.full((64, 4), 1e30, dtype=np.float32))
    code, _, err = _run(
        capsys,
        "train",
        "--data",
        str(data),
        "--loss",
        "mse",
        "--out",
        str(tmp_path / "r"),
        "--quiet",
        "--hidden",
        "3",
    )
    assert code == 1
    assert "with a lower learning rate" in err
    assert "last good checkpoint" in err


def test_info_text_and_json(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "info", str(trained))
    assert code == 0
    assert "mlp 64 -> 12, sigmoid, tied" in out
    assert "epochs       2/2" in out
    code, out, _ = _run(capsys, "info", str(trained), "--json")
    info = json.loads(out)
    assert info["epochs_done"] == 2
    assert info["resumable"] is True
    assert info["parameters"] == 64 * 12 + 12 + 64
    assert info["stack"] is None


def test_greedy_train_info_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = str(tmp_path / "cae2")
    code, out, err = _run(
        capsys, "train", "--hidden", "12,6", "--greedy", "--epochs", "2", "--out", run
    )
    assert code == 0, err
    # One line per layer as it starts, and an epoch line per layer and epoch.
    assert "layer 1/2  64 -> 12, trained on the inputs" in err
    assert "layer 2/2  12 -> 6, trained on the codes of layer 1" in err
    for layer in (1, 2):
        for epoch in (1, 2):
            assert f"layer {layer}/2  epoch {epoch}/2  recon" in err
    assert re.search(r"greedy stack of 2 layers: final recon [0-9.]+ on the validation split", out)
    code, out, _ = _run(capsys, "info", run)
    assert code == 0
    assert "mlp 64 -> 12 -> 6, sigmoid, tied, 934 parameters, greedy stack of 2 layers" in out
    assert "epochs       layer 1: 2/2, layer 2: 2/2" in out
    assert re.search(r"stack        recon [0-9.]+ on the validation split", out)
    assert "last epoch   layer 2/2, recon" in out
    code, out, _ = _run(capsys, "info", run, "--json")
    info = json.loads(out)
    assert info["config"]["greedy"] is True
    assert info["resumable"] is False
    assert info["stack"]["layers"] == 2
    assert info["stack"]["epochs_done"] == [2, 2]
    assert info["stack"]["split"] == "validation"
    message = cli_error(capsys, "train", "--resume", run, status=2)
    expect(message, r"cae2 is a greedy stack \(greedy=True\), which cannot be resumed")


def test_greedy_conv_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--greedy", "--architecture", "conv", "--out", str(tmp_path / "r")]
    message = cli_error(capsys, *argv, status=2)
    expect(message, r"^The 'architecture' parameter must be 'mlp' when greedy=True")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_encode_formats(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    out = tmp_path / f"codes{suffix}"
    code, stdout, err = _run(capsys, "encode", str(trained), "--data", "digits", "--out", str(out))
    assert code == 0, err
    assert "Wrote codes 360 x 12" in stdout
    if suffix == ".npy":
        assert np.load(out).shape == (360, 12)
    elif suffix == ".npz":
        with np.load(out) as z:
            assert z["X"].shape == (360, 12)
            assert z["y"].shape == (360,)
    else:
        assert np.loadtxt(out, delimiter=",").shape == (360, 12)


def test_reconstruct_with_png(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _stdout, err = _run(
        capsys,
        "reconstruct",
        str(trained),
        "--split",
        "train",
        "--out",
        str(tmp_path / "r.npy"),
        "--png",
        str(tmp_path / "r.png"),
    )
    assert code == 0, err
    assert np.load(tmp_path / "r.npy").shape == (1437, 64)
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_encode_feature_mismatch_is_one_line(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "wrong.npy"
    np.save(data, np.zeros((3, 10), dtype=np.float32))
    code, _, err = _run(
        capsys, "encode", str(trained), "--data", str(data), "--out", str(tmp_path / "c.npy")
    )
    assert code == 1
    assert "X has 10 features, but the model in" in err


def test_debug_shows_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(Exception, match="No such run folder"):
        main(["--debug", "info", str(tmp_path / "nope")])


def test_python_dash_m_and_console_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "contractive", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("contractive 0.1.0")
    result = subprocess.run(
        [sys.executable, "-m", "contractive", "info", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == f"contractive: error: No such run folder: {tmp_path / 'x'}\n"


# ---------------------------------------------------------------------------------------------
# The data options and the run-data loader, shared by encode, reconstruct, sample and report.


def _options(command: str) -> dict[str, argparse.Action]:
    commands = {**train.COMMANDS, **analysis.COMMANDS, **report.COMMANDS}
    parser = argparse.ArgumentParser()
    commands[command].add_arguments(parser)
    return {a.option_strings[0]: a for a in parser._actions if a.option_strings}


def test_data_options_are_the_same_for_every_command() -> None:
    for command in ("encode", "reconstruct", "sample", "report"):
        options = _options(command)
        assert options["--data"].default is None
        assert options["--data-dir"].default is None
        assert options["--split"].default == "test"
        assert options["--split"].choices == ("train", "valid", "test", "all")
    encode = _options("encode")
    for command in ("reconstruct", "sample"):
        for flag in ("--data", "--data-dir", "--split"):
            assert _options(command)[flag].help == encode[flag].help
    assert "(default: the first run's data)" in str(_options("report")["--data"].help)
    # --label-column: for encode and reconstruct only, as before.
    assert "--label-column" in _options("reconstruct")
    assert "--label-column" not in _options("sample")


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained on a CSV file whose first column holds labels."""
    folder = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    rows = np.column_stack([np.arange(40) % 3, rng.random((40, 5))])
    np.savetxt(folder / "t.csv", rows, delimiter=",", header="label,a,b,c,d,e", comments="")
    argv = ["train", "--data", folder / "t.csv", "--label-column", "label", "--out", folder / "run"]
    assert main([*map(str, argv), "--hidden", "3", "--epochs", "1", "--quiet"]) == 0
    return folder / "run"


def test_encode_reads_the_runs_label_column_on_its_own_data(
    labelled_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "codes.npz"
    code, stdout, err = _run(capsys, "encode", str(labelled_run), "--out", str(out))
    assert code == 0, err
    assert stdout == f"Wrote codes 40 x 3 to {out}\n"
    with np.load(out) as z:
        assert z["X"].shape == (40, 3)
        np.testing.assert_array_equal(z["y"], np.arange(40) % 3)
    # Given by index, as a string of digits.
    csv = str(labelled_run.parent / "t.csv")
    code, _, err = _run(
        capsys, "encode", str(labelled_run), "--data", csv, "--label-column", "0", "--out", str(out)
    )
    assert code == 0, err
    # A label column does not apply to a built-in dataset: a usage error, as before.
    message = cli_error(
        capsys,
        "encode",
        labelled_run,
        "--data",
        "digits",
        "--label-column",
        "0",
        "--out",
        out,
        status=2,
    )
    assert message == "label_column applies to .csv and .npz files, not to the digits dataset"


def test_builtin_names_are_case_insensitive_for_split(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "codes.npy"
    code, stdout, err = _run(capsys, "encode", str(trained), "--data", "Digits", "--out", str(out))
    assert code == 0, err
    assert "Wrote codes 360 x 12" in stdout  # the test split, as for "digits"


def test_report_error_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_error(UsageError("bad")) == 2
    assert capsys.readouterr().err == "contractive: error: bad\n"
    assert report_error(OSError("disk full")) == 1
    assert capsys.readouterr().err == "contractive: error: disk full\n"
    assert report_error(RuntimeError("")) == 1
    err = capsys.readouterr().err
    assert err == (
        "contractive: error: unexpected RuntimeError: RuntimeError (run with --debug for details)\n"
    )


def test_a_regenerated_variation_is_trained_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from contractive import imagegen, variations

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONTRACTIVE_DATA_DIR", raising=False)
    spec = dataclasses.replace(
        variations.VARIATIONS["rectangles"], n_train=40, n_valid=10, n_test=20
    )
    monkeypatch.setitem(variations.VARIATIONS, "rectangles", spec)
    monkeypatch.setitem(imagegen.VARIATION_SIZES, "rectangles", (40, 10, 20))
    run = tmp_path / "run"
    code, _, err = _run(
        capsys, "train", "--data", "rectangles", "--out", str(run), "--hidden", "6",
        "--epochs", "1", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = _run(capsys, "info", str(run))
    assert code == 0
    assert "rectangles: 36 train, 4 validation" in out
    assert "regenerated with seed 0 (comparable to, but not the same as, the original" in out


def test_an_unknown_dataset_lists_the_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "train", "--data", "mnist-rotated", "--out", str(tmp_path / "r"))
    assert code == 1
    assert err.count("\n") == 1
    assert "Unknown dataset 'mnist-rotated': expected one of digits, mnist, fashion-mnist, " in err
    assert "cifar-bw, mnist-basic, mnist-rot," in err

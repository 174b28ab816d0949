"""Reliability, configuration: unknown keys, wrong types, bad numbers, damaged config.json.

Options come from three places, each checked the same way: the command line and a TOML file
(a usage error: exit status 2), ``Config(...)`` in Python (``ConfigError``, a ``ValueError``),
and a run folder's ``config.json`` (a damaged or foreign run: exit status 1, and the folder is
left as it was). Messages name the option, the constraint and the value.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli_helpers import cli_error, expect
from contractive import Config, load_run, resume_run, train_run
from contractive.cli import main
from contractive.exceptions import CheckpointError, ConfigError

FAST = ("--hidden", "4", "--epochs", "1", "--quiet", "--no-plots", "--device", "cpu")


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


# ---------------------------------------------------------------------------------------------
# Command line and TOML: exit status 2, nothing written.


@pytest.mark.parametrize(
    ("flags", "pattern"),
    [
        (
            ["--lr", "-1"],
            r"^The 'lr' parameter must be a float in the range \(0, inf\)\. Got -1\.0",
        ),
        (["--lr", "0"], r"^The 'lr' parameter must be a float in the range \(0, inf\)\. Got 0\.0"),
        (["--lr", "nan"], r"^The 'lr' parameter must be a float in the range .*Got nan instead"),
        (["--lr", "inf"], r"^The 'lr' parameter must be a float in the range .*Got inf instead"),
        (["--contraction", "inf"], r"^The 'contraction' parameter must be .*Got inf instead\.$"),
        (["--epochs", "-2"], r"^The 'epochs' parameter must be an int in the range \[1, inf\)"),
        (["--epochs", "1.5"], r"^argument --epochs: invalid int value: '1\.5'"),
        (["--batch-size", "0"], r"^The 'batch_size' parameter must be an int in the range \[1, "),
        (["--batch-size", "-5"], r"^The 'batch_size' parameter must be an int .*Got -5 instead"),
        (["--batch-size", "nan"], r"^argument --batch-size: invalid int value: 'nan'"),
        (
            ["--hidden", "0"],
            r"^The 'hidden' parameter must be a non-empty list of ints in the range \[1, inf\)\. "
            r"Got \[0\] instead\.$",
        ),
        (["--hidden", "8,0"], r"^The 'hidden' parameter must be a non-empty list .*Got \[8, 0\]"),
        (["--hidden", "-3"], r"^The 'hidden' parameter must be a non-empty list .*Got \[-3\]"),
        (["--hidden", ","], r"^argument --hidden: expected at least one integer"),
        (["--tied", "yes"], r"^unrecognized arguments: yes"),
        (
            ["--lamda", "0.1"],
            r"^unrecognized arguments: --lamda 0\.1 \(see 'contractive --help'\)$",
        ),
    ],
)
def test_bad_numbers_on_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], pattern: str
) -> None:
    message = cli_error(capsys, "train", "--out", "r", *flags, "--quiet", status=2)
    expect(message, pattern)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("toml", "pattern"),
    [
        ("[model]\nhiden = [4]\n", r"^Unknown key\(s\) in exp\.toml: hiden\. Valid keys: data, "),
        ("[model.inner]\nhidden = 3\n", r"^Unknown key\(s\) in exp\.toml: inner\. Valid keys"),
        ('epochs = "3"\n', r"^The 'epochs' parameter must be an int\. Got '3' instead\.$"),
        ("epochs = 2.0\n", r"^The 'epochs' parameter must be an int\. Got 2\.0 instead\.$"),
        ("hidden = [4.5]\n", r"^The 'hidden' parameter must be a list of ints\. Got \[4\.5\]"),
        ("hidden = []\n", r"^The 'hidden' parameter must be a non-empty list of ints .*Got \[\]"),
        ("hidden = 0\n", r"^The 'hidden' parameter must be a non-empty list .*Got \[0\]"),
        ("tied = 1\n", r"^The 'tied' parameter must be a bool\. Got 1 instead\.$"),
        ("contraction = nan\n", r"^The 'contraction' parameter must be a float in the range \[0, "),
        ("contraction = -0.5\n", r"^The 'contraction' parameter must be .*Got -0\.5 instead\.$"),
        ("lr = -0.1\n", r"^The 'lr' parameter must be a float in the range \(0, inf\)\. Got -0\.1"),
        ("lr = inf\n", r"^The 'lr' parameter must be a float .*Got inf instead\.$"),
        ("batch_size = 0\n", r"^The 'batch_size' parameter must be an int in the range \[1, inf"),
        ("epochs = -1\n", r"^The 'epochs' parameter must be an int in the range .*Got -1 inst"),
        ("epochs = = 3\n", r"^exp\.toml is not valid TOML: "),
        ("[a]\nepochs = 1\n[b]\nepochs = 2\n", r"^exp\.toml sets 'epochs' twice\.$"),
    ],
)
def test_bad_toml_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, toml: str, pattern: str
) -> None:
    (tmp_path / "exp.toml").write_text(toml)
    message = cli_error(capsys, "train", "--config", "exp.toml", "--out", "r", status=2)
    expect(message, pattern)
    assert not (tmp_path / "r").exists()


def test_toml_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "exp.toml").write_bytes(b"# caf\xe9\nepochs = 1\n")
    message = cli_error(capsys, "train", "--config", "exp.toml", "--out", "r", status=2)
    expect(message, r"^exp\.toml is not valid TOML: it is not UTF-8 text \('utf-8' codec can't")


def test_toml_that_is_a_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "exp.toml").mkdir()
    message = cli_error(capsys, "train", "--config", "exp.toml", "--out", "r", status=2)
    expect(message, r"^Cannot read the config file exp\.toml: Is a directory$")


def test_missing_toml(capsys: pytest.CaptureFixture[str]) -> None:
    message = cli_error(capsys, "train", "--config", "nope.toml", "--out", "r", status=2)
    expect(message, r"^No such config file: nope\.toml$")


# ---------------------------------------------------------------------------------------------
# Config(...) in Python: checked when built, like the command line.


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ({"contraction": math.nan}, r"'contraction' parameter must be a float in the range \[0, "),
        ({"contraction": -1.0}, r"'contraction' parameter must be a float .*Got -1\.0 instead"),
        ({"lr": -1.0}, r"'lr' parameter must be a float in the range \(0, inf\)\. Got -1\.0"),
        ({"lr": math.nan}, r"'lr' parameter must be a float in the range \(0, inf\)\. Got nan"),
        ({"epochs": 0}, r"'epochs' parameter must be an int in the range \[1, inf\)\. Got 0"),
        ({"epochs": -3}, r"'epochs' parameter must be an int in the range \[1, inf\)\. Got -3"),
        ({"batch_size": 0}, r"'batch_size' parameter must be an int in the range \[1, inf\)"),
        ({"hidden": [0]}, r"'hidden' parameter must be a non-empty list of ints"),
        ({"hidden": []}, r"'hidden' parameter must be a non-empty list of ints"),
        ({"epochs": "3"}, r"'epochs' parameter must be an int\. Got '3' instead\.$"),
        ({"epochs": 2.0}, r"'epochs' parameter must be an int\. Got 2\.0 instead\.$"),
        ({"lr": "0.1"}, r"'lr' parameter must be a float\. Got '0\.1' instead\.$"),
        ({"tied": 1}, r"'tied' parameter must be a bool\. Got 1 instead\.$"),
        ({"hidden": ["8"]}, r"'hidden' parameter must be a list of ints\. Got \['8'\] instead"),
    ],
)
def test_config_built_in_python_is_checked(values: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        Config(**values)
    with pytest.raises(ConfigError, match=pattern):
        Config.from_dict(values)


def test_train_run_never_starts_with_a_bad_config(tmp_path: Path) -> None:
    """Before Config checked itself, a NaN lambda trained a plain AE without a word."""
    with pytest.raises(ConfigError, match=r"'contraction' parameter must be a float"):
        train_run(Config(contraction=math.nan, hidden=[4], epochs=1), tmp_path / "r", quiet=True)
    assert not (tmp_path / "r").exists()


def test_config_accepts_numpy_scalars_and_tuples() -> None:
    cfg = Config(epochs=np.int64(2), lr=np.float32(0.5), hidden=(6, 3), batch_size=np.int32(8))
    assert (cfg.epochs, cfg.lr, cfg.hidden, cfg.batch_size) == (2, 0.5, [6, 3], 8)
    assert type(cfg.epochs) is int
    assert type(cfg.lr) is float
    json.dumps(cfg.to_dict())  # still plain JSON


def test_unknown_keys_in_python() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'lamda'"):
        Config(lamda=0.1)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"^Unknown key\(s\) in config: lamda\. Valid keys: "):
        Config.from_dict({"lamda": 0.1})


# ---------------------------------------------------------------------------------------------
# A run folder's config.json: damaged, edited, or written by a newer version.


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("pristine") / "run"
    train_run(Config(hidden=[4], epochs=1, device="cpu"), run, quiet=True, plots=False)
    return run


@pytest.fixture
def run(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    copy.mkdir()
    for path in pristine.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    return copy


def edit(run: Path, change: Any) -> dict[str, bytes]:
    """Rewrite config.json through ``change(payload)``; return every file's bytes after."""
    payload = json.loads((run / "config.json").read_text())
    change(payload)
    (run / "config.json").write_text(json.dumps(payload))
    return {p.name: p.read_bytes() for p in run.iterdir()}


def _drop(key: str) -> Any:
    return lambda p: p.pop(key)


def _drop_option(key: str) -> Any:
    return lambda p: p["config"].pop(key)


def _set(key: str, value: Any) -> Any:
    return lambda p: p.update({key: value})


def _set_option(key: str, value: Any) -> Any:
    return lambda p: p["config"].update({key: value})


CONFIG_JSON_CASES: dict[str, tuple[Any, str]] = {
    "newer_version": (
        _set("format_version", 2),
        r"config\.json was written by a newer contractive \(format 2; this version reads up to "
        r"1\)\. Upgrade contractive to read it\.$",
    ),
    "no_version": (
        _drop("format_version"),
        r"config\.json has no 'format_version'; it was not written by contractive\.$",
    ),
    "no_n_features": (_drop("n_features"), r"config\.json lacks the key\(s\) n_features\.$"),
    "no_options": (_drop("config"), r"config\.json lacks the key\(s\) config\.$"),
    "missing_option": (
        _drop_option("contraction"),
        r"config\.json lacks the option\(s\) contraction: it was edited, damaged, or written "
        r"by a contractive without them\. Restore it, or add them with the values the run was "
        r"trained with\.$",
    ),
    "unknown_option": (
        _set_option("lamda", 0.1),
        r"^Unknown key\(s\) in \S*config\.json: lamda\. Valid keys: data, ",
    ),
    "wrong_type": (
        _set_option("epochs", "3"),
        r"^The 'epochs' parameter must be an int\. Got '3' instead\.$",
    ),
    "negative_lr": (
        _set_option("lr", -0.001),
        r"^The 'lr' parameter must be a float in the range \(0, inf\)\. Got -0\.001 instead\.$",
    ),
    "zero_hidden": (_set_option("hidden", [0]), r"^The 'hidden' parameter must be a non-empty"),
    "options_not_an_object": (
        _set("config", ["hidden", 4]),
        r"config\.json: 'config' must be a JSON object of options\.$",
    ),
    "n_features_text": (
        _set("n_features", "64"),
        r"config\.json: 'n_features' must be a positive integer, got '64'; the file was edited "
        r"or damaged\.$",
    ),
    "n_features_zero": (_set("n_features", 0), r"'n_features' must be a positive integer, got 0"),
    "image_shape_wrong": (
        _set("image_shape", [8, 9]),
        r"'image_shape' must be null or 2 or 3 positive integers whose product is 64, got "
        r"\[8, 9\]",
    ),
    "scaling_wrong": (
        _set("scaling", {"kind": "minmax", "min": [0.0], "max": [1.0]}),
        r"'scaling' must be null or an object with 'min' and 'max' lists of 64 numbers",
    ),
    "data_not_an_object": (_set("data", "digits"), r"'data' must be null or a JSON object, got"),
}


@pytest.mark.parametrize("case", list(CONFIG_JSON_CASES))
@pytest.mark.parametrize("command", ["info", "encode", "resume"])
def test_damaged_config_json(
    capsys: pytest.CaptureFixture[str], run: Path, case: str, command: str
) -> None:
    change, pattern = CONFIG_JSON_CASES[case]
    before = edit(run, change)
    argv: list[object] = {
        "info": ["info", "run"],
        "encode": ["encode", "run", "--out", "codes.npy"],
        "resume": ["train", "--resume", "run", "--epochs", "2", "--quiet", "--no-plots"],
    }[command]
    message = cli_error(capsys, *argv, status=1)
    expect(message, pattern)
    # Nothing in the folder changed: the user can restore config.json and carry on.
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_damaged_config_json_in_python(run: Path) -> None:
    edit(run, _set("format_version", 7))
    with pytest.raises(CheckpointError, match=r"written by a newer contractive \(format 7;"):
        load_run(run)
    with pytest.raises(CheckpointError, match=r"written by a newer contractive \(format 7;"):
        resume_run(run, quiet=True)


def test_config_json_round_trip_is_accepted(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The checks above refuse nothing that contractive itself writes."""
    edit(run, lambda p: None)
    assert main(["train", "--resume", "run", "--epochs", "2", "--quiet", "--no-plots"]) == 0
    assert main(["info", "run"]) == 0
    out, err = capsys.readouterr()
    assert "epochs       2/2" in out, err

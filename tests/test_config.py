"""Config: defaults, validation messages, TOML, JSON round trip."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from contractive.config import Config, config_to_json, load_toml
from contractive.exceptions import ConfigError


def test_defaults_validate_and_round_trip() -> None:
    cfg = Config()
    cfg.validate()
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_field_names_cover_every_option() -> None:
    names = Config.field_names()
    assert names[0] == "data"
    assert {"contraction", "penalty", "epochs", "hidden", "seed"} <= set(names)


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) in config: lamda\. Valid keys: data,"):
        Config.from_dict({"lamda": 0.1})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("contraction", -1.0, r"'contraction' parameter must be a float in the range \[0, inf\)"),
        ("contraction", math.nan, r"'contraction' parameter must be a float in the range"),
        ("lr", 0.0, r"'lr' parameter must be a float in the range \(0, inf\)"),
        ("lr", math.inf, r"'lr' parameter must be a float"),
        ("epochs", 0, r"'epochs' parameter must be an int in the range \[1, inf\). Got 0"),
        ("batch_size", -3, r"'batch_size' parameter must be an int in the range \[1, inf\)"),
        ("hidden", [0], r"'hidden' parameter must be a non-empty list of ints"),
        ("mask_prob", 1.5, r"'mask_prob' parameter must be a float in the range \[0, 1\]"),
        ("validation_fraction", 1.0, r"'validation_fraction' parameter must be a float in"),
        ("activation", "swish", r"'activation' parameter must be a str among \{'sigmoid'"),
        ("penalty", "fast", r"'penalty' parameter must be a str among"),
        ("device", "tpu", r"'device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("patience", -1, r"'patience' parameter must be an int in the range \[0, inf\)"),
        ("ho_sigma", 0.0, r"'ho_sigma' parameter must be a float in the range \(0, inf\)"),
    ],
)
def test_invalid_values_name_parameter_constraint_value(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_dict({key: value})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", 2.5, r"'epochs' parameter must be an int\. Got 2\.5"),
        ("epochs", True, r"'epochs' parameter must be an int\. Got True"),
        ("contraction", "0.1", r"'contraction' parameter must be a float\. Got '0\.1'"),
        ("tied", "yes", r"'tied' parameter must be a bool\. Got 'yes'"),
        ("hidden", ["a"], r"'hidden' parameter must be a list of ints"),
        ("data", 3, r"'data' parameter must be a str\. Got 3"),
    ],
)
def test_wrong_types_are_refused(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_dict({key: value})


def test_int_accepted_for_float_and_for_single_hidden() -> None:
    cfg = Config.from_dict({"contraction": 1, "hidden": 50, "label_column": 3})
    assert cfg.contraction == 1.0
    assert isinstance(cfg.contraction, float)
    assert cfg.hidden == [50]
    assert cfg.label_column == "3"


def test_replace_validates() -> None:
    assert Config().replace(epochs=3).epochs == 3
    with pytest.raises(ConfigError, match="'epochs' parameter"):
        Config().replace(epochs=0)


def test_toml_flat_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('epochs = 3\n[model]\nhidden = [20, 10]\nactivation = "tanh"\n')
    cfg = Config.from_dict(load_toml(path))
    assert (cfg.epochs, cfg.hidden, cfg.activation) == (3, [20, 10], "tanh")


def test_toml_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such config file"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_toml(bad)
    twice = tmp_path / "twice.toml"
    twice.write_text("epochs = 3\n[train]\nepochs = 4\n")
    with pytest.raises(ConfigError, match="sets 'epochs' twice"):
        load_toml(twice)


def test_config_json_carries_version_and_extra() -> None:
    import json

    payload = json.loads(config_to_json(Config(), {"n_features": 64}))
    assert payload["format_version"] == 1
    assert payload["n_features"] == 64
    assert payload["config"]["contraction"] == 0.1


# ---------------------------------------------------------------------------------------------
# greedy: what a greedy stack can be.


@pytest.mark.parametrize(
    "values",
    [
        {"hidden": [20, 10]},
        {"hidden": [20, 10], "activation": "identity", "loss": "mse", "tied": False},
        # One layer is the ordinary one-layer model: any activation and loss go.
        {"hidden": [20], "activation": "tanh", "loss": "mse"},
        {"hidden": [20, 10], "contraction": 1.0, "noise_std": 0.1, "patience": 2},
    ],
)
def test_greedy_accepts_what_stacks(values: dict[str, object]) -> None:
    assert Config.from_dict({"greedy": True, **values}).greedy is True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"architecture": "conv"},
            r"^The 'architecture' parameter must be 'mlp' when greedy=True \(a greedy stack is "
            r"MLP layers\)\. Got 'conv' instead\.$",
        ),
        (
            {"checkpoint_every": 50},
            r"^The 'checkpoint_every' parameter must be 0 when greedy=True \(a greedy stack is "
            r"not checkpointed: it cannot be resumed\)\. Got 50 instead\.$",
        ),
        (
            {"hidden": [20, 10], "activation": "tanh"},
            r"^The 'activation' parameter must be 'sigmoid' with loss='bce' when greedy=True "
            r"and there are several hidden layers \(an upper layer decodes through the output "
            r"activation of its loss, which must be the hidden activation for the stack to be "
            r"one autoencoder\)\. Got 'tanh' instead\.$",
        ),
        (
            {"hidden": [20, 10], "loss": "mse"},
            r"^The 'activation' parameter must be 'identity' with loss='mse' when greedy=True .* "
            r"Got 'sigmoid' instead\.$",
        ),
    ],
)
def test_greedy_refuses_what_does_not_stack(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_dict({"greedy": True, **values})
    Config.from_dict(values)  # without greedy the same options are fine


def test_greedy_defaults_to_off_and_round_trips() -> None:
    assert Config().greedy is False
    cfg = Config(hidden=[8, 4], greedy=True)
    assert Config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"'greedy' parameter must be a bool\. Got 'yes'"):
        Config.from_dict({"greedy": "yes"})

"""train_run / resume_run: data preparation, run folders, resume after a real SIGKILL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from contractive import Config, load_run, resume_run, train_run
from contractive.exceptions import CheckpointError, ConfigError, DataError
from contractive.losses import reconstruction_loss
from contractive.runs import build_model, load_tensors, read_metrics
from contractive.stacking import greedy_layer_configs, stack_encoder, train_stack
from contractive.workflow import layer_epochs, load_run_data, prepare_data


def _cfg(**kw: object) -> Config:
    return Config.from_dict({"hidden": [8], "epochs": 2, **kw})


def test_train_run_writes_a_complete_folder(tmp_path: Path) -> None:
    run = train_run(_cfg(), tmp_path / "run", quiet=True)
    names = sorted(p.name for p in run.path.iterdir())
    assert names == [
        "checkpoint.safetensors",
        "config.json",
        "filters.png",
        "metrics.jsonl",
        "model.safetensors",
        "reconstructions.png",
    ]
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    meta = json.loads((run.path / "config.json").read_text())
    assert meta["n_features"] == 64
    assert meta["image_shape"] == [8, 8]
    assert meta["world_size"] == 1
    again = load_run(run.path)
    X = np.random.default_rng(0).random((3, 64)).astype(np.float32)
    np.testing.assert_array_equal(again.encode(X), run.encode(X))


def test_existing_run_needs_resume_or_overwrite(tmp_path: Path) -> None:
    train_run(_cfg(epochs=1), tmp_path / "run", quiet=True, plots=False)
    with pytest.raises(ConfigError, match="already holds a run .*--resume .*--overwrite"):
        train_run(_cfg(epochs=1), tmp_path / "run", quiet=True)
    train_run(_cfg(epochs=1, seed=3), tmp_path / "run", quiet=True, overwrite=True, plots=False)
    assert load_run(tmp_path / "run").config.seed == 3


def test_resume_extends_and_equals_a_longer_run(tmp_path: Path) -> None:
    train_run(_cfg(epochs=4), tmp_path / "long", quiet=True, plots=False)
    train_run(_cfg(epochs=2), tmp_path / "short", quiet=True, plots=False)
    resume_run(tmp_path / "short", epochs=4, quiet=True, plots=False)
    a = (tmp_path / "long" / "model.safetensors").read_bytes()
    b = (tmp_path / "short" / "model.safetensors").read_bytes()
    assert a == b


def test_resume_refuses_other_data(tmp_path: Path) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((50, 6)).astype(np.float32))
    train_run(_cfg(data=str(data), epochs=1), tmp_path / "run", quiet=True)
    np.save(data, np.random.default_rng(1).random((50, 6)).astype(np.float32))
    with pytest.raises(CheckpointError, match="differ from the data .* was trained on"):
        resume_run(tmp_path / "run", epochs=2, quiet=True)


def test_bce_refuses_data_outside_unit_interval_and_minmax_fixes_it(tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    X = np.random.default_rng(0).normal(size=(40, 5)) * 3
    np.savetxt(data, X, delimiter=",")
    with pytest.raises(DataError, match=r"values outside \[0, 1\].*--scale minmax"):
        prepare_data(_cfg(data=str(data)))
    run = train_run(_cfg(data=str(data), scale="minmax"), tmp_path / "run", quiet=True)
    scaling = run.meta["scaling"]
    assert scaling["kind"] == "minmax"
    assert len(scaling["min"]) == 5
    codes = load_run(run.path).encode(X.astype(np.float32))
    assert codes.shape == (40, 8)
    mse = train_run(_cfg(data=str(data), loss="mse"), tmp_path / "mse", quiet=True)
    assert mse.model.output_activation.__class__.__name__ == "Identity"


def test_csv_label_column_is_not_a_feature(tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.integers(0, 3, 30), rng.random((30, 4))])
    np.savetxt(data, rows, delimiter=",", header="label,a,b,c,d", comments="")
    prepared = prepare_data(_cfg(data=str(data), label_column="label"))
    assert prepared.meta["n_features"] == 4


def test_load_run_data_defaults_to_the_runs_data(tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    rng = np.random.default_rng(0)
    rows = np.column_stack([np.arange(30) % 3, rng.random((30, 4))])
    np.savetxt(data, rows, delimiter=",", header="label,a,b,c,d", comments="")
    run = train_run(
        _cfg(data=str(data), label_column="label", epochs=1), tmp_path / "r", quiet=True
    )
    ds = load_run_data(run)  # a file: whole, with the run's label column
    assert ds.X.shape == (30, 4)
    np.testing.assert_array_equal(ds.y, np.arange(30) % 3)
    by_index = load_run_data(run, str(data), label_column="0")
    np.testing.assert_array_equal(by_index.X, ds.X)
    # Other data: no label column unless given.
    other = tmp_path / "y.csv"
    np.savetxt(other, rows, delimiter=",", header="label,a,b,c,d", comments="")
    assert load_run_data(run, str(other)).X.shape == (30, 5)
    assert load_run_data(run, str(other), label_column="label").X.shape == (30, 4)


def test_load_run_data_on_built_in_data(tmp_path: Path) -> None:
    run = train_run(_cfg(epochs=1), tmp_path / "r", quiet=True, plots=False)
    assert load_run_data(run).X.shape == (360, 64)  # digits, test split
    assert load_run_data(run, " Digits", split="train").X.shape == (1437, 64)
    assert load_run_data(run, split="all").name == "digits"
    with pytest.raises(ConfigError, match="not to the digits dataset"):
        load_run_data(run, label_column=0)


def test_load_run_data_does_not_refit_minmax_scaling(tmp_path: Path) -> None:
    data = tmp_path / "x.npy"
    raw = (10 * np.random.default_rng(0).random((40, 3)) + 5).astype(np.float32)
    np.save(data, raw)
    run = train_run(_cfg(data=str(data), scale="minmax", loss="mse"), tmp_path / "r", quiet=True)
    ds = load_run_data(run)
    np.testing.assert_array_equal(ds.X, raw)  # raw values: Run.prepare replays the scaling
    assert float(run.prepare(ds.X).min()) >= 0.0


def test_mmap_training(tmp_path: Path) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((60, 6)).astype(np.float32))
    with pytest.raises(ConfigError, match="validation_fraction = 0"):
        train_run(_cfg(data=str(data)), tmp_path / "bad", quiet=True, mmap=True)
    run = train_run(
        _cfg(data=str(data), validation_fraction=0.0), tmp_path / "run", quiet=True, mmap=True
    )
    assert run.encode(np.zeros((2, 6), dtype=np.float32)).shape == (2, 8)


# ---------------------------------------------------------------------------------------------
# Greedy stacks.


def _greedy(**kw: object) -> Config:
    return _cfg(hidden=[12, 6], greedy=True, epochs=2, **kw)


@pytest.fixture(scope="module")
def greedy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("greedy") / "cae2"
    train_run(_greedy(), path, quiet=True)
    return path


def test_greedy_run_folder_holds_the_deep_model(greedy_run: Path) -> None:
    names = sorted(p.name for p in greedy_run.iterdir())
    # No checkpoint: a greedy run cannot be resumed.
    assert names == [
        "config.json",
        "filters.png",
        "metrics.jsonl",
        "model.safetensors",
        "reconstructions.png",
    ]
    payload = json.loads((greedy_run / "config.json").read_text())
    assert payload["config"]["greedy"] is True
    assert payload["stack"]["split"] == "validation"
    rows = read_metrics(greedy_run / "metrics.jsonl")
    assert [(row["layer"], row["epoch"]) for row in rows] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert layer_epochs(rows, 2) == [2, 2]
    run = load_run(greedy_run)
    plain = build_model(Config(hidden=[12, 6]), 64, None)  # what a joint run would build
    assert type(run.model) is type(plain)
    assert set(run.model.state_dict()) == set(plain.state_dict())


def test_greedy_run_is_the_stack_of_its_layers(greedy_run: Path) -> None:
    config = _greedy()
    prepared = prepare_data(config)
    assert isinstance(prepared.X_train, torch.Tensor)
    layers = train_stack(prepared.X_train, greedy_layer_configs(config), X_val=prepared.X_val)
    model = load_run(greedy_run).model
    x = prepared.X_val
    assert x is not None
    with torch.no_grad():
        h = model.encode(x)
        torch.testing.assert_close(h, stack_encoder(layers)(x), rtol=0, atol=1e-6)
        x_hat = layers[0].decode(layers[1].decode(h))
        torch.testing.assert_close(model(x).x_hat, x_hat, rtol=0, atol=1e-6)
        recon = float(reconstruction_loss(model(x), x, config.loss).double().mean())
    stack = json.loads((greedy_run / "config.json").read_text())["stack"]
    assert stack["recon"] == pytest.approx(recon, rel=1e-9)


def test_greedy_stack_of_one_layer_is_the_plain_run(tmp_path: Path) -> None:
    train_run(_cfg(epochs=2), tmp_path / "plain", quiet=True, plots=False)
    train_run(_cfg(epochs=2, greedy=True), tmp_path / "greedy", quiet=True, plots=False)
    plain, _ = load_tensors(tmp_path / "plain" / "model.safetensors")
    greedy, _ = load_tensors(tmp_path / "greedy" / "model.safetensors")
    assert plain.keys() == greedy.keys()
    assert all(torch.equal(plain[k], greedy[k]) for k in plain)


def test_greedy_run_cannot_be_resumed(greedy_run: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"cae2 is a greedy stack \(greedy=True\), which cannot be resumed: its layers are "
        r"trained one after the other without checkpoints\. Train it again with --overwrite\.$",
    ):
        resume_run(greedy_run, epochs=3, quiet=True)


def test_greedy_is_refused_under_torchrun_and_with_mmap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((40, 6)).astype(np.float32))
    config = _greedy(data=str(data), validation_fraction=0.0)
    with pytest.raises(
        ConfigError,
        match=r"^The 'greedy' parameter must be False with a memory-mapped dataset \(mmap\): "
        r"the layers above the first train on codes held in memory\. Got True instead\.$",
    ):
        train_run(config, tmp_path / "mmap", quiet=True, mmap=True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(
        ConfigError,
        match=r"^The 'greedy' parameter must be False when training with 2 processes "
        r"\(torchrun\): a greedy stack trains in one process\. Got True instead\.$",
    ):
        train_run(config, tmp_path / "ddp", quiet=True)
    assert not (tmp_path / "mmap").exists()
    assert not (tmp_path / "ddp").exists()


def test_a_config_json_from_before_greedy_loads(tmp_path: Path) -> None:
    run = train_run(_cfg(epochs=1), tmp_path / "old", quiet=True, plots=False)
    path = run.path / "config.json"
    payload = json.loads(path.read_text())
    del payload["config"]["greedy"]  # as written before the option existed
    path.write_text(json.dumps(payload))
    assert load_run(run.path).config.greedy is False
    resume_run(run.path, epochs=2, quiet=True, plots=False)

"""Run folders: atomic writes, config.json checks, strict safe loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from contractive import Config
from contractive.exceptions import CheckpointError, ConfigError, DataError
from contractive.runs import (
    DIGEST_KEY,
    Run,
    atomic_write_bytes,
    build_model,
    load_run,
    load_tensors,
    read_config,
    save_tensors,
    write_config,
)


def _write_run(tmp_path: Path, **cfg: object) -> Path:
    config = Config.from_dict({"hidden": [5], **cfg})
    run = tmp_path / "run"
    run.mkdir()
    write_config(run, config, {"n_features": 8, "image_shape": None, "scaling": None})
    torch.manual_seed(0)
    save_tensors(run / "model.safetensors", build_model(config, 8, None).state_dict())
    return run


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary left behind


def test_write_to_readonly_folder_keeps_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        # What a read-only folder answers, simulated: tests may run as root, who may write.
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(CheckpointError, match=r"Could not write .*f\.bin: Permission denied"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.safetensors"
    atomic_write_bytes(path, b"previous")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(
        CheckpointError, match=r"Could not write .*model.safetensors: No space left"
    ):
        atomic_write_bytes(path, b"x" * 1000)
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_load_run_round_trip_and_encode(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path)
    run = load_run(run_dir)
    assert isinstance(run, Run)
    X = np.random.default_rng(0).random((7, 8)).astype(np.float32)
    codes = run.encode(X)
    assert codes.shape == (7, 5)
    assert codes.dtype == np.float32
    with torch.no_grad():
        expected = run.model.encode(torch.from_numpy(X)).numpy()
    np.testing.assert_array_equal(codes, expected)
    assert run.reconstruct(X).shape == (7, 8)


def test_encode_feature_mismatch(tmp_path: Path) -> None:
    run = load_run(_write_run(tmp_path))
    with pytest.raises(DataError, match="X has 9 features, but the model in .* was trained on 8"):
        run.encode(np.zeros((2, 9), dtype=np.float32))


def test_minmax_scaling_is_replayed(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path)
    cfg, meta = read_config(run_dir)
    meta["scaling"] = {"kind": "minmax", "min": [0.0] * 8, "max": [2.0] * 8}
    write_config(run_dir, cfg, meta)
    run = load_run(run_dir)
    x = run.prepare(np.full((1, 8), 1.0, dtype=np.float32))
    assert torch.allclose(x, torch.full((1, 8), 0.5))


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="No such run folder"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing: .* is not a complete run"):
        load_run(tmp_path / "empty")
    run_dir = _write_run(tmp_path)
    (run_dir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_run(run_dir)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "does not hold a JSON object"),
        ('{"config": {}}', "has no 'format_version'"),
        ('{"format_version": 99, "config": {}, "n_features": 8}', "written by a newer contractive"),
        ('{"format_version": 1, "config": {}}', "lacks the key\\(s\\) n_features"),
        ('{"format_version": 1, "config": {"lr": -1}, "n_features": 8}', "'lr' parameter"),
    ],
)
def test_bad_config_json(tmp_path: Path, payload: str, message: str) -> None:
    run_dir = _write_run(tmp_path)
    (run_dir / "config.json").write_text(payload)
    with pytest.raises(CheckpointError, match=message):
        load_run(run_dir)


def test_truncated_and_corrupt_weights(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path)
    path = run_dir / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_run(run_dir)
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_run(run_dir)


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path)
    save_tensors(
        run_dir / "model.safetensors", build_model(Config(hidden=[6]), 8, None).state_dict()
    )
    with pytest.raises(
        CheckpointError, match="does not match the model in config.json .*wrong shape"
    ):
        load_run(run_dir)


def test_pickle_checkpoint_is_never_executed(tmp_path: Path) -> None:
    """A pickle crafted to run code, saved where the weights should be, is refused unread."""
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    run_dir = _write_run(tmp_path)
    for name in ("model.safetensors", "checkpoint.safetensors"):
        (run_dir / name).write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_run(run_dir)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_tensors(run_dir / "checkpoint.safetensors")
    assert not marker.exists()


def test_conv_needs_image_shape() -> None:
    with pytest.raises(ConfigError, match="'conv' needs image data"):
        build_model(Config(architecture="conv", hidden=[4]), 64, None)


def test_save_tensors_metadata_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    save_tensors(path, {"a": torch.arange(3.0)}, {"state": json.dumps({"epoch": 2})})
    tensors, meta = load_tensors(path)
    assert torch.equal(tensors["a"], torch.arange(3.0))
    assert json.loads(meta["state"]) == {"epoch": 2}
    assert DIGEST_KEY not in meta  # the digest is checked, not handed back


@pytest.mark.parametrize(
    "tensors",
    [
        {"w": torch.randn(7, 5), "b": torch.zeros(0), "step": torch.tensor(3)},
        {"half": torch.ones(3, dtype=torch.bfloat16), "i": torch.arange(5, dtype=torch.int64)},
        {},
    ],
    ids=["float", "mixed-dtypes", "empty"],
)
def test_save_tensors_records_the_sha256_of_the_tensor_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tensors: dict[str, torch.Tensor]
) -> None:
    import hashlib

    import safetensors.torch

    calls: list[int] = []
    real_save = safetensors.torch.save

    def counting_save(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real_save(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(safetensors.torch, "save", counting_save)
    path = tmp_path / "t.safetensors"
    save_tensors(path, tensors, {"note": "x"})
    assert calls == [1]  # serialised once: the digest is written into the header in place
    blob = path.read_bytes()
    start = 8 + int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:start])
    assert header["__metadata__"][DIGEST_KEY] == hashlib.sha256(blob[start:]).hexdigest()
    # The file is plain safetensors: any reader loads it.
    plain = safetensors.torch.load(blob)
    assert sorted(plain) == sorted(tensors)
    got, meta = load_tensors(path)
    assert meta == {"note": "x"}
    for k, v in tensors.items():
        assert torch.equal(got[k], v)

"""Reliability, run folders: damaged weights, missing files, and files crafted to run code.

A run folder is read by ``contractive info``, ``encode``, ``reconstruct`` and ``train --resume``.
Each damaged or missing file gives exit status 1 and one line naming the file, and whatever is
intact keeps working: a damaged checkpoint does not stop ``encode`` from using the final model,
a missing model is rewritten by ``--resume``. Nothing is ever unpickled: every weight file is
safetensors and every other file JSON, and data files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import contractive
from cli_helpers import cli_error, cli_ok, expect
from contractive import Config, load_run, resume_run, train_run
from contractive.exceptions import CheckpointError, DataError
from contractive.runs import load_tensors, read_metrics, save_tensors

RUN_FILES = ("checkpoint.safetensors", "config.json", "metrics.jsonl", "model.safetensors")
RESUME = ("train", "--resume", "run", "--quiet", "--no-plots")


def _config(epochs: int) -> Config:
    return Config(hidden=[6], epochs=epochs, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A run of 2 epochs, the same run stopped after 1 epoch, and its uninterrupted twin."""
    root = tmp_path_factory.mktemp("runs")
    train_run(_config(2), root / "full", quiet=True, plots=False)
    train_run(_config(1), root / "half", quiet=True, plots=False)
    return {"full": root / "full", "half": root / "half"}


def copy_run(source: Path, dest: Path) -> Path:
    dest.mkdir()
    for path in source.iterdir():
        (dest / path.name).write_bytes(path.read_bytes())
    return dest


@pytest.fixture
def run(runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the finished 2-epoch run at ./run."""
    monkeypatch.chdir(tmp_path)
    return copy_run(runs["full"], tmp_path / "run")


@pytest.fixture
def half(runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the run stopped after epoch 1 of 2 (its config says 1 epoch) at ./run."""
    monkeypatch.chdir(tmp_path)
    return copy_run(runs["half"], tmp_path / "run")


def snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir()}


# ---------------------------------------------------------------------------------------------
# Truncated or corrupt safetensors files.


def damage(data: bytes, how: str) -> bytes:
    header_len = struct.unpack("<Q", data[:8])[0]
    return {
        "truncated_half": data[: len(data) // 2],
        "truncated_tail": data[:-3],
        "truncated_to_header": data[:5],
        "zeros": bytes(len(data)),
        "header_length_huge": struct.pack("<Q", 1 << 62) + data[8:],
        "header_not_json": data[:8] + b"{" * header_len + data[8 + header_len :],
        "text": b"these are not the weights you are looking for\n",
    }[how]


DAMAGES = [
    "truncated_half",
    "truncated_tail",
    "truncated_to_header",
    "zeros",
    "header_length_huge",
    "header_not_json",
    "text",
]


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("command", ["info", "encode", "reconstruct"])
def test_damaged_model_file(
    capsys: pytest.CaptureFixture[str], run: Path, how: str, command: str
) -> None:
    path = run / "model.safetensors"
    path.write_bytes(damage(path.read_bytes(), how))
    before = snapshot(run)
    argv = ["info", "run"] if command == "info" else [command, "run", "--out", "out.npy"]
    message = cli_error(capsys, *argv)
    expect(
        message,
        r"^run/model\.safetensors is not a readable safetensors file \(.+\); it may be "
        r"truncated or corrupt\. Re-run training, or resume from a run folder whose files are "
        r"intact\.$",
    )
    assert snapshot(run) == before
    assert not Path("out.npy").exists()


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_model_file_is_rewritten_by_resume(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], half: Path, how: str
) -> None:
    """The checkpoint holds the weights too: resuming rebuilds model.safetensors."""
    path = half / "model.safetensors"
    path.write_bytes(damage(path.read_bytes(), how))
    cli_ok(capsys, *RESUME, "--epochs", "2")
    assert path.read_bytes() == (runs["full"] / "model.safetensors").read_bytes()


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_checkpoint_keeps_the_model_usable(
    capsys: pytest.CaptureFixture[str], half: Path, how: str
) -> None:
    path = half / "checkpoint.safetensors"
    path.write_bytes(damage(path.read_bytes(), how))
    before = snapshot(half)
    message = cli_error(capsys, *RESUME, "--epochs", "2")
    expect(
        message,
        r"^run/checkpoint\.safetensors is not a readable safetensors file \(.+\); it may be "
        r"truncated or corrupt\.",
    )
    assert snapshot(half) == before
    # The finished epoch's model is intact and usable.
    assert "epochs       1/1" in cli_ok(capsys, "info", "run")
    assert "Wrote codes 360 x 6" in cli_ok(capsys, "encode", "run", "--out", "codes.npy")


def flip_tensor_byte(path: Path, where: float) -> None:
    """Flip one bit of the tensor data, ``where`` of the way through it: the header still parses,
    and without a digest the file would load with one weight silently changed."""
    data = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", data[:8])[0]
    at = start + int(where * (len(data) - start - 1))
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("command", ["info", "encode", "reconstruct"])
def test_flipped_byte_in_model_file_is_reported(
    capsys: pytest.CaptureFixture[str], run: Path, where: float, command: str
) -> None:
    flip_tensor_byte(run / "model.safetensors", where)
    before = snapshot(run)
    argv = ["info", "run"] if command == "info" else [command, "run", "--out", "out.npy"]
    expect(
        cli_error(capsys, *argv),
        r"^run/model\.safetensors is corrupt: its tensor data do not match the SHA-256 recorded "
        r"when it was written \(a changed byte or a bad copy\)\. Restore it from a backup, or "
        r"re-run training\.$",
    )
    assert snapshot(run) == before
    assert not Path("out.npy").exists()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt"):
        load_run(run)


@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])
def test_flipped_byte_in_checkpoint_is_reported(
    capsys: pytest.CaptureFixture[str], half: Path, where: float
) -> None:
    flip_tensor_byte(half / "checkpoint.safetensors", where)
    before = snapshot(half)
    expect(
        cli_error(capsys, *RESUME, "--epochs", "2"),
        r"^run/checkpoint\.safetensors is corrupt: its tensor data do not match the SHA-256",
    )
    assert snapshot(half) == before
    assert "epochs       1/1" in cli_ok(capsys, "info", "run")  # the model is intact


def test_weights_written_before_digests_load_with_one_warning(run: Path) -> None:
    """Files from an older contractive have no digest: they load, with one warning each."""
    from safetensors.torch import save

    tensors, metadata = load_tensors(run / "model.safetensors")
    (run / "model.safetensors").write_bytes(save(tensors, metadata=metadata))
    with pytest.warns(UserWarning, match=r"model\.safetensors has no SHA-256 of its tensors"):
        first = load_run(run)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load_run(run)  # warned once already
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, tensors[k])
        assert torch.equal(again.model.state_dict()[k], v)


def test_checkpoint_without_training_state(capsys: pytest.CaptureFixture[str], half: Path) -> None:
    path = half / "checkpoint.safetensors"
    tensors, _ = load_tensors(path)
    save_tensors(path, tensors, {"note": "no state here"})
    message = cli_error(capsys, *RESUME, "--epochs", "2")
    expect(message, r"^run/checkpoint\.safetensors has no readable training state\.$")


def test_checkpoint_of_another_model_names_the_mismatch(
    capsys: pytest.CaptureFixture[str], half: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    train_run(Config(hidden=[5], epochs=1, device="cpu"), other, quiet=True, plots=False)
    (half / "checkpoint.safetensors").write_bytes((other / "checkpoint.safetensors").read_bytes())
    message = cli_error(capsys, *RESUME, "--epochs", "2")
    expect(
        message,
        r"^run/checkpoint\.safetensors does not match the model in config\.json \(.*encoder\.0\.",
    )
    expect(message, r"\)\.$")


# ---------------------------------------------------------------------------------------------
# A run folder missing a file.


@pytest.mark.parametrize(
    "command", [("info", "run"), ("encode", "run", "--out", "c.npy"), (*RESUME, "--epochs", "3")]
)
def test_missing_config_json(
    capsys: pytest.CaptureFixture[str], run: Path, command: tuple[str, ...]
) -> None:
    (run / "config.json").unlink()
    message = cli_error(capsys, *command)
    expect(
        message,
        r"^run/config\.json is missing: run is not a complete run folder \(expected "
        r"config\.json, model\.safetensors, metrics\.jsonl\)\.$",
    )


@pytest.mark.parametrize("command", [("info", "run"), ("encode", "run", "--out", "c.npy")])
def test_missing_model_file(
    capsys: pytest.CaptureFixture[str], run: Path, command: tuple[str, ...]
) -> None:
    (run / "model.safetensors").unlink()
    message = cli_error(capsys, *command)
    expect(message, r"^run/model\.safetensors is missing\.$")


def test_missing_model_file_is_rewritten_by_resume(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], half: Path
) -> None:
    (half / "model.safetensors").unlink()
    cli_ok(capsys, *RESUME, "--epochs", "2")
    full = runs["full"]
    assert (half / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()


def strip_time(path: Path) -> list[dict[str, object]]:
    return [{k: v for k, v in row.items() if k != "time"} for row in read_metrics(path)]


def test_missing_checkpoint_resume_starts_over_and_ends_the_same(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], half: Path
) -> None:
    (half / "checkpoint.safetensors").unlink()
    info = json.loads(cli_ok(capsys, "info", "run", "--json"))
    assert info["resumable"] is False
    cli_ok(capsys, *RESUME, "--epochs", "2")
    full = runs["full"]
    assert (half / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()
    assert strip_time(half / "metrics.jsonl") == strip_time(full / "metrics.jsonl")


def test_missing_metrics_are_restored_by_resume(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], half: Path
) -> None:
    (half / "metrics.jsonl").unlink()
    assert "epochs       0/1" in cli_ok(capsys, "info", "run")  # still readable
    cli_ok(capsys, *RESUME, "--epochs", "2")
    full = runs["full"]
    assert strip_time(half / "metrics.jsonl") == strip_time(full / "metrics.jsonl")
    assert (half / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()


def test_torn_last_metrics_line_is_dropped(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], half: Path
) -> None:
    with (half / "metrics.jsonl").open("a") as fh:
        fh.write('{"epoch": 2, "recon": 0.')  # a kill in the middle of an append
    assert "epochs       1/1" in cli_ok(capsys, "info", "run")
    cli_ok(capsys, *RESUME, "--epochs", "2")
    assert strip_time(half / "metrics.jsonl") == strip_time(runs["full"] / "metrics.jsonl")


def test_temporaries_left_by_a_kill_are_removed_on_resume(
    capsys: pytest.CaptureFixture[str], half: Path
) -> None:
    """A kill inside an atomic write leaves its temporary; resuming clears it (disk space)."""
    stale = [".model.safetensors.k1ll3d.tmp", ".checkpoint.safetensors.x.tmp", ".config.json.y.tmp"]
    for name in stale:
        (half / name).write_bytes(b"\0" * 4096)
    (half / ".notes.txt.z.tmp").write_text("not ours")
    cli_ok(capsys, *RESUME, "--epochs", "2")
    assert sorted(p.name for p in half.iterdir() if p.name.startswith(".")) == [".notes.txt.z.tmp"]


# ---------------------------------------------------------------------------------------------
# Files crafted to run code when unpickled are never executed.


class Evil:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def crafted_payloads(marker: Path, folder: Path) -> dict[str, bytes]:
    """Bytes that run code when given to pickle.load or torch.load(weights_only=False)."""
    torch.save({"encoder.0.weight": Evil(marker)}, folder / "torch.pt")
    return {
        "pickle": pickle.dumps(Evil(marker)),
        "torch_save": (folder / "torch.pt").read_bytes(),
    }


@pytest.mark.parametrize("payload", ["pickle", "torch_save"])
@pytest.mark.parametrize("target", ["model.safetensors", "checkpoint.safetensors", "both"])
def test_crafted_weights_are_never_unpickled(
    capsys: pytest.CaptureFixture[str], half: Path, tmp_path: Path, payload: str, target: str
) -> None:
    marker = tmp_path / "pwned"
    evil = crafted_payloads(marker, tmp_path)[payload]
    names = ["model.safetensors", "checkpoint.safetensors"] if target == "both" else [target]
    for name in names:
        (half / name).write_bytes(evil)
    if "model.safetensors" in names:
        with pytest.raises(CheckpointError, match="model.safetensors is not a readable"):
            load_run(half)
    if "checkpoint.safetensors" in names:
        with pytest.raises(CheckpointError, match="checkpoint.safetensors is not a readable"):
            resume_run(half, epochs=2, quiet=True, plots=False)
    commands = [
        ("info", "run"),
        ("encode", "run", "--out", "c.npy"),
        ("reconstruct", "run", "--out", "r.npy"),
        (*RESUME, "--epochs", "2"),
    ]
    for command in commands:
        # Reading a model needs model.safetensors; resuming reads checkpoint.safetensors only
        # (and rewrites the model from it).
        needs = "checkpoint.safetensors" if command[0] == "train" else "model.safetensors"
        if needs not in names:
            cli_ok(capsys, *command)
            continue
        message = cli_error(capsys, *command)
        expect(message, rf"^run/{re.escape(needs)} is not a readable safetensors file \(")
    assert not marker.exists()


def _object_array(marker: Path) -> np.ndarray:
    arr = np.empty((2, 2), dtype=object)
    arr[...] = Evil(marker)
    return arr


@pytest.mark.parametrize("kind", ["npy_objects", "npz_objects", "pickle_named_npy", "npz_y"])
def test_crafted_data_files_are_never_unpickled(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    name = {"npy_objects": "d.npy", "pickle_named_npy": "d.npy"}.get(kind, "d.npz")
    if kind == "npy_objects":
        np.save(tmp_path / name, _object_array(marker), allow_pickle=True)
    elif kind == "npz_objects":
        np.savez(tmp_path / name, X=_object_array(marker))
    elif kind == "npz_y":
        np.savez(tmp_path / name, X=np.zeros((4, 2)), y=np.array([Evil(marker)] * 4, dtype=object))
    else:
        (tmp_path / name).write_bytes(pickle.dumps(Evil(marker)))
    argv = ("train", "--data", name, "--out", "r", "--hidden", "2", "--quiet", "--no-plots")
    message = cli_error(capsys, *argv)
    if kind == "pickle_named_npy":
        expect(message, r"^d\.npy could not be read as a \.npy file: it does not start with the")
    else:
        expect(
            message,
            rf"^{re.escape(name)} .*it holds Python objects \(pickled data\), which contractive "
            r"never loads because unpickling can run code; save a numeric array instead$",
        )
    assert "allow_pickle" not in message  # never advise loading it unsafely
    with pytest.raises(DataError, match="never loads because unpickling|does not start with"):
        contractive.load_dataset(tmp_path / name)
    if name.endswith(".npy"):
        with pytest.raises(DataError, match=r"could not be memory-mapped as a \.npy file: "):
            contractive.load_dataset(tmp_path / name, mmap=True)
    assert not marker.exists()


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            out.append((ast.unparse(node.func), node))
    return out


def test_no_load_path_can_unpickle() -> None:
    """Static guard: no pickle, torch.load or pickled NumPy anywhere in the package."""
    package = Path(contractive.__file__).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names]
                module = getattr(node, "module", None) or ""
                for banned in ("pickle", "dill", "joblib", "cloudpickle", "shelve", "marshal"):
                    assert banned not in names, f"{path.name} imports {banned}"
                    assert not module.startswith(banned), f"{path.name} imports from {banned}"
        for func, call in _calls(tree):
            assert func not in ("torch.load", "torch.jit.load", "eval", "exec"), (path.name, func)
            assert not func.endswith("pickle.load"), (path.name, func)
            if func in ("np.load", "numpy.load"):
                flags = {k.arg: ast.unparse(k.value) for k in call.keywords}
                assert flags.get("allow_pickle") == "False", f"{path.name}: {ast.unparse(call)}"

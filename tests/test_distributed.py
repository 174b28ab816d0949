"""torchrun: two CPU processes (gloo) train the same model as one with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from contractive import Config, Trainer, mlp_autoencoder


def _train(out: Path, data: Path, nproc: int) -> subprocess.CompletedProcess[str]:
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
    ]
    args = ["-m", "contractive", "train", "--data", str(data), "--out", str(out), "--hidden", "16"]
    args += ["--epochs", "2", "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.1"]
    args += ["--validation-fraction", "0", "--contraction", "0.5", "--quiet", "--no-plots"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*launcher, *args] if nproc > 1 else [sys.executable, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_two_processes_match_one(tmp_path: Path) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((256, 20)).astype(np.float32))
    one = _train(tmp_path / "one", data, 1)
    assert one.returncode == 0, one.stderr
    two = _train(tmp_path / "two", data, 2)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("Run folder:") == 1  # process 0 alone speaks and writes
    a = load_file(tmp_path / "one" / "model.safetensors")
    b = load_file(tmp_path / "two" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2
    m1 = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    m2 = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    # 256 samples / global batch 32 = 8 steps either way; each process takes half a batch.
    assert [r["steps"] for r in m1] == [r["steps"] for r in m2] == [8, 8]
    for r1, r2 in zip(m1, m2, strict=True):
        assert r1["recon"] == pytest.approx(r2["recon"], rel=1e-5)


def test_global_batch_must_divide() -> None:
    from contractive.exceptions import ConfigError

    # Faked world size: the check happens before any collective call.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("contractive.train._dist_info", lambda: (0, 3))
        with pytest.raises(ConfigError, match=r"'batch_size' parameter \(32\) is the global batch"):
            Trainer(mlp_autoencoder([4, 2]), Config(hidden=[2], batch_size=32))

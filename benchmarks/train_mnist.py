"""Seconds per epoch and peak memory of `contractive train` on MNIST, as a user runs it.

Runs the real command in a subprocess (so start-up, data loading and the run-folder writes
are all counted), then reads the epoch time from metrics.jsonl and the peak resident memory
of the child from getrusage.

Usage::

    python benchmarks/train_mnist.py --data-dir ../shared/data/mnist
    python benchmarks/train_mnist.py --data-dir DIR --epochs 3 -- --penalty hutchinson
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def default_data_dir() -> str:
    env = os.environ.get("CONTRACTIVE_DATA_DIR")
    if env:
        return env
    return str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--hidden", default="1000")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="more `contractive train` options, after --")
    args = parser.parse_args(argv)
    if not Path(args.data_dir, "train-images-idx3-ubyte.gz").is_file():
        print(f"MNIST not found in {args.data_dir}; pass --data-dir", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [
            sys.executable,
            "-m",
            "contractive",
            "train",
            "--data",
            "mnist",
            "--data-dir",
            args.data_dir,
            "--out",
            str(out),
            "--hidden",
            args.hidden,
            "--epochs",
            str(args.epochs),
            "--quiet",
            *args.extra,
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    print(f"command: {' '.join(cmd[1:]).replace(str(out), 'RUN')}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    for e in epochs:
        print(f"epoch {e['epoch']}: {e['time']:.2f} s ({e['steps']} steps), recon {e['recon']:.2f}")
    print(f"whole command: {wall:.1f} s wall; peak memory {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

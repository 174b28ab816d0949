"""Reliability, faults: SIGKILL at random instants, Ctrl-C, full disks, read-only folders, NaNs.

Killing ``contractive train`` at any instant and then running ``contractive train --resume RUN``
must end with the same bytes in model.safetensors as a run that was never interrupted, and the
same metrics.jsonl apart from the wall-clock ``time`` field. A failed write must leave the
previous checkpoint and model intact and name the file it could not write.

The subprocess tests run with one CPU thread (OMP_NUM_THREADS=1) on the CPU: the comparison is
bitwise, which holds for any fixed thread count, and one thread is the fastest on busy cores.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli_helpers import cli_error, cli_ok, expect
from contractive import Config, load_run, train_run
from contractive.cli import main
from contractive.exceptions import CheckpointError, TrainingDivergedError
from contractive.locking import LOCK_FILE
from contractive.runs import load_tensors, read_config, read_metrics
from contractive.train import Trainer

ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")},
    "PYTHONUNBUFFERED": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
N_TRIALS = 10
POLL_S = 0.002
TIMEOUT_S = 300.0


def metrics_without_time(run: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in row.items() if k != "time"} for row in read_metrics(run / "metrics.jsonl")
    ]


def train_state(run: Path) -> dict[str, Any]:
    _, metadata = load_tensors(run / "checkpoint.safetensors")
    state: dict[str, Any] = json.loads(metadata["state"])["train"]
    return state


# ---------------------------------------------------------------------------------------------
# Real processes: SIGKILL at random instants, then --resume; Ctrl-C.


def train_cmd(data: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "contractive",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--hidden",
        "8",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--checkpoint-every",
        "3",
        "--device",
        "cpu",
        "--quiet",
        "--no-plots",
    ]


def resume_cmd(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "contractive",
        "train",
        "--resume",
        str(out),
        "--quiet",
        "--no-plots",
    ]


@dataclass
class Reference:
    root: Path
    data: Path
    run: Path
    startup_s: float  # from spawning to config.json
    training_s: float  # from config.json to exit
    steps_per_epoch: int


def wait_until(predicate: Callable[[], bool], proc: subprocess.Popen[bytes], until: float) -> None:
    """Poll ``predicate`` every few ms until it holds, ``proc`` exits, or ``until`` passes."""
    while not predicate() and proc.poll() is None and time.monotonic() < until:
        time.sleep(POLL_S)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """One uninterrupted run of the command every trial runs, timed from the outside."""
    root = tmp_path_factory.mktemp("faults")
    data = root / "x.npy"
    # Enough steps (about 340) that training outlasts process start-up and teardown noise.
    np.save(data, np.random.default_rng(0).random((4000, 16)).astype(np.float32))
    run = root / "reference"
    start = time.monotonic()
    proc = subprocess.Popen(train_cmd(data, run), env=ENV, stdout=subprocess.DEVNULL)
    wait_until((run / "config.json").exists, proc, start + TIMEOUT_S)
    startup = time.monotonic() - start
    assert proc.wait(timeout=TIMEOUT_S) == 0
    training = time.monotonic() - start - startup
    state = train_state(run)
    assert (state["epoch"], state["step_in_epoch"]) == (3, 0)
    return Reference(root, data, run, startup, training, state["global_step"] // 3)


@dataclass
class Trial:
    anchor: str  # what the kill is timed from
    delay: float  # seconds after the anchor
    seen: str = ""  # what the folder held after the kill
    rerun: str = ""  # the command that finished the run


def plan_trials(ref: Reference) -> list[Trial]:
    """Random instants over the whole lifetime, each phase drawn at least once.

    Instants are timed from events the test sees in the folder, so that the short phases
    (before the first checkpoint, the final writes) are hit however slow the machine is.
    """
    rng = np.random.default_rng(2011)
    u = rng.random(N_TRIALS)
    third = ref.training_s / 3
    windows = [
        ("spawn", ref.startup_s),  # interpreter start-up, imports, loading the data
        ("spawn", ref.startup_s),
        ("config.json", 0.01),  # before or at the first checkpoint
        ("config.json", ref.training_s),  # anywhere in training
        ("config.json", ref.training_s),
        ("config.json", ref.training_s),
        ("first checkpoint", 0.0),  # just after a mid-run checkpoint, on any machine speed
        ("2 epochs logged", third),  # epoch 3
        ("3 epochs logged", 0.05),  # the final writes (model, checkpoint, model again)
        ("3 epochs logged", 0.05),
    ]
    assert len(windows) == N_TRIALS
    return [Trial(anchor, float(w * x)) for (anchor, w), x in zip(windows, u, strict=True)]


def _epochs_logged(run: Path, n: int) -> Callable[[], bool]:
    def check() -> bool:
        path = run / "metrics.jsonl"
        return path.exists() and path.read_bytes().count(b"\n") >= n

    return check


def run_trial(ref: Reference, index: int, trial: Trial) -> Trial:
    out = ref.root / f"killed{index}"
    proc = subprocess.Popen(train_cmd(ref.data, out), env=ENV, stdout=subprocess.DEVNULL)
    start = time.monotonic()
    try:
        anchors = {
            "spawn": lambda: True,
            "config.json": (out / "config.json").exists,
            "first checkpoint": (out / "checkpoint.safetensors").exists,
            "2 epochs logged": _epochs_logged(out, 2),
            "3 epochs logged": _epochs_logged(out, 3),
        }
        wait_until(anchors[trial.anchor], proc, start + TIMEOUT_S)
        wait_until(lambda: False, proc, time.monotonic() + trial.delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        code = proc.wait(timeout=TIMEOUT_S)
    finished = " (it had already finished)" if code == 0 else ""

    if not (out / "config.json").exists():
        # Killed before the run folder existed: there is nothing to resume, and nothing else
        # was written; the original command starts the run again.
        trial.seen = "no config.json" + finished
        assert not (out / "checkpoint.safetensors").exists()
        assert not (out / "model.safetensors").exists()
        with pytest.raises(CheckpointError, match=r"config\.json is missing|No such run folder"):
            read_config(out)
        command = train_cmd(ref.data, out)
    else:
        if (out / "checkpoint.safetensors").exists():
            state = train_state(out)
            trial.seen = f"checkpoint at step {state['global_step']}" + finished
        else:
            trial.seen = "config.json, no checkpoint yet" + finished
        command = resume_cmd(out)
    trial.rerun = "train --out" if command[4] == "--data" else "train --resume"
    done = subprocess.run(
        command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=TIMEOUT_S
    )
    assert done.returncode == 0, (trial, done.stderr.decode())
    model = (out / "model.safetensors").read_bytes()
    assert model == (ref.run / "model.safetensors").read_bytes(), trial
    assert metrics_without_time(out) == metrics_without_time(ref.run), trial
    assert train_state(out) == train_state(ref.run), trial
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], trial  # temporaries
    return trial


@pytest.mark.slow
def test_sigkill_at_random_instants_then_resume_is_bitwise(reference: Reference) -> None:
    trials = plan_trials(reference)
    # Two at a time: each trial is mostly two interpreter start-ups.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(run_trial, reference, i, t) for i, t in enumerate(trials)]
        done = [f.result() for f in futures]
    summary = "\n".join(f"{t.anchor} + {t.delay:.3f}s: {t.seen}; {t.rerun}" for t in done)
    print(summary)
    total = 3 * reference.steps_per_epoch
    mid_run = [t for t in done if t.seen.startswith("checkpoint") and f"step {total}" not in t.seen]
    assert mid_run, summary  # at least one resume from a checkpoint taken mid-run


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(reference: Reference) -> None:
    out = reference.root / "interrupted"
    proc = subprocess.Popen(
        train_cmd(reference.data, out),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until((out / "checkpoint.safetensors").exists, proc, time.monotonic() + TIMEOUT_S)
        assert proc.poll() is None, "training ended before it could be interrupted"
        first = train_state(out)["global_step"]
        proc.send_signal(signal.SIGINT)
        _, err_bytes = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err_bytes.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    found = re.fullmatch(
        r"contractive: Interrupted (?:at epoch (\d+), step (\d+)|after epoch (\d+))\. A checkpoint"
        rf" was saved; continue with: contractive train --resume {re.escape(str(out))}\n",
        err,
    )
    assert found, err
    steps = reference.steps_per_epoch
    if found.group(3):
        stopped = (int(found.group(3)), 0)
    else:
        stopped = (int(found.group(1)) - 1, int(found.group(2)))
    state = train_state(out)
    assert (state["epoch"], state["step_in_epoch"]) == stopped
    assert state["global_step"] == stopped[0] * steps + stopped[1] >= first
    resumed = subprocess.run(resume_cmd(out), env=ENV, capture_output=True, timeout=TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stderr.decode()
    ref = reference.run
    assert (out / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()
    assert metrics_without_time(out) == metrics_without_time(ref)


# ---------------------------------------------------------------------------------------------
# Two writers, one folder: the second is refused at once and the first runs on untouched.
#
# The first process is stopped (SIGSTOP) as soon as it holds the folder's lock and continued
# after the second has exited, so the second always meets a live holder, however fast or slow
# the machine is.

FIRST_KINDS = ("plain", "overwrite", "resume")


@pytest.fixture(scope="module")
def partial(reference: Reference) -> Path:
    """The reference command stopped after its first epoch: a run to resume."""
    run = reference.root / "partial"
    done = subprocess.run(
        [*train_cmd(reference.data, run), "--epochs", "1"], env=ENV, timeout=TIMEOUT_S
    )
    assert done.returncode == 0
    return run


def first_command(kind: str, ref: Reference, out: Path, partial: Path) -> list[str]:
    """Prepare ``out`` for a first writer of ``kind``; return its command (3 epochs in all)."""
    if kind == "overwrite":
        out.mkdir()
        for name in ("config.json", "model.safetensors", "metrics.jsonl"):
            (out / name).write_bytes(b"an older run, to be replaced\n")
        return [*train_cmd(ref.data, out), "--overwrite"]
    if kind == "resume":
        out.mkdir()
        for path in partial.iterdir():
            (out / path.name).write_bytes(path.read_bytes())
        return [*resume_cmd(out), "--epochs", "3"]
    return train_cmd(ref.data, out)


def second_command(kind: str, ref: Reference, out: Path) -> list[str]:
    return {
        "plain": train_cmd(ref.data, out),
        "overwrite": [*train_cmd(ref.data, out), "--overwrite"],
        "resume": resume_cmd(out),
    }[kind]


def _holds_lock(out: Path, pid: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return bool(json.loads((out / LOCK_FILE).read_text())["pid"] == pid)
        except (OSError, ValueError, KeyError):
            return False

    return check


def assert_same_run(out: Path, ref: Path) -> None:
    """Byte for byte what a run made alone holds, apart from wall-clock times."""
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    for name in ("model.safetensors", "config.json"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    assert metrics_without_time(out) == metrics_without_time(ref)
    assert train_state(out) == train_state(ref)


@pytest.mark.slow
@pytest.mark.parametrize("second", FIRST_KINDS)
@pytest.mark.parametrize("first", FIRST_KINDS)
def test_a_second_writer_is_refused_and_the_first_run_is_untouched(
    reference: Reference, partial: Path, first: str, second: str
) -> None:
    out = reference.root / f"{first}-then-{second}"
    proc = subprocess.Popen(
        first_command(first, reference, out, partial),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(_holds_lock(out, proc.pid), proc, time.monotonic() + TIMEOUT_S)
        os.kill(proc.pid, signal.SIGSTOP)
        assert proc.poll() is None, "the first writer ended before a second could start"
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        started = time.monotonic()
        refused = subprocess.run(
            second_command(second, reference, out), env=ENV, capture_output=True, timeout=60
        )
        waited = time.monotonic() - started
        after = {p.name: p.read_bytes() for p in out.iterdir()}
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    message = refused.stderr.decode()
    assert refused.returncode == 1, message
    assert len(message.splitlines()) == 1, message
    expect(
        message,
        rf"^contractive: error: {re.escape(str(out))} is in use by process {proc.pid} \(started "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d.*: contractive train .+\): one process writes a run "
        r"folder at a time\.",
    )
    assert after == before  # the refused process changed nothing, not even the lock record
    assert waited < 30, "refused at once, not after waiting for the lock"
    assert_same_run(out, reference.run)


@pytest.mark.slow
def test_sigkill_of_the_holder_then_resume_succeeds(reference: Reference) -> None:
    out = reference.root / "killed-holder"
    proc = subprocess.Popen(train_cmd(reference.data, out), env=ENV, stdout=subprocess.DEVNULL)
    try:
        wait_until((out / "checkpoint.safetensors").exists, proc, time.monotonic() + TIMEOUT_S)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=TIMEOUT_S)
    # The lock file outlives its holder, but the kernel released the lock itself.
    assert _holds_lock(out, proc.pid)()
    done = subprocess.run(resume_cmd(out), env=ENV, capture_output=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr.decode()
    assert_same_run(out, reference.run)


# ---------------------------------------------------------------------------------------------
# Failed writes, simulated in-process: the tests may run as root, whom chmod does not stop.

FAULT_RUN = (
    "--hidden",
    "4",
    "--epochs",
    "3",
    "--batch-size",
    "16",
    "--checkpoint-every",
    "5",
    "--device",
    "cpu",
    "--quiet",
    "--no-plots",
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A small data file and the final model.safetensors of an uninterrupted run on it."""
    root = tmp_path_factory.mktemp("small")
    data = root / "x.npy"
    np.save(data, np.random.default_rng(1).random((240, 6)).astype(np.float32))
    assert main(["train", "--data", str(data), "--out", str(root / "ref"), *FAULT_RUN]) == 0
    return data, (root / "ref" / "model.safetensors").read_bytes()


class Disk:
    """Simulated disk faults for contractive's writes, armed once epoch 1 is safely written.

    ``mode`` is ``"full"`` (fsync of the files in ``fail_on`` raises ENOSPC, as a full disk
    does when the data are flushed) or ``"read-only"`` (creating a file raises EACCES).
    ``kept`` holds the bytes each file had after its last successful replacement.
    """

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        mode: str,
        fail_on: tuple[str, ...] = (),
        *,
        armed: bool = False,
    ) -> None:
        self.mode = mode
        self.fail_on = fail_on
        self.armed = armed
        self.fired = armed  # arms itself once at most
        self.kept: dict[str, bytes] = {}
        self.count: Counter[str] = Counter()
        self._targets: dict[int, str] = {}
        real_mkstemp, real_fsync, real_replace = tempfile.mkstemp, os.fsync, os.replace
        real_open = Path.open

        def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
            target = str(kwargs.get("prefix", ""))[1:-1]  # ".model.safetensors." -> name
            if self.armed and self.mode == "read-only":
                raise PermissionError(13, "Permission denied", str(kwargs.get("dir")))
            fd, name = real_mkstemp(*args, **kwargs)
            self._targets[fd] = target
            return fd, name

        def fsync(fd: int) -> None:
            target = self._targets.pop(fd, None)
            if self.armed and self.mode == "full" and target in self.fail_on:
                raise OSError(28, "No space left on device")
            real_fsync(fd)

        def replace(src: Any, dst: Any) -> None:
            real_replace(src, dst)
            name = Path(dst).name
            self.kept[name] = Path(dst).read_bytes()
            self.count[name] += 1
            # Epoch 1 is safely written once the checkpoint after the first model is.
            if name == "checkpoint.safetensors" and self.count["model.safetensors"] == 1:
                self.armed = self.armed or not self.fired
                self.fired = True

        def open_(path: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if self.armed and path.name == "metrics.jsonl" and "a" in mode:
                if self.mode == "read-only":
                    raise PermissionError(13, "Permission denied", str(path))
                if "metrics.jsonl" in self.fail_on:
                    # What close() raises when the appended line cannot be flushed.
                    raise OSError(28, "No space left on device")
            return real_open(path, mode, *args, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(Path, "open", open_)


@pytest.mark.parametrize(
    ("mode", "fail_on", "pattern"),
    [
        pytest.param(
            "full",
            ("checkpoint.safetensors",),
            r"^Could not write run/checkpoint\.safetensors: No space left on device\. The "
            r"previous version of the file, if any, is intact; free some space or choose another "
            r"--out folder\.$",
            id="full-disk-checkpoint",
        ),
        pytest.param(
            "full",
            ("model.safetensors",),
            r"^Could not write run/model\.safetensors: No space left on device\. The previous",
            id="full-disk-model",
        ),
        pytest.param(
            "read-only",
            (),
            r"^Could not write run/checkpoint\.safetensors: Permission denied\. The previous",
            id="read-only-folder",
        ),
    ],
)
def test_failed_write_keeps_the_previous_files_and_resume_works(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small: tuple[Path, bytes],
    mode: str,
    fail_on: tuple[str, ...],
    pattern: str,
) -> None:
    data, final = small
    monkeypatch.chdir(tmp_path)
    disk = Disk(monkeypatch, mode, fail_on)
    message = cli_error(capsys, "train", "--data", data, "--out", "run", *FAULT_RUN)
    expect(message, pattern)
    assert disk.armed
    run = tmp_path / "run"
    # The previous versions are intact, byte for byte, and load.
    for name in ("checkpoint.safetensors", "model.safetensors", "config.json"):
        assert (run / name).read_bytes() == disk.kept[name], name
    assert train_state(run)["epoch"] >= 1
    load_run(run)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temporaries
    # Space freed (or the folder writable again): resuming ends where a clean run ends.
    disk.armed = False
    cli_ok(capsys, "train", "--resume", "run", "--quiet", "--no-plots")
    assert (run / "model.safetensors").read_bytes() == final


def test_read_only_folder_from_the_start(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small: tuple[Path, bytes],
) -> None:
    monkeypatch.chdir(tmp_path)
    Disk(monkeypatch, "read-only", armed=True)
    message = cli_error(capsys, "train", "--data", small[0], "--out", "run", *FAULT_RUN)
    expect(
        message,
        r"^Could not write run/config\.json: Permission denied\. The previous version of the "
        r"file, if any, is intact; free some space or choose another --out folder\.$",
    )
    assert not (tmp_path / "run").exists()  # the folder it made for the run is gone again


def test_full_disk_while_appending_metrics_names_the_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small: tuple[Path, bytes],
) -> None:
    monkeypatch.chdir(tmp_path)
    disk = Disk(monkeypatch, "full", ("metrics.jsonl",))
    message = cli_error(capsys, "train", "--data", small[0], "--out", "run", *FAULT_RUN)
    run = tmp_path / "run"
    assert (run / "checkpoint.safetensors").read_bytes() == disk.kept["checkpoint.safetensors"]
    expect(message, r"^Could not write run/metrics\.jsonl: No space left on device\.")


def test_full_disk_while_writing_codes_keeps_the_old_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small: tuple[Path, bytes],
) -> None:
    monkeypatch.chdir(tmp_path)
    data = small[0]
    cli_ok(
        capsys, "train", "--data", data, "--out", "run", "--epochs", "1", "--hidden", "3", "--quiet"
    )
    cli_ok(capsys, "encode", "run", "--data", data, "--out", "codes.npy")
    before = Path("codes.npy").read_bytes()
    Disk(monkeypatch, "full", ("codes.npy",), armed=True)
    message = cli_error(capsys, "reconstruct", "run", "--data", data, "--out", "codes.npy")
    expect(message, r"^Could not write codes\.npy: No space left on device\. The previous")
    assert Path("codes.npy").read_bytes() == before


# ---------------------------------------------------------------------------------------------
# A diverging loss.

DIVERGE_AFTER = 22  # the step after 22 done (epoch 2, step 9 with 14 steps an epoch) gives NaN


@pytest.fixture
def diverging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the loss NaN at one step; the real thing is test_cli's 1e30 data."""
    original = Trainer.objective

    def objective(self: Trainer, x: Any, *, noise: bool = True) -> Any:
        total, parts = original(self, x, noise=noise)
        if noise and self.state.global_step == DIVERGE_AFTER:
            total = total * float("nan")
            parts["total"] = total
        return total, parts

    monkeypatch.setattr(Trainer, "objective", objective)


@pytest.mark.usefixtures("diverging")
def test_diverging_loss_stops_with_advice_and_keeps_the_checkpoint(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small: tuple[Path, bytes],
) -> None:
    monkeypatch.chdir(tmp_path)
    message = cli_error(capsys, "train", "--data", small[0], "--out", "run", *FAULT_RUN)
    expect(
        message,
        r"^The training loss became nan at epoch 2, step 9 \(parts: .*\)\. Train again "
        r"\(--overwrite, or another --out\) with a lower learning rate \(now 0\.001, --lr\) or "
        r"contraction \(--contraction\), or check the data for extreme values\. The last good "
        r"checkpoint in the run folder is kept\.$",
    )
    run = tmp_path / "run"
    state = train_state(run)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 6, 20)
    assert len(read_metrics(run / "metrics.jsonl")) == 1
    load_run(run)  # the model of epoch 1


@pytest.mark.usefixtures("diverging")
def test_diverging_loss_in_python(tmp_path: Path, small: tuple[Path, bytes]) -> None:
    config = Config(
        data=str(small[0]), hidden=[4], epochs=3, batch_size=16, checkpoint_every=5, device="cpu"
    )
    with pytest.raises(
        TrainingDivergedError, match=r"became nan at epoch 2, step 9 .*with a lower learning rate"
    ):
        train_run(config, tmp_path / "run", quiet=True, plots=False)
    assert train_state(tmp_path / "run")["global_step"] == 20

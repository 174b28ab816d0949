"""RunLock: one writer per run folder, released by the kernel when its holder dies.

The holder in another process is a small Python program that takes the lock, says so on
stdout and then waits for its stdin to close: the test decides when it lets go, and no test
sleeps. The end-to-end cases (two ``contractive train`` into one folder, SIGKILL, resume) are
in tests/test_reliability_faults.py.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import contractive.locking as locking
from contractive import ContractiveAutoencoder, RunLock, RunLockedError
from contractive.exceptions import CheckpointError
from contractive.locking import LOCK_FILE

HOLDER = """
import sys
from contractive import RunLock
lock = RunLock(sys.argv[1]).acquire()
print(lock._mode, flush=True)
sys.stdin.read()
lock.release()
print("released", flush=True)
"""


class Holder:
    """A process holding the lock on ``folder`` until :meth:`let_go` or :meth:`kill`."""

    def __init__(self, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.mode = self.proc.stdout.readline().strip()  # blocks until the lock is held
        assert self.mode == "flock", self.mode

    def let_go(self) -> str:
        out, _ = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0
        return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Holder]:
    h = Holder(tmp_path / "run")
    yield h
    if h.proc.poll() is None:
        h.kill()


def refusal(folder: Path, pid: int) -> str:
    return (
        rf"^{re.escape(str(folder))} is in use by process {pid} \(started "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d.*: .+\): one process writes a run folder at a time\. "
        r"Wait for it to finish or stop it, or choose another folder; nothing in the folder "
        r"was changed\.$"
    )


# ---------------------------------------------------------------------------------------------
# In one process.


def test_a_second_lock_is_refused_and_names_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "run"
    with RunLock(folder) as lock:
        assert lock.held
        record = json.loads((folder / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid()
        assert record["host"] == socket.gethostname()
        assert record["command"]
        with pytest.raises(RunLockedError, match=refusal(folder, os.getpid())):
            RunLock(folder).acquire()
        assert lock.held  # the refusal did not disturb the holder
    assert not (folder / LOCK_FILE).exists()
    # The folder was created for the lock and nothing was written: it is gone again, and
    # so is the parent it had to create.
    assert not (tmp_path / "a").exists()


def test_a_folder_with_files_is_kept_and_the_lock_can_be_taken_again(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with RunLock(folder):
        (folder / "config.json").write_text("{}")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]
    with RunLock(folder) as again:
        assert again.held
    assert not again.held
    again.release()  # a second release is harmless


def test_acquire_is_idempotent_and_a_disabled_lock_does_nothing(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    assert lock.acquire() is lock.acquire()
    lock.release()
    with RunLock(tmp_path / "other", enabled=False) as off:
        assert not off.held
    assert not (tmp_path / "other").exists()


def test_missing_folder_without_create_and_a_file_in_the_way(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"^No such run folder: .*missing$"):
        RunLock(tmp_path / "missing", create=False).acquire()
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match=r"file exists and is not a folder\.$"):
        RunLock(tmp_path / "file").acquire()


def test_estimator_save_is_refused_while_the_folder_is_locked(tmp_path: Path) -> None:
    import numpy as np

    est = ContractiveAutoencoder(2, epochs=1, random_state=0)
    est.fit(np.random.default_rng(0).random((20, 4)))
    folder = tmp_path / "run"
    with RunLock(folder):
        with pytest.raises(RunLockedError, match=refusal(folder, os.getpid())):
            est.save(folder)
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]
    assert est.save(folder) == folder
    assert (folder / "config.json").is_file()
    assert not (folder / LOCK_FILE).exists()


# ---------------------------------------------------------------------------------------------
# Across processes: the kernel's flock.


def test_a_lock_held_by_another_process_is_refused(tmp_path: Path, holder: Holder) -> None:
    folder = tmp_path / "run"
    with pytest.raises(RunLockedError, match=refusal(folder, holder.proc.pid)):
        RunLock(folder).acquire()
    assert holder.let_go() == "released\n"
    with RunLock(folder) as lock:
        assert lock.held


def test_sigkill_of_the_holder_leaves_no_stale_lock(tmp_path: Path, holder: Holder) -> None:
    folder = tmp_path / "run"
    holder.kill()
    # The killed process could not remove its file, but the kernel released its lock.
    assert json.loads((folder / LOCK_FILE).read_text())["pid"] == holder.proc.pid
    with RunLock(folder) as lock:
        assert lock._mode == "flock"
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_lock_file_removed_by_its_last_holder_is_not_held_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that opened the lock file just before its holder removed it gets the lock on
    a file nobody else can see; it must notice and lock the path's new file instead."""
    folder = tmp_path / "run"
    folder.mkdir()  # not the lock's to remove
    first = RunLock(folder).acquire()
    real_open = os.open
    opens: list[int] = []

    def open_then_holder_leaves(path: str, flags: int, mode: int = 0o777) -> int:
        fd = real_open(path, flags, mode)
        opens.append(fd)
        if len(opens) == 1:  # the holder releases (and unlinks) right after the first open
            first.release()
        return fd

    monkeypatch.setattr(locking.os, "open", open_then_holder_leaves)
    with RunLock(folder) as second:
        assert second._fd is not None
        assert len(opens) == 2  # it opened the path again
        held = os.fstat(second._fd)
        # The orphaned file would have no name (st_nlink 0); the held one is the path's.
        assert held.st_nlink == 1
        assert os.path.samestat(held, os.stat(folder / LOCK_FILE))


# ---------------------------------------------------------------------------------------------
# Without flock: an exclusively created file holding the pid.


@pytest.fixture
def no_flock(monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    def refuse(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")  # as some network filesystems do

    monkeypatch.setattr(fcntl, "flock", refuse)


@pytest.mark.usefixtures("no_flock")
def test_fallback_lock_refuses_a_live_holder(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with RunLock(folder) as lock:
        assert lock._mode == "exclusive-create"
        with pytest.raises(RunLockedError, match=refusal(folder, os.getpid())):
            RunLock(folder).acquire()
    assert not (folder / LOCK_FILE).exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def _record(pid: int, host: str) -> str:
    return json.dumps({"pid": pid, "host": host, "command": "contractive train", "started": "x"})


@pytest.mark.usefixtures("no_flock")
def test_fallback_replaces_a_stale_lock_of_a_dead_process(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_FILE).write_text(_record(_dead_pid(), socket.gethostname()))
    with RunLock(folder) as lock:
        assert lock._mode == "exclusive-create"
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()


@pytest.mark.usefixtures("no_flock")
def test_fallback_cannot_check_another_hosts_holder(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_FILE).write_text(_record(_dead_pid(), "elsewhere"))
    with pytest.raises(RunLockedError, match=r"in use by process \d+ on host elsewhere \("):
        RunLock(folder).acquire()
    assert json.loads((folder / LOCK_FILE).read_text())["host"] == "elsewhere"


@pytest.mark.usefixtures("no_flock")
def test_fallback_respects_a_holder_still_writing_its_record(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_FILE).write_text("")  # created, record not written yet
    with pytest.raises(RunLockedError, match=r"is in use by another process: one process"):
        RunLock(folder).acquire()


def test_no_fcntl_module_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fcntl", None)  # as on Windows: import fails
    with RunLock(tmp_path / "run") as lock:
        assert lock._mode == "exclusive-create"


# ---------------------------------------------------------------------------------------------
# Every writer takes the lock before it reads or writes anything.


def test_writers_are_refused_on_a_locked_folder_and_readers_are_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_helpers import cli_error, cli_ok, expect
    from contractive import Config, resume_run, train_run
    from contractive.experiments import QUICK, run_table1

    folder = tmp_path / "run"
    train_run(Config(hidden=[4], epochs=1), folder, quiet=True, plots=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with RunLock(folder):
        locked = {p.name: p.read_bytes() for p in folder.iterdir()}
        with pytest.raises(RunLockedError, match=refusal(folder, os.getpid())):
            train_run(Config(hidden=[4], epochs=1), folder, overwrite=True, quiet=True)
        with pytest.raises(RunLockedError, match=refusal(folder, os.getpid())):
            resume_run(folder, epochs=2, quiet=True)
        # No MNIST is needed: the lock is taken before the data are looked for.
        with pytest.raises(RunLockedError, match=refusal(folder, os.getpid())):
            run_table1(folder, data_dir=tmp_path / "no-mnist", protocol=QUICK)
        for argv in (
            ["train", "--data", "digits", "--out", folder, "--overwrite", "--epochs", "1"],
            ["train", "--resume", folder, "--epochs", "2"],
            ["reproduce", "table1", "--out", folder, "--data-dir", tmp_path, "--quick"],
        ):
            message = cli_error(capsys, *argv)  # exit status 1, one line
            expect(message, refusal(folder, os.getpid()))
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == locked
        # Readers never take the lock, so they never wait for a writer.
        assert "epochs       1/1" in cli_ok(capsys, "info", folder)
        cli_ok(capsys, "encode", folder, "--data", "digits", "--out", tmp_path / "codes.npy")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_folder_that_cannot_hold_the_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_helpers import cli_error, expect

    # Simulated: the tests may run as root, whom a read-only mode does not stop.
    def read_only(path: str, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(locking.os, "open", read_only)
    monkeypatch.chdir(tmp_path)
    Path("run").mkdir()
    message = cli_error(capsys, "train", "--data", "digits", "--out", "run", "--epochs", "1")
    expect(
        message,
        r"^Could not write run/\.contractive\.lock: Permission denied\. Choose a folder you can "
        r"write to; nothing in it was changed\.$",
    )
    assert list(Path("run").iterdir()) == []

"""One writer per run folder: an OS-level lock that a killed process cannot leave behind.

Two processes writing into one run folder interleave their ``metrics.jsonl`` lines and
overwrite each other's checkpoints; nothing fails, the results are just wrong. Every command
or call that writes a run folder (``contractive train``, ``train --resume``, ``--overwrite``,
:meth:`contractive.ContractiveAutoencoder.save`, ``contractive reproduce``) therefore holds
:class:`RunLock` while it writes, and a second writer is refused at once with
:class:`~contractive.exceptions.RunLockedError`, naming the process that holds the folder.

How it works
------------
The lock is ``flock(LOCK_EX | LOCK_NB)`` on the file ``.contractive.lock`` in the folder. The
kernel releases it when the process ends, however it ends, so SIGKILL leaves no stale lock. The
holder writes its pid, host, command and start time into the file for the refusal message.

On a release the file is removed while still locked. A process that opened the old file and
obtains the lock on it afterwards sees that the path no longer names its file and tries again,
so a removed lock file can never be held by two processes.

Where ``flock`` does not exist (Windows) or the filesystem refuses it (some network mounts
answer ``ENOLCK``), the lock falls back to creating the file exclusively (``O_EXCL``). A file
whose holder is no longer alive on this host is stale and is replaced; one from another host
cannot be checked and is reported, with the advice to delete it if that process is gone.

Readers (``info``, ``encode``, ``report``, :func:`contractive.load_run`) never take the lock:
every file of a run is replaced by an atomic rename, so a reader sees the last complete one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from .exceptions import CheckpointError, RunLockedError

__all__ = ["LOCK_FILE", "RunLock"]

LOCK_FILE = ".contractive.lock"

# flock errors that mean "this filesystem cannot lock", not "someone holds it".
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}


def _holder_record() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": shlex.join(["contractive", *sys.argv[1:]])
        if Path(sys.argv[0]).name in ("contractive", "__main__.py")
        else shlex.join([sys.executable, *sys.argv]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime()),
    }


def _describe(raw: bytes) -> str:
    """The holder, as the refusal message names it, from the lock file's bytes."""
    try:
        info = json.loads(raw.decode())
        pid, host, command, started = (
            info["pid"],
            info["host"],
            info["command"],
            info["started"],
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        # The holder took the lock but has not written its record yet (a few microseconds).
        return "another process"
    where = "" if host == socket.gethostname() else f" on host {host}"
    return f"process {pid}{where} (started {started}: {command})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return True  # cannot tell: assume alive, the safe answer
    return True


class RunLock:
    """An exclusive, non-blocking lock on a run folder, for as long as the ``with`` lasts.

    Parameters
    ----------
    run_dir : str or path-like
        The folder to lock.
    create : bool, default=True
        Create the folder (and its parents) when it is missing. The folder is removed again on
        release if it is still empty then, so a command that fails before writing anything
        leaves no trace. With ``create=False`` a missing folder raises ``CheckpointError``.
    enabled : bool, default=True
        ``False`` makes the lock a no-op: under torchrun only process 0 writes and locks.

    Raises
    ------
    RunLockedError
        Another process holds the folder; the message names it (pid, command, start time).
    CheckpointError
        ``create=False`` and the folder does not exist.

    Examples
    --------
    The folder ``run`` is created for the lock and removed with it, as nothing was written:

    >>> from contractive.exceptions import RunLockedError
    >>> with RunLock("run"):
    ...     try:
    ...         RunLock("run").acquire()
    ...     except RunLockedError as exc:
    ...         print("refused")
    refused
    >>> Path("run").exists()
    False
    """

    def __init__(
        self, run_dir: str | os.PathLike[str], *, create: bool = True, enabled: bool = True
    ) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.create = create
        self.enabled = enabled
        self._fd: int | None = None
        self._created: list[Path] = []  # folders the lock made, innermost first
        self._mode = ""  # "flock" or "exclusive-create" once held

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunLockedError` at once (never waits)."""
        if not self.enabled or self.held:
            return self
        if not self.run_dir.is_dir():
            if self.run_dir.exists():
                raise CheckpointError(f"{self.run_dir} exists and is not a folder.")
            if not self.create:
                raise CheckpointError(f"No such run folder: {self.run_dir}")
            missing = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CheckpointError(
                    f"Could not create the folder {self.run_dir}: {exc.strerror or exc}. "
                    "Choose a folder you can write to."
                ) from exc
            self._created = missing
        try:
            try:
                self._fd = self._acquire_flock()
                self._mode = "flock"
            except _FlockUnavailable:
                self._fd = self._acquire_exclusive()
                self._mode = "exclusive-create"
        except OSError as exc:
            self._remove_created_dir()
            raise CheckpointError(
                f"Could not write {self.path}: {exc.strerror or exc}. Choose a folder you can "
                "write to; nothing in it was changed."
            ) from exc
        except BaseException:
            self._remove_created_dir()
            raise
        record = json.dumps(_holder_record()).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, record, 0)
        return self

    def release(self) -> None:
        """Give the lock back and remove the lock file (and a folder it created, if empty)."""
        if self._fd is None:
            return
        # Unlink while still holding: see the module docstring for why this is safe.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)  # releases the flock
        self._fd = None
        self._remove_created_dir()

    def _remove_created_dir(self) -> None:
        for folder in self._created:
            try:
                folder.rmdir()  # only succeeds when empty
            except OSError:
                break
        self._created = []

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _refuse(self, raw: bytes) -> RunLockedError:
        return RunLockedError(
            f"{self.run_dir} is in use by {_describe(raw)}: one process writes a run folder "
            "at a time. Wait for it to finish or stop it, or choose another folder; nothing "
            "in the folder was changed."
        )

    def _acquire_flock(self) -> int:
        try:
            import fcntl
        except ImportError:  # Windows
            raise _FlockUnavailable from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                created = True
            except FileExistsError:
                try:
                    fd = os.open(self.path, os.O_RDWR)
                except FileNotFoundError:
                    continue  # removed by its holder in between
                created = False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raw = os.pread(fd, 4096, 0)
                os.close(fd)
                raise self._refuse(raw) from None
            except OSError as exc:
                os.close(fd)
                if exc.errno in _NO_FLOCK:
                    if created:  # the fallback creates the file itself
                        with contextlib.suppress(OSError):
                            os.unlink(self.path)
                    raise _FlockUnavailable from None
                raise
            # The holder we waited on may have removed the file before we got its lock.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def _acquire_exclusive(self) -> int:
        for _ in range(2):  # a second try after removing a stale file
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                continue  # released in between
            if not self._is_stale(raw):
                raise self._refuse(raw)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        raise self._refuse(b"")

    @staticmethod
    def _is_stale(raw: bytes) -> bool:
        try:
            info = json.loads(raw.decode())
            pid, host = int(info["pid"]), str(info["host"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return False  # being written, or not ours: do not take it
        return host == socket.gethostname() and not _pid_alive(pid)


class _FlockUnavailable(Exception):
    """flock cannot be used here; fall back to an exclusively created lock file."""

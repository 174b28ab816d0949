"""Run folders: atomic writes, safetensors weights, JSON config, loading without pickle.

A run folder holds

``config.json``
    The options (:class:`contractive.config.Config`) and what the run derived from the data
    (input size, image shape, scaling), enough to rebuild the model and continue.
``model.safetensors``
    The model's weights, rewritten at the end of every epoch.
``checkpoint.safetensors``
    Model, optimizer and best-so-far weights as tensors, with the rest of the training state
    (epoch, step, scheduler, generator states, running sums) as JSON in the file's metadata,
    so that one rename makes the whole checkpoint current.
``metrics.jsonl``
    One JSON object per finished epoch.

Every file is written to a temporary file in the same folder, flushed to disk, then renamed
over the old one: a kill at any instant leaves the previous version readable. Nothing is ever
unpickled: safetensors and JSON hold everything.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import Tensor

from .config import CONFIG_FORMAT_VERSION, LATER_OPTIONS, Config, config_to_json
from .exceptions import CheckpointError, ConfigError, DataError
from .nn import Autoencoder, conv_autoencoder, mlp_autoencoder
from .validation import Interval, is_int, is_real

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "DIGEST_KEY",
    "METRICS_FILE",
    "MODEL_FILE",
    "Run",
    "append_metrics",
    "atomic_write_bytes",
    "atomic_writer",
    "build_model",
    "load_run",
    "metrics_line",
    "read_metrics",
    "save_model",
    "write_metrics",
]

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
METRICS_FILE = "metrics.jsonl"


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only when the ``with`` block ends without error.

    The data go to a temporary ``.NAME.*SUFFIX`` file in the same folder, are flushed to disk
    (``fsync``) and renamed over ``path``, so readers see the old file or the new one, never
    half of one. An exception in the block (or a failed write) leaves ``path`` as it was and
    removes the temporary file; ``OSError`` propagates as it is.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_writer(path) as fh:
    ...     _ = fh.write(b"complete")
    >>> path.read_bytes()
    b'complete'
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    done = False
    try:
        # mkstemp makes the file private (0600); give it the mode open() would (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        done = True
        _fsync_dir(path.parent)
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    Raises
    ------
    CheckpointError
        The write failed (disk full, read-only folder, ...); the previous file is untouched.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write_bytes(folder / "notes.txt", b"first")
    >>> atomic_write_bytes(folder / "notes.txt", b"second")
    >>> [p.name for p in folder.iterdir()], (folder / "notes.txt").read_bytes()
    (['notes.txt'], b'second')
    """
    path = Path(path)
    try:
        with atomic_writer(path) as fh:
            fh.write(data)
    except OSError as exc:
        raise CheckpointError(
            f"Could not write {path}: {exc.strerror or exc}. The previous version of the file, "
            "if any, is intact; free some space or choose another --out folder."
        ) from exc


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# The metadata key holding the SHA-256 (hex) of a weights file's tensor bytes: safetensors has no
# checksum of its own, so without it a flipped bit in the data loads silently.
DIGEST_KEY = "contractive.sha256"
_DIGEST_PLACEHOLDER = "0" * 64
_warned_undigested: set[str] = set()


def _data_section(blob: bytes | bytearray) -> tuple[int, memoryview]:
    """Where a safetensors file's tensor bytes begin, and those bytes.

    Layout: an 8-byte little-endian header length N, N bytes of JSON header, then the data.
    """
    view = memoryview(blob)
    n = int.from_bytes(view[:8], "little") if len(view) >= 8 else len(view)
    start = 8 + n
    return start, view[min(start, len(view)) :]


def save_tensors(
    path: Path, tensors: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Atomically write tensors (and string metadata) as a safetensors file.

    The SHA-256 of the file's tensor bytes is recorded under ``DIGEST_KEY`` in its metadata
    and checked by :func:`load_tensors`.
    """
    import hashlib

    from safetensors.torch import save

    contiguous = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    # The digest covers the data section, which does not depend on the header: serialise once
    # with a placeholder of the digest's length, then put the digest in its place. The header
    # keeps its length, so the data section does not move.
    meta = {**(metadata or {}), DIGEST_KEY: _DIGEST_PLACEHOLDER}
    blob = bytearray(save(contiguous, metadata=meta))
    start, data = _data_section(blob)
    digest = hashlib.sha256(data).hexdigest()
    placeholder = f'"{DIGEST_KEY}":"{_DIGEST_PLACEHOLDER}"'.encode()
    at = blob.find(placeholder, 8, start)
    if at < 0:  # a safetensors that writes its header differently: build it again, once
        blob = bytearray(save(contiguous, metadata={**meta, DIGEST_KEY: digest}))
    else:
        blob[at : at + len(placeholder)] = f'"{DIGEST_KEY}":"{digest}"'.encode()
    atomic_write_bytes(path, bytes(blob))


def load_tensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read a safetensors file (never unpickles) and check its digest.

    Returns the tensors and the file's metadata (without the digest).

    Raises
    ------
    CheckpointError
        The file is missing, is not safetensors, or its tensor bytes do not match the SHA-256
        recorded when it was written (a flipped bit, a partial copy).

    Warns
    -----
    UserWarning
        Once per file written before digests were recorded: it loads unchecked.
    """
    import hashlib

    from safetensors.torch import load

    if not path.is_file():
        raise CheckpointError(f"{path} is missing.")
    try:
        blob = path.read_bytes()
        tensors = load(blob)
        start, data = _data_section(blob)
        header = json.loads(bytes(blob[8:start]))
        metadata = dict(header.get("__metadata__") or {})
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}); it may be truncated or "
            "corrupt. Re-run training, or resume from a run folder whose files are intact."
        ) from None
    expected = metadata.pop(DIGEST_KEY, None)
    if expected is None:
        if str(path) not in _warned_undigested:
            _warned_undigested.add(str(path))
            import warnings

            warnings.warn(
                f"{path} has no SHA-256 of its tensors (written by an older contractive), so "
                "damage to it cannot be detected; it is loaded as it is. Saving it again adds "
                "the digest.",
                UserWarning,
                stacklevel=2,
            )
    elif hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(
            f"{path} is corrupt: its tensor data do not match the SHA-256 recorded when it was "
            "written (a changed byte or a bad copy). Restore it from a backup, or re-run "
            "training."
        )
    return tensors, metadata


def metrics_line(metrics: Any) -> str:
    """One JSON line of ``metrics.jsonl`` from an epoch's metrics (a dataclass).

    Examples
    --------
    >>> from dataclasses import make_dataclass
    >>> Epoch = make_dataclass("Epoch", ["epoch", "recon"])
    >>> metrics_line(Epoch(1, 0.5))
    '{"epoch": 1, "recon": 0.5}\\n'
    """
    return json.dumps(asdict(metrics)) + "\n"


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parse ``metrics.jsonl``, skipping a torn last line left by a kill.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / METRICS_FILE
    >>> _ = path.write_text('{"epoch": 1}\\n{"epoch": 2}\\n{"epo')
    >>> read_metrics(path)
    [{'epoch': 1}, {'epoch': 2}]
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def write_metrics(run_dir: Path, history: Sequence[Any]) -> None:
    """Atomically replace ``metrics.jsonl`` with one line per epoch of ``history``.

    Examples
    --------
    >>> import tempfile
    >>> from dataclasses import make_dataclass
    >>> Epoch = make_dataclass("Epoch", ["epoch"])
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_metrics(folder, [Epoch(1), Epoch(2)])
    >>> read_metrics(folder / METRICS_FILE)
    [{'epoch': 1}, {'epoch': 2}]
    """
    text = "".join(metrics_line(m) for m in history)
    atomic_write_bytes(Path(run_dir) / METRICS_FILE, text.encode())


def append_metrics(run_dir: Path, metrics: Any) -> None:
    """Append one epoch's line to ``metrics.jsonl``.

    An append, not an atomic rewrite (a run's file grows by a line an epoch): a kill in the
    middle leaves a torn last line, which :func:`read_metrics` skips and a resume drops.

    Examples
    --------
    >>> import tempfile
    >>> from dataclasses import make_dataclass
    >>> Epoch = make_dataclass("Epoch", ["epoch"])
    >>> path = Path(tempfile.mkdtemp()) / METRICS_FILE
    >>> append_metrics(path.parent, Epoch(1))
    >>> append_metrics(path.parent, Epoch(2))
    >>> path.read_text().splitlines()
    ['{"epoch": 1}', '{"epoch": 2}']
    """
    path = Path(run_dir) / METRICS_FILE
    try:
        with path.open("a") as fh:
            fh.write(metrics_line(metrics))
    except OSError as exc:
        raise CheckpointError(
            f"Could not write {path}: {exc.strerror or exc}. The previous checkpoint is intact; "
            "free some space, then resume."
        ) from exc


def save_model(run_dir: Path, model: torch.nn.Module) -> None:
    """Atomically write the model's weights to ``model.safetensors``.

    Examples
    --------
    >>> import tempfile
    >>> from contractive.nn import mlp_autoencoder
    >>> folder = Path(tempfile.mkdtemp())
    >>> model = mlp_autoencoder([6, 3])
    >>> save_model(folder, model)
    >>> tensors, _ = load_tensors(folder / MODEL_FILE)
    >>> all(torch.equal(tensors[k], v) for k, v in model.state_dict().items())
    True
    """
    save_tensors(Path(run_dir) / MODEL_FILE, model.state_dict())


def build_model(
    config: Config, n_features: int, image_shape: tuple[int, ...] | None
) -> Autoencoder:
    """The autoencoder a config describes, for inputs of ``n_features`` values.

    Parameters
    ----------
    config : Config
        Model options (architecture, hidden, activation, tied, loss, conv geometry).
    n_features : int
        Input size.
    image_shape : tuple of int or None
        ``(H, W)`` or ``(C, H, W)``; required by the conv architecture.

    Examples
    --------
    >>> build_model(Config(hidden=[16]), 64, None).encoder
    Sequential(
      (0): Linear(in_features=64, out_features=16, bias=True)
      (1): Sigmoid()
    )
    >>> conv = build_model(Config(architecture="conv", hidden=[4], loss="mse"), 64, (8, 8))
    >>> conv.encoder[0], conv.output_activation
    (Conv2d(1, 4, kernel_size=(5, 5), stride=(2, 2), padding=(2, 2)), Identity())
    """
    output_activation = "sigmoid" if config.loss == "bce" else "identity"
    if config.architecture == "conv":
        if image_shape is None:
            raise ConfigError(
                "The 'architecture' parameter 'conv' needs image data (digits, mnist, "
                "fashion-mnist, or a 3-D/4-D .npy stack); this data has no image shape."
            )
        return conv_autoencoder(
            image_shape,
            config.hidden,
            kernel_size=config.kernel_size,
            stride=config.stride,
            padding=config.padding,
            activation=config.activation,
            output_activation=output_activation,
            tied=config.tied,
        )
    return mlp_autoencoder(
        [n_features, *config.hidden],
        activation=config.activation,
        output_activation=output_activation,
        tied=config.tied,
    )


def write_config(run_dir: Path, config: Config, meta: Mapping[str, Any]) -> None:
    """Atomically write ``config.json``, first removing temporaries a killed run left."""
    remove_stale_temporaries(run_dir)
    atomic_write_bytes(run_dir / CONFIG_FILE, config_to_json(config, meta).encode())


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the half-written ``.NAME.*.tmp`` files of a run's own files; return them.

    A process killed inside :func:`atomic_write_bytes` leaves its temporary file behind (the
    file it was replacing is intact). Each can be as large as a checkpoint, so a run folder
    that is killed and resumed again and again would fill the disk; config.json is written
    when a run starts or resumes, before any other file, which makes that the moment to
    clear them.
    """
    removed = []
    for name in (CONFIG_FILE, MODEL_FILE, CHECKPOINT_FILE, METRICS_FILE):
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def read_config(run_dir: Path) -> tuple[Config, dict[str, Any]]:
    """Read ``config.json``: the options and the derived metadata."""
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise CheckpointError(f"No such run folder: {run_dir}")
    if not path.is_file():
        raise CheckpointError(
            f"{path} is missing: {run_dir} is not a complete run folder (expected "
            f"{CONFIG_FILE}, {MODEL_FILE}, {METRICS_FILE})."
        )
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} does not hold a JSON object.")
    version = payload.get("format_version")
    if not is_int(version):
        raise CheckpointError(f"{path} has no 'format_version'; it was not written by contractive.")
    if version > CONFIG_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer contractive (format {version}; this version reads "
            f"up to {CONFIG_FORMAT_VERSION}). Upgrade contractive to read it."
        )
    missing = [k for k in ("config", "n_features") if k not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks the key(s) {', '.join(missing)}.")
    options = payload["config"]
    if not isinstance(options, dict):
        raise CheckpointError(f"{path}: 'config' must be a JSON object of options.")
    try:
        config = Config.from_dict(options, source=str(path))
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    # A missing option would silently take today's default and change what is resumed; only
    # the options that older runs could not have (their default describes those runs) may be.
    absent = [
        name for name in Config.field_names() if name not in options and name not in LATER_OPTIONS
    ]
    if absent:
        raise CheckpointError(
            f"{path} lacks the option(s) {', '.join(absent)}: it was edited, damaged, or "
            "written by a contractive without them. Restore it, or add them with the values "
            "the run was trained with."
        )
    meta = {k: v for k, v in payload.items() if k not in ("config", "format_version")}
    _check_meta(path, meta)
    return config, meta


_POSITIVE_INT = Interval(int, 1)


def _check_meta(path: Path, meta: Mapping[str, Any]) -> None:
    """Check what config.json records besides the options, before anything is built from it."""

    def bad(key: str, expected: str) -> CheckpointError:
        return CheckpointError(
            f"{path}: '{key}' must be {expected}, got {meta[key]!r}; the file was edited or "
            "damaged."
        )

    n = meta["n_features"]
    if n not in _POSITIVE_INT:
        raise bad("n_features", "a positive integer")
    shape = meta.get("image_shape")
    if shape is not None and not (
        isinstance(shape, list)
        and len(shape) in (2, 3)
        and all(s in _POSITIVE_INT for s in shape)
        and int(np.prod(shape)) == n
    ):
        raise bad("image_shape", f"null or 2 or 3 positive integers whose product is {n}")
    scaling = meta.get("scaling")
    if scaling is not None and not (
        isinstance(scaling, dict)
        and all(
            isinstance(scaling.get(k), list)
            and len(scaling[k]) == n
            and all(is_real(v) for v in scaling[k])
            for k in ("min", "max")
        )
    ):
        raise bad("scaling", f"null or an object with 'min' and 'max' lists of {n} numbers")
    if meta.get("data") is not None and not isinstance(meta["data"], dict):
        raise bad("data", "null or a JSON object")


@dataclass
class Run:
    """A trained model reloaded from its run folder, ready to encode and reconstruct.

    Attributes
    ----------
    path : Path
        The run folder.
    config : Config
        The options it was trained with.
    meta : dict
        What training derived: ``n_features``, ``image_shape``, ``scaling``, ``world_size``...
    model : Autoencoder
        The model with the saved weights, in eval mode, on the CPU.

    Examples
    --------
    >>> import tempfile
    >>> from contractive.data import load_dataset
    >>> from contractive.workflow import train_run
    >>> folder = Path(tempfile.mkdtemp()) / "cae"
    >>> _ = train_run(Config(hidden=[8], epochs=1), folder, quiet=True, plots=False)
    >>> run = load_run(folder)
    >>> run.config.hidden, run.n_features, run.meta["image_shape"]
    ([8], 64, [8, 8])
    >>> X = load_dataset("digits", split="test").X
    >>> run.encode(X).shape, run.reconstruct(X).shape
    ((360, 8), (360, 64))
    """

    path: Path
    config: Config
    meta: dict[str, Any]
    model: Autoencoder
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def n_features(self) -> int:
        """Input size the model was trained on."""
        return int(self.meta["n_features"])

    def prepare(self, X: np.ndarray) -> Tensor:
        """Check ``X`` against the training data's shape and apply the training scaling."""
        if X.ndim != 2:
            X = X.reshape(X.shape[0], -1)
        if X.shape[1] != self.n_features:
            raise DataError(
                f"X has {X.shape[1]} features, but the model in {self.path} was trained on "
                f"{self.n_features}."
            )
        X = np.asarray(X, dtype=np.float32)
        scaling = self.meta.get("scaling")
        if scaling:
            lo = np.asarray(scaling["min"], dtype=np.float32)
            span = np.asarray(scaling["max"], dtype=np.float32) - lo
            span[span == 0] = 1.0
            X = np.clip((X - lo) / span, 0.0, 1.0)
        return torch.from_numpy(np.ascontiguousarray(X))

    @torch.no_grad()
    def encode(self, X: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """Codes of ``X`` (n_samples, n_features) as a float32 array ``(n_samples, d_h)``."""
        x = self.prepare(X)
        parts = [
            self.model.encode(x[i : i + batch_size].to(self.device)).flatten(1).cpu()
            for i in range(0, x.shape[0], batch_size)
        ]
        return torch.cat(parts).numpy()

    @torch.no_grad()
    def reconstruct(self, X: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """Reconstructions of ``X``, same shape, in the model's (scaled) input space."""
        x = self.prepare(X)
        parts = [
            self.model(x[i : i + batch_size].to(self.device)).x_hat.cpu()
            for i in range(0, x.shape[0], batch_size)
        ]
        return torch.cat(parts).numpy()


def load_run(path: str | os.PathLike[str]) -> Run:
    """Load a run folder: config.json and model.safetensors (no pickle anywhere).

    Raises
    ------
    CheckpointError
        A file is missing, truncated, corrupt, from a newer version, or does not match the
        model the config describes.

    Examples
    --------
    >>> import tempfile
    >>> from contractive.workflow import train_run
    >>> folder = Path(tempfile.mkdtemp()) / "cae"
    >>> _ = train_run(Config(hidden=[8], epochs=2), folder, quiet=True, plots=False)
    >>> sorted(p.name for p in folder.iterdir())
    ['checkpoint.safetensors', 'config.json', 'metrics.jsonl', 'model.safetensors']
    >>> run = load_run(folder)
    >>> run.model.training, run.model.encoder[0].weight.shape
    (False, torch.Size([8, 64]))
    >>> (folder / MODEL_FILE).unlink()
    >>> load_run(folder)
    Traceback (most recent call last):
        ...
    contractive.exceptions.CheckpointError: .../cae/model.safetensors is missing.
    """
    run_dir = Path(path)
    config, meta = read_config(run_dir)
    image_shape = tuple(meta["image_shape"]) if meta.get("image_shape") else None
    model = build_model(config, int(meta["n_features"]), image_shape)
    tensors, _ = load_tensors(run_dir / MODEL_FILE)
    load_state(model, tensors, run_dir / MODEL_FILE)
    model.eval()
    return Run(run_dir, config, meta, model)


def load_state(model: torch.nn.Module, tensors: Mapping[str, Tensor], path: Path) -> None:
    """Load weights strictly, turning a mismatch into a CheckpointError naming the file."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    bad_shape = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or bad_shape:
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(unexpected)}" if unexpected else "",
                f"wrong shape {', '.join(bad_shape)}" if bad_shape else "",
            )
            if part
        )
        raise CheckpointError(f"{path} does not match the model in config.json ({detail}).")
    model.load_state_dict(dict(tensors))

"""Exceptions raised by contractive.

Every error a user can act on derives from :class:`ContractiveError`, and also from the builtin
exception a Python programmer would expect (``ValueError`` for bad input), so that
``except ValueError`` keeps working. The command-line tool turns these into one line on stderr.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ContractiveError",
    "DataError",
    "RunLockedError",
    "TrainingDivergedError",
    "UnsupportedEncoderError",
]


class ContractiveError(Exception):
    """Base class of every error contractive raises on purpose.

    Examples
    --------
    >>> from contractive.config import Config
    >>> try:
    ...     Config(epochs=0)
    ... except ContractiveError as exc:
    ...     print(f"{type(exc).__name__}: {exc}")
    ConfigError: The 'epochs' parameter must be an int in the range [1, inf). Got 0 instead.
    """


class ConfigError(ContractiveError, ValueError):
    """A configuration value, key or file is invalid (a usage error: CLI exit status 2).

    Examples
    --------
    >>> from contractive.config import Config
    >>> Config.from_dict({"epoch": 3})
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: Unknown key(s) in config: epoch. Valid keys: ...
    >>> issubclass(ConfigError, ValueError)
    True
    """


class DataError(ContractiveError, ValueError):
    """A dataset file is missing, corrupt, or holds values the model cannot take.

    Examples
    --------
    >>> from contractive.data import load_dataset
    >>> load_dataset("no-such-file.npy")
    Traceback (most recent call last):
        ...
    contractive.exceptions.DataError: No such file: no-such-file.npy
    """


class UnsupportedEncoderError(ContractiveError, ValueError):
    """A Jacobian-penalty method cannot handle the given encoder.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from contractive.penalties import jacobian_penalty
    >>> two_layers = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    >>> jacobian_penalty(two_layers, torch.rand(2, 4), method="analytic")
    Traceback (most recent call last):
        ...
    contractive.exceptions.UnsupportedEncoderError: method='analytic' needs one affine layer ...
    >>> jacobian_penalty(two_layers, torch.rand(2, 4), method="exact").shape
    torch.Size([2])
    """


class CheckpointError(ContractiveError, RuntimeError):
    """A run folder or checkpoint is missing, incomplete, corrupt or from a newer version.

    Examples
    --------
    >>> from contractive.runs import load_run
    >>> load_run("no-such-run")
    Traceback (most recent call last):
        ...
    contractive.exceptions.CheckpointError: No such run folder: no-such-run
    """


class RunLockedError(ContractiveError, RuntimeError):
    """Another process is writing the run folder (a runtime error: CLI exit status 1).

    Examples
    --------
    >>> from contractive.locking import RunLock
    >>> with RunLock("run"):
    ...     RunLock("run").acquire()
    Traceback (most recent call last):
        ...
    contractive.exceptions.RunLockedError: ... is in use by process ...
    """


class TrainingDivergedError(ContractiveError, RuntimeError):
    """The training loss became NaN or infinite.

    Examples
    --------
    A learning rate of 1e30 sends the weights to about 1e29 in one step, and the squared error
    of the next batch overflows float32:

    >>> import torch
    >>> from contractive.config import Config
    >>> from contractive.nn import mlp_autoencoder
    >>> from contractive.train import fit
    >>> model = mlp_autoencoder([4, 2], output_activation="identity")
    >>> config = Config(hidden=[2], loss="mse", optimizer="sgd", lr=1e30, epochs=3)
    >>> fit(model, torch.rand(8, 4), config)
    Traceback (most recent call last):
        ...
    contractive.exceptions.TrainingDivergedError: The training loss became ... learning rate ...
    """

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
    """Base class of every error contractive raises on purpose."""


class ConfigError(ContractiveError, ValueError):
    """A configuration value, key or file is invalid (a usage error: CLI exit status 2)."""


class DataError(ContractiveError, ValueError):
    """A dataset file is missing, corrupt, or holds values the model cannot take."""


class UnsupportedEncoderError(ContractiveError, ValueError):
    """A Jacobian-penalty method cannot handle the given encoder."""


class CheckpointError(ContractiveError, RuntimeError):
    """A run folder or checkpoint is missing, incomplete, corrupt or from a newer version."""


class RunLockedError(ContractiveError, RuntimeError):
    """Another process is writing the run folder (a runtime error: CLI exit status 1)."""


class TrainingDivergedError(ContractiveError, RuntimeError):
    """The training loss became NaN or infinite."""

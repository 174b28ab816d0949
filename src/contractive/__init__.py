"""contractive: contractive autoencoders on PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .analysis import (
    analyze,
    contraction_ratio,
    jacobian_spectrum,
    mean_jacobian_norm,
    sample_chain,
    saturation,
    tangent_directions,
)
from .config import Config
from .data import Dataset, load_dataset
from .evaluate import FinetuneResult, ProbeResult, finetune, linear_probe, train_stack
from .exceptions import (
    CheckpointError,
    ConfigError,
    ContractiveError,
    DataError,
    RunLockedError,
    TrainingDivergedError,
    UnsupportedEncoderError,
)
from .locking import RunLock
from .losses import bce_loss, mse_loss, reconstruction_loss
from .nn import Autoencoder, AutoencoderOutput, conv_autoencoder, mlp_autoencoder
from .penalties import encode_with_penalty, higher_order_penalty, jacobian_penalty
from .report import write_report
from .runs import Run, load_run
from .train import Callback, EpochMetrics, Trainer, fit
from .workflow import resume_run, train_run

if TYPE_CHECKING:
    from .estimator import ContractiveAutoencoder

__version__ = "0.1.0"

__all__ = [
    "Autoencoder",
    "AutoencoderOutput",
    "Callback",
    "CheckpointError",
    "Config",
    "ConfigError",
    "ContractiveAutoencoder",
    "ContractiveError",
    "DataError",
    "Dataset",
    "EpochMetrics",
    "FinetuneResult",
    "ProbeResult",
    "Run",
    "RunLock",
    "RunLockedError",
    "Trainer",
    "TrainingDivergedError",
    "UnsupportedEncoderError",
    "__version__",
    "analyze",
    "bce_loss",
    "contraction_ratio",
    "conv_autoencoder",
    "encode_with_penalty",
    "finetune",
    "fit",
    "higher_order_penalty",
    "jacobian_penalty",
    "jacobian_spectrum",
    "linear_probe",
    "load_dataset",
    "load_run",
    "mean_jacobian_norm",
    "mlp_autoencoder",
    "mse_loss",
    "reconstruction_loss",
    "resume_run",
    "sample_chain",
    "saturation",
    "tangent_directions",
    "train_run",
    "train_stack",
    "write_report",
]


def __getattr__(name: str) -> Any:
    # scikit-learn's estimator machinery is imported when the estimator is first used, not by
    # every `contractive` command.
    if name == "ContractiveAutoencoder":
        from .estimator import ContractiveAutoencoder

        return ContractiveAutoencoder
    raise AttributeError(f"module 'contractive' has no attribute {name!r}")

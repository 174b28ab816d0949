"""contractive: contractive autoencoders on PyTorch."""

from __future__ import annotations

from .exceptions import (
    CheckpointError,
    ConfigError,
    ContractiveError,
    DataError,
    TrainingDivergedError,
    UnsupportedEncoderError,
)
from .losses import bce_loss, mse_loss, reconstruction_loss
from .nn import Autoencoder, AutoencoderOutput, conv_autoencoder, mlp_autoencoder
from .penalties import encode_with_penalty, higher_order_penalty, jacobian_penalty

__version__ = "0.1.0"

__all__ = [
    "Autoencoder",
    "AutoencoderOutput",
    "CheckpointError",
    "ConfigError",
    "ContractiveError",
    "DataError",
    "TrainingDivergedError",
    "UnsupportedEncoderError",
    "__version__",
    "bce_loss",
    "conv_autoencoder",
    "encode_with_penalty",
    "higher_order_penalty",
    "jacobian_penalty",
    "mlp_autoencoder",
    "mse_loss",
    "reconstruction_loss",
]

"""contractive: contractive autoencoders on PyTorch.

Examples
--------
One training step of a CAE by hand: the reconstruction loss plus lambda times the squared
Frobenius norm of the encoder's Jacobian, both per sample, averaged over the batch.

>>> import torch
>>> import contractive
>>> model = contractive.mlp_autoencoder([64, 16])
>>> x = torch.rand(8, 64)
>>> h, penalty = contractive.encode_with_penalty(model.encoder, x)
>>> recon = contractive.bce_loss(model.reconstruct(h, x).logits, x)
>>> h.shape, recon.shape, penalty.shape
(torch.Size([8, 16]), torch.Size([8]), torch.Size([8]))
>>> loss = (recon + 0.1 * penalty).mean()
>>> loss.backward()
>>> model.encoder[0].weight.grad.shape
torch.Size([16, 64])

The same with a scikit-learn estimator:

>>> from contractive import ContractiveAutoencoder
>>> X = contractive.load_dataset("digits", split="test").X
>>> ContractiveAutoencoder(n_components=16, epochs=1).fit_transform(X).shape
(360, 16)
"""

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
from .tangent_prop import tangent_propagation_penalty
from .train import Callback, EpochMetrics, Trainer, fit
from .workflow import resume_run, train_run

if TYPE_CHECKING:
    from .estimator import ContractiveAutoencoder
    from .mtc import ManifoldTangentClassifier

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
    "ManifoldTangentClassifier",
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
    "tangent_propagation_penalty",
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
    if name == "ManifoldTangentClassifier":
        from .mtc import ManifoldTangentClassifier

        return ManifoldTangentClassifier
    raise AttributeError(f"module 'contractive' has no attribute {name!r}")

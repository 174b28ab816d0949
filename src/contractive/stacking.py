"""Greedy stacking: encoders as one layer list, the codes they compute, layer-wise training.

``train_stack``
    Greedy layer-wise training: layer ``k + 1`` is an autoencoder (a CAE with the paper's
    settings) trained on the codes of layer ``k``; :func:`contractive.evaluate.finetune` then
    fine-tunes the stack as a whole (the paper's CAE-2).
``stack_encoder`` and ``encode``
    Any encoder, or a sequence of them (a greedy stack), as one ``nn.Sequential`` of copies of
    its modules, and the codes it gives, in batches without gradients.
``greedy_layer_configs`` and ``stack_autoencoder``
    The configs of the layers of a ``Config(greedy=True)``, and the trained layers as one deep
    :class:`~contractive.nn.Autoencoder`, the model of a greedy run folder.

:mod:`contractive.evaluate` re-exports these names.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .config import Config
from .encoders import to_tensor
from .exceptions import ConfigError
from .nn import ACTIVATIONS, Autoencoder, MLPDecoder, make_activation, mlp_autoencoder
from .train import Callback, Trainer, resolve_device
from .validation import check_int

__all__ = [
    "ArrayLike",
    "EncoderLike",
    "as_samples",
    "encode",
    "greedy_layer_configs",
    "module_device",
    "stack_autoencoder",
    "stack_encoder",
    "train_stack",
]


#: What :func:`finetune` and :func:`encode` accept as an encoder:
#: an ``nn.Linear`` (its activation given separately), an :class:`Autoencoder` (its encoder),
#: any encoder ``nn.Module``, or a sequence of these applied in order (a greedy stack).
EncoderLike = nn.Module | Sequence[nn.Module]

ArrayLike = Tensor | np.ndarray

# Rows per forward pass when only predicting or encoding: large enough to keep the matrix
# units busy, small enough that a 1000-unit code of 4096 rows is 16 MB.
_EVAL_BATCH = 4096


# ---------------------------------------------------------------------------------------------
# Inputs.


def as_samples(X: ArrayLike, name: str) -> Tensor:
    """``X`` as a 2-D float32 tensor ``(n, d)`` with at least one row.

    Parameters
    ----------
    X : Tensor or ndarray
        The samples.
    name : str
        The parameter's name, for the message of a refusal.

    Returns
    -------
    Tensor

    Raises
    ------
    ConfigError
        When ``X`` is not a Tensor or array, not 2-D, or has no rows.

    Examples
    --------
    >>> as_samples(np.zeros((2, 3)), "X").dtype
    torch.float32
    >>> as_samples(np.zeros(3), "X_val")
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'X_val' parameter must be 2-D (n_samples,
    n_features) with at least one sample. Got shape (3,) instead.
    """
    X = to_tensor(X, name)
    if X.dim() != 2 or X.shape[0] == 0:
        raise ConfigError(
            f"The '{name}' parameter must be 2-D (n_samples, n_features) with at least one "
            f"sample. Got shape {tuple(X.shape)} instead."
        )
    return X.float()


# ---------------------------------------------------------------------------------------------
# Encoders as plain layer lists.


def _layers(encoder: EncoderLike, activation: str) -> list[nn.Module]:
    """Deep copies of the modules that map an input to its code, in order."""
    if isinstance(encoder, nn.Linear):
        # A bare affine layer: the activation is not part of the module.
        return [copy.deepcopy(encoder), make_activation(activation)]
    if isinstance(encoder, Autoencoder):
        layers: list[nn.Module] = []
        if encoder.input_shape is not None:
            # Conv encoders take images; the classifier is fed flat rows like the autoencoder.
            layers.append(nn.Unflatten(1, encoder.input_shape))
        layers += _flat_children(copy.deepcopy(encoder.encoder))
        if encoder.input_shape is not None:
            layers.append(nn.Flatten())
        return layers
    if isinstance(encoder, nn.Module):
        return _flat_children(copy.deepcopy(encoder))
    if isinstance(encoder, list | tuple) and len(encoder) > 0:
        return [m for part in encoder for m in _layers(part, activation)]
    raise ConfigError(
        "The 'encoder' parameter must be an nn.Linear, an Autoencoder, an encoder nn.Module "
        f"or a non-empty list or tuple of these. Got {type(encoder).__name__} instead."
    )


def _flat_children(module: nn.Module) -> list[nn.Module]:
    if type(module) is nn.Sequential:
        return [m for child in module for m in _flat_children(child)]
    return [module]


def stack_encoder(encoder: EncoderLike, *, activation: str = "sigmoid") -> nn.Sequential:
    """One ``nn.Sequential`` computing the code of ``encoder`` (copies of its modules).

    Parameters
    ----------
    encoder : EncoderLike
        An ``nn.Linear``, an :class:`Autoencoder`, an encoder module, or a sequence of these
        (e.g. the list :func:`train_stack` returns), applied in order.
    activation : str
        Put after each bare ``nn.Linear`` (a Linear inside a module keeps its own).

    Returns
    -------
    nn.Sequential
        Independent of ``encoder``: training it leaves the original untouched.

    Examples
    --------
    >>> from contractive import mlp_autoencoder
    >>> stack_encoder([mlp_autoencoder([6, 4]), mlp_autoencoder([4, 3])])
    Sequential(
      (0): Linear(in_features=6, out_features=4, bias=True)
      (1): Sigmoid()
      (2): Linear(in_features=4, out_features=3, bias=True)
      (3): Sigmoid()
    )
    """
    return nn.Sequential(*_layers(encoder, activation))


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter; the CPU for a module without parameters.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    torch.device

    Examples
    --------
    >>> module_device(nn.Linear(2, 2)), module_device(nn.Sigmoid())
    (device(type='cpu'), device(type='cpu'))
    """
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def encode(
    encoder: EncoderLike,
    X: ArrayLike,
    *,
    batch_size: int = _EVAL_BATCH,
    activation: str = "sigmoid",
) -> Tensor:
    """Codes of ``X`` under ``encoder``, computed in batches without gradients.

    Parameters
    ----------
    encoder : EncoderLike
        See :func:`stack_encoder`.
    X : Tensor or ndarray
        Inputs ``(n, d_x)``.
    batch_size : int
        Rows per forward pass.
    activation : str
        After each bare ``nn.Linear``.

    Returns
    -------
    Tensor
        ``(n, d_h)`` float32 codes on the CPU (flattened for conv encoders).

    Examples
    --------
    >>> import torch
    >>> from contractive import mlp_autoencoder
    >>> encode(mlp_autoencoder([6, 4]), torch.rand(10, 6)).shape
    torch.Size([10, 4])
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    X = as_samples(X, "X")
    net = stack_encoder(encoder, activation=activation).eval()
    device = module_device(net)
    with torch.no_grad():
        parts = [
            net(X[i : i + batch_size].to(device)).flatten(1).cpu()
            for i in range(0, X.shape[0], batch_size)
        ]
    return torch.cat(parts)


# ---------------------------------------------------------------------------------------------
# Greedy stacking.


def train_stack(
    X: ArrayLike,
    configs: Sequence[Config],
    *,
    X_val: ArrayLike | None = None,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str | None = None,
    on_layer: Callable[[int, Autoencoder, Tensor], None] | None = None,
) -> list[Autoencoder]:
    """Train autoencoders greedily: layer ``k + 1`` learns from the codes of layer ``k``.

    Layer 1 is trained on ``X``; then every input is encoded by it (without gradients) and
    layer 2 is trained on those codes, and so on. Each layer is an MLP autoencoder built from
    its config (``hidden``, ``activation``, ``tied``, ``loss``) and trained by
    :class:`~contractive.train.Trainer` with that config's objective, so a stack of CAEs is
    ``configs = [Config(hidden=[1000]), Config(hidden=[1000])]``. Each layer's weights are
    initialised from ``torch.manual_seed(config.seed)`` without touching the caller's global
    random state, so the result depends on the configs alone.

    Parameters
    ----------
    X : Tensor or ndarray
        Training inputs ``(n, d_x)``; with a ``"bce"`` loss they must lie in [0, 1].
    configs : sequence of Config
        One per layer, bottom first. ``architecture`` must be ``"mlp"``.
    X_val : Tensor or ndarray, optional
        Validation inputs, encoded alongside and passed to each layer's trainer (for its
        validation metrics and ``patience``).
    callbacks : sequence of Callback
        Given to every layer's trainer (e.g. :class:`~contractive.callbacks.EpochLogger`).
    device : torch.device or str, optional
        Defaults to each config's ``device``.
    on_layer : callable, optional
        Called as ``on_layer(k, layer, inputs)`` after layer ``k`` (0-based) is trained, with
        the inputs ``(n, d_k)`` it was trained on.

    Returns
    -------
    list of Autoencoder
        The trained layers, bottom first; pass the list to :func:`finetune` or
        :func:`stack_encoder`.

    Examples
    --------
    >>> import torch
    >>> from contractive.config import Config
    >>> cfgs = [Config(hidden=[8], epochs=1, batch_size=16), Config(hidden=[4], epochs=1)]
    >>> layers = train_stack(torch.rand(32, 12), cfgs)
    >>> [layer.encoder[0].weight.shape for layer in layers]
    [torch.Size([8, 12]), torch.Size([4, 8])]
    """
    from .data import check_unit_interval
    from .runs import build_model

    if isinstance(configs, Config) or not configs:
        raise ConfigError("The 'configs' parameter must be a non-empty sequence of Config.")
    inputs = as_samples(X, "X")
    val = as_samples(X_val, "X_val") if X_val is not None else None
    layers: list[Autoencoder] = []
    for k, config in enumerate(configs):
        if not isinstance(config, Config):
            raise ConfigError(
                f"configs[{k}] must be a Config. Got {type(config).__name__} instead."
            )
        if config.architecture != "mlp":
            raise ConfigError(
                f"configs[{k}]: train_stack stacks MLP layers; the 'architecture' parameter "
                f"must be 'mlp'. Got {config.architecture!r} instead."
            )
        if config.loss == "bce":
            # Sigmoid codes are in [0, 1]; a layer below with another activation may not be.
            check_unit_interval(inputs.numpy(), "X" if k == 0 else f"the codes of layer {k}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_model(config, inputs.shape[1], None)
        dev = torch.device(device) if device is not None else resolve_device(config.device)
        Trainer(model, config, callbacks=list(callbacks), device=dev).fit(inputs, val)
        model.eval()
        layers.append(model)
        if on_layer is not None:
            on_layer(k, model, inputs)
        if k + 1 < len(configs):
            inputs = encode(model, inputs)  # (n, d_h_k): the next layer's training data
            val = encode(model, val) if val is not None else None
    return layers


def greedy_layer_configs(config: Config) -> list[Config]:
    """The configs of the layers of a greedy stack, bottom first, for :func:`train_stack`.

    Layer ``k`` (0-based) is a one-layer autoencoder of ``config.hidden[k]`` units trained with
    everything else of ``config`` (its objective, noise, optimiser, epochs, ...) and the seed
    ``config.seed + k``, so that the layers draw different initial weights, shuffles and
    noise, and a stack of one layer is trained exactly as ``config`` without ``greedy``.

    Parameters
    ----------
    config : Config
        The whole stack's options; ``greedy`` need not be set.

    Returns
    -------
    list of Config
        One per hidden layer, each with ``greedy=False``.

    Examples
    --------
    >>> configs = greedy_layer_configs(Config(hidden=[1000, 500], greedy=True, seed=7))
    >>> [(c.hidden, c.seed, c.greedy) for c in configs]
    [([1000], 7, False), ([500], 8, False)]
    """
    if not isinstance(config, Config):
        raise ConfigError(
            f"The 'config' parameter must be a Config. Got {type(config).__name__} instead."
        )
    return [
        config.replace(hidden=[size], greedy=False, seed=config.seed + k)
        for k, size in enumerate(config.hidden)
    ]


def _activation_name(module: nn.Module) -> str | None:
    """The name in ACTIVATIONS of a module of that type (None for any other module)."""
    for name, factory in ACTIVATIONS.items():
        made = factory()
        if type(module) is type(made) and repr(module) == repr(made):
            return name
    return None


def _dense_parts(layer: Autoencoder, k: int) -> tuple[nn.Linear, str, MLPDecoder]:
    """Layer ``k``'s Linear, its activation's name and its decoder; refused unless one MLP layer."""
    modules = _flat_children(layer.encoder) if isinstance(layer, Autoencoder) else []
    linear = modules[0] if len(modules) == 2 else None
    activation = _activation_name(modules[1]) if len(modules) == 2 else None
    decoder = layer.decoder if isinstance(layer, Autoencoder) else None
    if (
        not isinstance(linear, nn.Linear)
        or activation is None
        or not isinstance(decoder, MLPDecoder)
        or layer.input_shape is not None
    ):
        raise ConfigError(
            "The 'layers' parameter must hold one-layer MLP autoencoders (nn.Linear and an "
            f"activation, an MLPDecoder), as train_stack trains them. Got layer {k + 1}: "
            f"{type(layer).__name__} instead."
        )
    return linear, activation, decoder


def stack_autoencoder(layers: Sequence[Autoencoder]) -> Autoencoder:
    """The layers of a greedy stack as one deep MLP autoencoder, with their weights copied in.

    The result is what :func:`~contractive.nn.mlp_autoencoder` builds for the sizes
    ``[d_x, d_h1, ..., d_hK]`` (the model ``Config(hidden=[d_h1, ..., d_hK])`` describes, so a
    greedy run folder loads like any other): encoder layer ``k`` is layer ``k``'s encoder, so
    its code is exactly the stack's (``stack_encoder(layers)``); decoder layer ``j`` is the
    decoder of layer ``K - j``, its bias and, untied, its weights (tied, the weights are the
    transposed encoder weights in both). Between decoder layers the deep model applies the
    hidden activation where layer ``k + 1`` applied its output activation: the two must be
    the same for the deep model to reconstruct as the stack does (sigmoid units with a
    cross-entropy loss, the paper's CAE-2), and the layers must agree on the activation and on
    tying.

    Parameters
    ----------
    layers : sequence of Autoencoder
        One-layer MLP autoencoders, bottom first, each trained on the codes of the one below
        (what :func:`train_stack` returns).

    Returns
    -------
    Autoencoder
        A new model; the layers are left untouched.

    Raises
    ------
    ConfigError
        No layers, a layer that is not a one-layer MLP autoencoder, sizes that do not chain,
        activations or tying that differ, or an upper layer whose output activation is not the
        hidden activation.

    Examples
    --------
    >>> import torch
    >>> from contractive import mlp_autoencoder
    >>> layers = [mlp_autoencoder([6, 4]), mlp_autoencoder([4, 3])]
    >>> deep = stack_autoencoder(layers)
    >>> deep.encoder
    Sequential(
      (0): Linear(in_features=6, out_features=4, bias=True)
      (1): Sigmoid()
      (2): Linear(in_features=4, out_features=3, bias=True)
      (3): Sigmoid()
    )
    >>> x = torch.rand(5, 6)
    >>> torch.equal(deep.encode(x), layers[1].encode(layers[0].encode(x)))
    True
    >>> x_hat = layers[0].decode(layers[1].decode(deep.encode(x)))
    >>> torch.allclose(deep(x).x_hat, x_hat)
    True
    """
    if isinstance(layers, Autoencoder) or not isinstance(layers, list | tuple) or not layers:
        raise ConfigError(
            "The 'layers' parameter must be a non-empty list of Autoencoder. "
            f"Got {type(layers).__name__} instead."
        )
    parts = [_dense_parts(layer, k) for k, layer in enumerate(layers)]
    activation = parts[0][1]
    tied = parts[0][2].tied
    for k, (linear, act, decoder) in enumerate(parts[1:], start=1):
        below = parts[k - 1][0].out_features
        if linear.in_features != below:
            raise ConfigError(
                f"Layer {k + 1} of the 'layers' parameter takes {linear.in_features} inputs, "
                f"but layer {k} gives {below} codes."
            )
        if act != activation or decoder.tied != tied:
            raise ConfigError(
                f"Layer {k + 1} of the 'layers' parameter has activation {act!r} and "
                f"tied={decoder.tied}; layer 1 has {activation!r} and tied={tied}. The layers "
                "of one stack must agree."
            )
        output = _activation_name(layers[k].output_activation)
        if output != activation:
            raise ConfigError(
                f"Layer {k + 1} of the 'layers' parameter decodes through {output!r}, but the "
                f"hidden activation is {activation!r}: the deep model could not reconstruct as "
                "the stack does (train sigmoid layers with loss='bce', or identity layers with "
                "loss='mse')."
            )
    output_activation = _activation_name(layers[0].output_activation)
    assert output_activation is not None  # made by make_activation, as every Autoencoder's
    sizes = [parts[0][0].in_features, *(linear.out_features for linear, _, _ in parts)]
    deep = mlp_autoencoder(
        sizes, activation=activation, output_activation=output_activation, tied=tied
    )
    n = len(parts)
    assert isinstance(deep.decoder, MLPDecoder)
    deep_linears = [m for m in deep.encoder.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for k, (linear, _, decoder) in enumerate(parts):
            deep_linears[k].weight.copy_(linear.weight)  # (d_h_k, d_in_k)
            deep_linears[k].bias.copy_(linear.bias)
            j = n - 1 - k  # the deep decoder maps the top code down: layer k decodes at step j
            if tied:
                deep.decoder.biases[j].copy_(decoder.biases[0])  # (d_in_k,)
            else:
                deep.decoder.layers[j].load_state_dict(decoder.layers[0].state_dict())
    return deep.to(module_device(layers[0]))

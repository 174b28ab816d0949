"""Tests of contractive.tangents: tangent bases against a float64 full SVD, and their storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from contractive.analysis import tangent_directions
from contractive.exceptions import ConfigError
from contractive.nn import mlp_autoencoder
from contractive.tangents import subspace_angle, tangent_bases


def _separated_encoder() -> nn.Module:
    """A sigmoid layer whose weight has well-separated singular values 8, 4, 2, 1, 0.5, ..."""
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(12, 12, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(20, 12, dtype=torch.float64))
    s = 8.0 * 0.5 ** torch.arange(12, dtype=torch.float64)
    linear = nn.Linear(20, 12).double()
    with torch.no_grad():
        linear.weight.copy_(u @ torch.diag(s) @ v.t())
        linear.bias.zero_()
    return nn.Sequential(linear, nn.Sigmoid())


def test_subspace_iteration_agrees_with_a_float64_svd_where_values_are_separated() -> None:
    encoder = _separated_encoder()
    x = 0.05 * torch.randn(30, 20, dtype=torch.float64)  # near 0: s' is nearly constant
    fast = tangent_bases(encoder, x, k=3, iterations=6, oversample=4)
    exact = tangent_directions(encoder, x, k=3)
    assert subspace_angle(fast.vectors, exact.vectors.numpy()).max() < 1e-4
    np.testing.assert_allclose(fast.values, exact.values.numpy(), rtol=1e-5)


@pytest.mark.parametrize("sizes", [[10, 7], [10, 8, 6]])
def test_the_svd_method_is_the_full_svd_of_each_jacobian(sizes: list[int]) -> None:
    torch.manual_seed(1)
    model = mlp_autoencoder(sizes).double()
    x = torch.rand(6, 10, dtype=torch.float64)
    bases = tangent_bases(model, x, k=3, method="svd")
    exact = tangent_directions(model, x, k=3)
    np.testing.assert_allclose(bases.values, exact.values.numpy(), rtol=1e-5)
    # Singular vectors are defined up to sign: compare the projections v v^T.
    got = np.einsum("nki,nkj->nkij", bases.vectors, bases.vectors)
    want = np.einsum("nki,nkj->nkij", exact.vectors.numpy(), exact.vectors.numpy())
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_more_iterations_move_closer_to_the_svd() -> None:
    # No oversampling, so the subspace must converge by iterating (with 10 extra directions a
    # 10-unit code is captured at once); float64, so the medians are far above rounding.
    torch.manual_seed(2)
    model = mlp_autoencoder([16, 12, 10]).double()  # a stack: the Jacobian of both layers
    x = torch.rand(20, 16, dtype=torch.float64)
    exact = tangent_bases(model, x, k=4, method="svd").vectors
    errors = [
        float(
            np.median(
                subspace_angle(
                    tangent_bases(model, x, k=4, iterations=q, oversample=0).vectors, exact
                )
            )
        )
        for q in (0, 4, 16)
    ]
    assert errors[0] > 10 * errors[1] > 100 * errors[2]
    assert errors[2] < 1e-4


def test_vectors_are_orthonormal_and_values_decrease() -> None:
    bases = tangent_bases(_separated_encoder(), torch.rand(7, 20, dtype=torch.float64), k=4)
    gram = np.einsum("nki,nji->nkj", bases.vectors, bases.vectors)
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(4), gram.shape), atol=1e-5)
    assert np.all(np.diff(bases.values, axis=1) <= 1e-6)


def test_out_writes_a_memory_mapped_npy_and_its_values(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model, x = mlp_autoencoder([10, 6]), torch.rand(9, 10)
    in_memory = tangent_bases(model, x, k=2, batch_size=4)
    out = tmp_path / "tangents.npy"
    stored = tangent_bases(model, x, k=2, batch_size=4, out=out, dtype="float16")
    assert isinstance(stored.vectors, np.memmap)
    assert stored.vectors.dtype == np.float16
    assert stored.vectors.shape == (9, 2, 10)
    np.testing.assert_allclose(stored.vectors, in_memory.vectors, atol=2e-3)
    np.testing.assert_array_equal(np.load(tmp_path / "tangents.values.npy"), stored.values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tangents.npy", "tangents.values.npy"]


def test_batches_do_not_change_the_svd_result() -> None:
    torch.manual_seed(4)
    model, x = mlp_autoencoder([10, 6]), torch.rand(9, 10)
    a = tangent_bases(model, x, k=2, method="svd", batch_size=2)
    b = tangent_bases(model, x, k=2, method="svd", batch_size=100)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"k": 7},
            r"'k' parameter of tangent_bases must be at most min\(d_h, d_x\) = 6. "
            r"Got 7 instead",
        ),
        ({"k": 0}, r"'k' parameter of tangent_bases must be an int in the range \[1, inf\)"),
        ({"k": 2, "method": "qr"}, r"'method' parameter of tangent_bases must be a str among"),
        ({"k": 2, "dtype": "int8"}, r"'dtype' parameter of tangent_bases must be a str among"),
        ({"k": 2, "batch_size": 0}, r"'batch_size' parameter of tangent_bases must be an int"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        tangent_bases(mlp_autoencoder([10, 6]), torch.rand(3, 10), **kwargs)  # type: ignore[arg-type]

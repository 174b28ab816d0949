"""Reliability, properties: penalties and data loaders over random shapes, activations, dtypes.

Complements, without repeating, the property tests already in the suite:
tests/test_penalties.py::test_property_analytic_matches_brute_force (the analytic penalty of one
Linear/Conv2d layer against autograd), tests/test_data.py::test_csv_round_trip_property and
::test_read_idx_round_trip. Here: the networks contractive builds (mlp_autoencoder,
conv_autoencoder) with every activation it offers, the exact method against autograd, analytic
against exact, the invariants every method must keep, and the .npy/.npz loaders and their
error reports. Hypothesis runs derandomized (a fixed seed) with no example database.
"""

from __future__ import annotations

import math
import re
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from contractive.data import load_dataset
from contractive.exceptions import DataError
from contractive.nn import ACTIVATIONS, conv_autoencoder, mlp_autoencoder
from contractive.penalties import encode_with_penalty, jacobian_penalty

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
DATA_SETTINGS = settings(SETTINGS, max_examples=60)  # a few ms an example
DTYPES = [torch.float32, torch.float64]
# Relative tolerance of a penalty against a float64 reference, by the dtype it ran in.
RTOL = {torch.float32: 2e-4, torch.float64: 1e-10}


def autograd_penalty(encoder: nn.Module, x: Tensor) -> Tensor:
    """||J_f(x_b)||_F^2 per sample, from torch.autograd.functional.jacobian in float64."""
    enc64 = _float64_copy(encoder)
    out = []
    for xb in x.double():
        jac = torch.autograd.functional.jacobian(lambda z: enc64(z.unsqueeze(0)).reshape(-1), xb)
        out.append(jac.pow(2).sum())
    return torch.stack(out)


def _float64_copy(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module).double()


def assert_close(actual: Tensor, expected: Tensor, dtype: torch.dtype) -> None:
    actual, expected = actual.detach().double(), expected.detach().double()
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    err = float((actual - expected).abs().max()) if expected.numel() else 0.0
    assert err <= RTOL[dtype] * scale + 1e-30, (err, scale, actual, expected)


def inputs(batch: int, d: int, dtype: torch.dtype, seed: int, scale: float) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, d, generator=g, dtype=torch.float64) * scale).to(dtype)


# ---------------------------------------------------------------------------------------------
# Penalties of the networks contractive builds.


@SETTINGS
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=3),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    dtype=st.sampled_from(DTYPES),
    batch=st.integers(1, 4),
    scale=st.sampled_from([1.0, 4.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_exact_penalty_of_mlp_encoders_matches_autograd(
    sizes: list[int],
    activation: str,
    dtype: torch.dtype,
    batch: int,
    scale: float,
    seed: int,
) -> None:
    torch.manual_seed(seed)
    encoder = mlp_autoencoder(sizes, activation=activation).encoder.to(dtype)
    x = inputs(batch, sizes[0], dtype, seed, scale)
    h, pen = encode_with_penalty(encoder, x, method="exact")
    assert pen.shape == (batch,)
    assert pen.dtype == dtype
    assert_close(h, encoder(x), dtype)
    assert_close(pen, autograd_penalty(encoder, x), dtype)
    if len(sizes) == 2:  # one layer: the analytic form applies and must agree
        h_a, pen_a = encode_with_penalty(encoder, x, method="analytic")
        assert pen_a.dtype == dtype
        assert_close(h_a, encoder(x), dtype)
        assert_close(pen_a, pen, dtype)


@SETTINGS
@given(
    channels=st.integers(1, 2),
    hidden=st.integers(1, 3),
    size=st.integers(3, 6),
    kernel=st.sampled_from([1, 3]),
    stride=st.integers(1, 2),
    padding=st.integers(0, 1),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**31 - 1),
)
def test_analytic_penalty_of_conv_encoders_matches_exact(
    channels: int,
    hidden: int,
    size: int,
    kernel: int,
    stride: int,
    padding: int,
    activation: str,
    dtype: torch.dtype,
    seed: int,
) -> None:
    torch.manual_seed(seed)
    model = conv_autoencoder(
        (channels, size, size + 1),
        [hidden],
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        activation=activation,
    ).to(dtype)
    x = model.prepare(inputs(2, channels * size * (size + 1), dtype, seed, 1.0))
    _, exact = encode_with_penalty(model.encoder, x, method="exact")
    h, analytic = encode_with_penalty(model.encoder, x, method="analytic")
    assert analytic.shape == (2,)
    assert analytic.dtype == dtype
    assert_close(h, model.encoder(x), dtype)
    assert_close(analytic, exact, dtype)


@SETTINGS
@given(
    d_in=st.integers(1, 8),
    d_h=st.integers(1, 8),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    method=st.sampled_from(["analytic", "exact"]),
    dtype=st.sampled_from(DTYPES),
    batch=st.integers(2, 5),
    scale=st.sampled_from([1.0, 1e3]),
    seed=st.integers(0, 2**31 - 1),
)
def test_penalty_invariants(
    d_in: int,
    d_h: int,
    activation: str,
    method: str,
    dtype: torch.dtype,
    batch: int,
    scale: float,
    seed: int,
) -> None:
    """Finite and non-negative even for saturating inputs; one value per sample, unaffected by
    the other samples in the batch or their order."""
    torch.manual_seed(seed)
    encoder = mlp_autoencoder([d_in, d_h], activation=activation).encoder.to(dtype)
    x = inputs(batch, d_in, dtype, seed, scale)
    pen = jacobian_penalty(encoder, x, method=method)
    assert pen.shape == (batch,)
    assert pen.dtype == dtype
    assert bool(torch.isfinite(pen).all())
    assert bool((pen >= 0).all())
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    assert_close(jacobian_penalty(encoder, x[perm], method=method), pen[perm], dtype)
    assert_close(jacobian_penalty(encoder, x[:1], method=method), pen[:1], dtype)
    # The bound every elementwise activation here keeps: |s'| <= max slope, so
    # ||J||_F^2 <= max_slope^2 ||W||_F^2 (max slope 1 for all but gelu, about 1.13).
    bound = 1.13**2 * float(encoder[0].weight.detach().double().pow(2).sum())
    assert float(pen.detach().max()) <= bound * (1 + RTOL[dtype])


@SETTINGS
@given(
    d_in=st.integers(1, 8),
    d_h=st.integers(1, 8),
    dtype=st.sampled_from(DTYPES),
    method=st.sampled_from(["analytic", "exact", "hutchinson"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_linear_encoder_penalty_is_weight_decay(
    d_in: int, d_h: int, dtype: torch.dtype, method: str, seed: int
) -> None:
    """Rifai et al. (2011): with a linear encoder the CAE penalty is L2 weight decay."""
    torch.manual_seed(seed)
    encoder = mlp_autoencoder([d_in, d_h], activation="identity").encoder.to(dtype)
    x = inputs(3, d_in, dtype, seed, 5.0)
    pen = jacobian_penalty(
        encoder, x, method=method, probes=4096, generator=torch.Generator().manual_seed(seed)
    )
    decay = encoder[0].weight.detach().double().pow(2).sum().expand(3)
    if method == "hutchinson":  # an estimate: within a few standard deviations
        assert torch.allclose(pen.double(), decay, rtol=0.2)
    else:
        assert_close(pen, decay, dtype)


# ---------------------------------------------------------------------------------------------
# Data loaders.

NUMERIC_DTYPES = [
    np.bool_,
    np.uint8,
    np.int8,
    np.uint16,
    np.int16,
    np.int32,
    np.int64,
    np.float16,
    np.float32,
    np.float64,
]


def random_array(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype is np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -(2**20)), min(info.max, 2**20), shape, dtype=dtype)
    return (rng.normal(size=shape) * 100).astype(dtype)


@DATA_SETTINGS
@given(
    n=st.integers(1, 5),
    rest=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    dtype=st.sampled_from(NUMERIC_DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_npy_round_trip(n: int, rest: list[int], dtype: type, seed: int) -> None:
    arr = random_array((n, *rest), dtype, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        np.save(path, arr)
        ds = load_dataset(path)
        mapped = load_dataset(path, mmap=True)
        flat = arr.reshape(n, -1)
        np.testing.assert_array_equal(ds.X, flat.astype(np.float32))
        assert ds.X.dtype == np.float32
        assert ds.image_shape == (tuple(rest) if len(rest) > 1 else None)
        assert mapped.X.dtype == arr.dtype  # memory-mapped: the file's own dtype
        np.testing.assert_array_equal(np.asarray(mapped.X), flat)
        np.testing.assert_array_equal(mapped.subset(np.arange(n)).X, ds.X)


@DATA_SETTINGS
@given(
    n=st.integers(1, 6),
    d=st.integers(1, 5),
    x_dtype=st.sampled_from(NUMERIC_DTYPES),
    y_dtype=st.sampled_from([np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64]),
    names=st.sampled_from(
        [("X", "y", None), ("x", "labels", None), ("data", "target", None), ("X", "digit", "digit")]
    ),
    column_labels=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_npz_round_trip(
    n: int,
    d: int,
    x_dtype: type,
    y_dtype: type,
    names: tuple[str, str, str | None],
    column_labels: bool,
    seed: int,
) -> None:
    x_key, y_key, label_column = names
    X = random_array((n, d), x_dtype, seed)
    y = np.random.default_rng(seed).integers(0, 100, n).astype(y_dtype)
    stored_y = y[:, None] if column_labels else y  # (n, 1) labels are accepted too
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.npz"
        np.savez(path, **{x_key: X, y_key: stored_y})
        ds = load_dataset(path, label_column=label_column)
    np.testing.assert_array_equal(ds.X, X.astype(np.float32))
    assert ds.y is not None
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, y.astype(np.int64))


@DATA_SETTINGS
@given(
    n=st.integers(1, 8),
    d=st.integers(1, 6),
    fmt=st.sampled_from(["npy", "npz", "csv", "npy-mmap"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    bad=st.lists(
        st.tuples(st.integers(0, 63), st.sampled_from([math.nan, math.inf, -math.inf])),
        min_size=1,
        max_size=6,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_non_finite_values_are_counted_and_located(
    n: int, d: int, fmt: str, dtype: type, bad: list[tuple[int, float]], seed: int
) -> None:
    X = np.random.default_rng(seed).random((n, d)).astype(dtype)
    cells = {cell % (n * d): value for cell, value in bad}
    for cell, value in cells.items():
        X.flat[cell] = value
    first_row = min(cells) // d
    count = len(cells)
    with tempfile.TemporaryDirectory() as tmp:
        suffix = fmt.split("-")[0]
        path = Path(tmp) / f"d.{suffix}"
        if suffix == "npy":
            np.save(path, X)
        elif suffix == "npz":
            np.savez(path, X=X)
        else:
            np.savetxt(path, X, delimiter=",")
        plural = "s" if count > 1 else ""
        pattern = (
            rf"^{re.escape(str(path))} has {count} non-finite value{plural} \(NaN, infinity, "
            rf"or too large for float32\); the first is in row {first_row} \(counting from 0\)$"
        )
        with pytest.raises(DataError, match=pattern):
            load_dataset(path, mmap=fmt == "npy-mmap")


@DATA_SETTINGS
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 5),
    header=st.booleans(),
    cell=st.integers(0, 29),
    word=st.text(string.ascii_letters, min_size=1, max_size=6).filter(
        lambda w: w.lower() not in ("nan", "inf", "infinity", "e")
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_text_in_a_csv_is_located(
    rows: int, cols: int, header: bool, cell: int, word: str, seed: int
) -> None:
    values = np.random.default_rng(seed).random((rows, cols)).round(3).astype(str)
    row, col = divmod(cell % (rows * cols), cols)
    values[row, col] = word
    head = ",".join(f"f{i}" for i in range(cols)) + "\n" if header else ""
    text = head + "".join(",".join(r) + "\n" for r in values)
    line = row + 1 + int(header)
    named = f" \\('f{col}'\\)" if header else ""
    # A word in the first line of a file without header is taken for a header instead.
    assume(header or row > 0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.csv"
        path.write_text(text)
        pattern = rf", line {line}, column {col + 1}{named} holds '{word}', which is not a number$"
        with pytest.raises(DataError, match=pattern):
            load_dataset(path)


@DATA_SETTINGS
@given(
    n=st.integers(2, 8),
    d=st.integers(1, 5),
    dtype=st.sampled_from([np.uint8, np.int32, np.float32, np.float64]),
    constant=st.integers(0, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_minmax_scaling_maps_each_feature_onto_the_unit_interval(
    n: int, d: int, dtype: type, constant: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    X = random_array((n, d), dtype, seed)
    if constant < d:
        X[:, constant] = X[0, constant]
    else:
        X = X + rng.integers(1, 3, (n, d)).astype(dtype)  # no column constant by chance
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        np.save(path, X)
        scaled = load_dataset(path, scale="minmax").X
    assert scaled.dtype == np.float32
    assert float(scaled.min()) >= 0.0
    assert float(scaled.max()) <= 1.0
    for j in range(d):
        column = X[:, j].astype(np.float64)
        if column.min() == column.max():
            assert (scaled[:, j] == 0).all()
        else:
            assert scaled[:, j].min() == 0.0
            assert scaled[:, j].max() == 1.0
            order = np.argsort(column, kind="stable")
            assert (np.diff(scaled[order, j]) >= 0).all()  # order preserved

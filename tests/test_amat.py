"""Tests for contractive.amat: reading the .amat text files of Larochelle et al. (2007)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contractive import amat
from contractive.amat import read_amat
from contractive.exceptions import ConfigError, DataError

# Two rows of 4 pixels and a label, written as the originals write them.
GOOD = (
    "0.0000000e+00   2.5000000e-01   1.0000000e+00   5.0000000e-01   7.0000000e+00\n"
    "1.0000000e+00   0.0000000e+00   7.5000000e-01   1.2500000e-01   3.0000000e+00\n"
)
X_GOOD = np.array([[0.0, 0.25, 1.0, 0.5], [1.0, 0.0, 0.75, 0.125]], dtype=np.float32)


def write(tmp_path: Path, text: str | bytes, name: str = "data.amat") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def test_reads_pixels_and_float_labels(tmp_path: Path) -> None:
    X, y = read_amat(write(tmp_path, GOOD), n_features=4)
    assert X.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_array_equal(X, X_GOOD)
    assert y.tolist() == [7, 3]


@pytest.mark.parametrize(
    "text",
    [
        GOOD + "\n",  # a blank last line
        GOOD + "   \n\n",  # blank lines with spaces
        GOOD.replace("\n", "   \n"),  # trailing whitespace
        GOOD.replace("\n", "\r\n"),  # Windows line ends
        GOOD.rstrip("\n"),  # no newline after the last row
        GOOD.replace("   ", "\t"),  # tabs
        "\n" + GOOD,  # a blank first line
    ],
    ids=["blank-last", "blank-spaces", "trailing-ws", "crlf", "no-final-newline", "tabs", "blank"],
)
def test_accepts_whitespace_variants(tmp_path: Path, text: str) -> None:
    X, y = read_amat(write(tmp_path, text), n_features=4)
    np.testing.assert_array_equal(X, X_GOOD)
    assert y.tolist() == [7, 3]


def test_labels_in_any_integral_notation(tmp_path: Path) -> None:
    text = "0 0 0 0 7\n0 0 0 0 7.0\n0 0 0 0 7.0000000e+00\n0 0 0 0 +7e0\n0 0 0 0 0.7e1\n"
    _, y = read_amat(write(tmp_path, text), n_features=4, classes=range(10))
    assert y.tolist() == [7] * 5


def test_784_features_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((5, 784)).astype(np.float32)
    X[:, :100] = 0.0
    X[0, 0] = 1.0
    y = np.array([0, 9, 3, 3, 1])
    path = tmp_path / "mnist_test.amat"
    np.savetxt(path, np.column_stack([X, y]), fmt="%.7e", delimiter="   ")
    X_read, y_read = read_amat(path, classes=range(10))
    assert X_read.shape == (5, 784)
    np.testing.assert_allclose(X_read, X, rtol=1e-7, atol=0)
    assert y_read.tolist() == y.tolist()


def test_many_blocks_give_the_same_rows_and_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [f"{i / 100:.7e} 0 0 1 {i % 3}.0\n" for i in range(60)]
    path = write(tmp_path, "".join(rows) + "\n")
    whole_X, whole_y = read_amat(path, n_features=4)
    # Blocks of ~50 bytes: a line (~34 bytes) often straddles a block boundary.
    monkeypatch.setattr(amat, "_BLOCK_BYTES", 50)
    X, y = read_amat(path, n_features=4)
    np.testing.assert_array_equal(X, whole_X)
    np.testing.assert_array_equal(y, whole_y)
    assert X.shape == (60, 4)
    assert np.allclose(X[:, 0], np.arange(60) / 100)
    rows[44] = "0 0 0 2 1\n"
    path = write(tmp_path, "".join(rows))
    with pytest.raises(DataError, match=r"data\.amat, line 45, column 4: the pixel value 2 is"):
        read_amat(path, n_features=4)


def test_a_line_longer_than_a_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(amat, "_BLOCK_BYTES", 8)
    X, y = read_amat(write(tmp_path, GOOD), n_features=4)
    np.testing.assert_array_equal(X, X_GOOD)
    assert y.tolist() == [7, 3]


# (file text, keyword arguments, pinned message). Line 2 is bad unless said otherwise.
ERRORS = {
    "too-few": (
        "0 0 0 0 1\n0 0 0 1\n",
        {},
        r"^.*data\.amat, line 2: expected 5 values \(4 pixels and the label\), found 4$",
    ),
    "too-many": (
        "0 0 0 0 1\n0 0 0 0 0 1\n",
        {},
        r"data\.amat, line 2: expected 5 values \(4 pixels and the label\), found 6$",
    ),
    "n_features-mismatch": (
        GOOD,
        {"n_features": 3},
        r"data\.amat, line 1: expected 4 values \(3 pixels and the label\), found 5$",
    ),
    "not-a-number": (
        "0 0 0 0 1\n0 0 abc 0 1\n",
        {},
        r"data\.amat, line 2, column 3: 'abc' is not a number$",
    ),
    "comma": (
        "0 0 0 0 1\n0,0 0 0 0 1\n",
        {},
        r"data\.amat, line 2, column 1: '0,0' is not a number$",
    ),
    "hash-is-not-a-comment": (
        "0 0 0 0 1\n0 0 0 0 # 1\n",
        {},
        r"data\.amat, line 2: expected 5 values",
    ),
    "underscore": (
        "0 0 0 0 1\n0 0 0 0 1_0\n",
        {},
        r"data\.amat, line 2, column 5: '1_0' is not a number$",
    ),
    "pixel-above-1": (
        "0 0 0 0 1\n0 0 0 1.5000000e+00 1\n",
        {},
        r"data\.amat, line 2, column 4: the pixel value 1\.5000000e\+00 is outside \[0, 1\]$",
    ),
    "pixel-negative": (
        "0 0 0 0 1\n-1e-3 0 0 0 1\n",
        {},
        r"data\.amat, line 2, column 1: the pixel value -1e-3 is outside \[0, 1\]$",
    ),
    "pixel-nan": (
        "0 0 0 0 1\n0 nan 0 0 1\n",
        {},
        r"data\.amat, line 2, column 2: the pixel value nan is outside \[0, 1\]$",
    ),
    "label-fraction": (
        "0 0 0 0 1\n0 0 0 0 7.5000000e+00\n",
        {},
        r"data\.amat, line 2, column 5: the label 7\.5000000e\+00 is not a whole number$",
    ),
    "label-inf": (
        "0 0 0 0 1\n0 0 0 0 inf\n",
        {},
        r"data\.amat, line 2, column 5: the label inf is not a whole number$",
    ),
    "label-not-a-class": (
        "0 0 0 0 1\n0 0 0 0 2.0000000e+00\n",
        {"classes": (1, 0)},
        r"data\.amat, line 2, column 5: the label 2\.0000000e\+00 is not one of the classes "
        r"0, 1$",
    ),
    "label-not-a-digit": (
        "0 0 0 0 1\n0 0 0 0 -1\n",
        {"classes": range(10)},
        r"data\.amat, line 2, column 5: the label -1 is not one of the classes "
        r"0, 1, 2, 3, 4, 5, 6, 7, 8, 9$",
    ),
    "blank-lines-count": (
        "0 0 0 0 1\n\n\n0 0 0 0 0.5\n",
        {},
        r"data\.amat, line 4, column 5: the label 0\.5 is not a whole number$",
    ),
    "first-of-several": (
        "0 0 0 0 1\n0 0 2 0 1\n0 0 0 1\n",
        {},
        r"data\.amat, line 2, column 3: the pixel value 2 is outside",
    ),
    "empty": ("", {}, r"data\.amat is empty: it holds no rows$"),
    "blank": ("\n  \n\n", {}, r"data\.amat is empty: it holds no rows$"),
}


@pytest.mark.parametrize(("text", "kwargs", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_errors_name_the_file_line_and_column(
    tmp_path: Path, text: str, kwargs: dict[str, object], message: str
) -> None:
    path = write(tmp_path, text)
    kwargs = {"n_features": 4, **kwargs}
    with pytest.raises(DataError, match=message) as info:
        read_amat(path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_not_utf8_is_a_bad_value(tmp_path: Path) -> None:
    path = write(tmp_path, b"0 0 0 0 1\n0 \xe9 0 0 1\n")
    with pytest.raises(DataError, match="data\\.amat, line 2, column 2: '\ufffd' is not a number$"):
        read_amat(path, n_features=4)


def test_name_replaces_the_path_in_messages(tmp_path: Path) -> None:
    path = write(tmp_path, "0 0 0 0 1\n0 0 0 0 x\n")
    with pytest.raises(DataError, match=r"^convex_train, line 2, column 5: 'x' is not a number$"):
        read_amat(path, n_features=4, name="convex_train")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.amat could not be read: .*No such file"):
        read_amat(tmp_path / "nope.amat")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"n_features": 0},
            r"The 'n_features' parameter of read_amat must be an int in the range \[1, inf\)\. "
            r"Got 0 instead\.",
        ),
        (
            {"n_features": 4.0},
            r"The 'n_features' parameter of read_amat must be an int in the range \[1, inf\)\. "
            r"Got 4\.0 instead\.",
        ),
        (
            {"classes": [0, 1.5]},
            r"The 'classes' parameter of read_amat must be a sequence of ints or None\. "
            r"Got \[0, 1\.5\] instead\.",
        ),
        (
            {"classes": "01"},
            r"The 'classes' parameter of read_amat must be a sequence of ints or None\. "
            r"Got '01' instead\.",
        ),
        (
            {"classes": []},
            r"The 'classes' parameter of read_amat must be a non-empty sequence of ints\. "
            r"Got \[\] instead\.",
        ),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_amat(write(tmp_path, GOOD), **kwargs)  # type: ignore[arg-type]


def test_labels_without_classes_are_any_whole_number(tmp_path: Path) -> None:
    _, y = read_amat(write(tmp_path, "0 0 0 0 -3\n0 0 0 0 12\n"), n_features=4)
    assert y.tolist() == [-3, 12]


def test_numpy_integer_classes(tmp_path: Path) -> None:
    _, y = read_amat(write(tmp_path, GOOD), n_features=4, classes=np.arange(10))
    assert y.tolist() == [7, 3]

"""Tests for contractive.imagegen: the regenerated MNIST variations and shape sets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from contractive import imagegen
from contractive.imagegen import (
    NEEDS_MNIST,
    VARIATION_SIZES,
    convex,
    image_background,
    natural_patches,
    random_background,
    rectangles,
    regenerate,
    rotate_digits,
)

DIGIT_SETS = sorted(NEEDS_MNIST)
SHAPE_SETS = ["rectangles", "rectangles-img", "convex"]
SMALL = (40, 10, 60)  # (train, valid, test) for the tests' regenerations


def _blobs(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 28, 28)`` float32 digit-like images: a bright bar near the centre, background 0."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.float32)
    images[:, 8:20, 12:16] = rng.uniform(0.3, 1.0, size=(n, 12, 4))
    images[:, 8:11, 10:18] = 1.0
    return images


@pytest.fixture(scope="module")
def fake_mnist() -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped data whose labels are the image indices, to trace every image's origin."""
    images = np.zeros((70000, 28, 28), np.uint8)
    images[:, 8:20, 12:16] = 200
    images[:, 10, 10:18] = 255
    # Each image also differs in its pixels: its index in base 256 on the bottom row.
    index = np.arange(70000)
    images[:, 26, 12], images[:, 26, 13] = index // 256, index % 256
    return images, index.astype(np.int64)


def _bbox(mask: np.ndarray) -> tuple[int, int]:
    """(height, width) of the bounding box of a 2-D mask's True pixels."""
    rows, cols = np.nonzero(mask)
    return int(np.ptp(rows)) + 1, int(np.ptp(cols)) + 1


def _hull_pixels(mask: np.ndarray) -> np.ndarray:
    """The pixels whose centre is in the convex hull of the white ones (exact, integer)."""
    pts = np.argwhere(mask)  # (k, 2) (row, col), row-major sorted
    grid = np.argwhere(np.ones_like(mask, dtype=bool))  # (784, 2)
    try:
        vertices = pts[ConvexHull(pts).vertices]  # counter-clockwise in (row, col)
    except QhullError:  # all on one line: the hull is the segment between its ends
        a, b = pts[0], pts[-1]
        d, rel = b - a, grid - a
        on_line = d[0] * rel[:, 1] - d[1] * rel[:, 0] == 0
        along = rel @ d
        inside = on_line & (along >= 0) & (along <= d @ d)
        return inside.reshape(mask.shape)
    edges = np.roll(vertices, -1, axis=0) - vertices  # (h, 2)
    rel = grid[:, None, :] - vertices[None]  # (784, h, 2)
    cross = edges[None, :, 0] * rel[:, :, 1] - edges[None, :, 1] * rel[:, :, 0]
    return (cross >= 0).all(axis=1).reshape(mask.shape)


def _is_convex(mask: np.ndarray) -> bool:
    return bool((_hull_pixels(mask) == mask).all())


def _gray_photos() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    luma = np.array([0.299, 0.587, 0.114])
    return [
        (im.astype(np.float64) @ luma / 255).astype(np.float32)
        for im in load_sample_images().images
    ]


def _symmetries(patch: np.ndarray) -> list[np.ndarray]:
    flips = [patch, patch[::-1], patch[:, ::-1], patch[::-1, ::-1]]
    return flips + [f.T for f in flips]


# --- the tables ------------------------------------------------------------------------------


def test_sizes_and_digit_sets() -> None:
    assert VARIATION_SIZES == {
        "mnist-basic": (10000, 2000, 50000),
        "mnist-rot": (10000, 2000, 50000),
        "mnist-bg-rand": (10000, 2000, 50000),
        "mnist-bg-img": (10000, 2000, 50000),
        "mnist-rot-bg-img": (10000, 2000, 50000),
        "rectangles": (1000, 200, 50000),
        "rectangles-img": (10000, 2000, 50000),
        "convex": (6000, 2000, 50000),
    }
    assert (
        frozenset(["mnist-basic", "mnist-rot", "mnist-bg-rand", "mnist-bg-img", "mnist-rot-bg-img"])
        == NEEDS_MNIST
    )


# --- rotate_digits ---------------------------------------------------------------------------


def test_rotation_is_scipys_with_the_drawn_angles() -> None:
    images = _blobs(12)
    angles = np.random.default_rng(3).uniform(0, 2 * np.pi, size=12)
    expected = np.stack(
        [
            ndimage.rotate(im, np.degrees(a), reshape=False, order=1)
            for im, a in zip(images, angles, strict=True)
        ]
    )
    got = rotate_digits(images, np.random.default_rng(3))
    assert got.dtype == np.float32
    assert got.shape == images.shape
    np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1e-6)


def test_rotation_keeps_the_mass_and_the_range() -> None:
    images = _blobs(200)
    turned = rotate_digits(images, np.random.default_rng(0))
    assert turned.min() >= 0
    assert turned.max() <= 1
    ratio = turned.sum(axis=(1, 2)) / images.sum(axis=(1, 2))
    assert np.abs(ratio - 1).max() < 0.03
    # Not the identity: most images move, and by different amounts.
    moved = np.abs(turned - images).sum(axis=(1, 2))
    assert (moved > 1).mean() > 0.9
    assert np.ptp(moved) > 10


def test_rotation_is_deterministic() -> None:
    images = _blobs(5)
    a = rotate_digits(images, np.random.default_rng(1))
    assert a.tobytes() == rotate_digits(images, np.random.default_rng(1)).tobytes()
    assert a.tobytes() != rotate_digits(images, np.random.default_rng(2)).tobytes()


# --- natural_patches -------------------------------------------------------------------------


def test_patches_are_textured_gray_in_range() -> None:
    patches = natural_patches(300, np.random.default_rng(0))
    assert patches.shape == (300, 28, 28)
    assert patches.dtype == np.float32
    assert patches.min() >= 0
    assert patches.max() <= 1
    assert patches.std(axis=(1, 2)).min() >= 0.05
    # Not all alike: the patches differ from each other.
    assert len({p.tobytes() for p in patches}) == 300


def _in_photo(photo: np.ndarray, patch: np.ndarray) -> bool:
    """Whether ``patch`` is a window of ``photo`` (candidates found by their first pixel)."""
    k = patch.shape[0]
    rows, cols = np.nonzero(
        photo[: photo.shape[0] - k + 1, : photo.shape[1] - k + 1] == patch[0, 0]
    )
    return any(
        (photo[r : r + k, c : c + k] == patch).all() for r, c in zip(rows, cols, strict=True)
    )


def test_patches_come_from_the_photographs_flipped_and_turned() -> None:
    photos = _gray_photos()
    upright = []
    for patch in natural_patches(40, np.random.default_rng(5), size=5):
        found = [any(_in_photo(p, s) for p in photos) for s in _symmetries(patch)]
        assert any(found)
        upright.append(found[0])
    assert 0 < sum(upright) < 20  # about 1 in 8 is as cut from the photograph


def test_patches_are_deterministic_and_sized() -> None:
    a = natural_patches(10, np.random.default_rng(0), size=12)
    assert a.shape == (10, 12, 12)
    assert a.tobytes() == natural_patches(10, np.random.default_rng(0), size=12).tobytes()
    assert a.tobytes() != natural_patches(10, np.random.default_rng(1), size=12).tobytes()
    assert natural_patches(0, np.random.default_rng(0)).shape == (0, 28, 28)


# --- backgrounds -----------------------------------------------------------------------------


def test_random_background_replaces_only_the_background() -> None:
    images = _blobs(50)
    noisy = random_background(images, np.random.default_rng(0))
    assert noisy.dtype == np.float32
    assert noisy.min() >= 0
    assert noisy.max() < 1.0 + 1e-7
    noise = np.random.default_rng(0).random(images.shape, dtype=np.float32)
    np.testing.assert_allclose(noisy, images + (1 - images) * noise, rtol=0, atol=1e-7)
    full = images == 1
    assert full.any()
    np.testing.assert_array_equal(noisy[full], 1.0)
    digit = images > 0
    background = noisy[~digit]
    assert (background > 0).all()
    assert abs(background.mean() - 0.5) < 0.01
    assert abs(background.std() - 12**-0.5) < 0.01
    again = random_background(images, np.random.default_rng(0))
    assert noisy.tobytes() == again.tobytes()
    assert noisy.tobytes() != random_background(images, np.random.default_rng(1)).tobytes()


def test_image_background_rule() -> None:
    images = _blobs(20)
    patches = natural_patches(20, np.random.default_rng(0))
    out = image_background(images, patches)
    np.testing.assert_allclose(out, images + (1 - images) * patches, rtol=0, atol=1e-7)
    full, empty = images == 1, images == 0
    assert full.any()
    assert empty.any()
    assert (out[full] == 1).all()
    assert (out[empty] == patches[empty]).all()
    # An edge pixel blends: brighter than both the stroke's value and the patch's alone.
    edge = (images > 0) & (images < 1)
    assert edge.any()
    assert (out[edge] >= np.maximum(images[edge], patches[edge]) - 1e-7).all()


# --- rectangles ------------------------------------------------------------------------------


def test_rectangle_labels_follow_the_drawn_outline() -> None:
    X, y = rectangles(3000, np.random.default_rng(0))
    assert X.shape == (3000, 28, 28)
    assert X.dtype == np.float32
    assert y.dtype == np.int64
    assert set(np.unique(X).tolist()) == {0.0, 1.0}
    assert 0.46 < y.mean() < 0.54
    for image, label in zip(X, y, strict=True):
        height, width = _bbox(image > 0)
        assert label == int(height > width)
        assert min(height, width) >= 3
        assert abs(height - width) >= 3
        # A one-pixel outline: exactly the border of its bounding box.
        assert image.sum() == 2 * (height + width) - 4


def test_rectangle_positions_and_sizes_vary() -> None:
    X, _ = rectangles(2000, np.random.default_rng(1))
    boxes = {_bbox(image > 0) for image in X}
    assert len(boxes) > 200  # many (height, width) pairs
    assert max(max(b) for b in boxes) == 28
    assert min(min(b) for b in boxes) == 3
    coverage = (X > 0).mean(axis=0)  # every pixel is on some outline
    assert coverage.min() > 0


def test_rectangles_image_fills_inside_and_outside_with_two_patches() -> None:
    X, y = rectangles(30, np.random.default_rng(7), image=True)
    rng = np.random.default_rng(7)
    outlines, labels = rectangles(30, rng)  # the same geometry, drawn first
    inside, outside = natural_patches(30, rng), natural_patches(30, rng)
    np.testing.assert_array_equal(y, labels)
    for k in range(30):
        rows, cols = np.nonzero(outlines[k])
        box = np.zeros((28, 28), bool)
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        np.testing.assert_array_equal(X[k], np.where(box, inside[k], outside[k]))
    assert X.dtype == np.float32
    assert X.min() >= 0
    assert X.max() <= 1


def test_rectangles_are_deterministic() -> None:
    for image in (False, True):
        a, ya = rectangles(20, np.random.default_rng(0), image=image)
        b, yb = rectangles(20, np.random.default_rng(0), image=image)
        c, _ = rectangles(20, np.random.default_rng(1), image=image)
        assert a.tobytes() == b.tobytes()
        assert (ya == yb).all()
        assert a.tobytes() != c.tobytes()


# --- convex ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def convex_set() -> tuple[np.ndarray, np.ndarray]:
    return convex(300, np.random.default_rng(0))


def test_convex_classes_are_exact_halves_and_binary(
    convex_set: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = convex_set
    assert X.shape == (300, 28, 28)
    assert X.dtype == np.float32
    assert y.dtype == np.int64
    assert (y == 0).sum() == 150
    assert (y == 1).sum() == 150
    assert set(np.unique(X).tolist()) == {0.0, 1.0}
    assert 0.2 < y[:150].mean() < 0.8  # shuffled, not 150 zeros then 150 ones


def test_convex_labels_match_an_independent_hull(
    convex_set: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = convex_set
    for image, label in zip(X, y, strict=True):
        mask = image > 0
        assert mask.sum() >= 19
        assert _is_convex(mask) == (label == 1)


def test_convex_classes_have_the_same_white_areas(
    convex_set: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = convex_set
    area = X.sum(axis=(1, 2))
    # The same multiset of pixel counts (n even), hence the same mean, and a wide range.
    np.testing.assert_array_equal(np.sort(area[y == 0]), np.sort(area[y == 1]))
    assert np.ptp(area) > 300
    # Odd n: one more convex image, the means still within a pixel or so.
    X, y = convex(51, np.random.default_rng(1))
    assert (y == 0).sum() == 25
    assert (y == 1).sum() == 26
    area = X.sum(axis=(1, 2))
    assert abs(area[y == 0].mean() - area[y == 1].mean()) < 784 / 25


def test_convex_is_deterministic() -> None:
    a, ya = convex(10, np.random.default_rng(0))
    b, yb = convex(10, np.random.default_rng(0))
    c, _ = convex(10, np.random.default_rng(1))
    assert a.tobytes() == b.tobytes()
    assert (ya == yb).all()
    assert a.tobytes() != c.tobytes()
    assert convex(0, np.random.default_rng(0))[0].shape == (0, 28, 28)


def test_digital_convexity_check_catches_the_cases() -> None:
    # The module's check against the independent one, on hand-made and random masks.
    masks = np.zeros((8, 28, 28), bool)
    masks[0, 5:9, 5:20] = True  # a box: convex
    masks[1, 5:9, 5:20] = True
    masks[1, 7, 10] = False  # a hole: not convex
    masks[2, 3, 3] = masks[2, 5, 4] = True  # two pixels, no pixel centre between: convex
    masks[3, 3, 3] = masks[3, 5, 5] = True  # (4, 4) is between them: not convex
    masks[4][np.tril_indices(28)] = True  # a triangle: convex
    masks[5, 0:10, 0:10] = masks[5, 10:20, 10:20] = True  # two touching boxes: not convex
    rows, cols = np.indices((28, 28))
    masks[6] = np.abs(rows - 13) + np.abs(cols - 13) <= 13  # corners on the middle rows: convex
    masks[7] = masks[6] & ~((rows == 7) & (cols == 6))  # a notch in an edge: not convex
    rng = np.random.default_rng(0)
    random = rng.random((200, 28, 28)) < 0.02
    random[:, 10:14, 10:14] = True
    masks = np.concatenate([masks, random])
    expected = np.array([_is_convex(m) for m in masks])
    np.testing.assert_array_equal(imagegen._digitally_convex(masks), expected)
    assert expected[:8].tolist() == [True, False, True, False, True, False, True, False]


# --- regenerate ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DIGIT_SETS)
def test_regenerate_digit_splits_are_disjoint(
    name: str, fake_mnist: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(VARIATION_SIZES, name, SMALL)
    parts = regenerate(name, 0, fake_mnist)
    assert list(parts) == ["train", "valid", "test"]
    for (X, y), n in zip(parts.values(), SMALL, strict=True):
        assert X.shape == (n, 784)
        assert X.dtype == np.float32
        assert y.dtype == np.int64
        assert X.min() >= 0
        assert X.max() <= 1
    index = {split: y for split, (_, y) in parts.items()}  # fake labels are the indices
    assert (index["train"] < 60000).all()
    assert (index["valid"] < 60000).all()
    every = np.concatenate(list(index.values()))
    assert len(np.unique(every)) == len(every)
    basic = fake_mnist[0][index["train"]].reshape(-1, 784) / np.float32(255)
    X = parts["train"][0]
    if name == "mnist-basic":
        np.testing.assert_array_equal(X, basic)
    if name in ("mnist-bg-rand", "mnist-bg-img"):  # full strokes kept, background replaced
        np.testing.assert_array_equal(X[basic == 1], 1.0)
        assert (basic - 1e-7 <= X).all()
        assert (X[basic == 0] > 0).mean() > 0.99
    if "rot" in name:
        assert not np.array_equal(X > 0, basic > 0)


def test_regenerate_digit_test_split_draws_from_the_rest(
    fake_mnist: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(VARIATION_SIZES, "mnist-basic", (3000, 500, 20000))
    parts = regenerate("mnist-basic", 1, fake_mnist)
    test = parts["test"][1]
    assert (test >= 60000).any()
    assert (test < 60000).any()
    # A uniform draw from the 60000 - 3500 + 10000 others: about 15% from MNIST's test set.
    assert 0.13 < (test >= 60000).mean() < 0.17


def test_regenerate_rot_uses_the_documented_streams(
    fake_mnist: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(VARIATION_SIZES, "mnist-rot-bg-img", SMALL)
    parts = regenerate("mnist-rot-bg-img", 4, fake_mnist)
    stream = np.random.SeedSequence(4).spawn(3)[2]  # test
    rotate_rng, background_rng = (np.random.default_rng(s) for s in stream.spawn(2))
    X, y = parts["test"]
    digits = fake_mnist[0][y].astype(np.float32) / 255
    turned = rotate_digits(digits, rotate_rng)
    expected = image_background(turned, natural_patches(len(y), background_rng))
    np.testing.assert_array_equal(X, expected.reshape(len(y), 784))


@pytest.mark.parametrize("name", SHAPE_SETS + DIGIT_SETS)
def test_regenerate_is_deterministic(
    name: str, fake_mnist: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(VARIATION_SIZES, name, (10, 4, 12))
    a, b, c = (regenerate(name, seed, fake_mnist) for seed in (0, 0, 1))
    for split in ("train", "valid", "test"):
        assert a[split][0].tobytes() == b[split][0].tobytes()
        assert (a[split][1] == b[split][1]).all()
        assert a[split][0].tobytes() != c[split][0].tobytes()


@pytest.mark.parametrize("name", SHAPE_SETS)
def test_regenerate_shape_sets(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(VARIATION_SIZES, name, SMALL)
    parts = regenerate(name, 0)  # no MNIST needed
    for (X, y), n in zip(parts.values(), SMALL, strict=True):
        assert X.shape == (n, 784)
        assert X.dtype == np.float32
        assert y.dtype == np.int64
        assert X.min() >= 0
        assert X.max() <= 1
        assert set(np.unique(y).tolist()) == {0, 1}
    # A split does not depend on another's size: train grows, test stays.
    monkeypatch.setitem(VARIATION_SIZES, name, (SMALL[0] + 7, SMALL[1], SMALL[2]))
    again = regenerate(name, 0)
    assert again["test"][0].tobytes() == parts["test"][0].tobytes()
    assert again["valid"][0].tobytes() == parts["valid"][0].tobytes()


# --- errors ----------------------------------------------------------------------------------


def test_regenerate_errors(fake_mnist: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(
        ValueError,
        match=r"The 'name' parameter of regenerate must be a str among \{'mnist-basic', .*"
        r"'convex'\}\. Got 'mnist-noise' instead\.",
    ):
        regenerate("mnist-noise", 0)
    with pytest.raises(
        ValueError,
        match=r"The 'seed' parameter of regenerate must be an int in the range \[0, inf\)\. "
        r"Got -1 instead\.",
    ):
        regenerate("rectangles", -1)
    start = r"The 'mnist' parameter of regenerate must be a tuple \(images, labels\) of MNIST's "
    with pytest.raises(ValueError, match=start + r".* for 'mnist-rot'\. Got None instead\."):
        regenerate("mnist-rot", 0)
    with pytest.raises(ValueError, match=start + r".*Got a list instead\."):
        regenerate("mnist-rot", 0, list(fake_mnist))  # type: ignore[arg-type]
    small = (fake_mnist[0][:10], fake_mnist[1][:10])
    with pytest.raises(
        ValueError, match=r"Got images of uint8 \(10, 28, 28\) and labels of int64 \(10,\) instead"
    ):
        regenerate("mnist-basic", 0, small)


def test_argument_errors() -> None:
    rng = np.random.default_rng(0)
    images = _blobs(2)
    with pytest.raises(
        ValueError,
        match=r"The 'images' parameter of rotate_digits must be a 3-D array \(n, height, width\) "
        r"of values in \[0, 1\]\. Got an array of float32 \(28, 28\) instead\.",
    ):
        rotate_digits(images[0], rng)
    with pytest.raises(
        ValueError,
        match=r"The 'images' parameter of random_background must be .* Got values in \[0, 255\]",
    ):
        random_background(images * 255, rng)
    with pytest.raises(ValueError, match=r"Got values in \[0, 0\.\d+\] and NaN instead"):
        random_background(np.where(images > 0.5, np.nan, images), rng)
    with pytest.raises(
        ValueError,
        match=r"The 'patches' parameter of image_background must be an array of the images' "
        r"shape \(2, 28, 28\)\. Got an array of shape \(1, 28, 28\) instead\.",
    ):
        image_background(images, images[:1])
    with pytest.raises(
        ValueError,
        match=r"The 'rng' parameter of rectangles must be a numpy\.random\.Generator\. "
        r"Got 0 instead\.",
    ):
        rectangles(3, 0)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"The 'image' parameter of rectangles must be a bool\. Got 1 instead\."
    ):
        rectangles(3, rng, image=1)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"The 'size' parameter of natural_patches must be an int in the range \[2, 427\]\. "
        r"Got 1 instead\.",
    ):
        natural_patches(3, rng, size=1)
    with pytest.raises(
        ValueError,
        match=r"The 'n' parameter of convex must be an int in the range \[0, inf\)\. "
        r"Got -1 instead\.",
    ):
        convex(-1, rng)

"""Regenerate the MNIST variations and shape sets of Larochelle et al. (ICML 2007).

When the ``.amat`` files of the eight sets of Table 2 are not at hand, :func:`regenerate`
makes comparable sets (not the same images) from a seed, as the authors describe them. Every
draw comes from a :class:`numpy.random.Generator`, so a seed gives the same bytes. Images are
float32 in [0, 1], ``(n, 28, 28)``, upright. The digit sets (:data:`NEEDS_MNIST`) are MNIST
digits rotated (:func:`rotate_digits`), on noise (:func:`random_background`) or on a natural
patch (:func:`image_background`); the shape sets are :func:`rectangles` and :func:`convex`.
Where the authors leave a choice, the function that makes it states it.
"""

from __future__ import annotations

import functools

import numpy as np

from contractive.validation import check_choice, check_int, is_bool, parameter_error

__all__ = [
    "NEEDS_MNIST",
    "VARIATION_SIZES",
    "convex",
    "image_background",
    "natural_patches",
    "random_background",
    "rectangles",
    "regenerate",
    "rotate_digits",
]

#: Examples per split, ``(n_train, n_valid, n_test)``, as in the original files (the validation
#: set is the last rows of the original training file).
VARIATION_SIZES: dict[str, tuple[int, int, int]] = {
    "mnist-basic": (10000, 2000, 50000),
    "mnist-rot": (10000, 2000, 50000),
    "mnist-bg-rand": (10000, 2000, 50000),
    "mnist-bg-img": (10000, 2000, 50000),
    "mnist-rot-bg-img": (10000, 2000, 50000),
    "rectangles": (1000, 200, 50000),
    "rectangles-img": (10000, 2000, 50000),
    "convex": (6000, 2000, 50000),
}

#: The sets made from MNIST digits: :func:`regenerate` needs the MNIST images for these.
NEEDS_MNIST: frozenset[str] = frozenset(n for n in VARIATION_SIZES if n.startswith("mnist-"))

_SPLITS = ("train", "valid", "test")
_MNIST_TRAIN = 60000  # MNIST's training images come first in the 70000; the test set follows
_MNIST_SHAPE = (70000, 28, 28)

_SIDE = 28  # images are _SIDE x _SIDE pixels
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601 gray from RGB, the formula of PIL's "L"
# A patch with a standard deviation under 0.05 (about 13 of 255 gray levels) is rejected: that
# is flat sky in china.jpg or the blurred dark background of flower.jpg, which would make
# mnist-bg-img little more than mnist-basic on a uniform gray. About half the patches pass.
_MIN_PATCH_STD = 0.05
_MAX_BATCH = 16384  # candidates drawn per round: bounds memory at ~50 MB of float32 patches

_RECT_MIN_SIDE = 3  # an outline with at least one pixel inside, and an inside visible in -img
_RECT_MIN_GAP = 3  # |height - width| >= 3 pixels: tall and wide are never a one-pixel call
_RECT_SIDES = np.array(  # (k, 2) every allowed (short, long) pair of sides, in pixels
    [(a, b) for a in range(_RECT_MIN_SIDE, _SIDE + 1) for b in range(a + _RECT_MIN_GAP, _SIDE + 1)]
)

_P_CONVEX = 0.195  # half-planes per convex set ~ geometric(0.195), mean 5.1 (the authors')
_MIN_CONVEX = 19  # white pixels of a convex set (and, here, of a non-convex union)
_P_PART = 0.07  # half-planes per part of a non-convex union ~ geometric(0.07) (the authors')
_MIN_PART = 10  # white pixels of each part
_PARTS = (2, 4)  # parts per non-convex union, uniform in [2, 4]


class _Shown(str):
    """A value as an error message shows it, e.g. ``an array of shape (3,)``, not its repr."""

    __repr__ = str.__str__


def _check_rng(rng: object, owner: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise parameter_error("rng", "a numpy.random.Generator", rng, owner=owner)
    return rng


def _check_images(images: object, owner: str, name: str = "images") -> np.ndarray:
    """``images`` as a float32 ``(n, height, width)`` array, if its values are in [0, 1]."""
    array = np.asarray(images)
    constraint = "a 3-D array (n, height, width) of values in [0, 1]"
    if array.ndim != 3 or array.dtype.kind not in "fiub":
        got = _Shown(f"an array of {array.dtype} {array.shape}")
        raise parameter_error(name, constraint, got, owner=owner)
    array = array.astype(np.float32, copy=False)
    if array.size and not (array.min() >= 0 and array.max() <= 1):  # NaN fails both
        nan = " and NaN" if np.isnan(array).any() else ""
        got = _Shown(f"values in [{np.nanmin(array):g}, {np.nanmax(array):g}]{nan}")
        raise parameter_error(name, constraint, got, owner=owner)
    return array


def rotate_digits(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate each image by its own random angle about its centre, as for mnist-rot.

    The angles are ``rng.uniform(0, 2 * np.pi, size=n)``, drawn before anything else. Each
    image is rotated as ``scipy.ndimage.rotate(image, degrees, reshape=False, order=1)`` does
    it (bilinear, zero outside the image), all images in one vectorised call, then clipped to
    [0, 1]. A digit centred in its 20x20 box, as MNIST's are, stays whole.

    Parameters
    ----------
    images : np.ndarray
        ``(n, height, width)`` values in [0, 1].
    rng : numpy.random.Generator
        Source of the angles.

    Returns
    -------
    np.ndarray
        ``(n, height, width)`` float32 in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> bar = np.zeros((1, 28, 28), np.float32)
    >>> bar[0, 4:24, 13:15] = 1.0
    >>> turned = rotate_digits(bar, np.random.default_rng(0))
    >>> turned.shape, turned.dtype, bool(turned.min() >= 0 and turned.max() <= 1)
    ((1, 28, 28), dtype('float32'), True)
    >>> round(float(turned.sum()) / float(bar.sum()), 1)  # the mass stays
    1.0
    """
    from scipy import ndimage, special

    images = _check_images(images, "rotate_digits")
    rng = _check_rng(rng, "rotate_digits")
    n, height, width = images.shape
    degrees = np.degrees(rng.uniform(0.0, 2.0 * np.pi, size=n))  # (n,)
    # ndimage.rotate's map from an output pixel to the input: R @ (out - centre) + centre, with
    # R = [[cos, sin], [-sin, cos]] from the same exact-degree functions it uses.
    cos, sin = special.cosdg(degrees)[:, None, None], special.sindg(degrees)[:, None, None]
    centre_r, centre_c = (height - 1) / 2, (width - 1) / 2
    rows, cols = np.meshgrid(
        np.arange(height) - centre_r, np.arange(width) - centre_c, indexing="ij"
    )
    out = np.empty_like(images)
    chunk = 2048  # three float64 coordinates per pixel: ~40 MB per chunk
    for s in range(0, n, chunk):
        c, sn = cos[s : s + chunk], sin[s : s + chunk]
        m = c.shape[0]
        # One extra zero image after the stack: linear interpolation along the image axis
        # (integer coordinates, weight 0 on the next image) never reads past the end.
        stack = np.concatenate([images[s : s + m], np.zeros((1, height, width), np.float32)])
        coords = np.empty((3, m, height, width))  # (image, row, col) read for each output pixel
        coords[0] = np.arange(m)[:, None, None]
        coords[1] = c * rows + sn * cols + centre_r
        coords[2] = -sn * rows + c * cols + centre_c
        out[s : s + m] = ndimage.map_coordinates(stack, coords, order=1, mode="constant")
    return np.clip(out, 0.0, 1.0, out=out)


@functools.lru_cache(maxsize=1)
def _gray_photographs() -> tuple[np.ndarray, ...]:
    """scikit-learn's china.jpg and flower.jpg as read-only float32 gray images in [0, 1]."""
    from sklearn.datasets import load_sample_images

    grays = []
    for rgb in load_sample_images().images:  # (427, 640, 3) uint8 each
        gray = (rgb.astype(np.float64) @ _LUMA / 255.0).astype(np.float32)  # (427, 640)
        gray.setflags(write=False)  # shared by every call through the cache
        grays.append(gray)
    return tuple(grays)


def natural_patches(n: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """Draw square gray patches of natural images, as the backgrounds of mnist-bg-img.

    The authors' 20 black-and-white photographs are not distributed: these patches come from
    the two bundled with scikit-learn (``china.jpg``, ``flower.jpg``; no download), made gray
    as ``0.299 R + 0.587 G + 0.114 B`` scaled to [0, 1]. A candidate takes a photograph, a
    position and one of the 8 flips and quarter-turns uniformly (variety from two photographs);
    as the authors reject low-variance patches, one with a standard deviation under 0.05
    (about 13 of 255 gray levels: sky, blur) is rejected. Candidates are drawn in vectorised
    rounds; the first ``n`` accepted are returned.

    Parameters
    ----------
    n : int
        Number of patches, at least 0.
    rng : numpy.random.Generator
        Source of the draws.
    size : int, default=28
        Side of a patch, in [2, 427] (427 is the photographs' height).

    Returns
    -------
    np.ndarray
        ``(n, size, size)`` float32 in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> patches = natural_patches(3, np.random.default_rng(0))
    >>> patches.shape, patches.dtype
    ((3, 28, 28), dtype('float32'))
    >>> bool(patches.std(axis=(1, 2)).min() >= 0.05)
    True
    """
    n = check_int("n", n, low=0, owner="natural_patches")
    rng = _check_rng(rng, "natural_patches")
    photos = _gray_photographs()
    high = min(min(p.shape) for p in photos)  # 427: the photographs' height
    size = check_int("size", size, low=2, high=high, owner="natural_patches")
    out = np.empty((n, size, size), np.float32)
    filled = 0
    while filled < n:
        m = min(2 * (n - filled) + 64, _MAX_BATCH)  # about half pass: usually one more round
        which = rng.integers(len(photos), size=m)  # (m,) photograph of each candidate
        heights = np.array([p.shape[0] for p in photos])[which] - size + 1
        widths = np.array([p.shape[1] for p in photos])[which] - size + 1
        top, left = rng.integers(heights), rng.integers(widths)  # (m,) each, upper-left corner
        symmetry = rng.integers(8, size=m)  # bits: 1 flips rows, 2 columns, 4 transposes
        batch = np.empty((m, size, size), np.float32)
        for k, photo in enumerate(photos):
            sel = which == k
            windows = np.lib.stride_tricks.sliding_window_view(photo, (size, size))
            batch[sel] = windows[top[sel], left[sel]]
        good = batch.std(axis=(1, 2)) >= _MIN_PATCH_STD  # (m,)
        batch, symmetry = batch[good][: n - filled], symmetry[good][: n - filled]
        flips = symmetry[:, None, None]  # (k, 1, 1)
        batch = np.where((flips & 1) > 0, batch[:, ::-1], batch)
        batch = np.where((flips & 2) > 0, batch[:, :, ::-1], batch)
        batch = np.where((flips & 4) > 0, batch.transpose(0, 2, 1), batch)
        out[filled : filled + len(batch)] = batch
        filled += len(batch)
    return out


def random_background(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put each digit on uniform noise, as for mnist-bg-rand.

    The digit is laid over uniform noise in [0, 1) (``rng.random``, one value per pixel of the
    array, drawn whole) with its own intensity as opacity, ``d + (1 - d) * noise``: a
    background pixel (``d = 0``) becomes noise, a full stroke pixel (``d = 1``) stays 1, and a
    stroke's anti-aliased edge blends the two. (Keeping the edge as it was would outline every
    digit with a dark halo on a bright background, a cue the originals do not have.)

    Parameters
    ----------
    images : np.ndarray
        ``(n, height, width)`` values in [0, 1], background 0.
    rng : numpy.random.Generator
        Source of the noise.

    Returns
    -------
    np.ndarray
        ``(n, height, width)`` float32 in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> digit = np.zeros((1, 4, 4), np.float32)
    >>> digit[0, 1:3, 1:3] = 1.0
    >>> noisy = random_background(digit, np.random.default_rng(0))
    >>> noisy[0, 1:3, 1:3].tolist()  # the full-strength digit is kept
    [[1.0, 1.0], [1.0, 1.0]]
    >>> bool((noisy[0, 0] != 0).all())  # the background is noise
    True
    """
    images = _check_images(images, "random_background")
    rng = _check_rng(rng, "random_background")
    noise = rng.random(images.shape, dtype=np.float32)  # (n, height, width) in [0, 1)
    return _composite(images, noise)


def image_background(images: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """Put each digit on its own patch, as for mnist-bg-img.

    The rule of :func:`random_background`: the digit over the patch with
    its intensity as opacity, ``d + (1 - d) * patch``.

    Parameters
    ----------
    images : np.ndarray
        ``(n, height, width)`` values in [0, 1], background 0.
    patches : np.ndarray
        ``(n, height, width)`` values in [0, 1], e.g. from :func:`natural_patches`.

    Returns
    -------
    np.ndarray
        ``(n, height, width)`` float32 in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> digit = np.zeros((1, 3, 3), np.float32)
    >>> digit[0, 1, 1] = 0.5
    >>> image_background(digit, np.full((1, 3, 3), 0.25, np.float32))[0].tolist()
    [[0.25, 0.25, 0.25], [0.25, 0.625, 0.25], [0.25, 0.25, 0.25]]
    """
    images = _check_images(images, "image_background")
    patches = _check_images(patches, "image_background", name="patches")
    if patches.shape != images.shape:
        got = _Shown(f"an array of shape {patches.shape}")
        raise parameter_error(
            "patches",
            f"an array of the images' shape {images.shape}",
            got,
            owner="image_background",
        )
    return _composite(images, patches)


def _composite(images: np.ndarray, backgrounds: np.ndarray) -> np.ndarray:
    # d + (1 - d) * b, clipped against rounding: 0 shows the background, 1 the image.
    out = images + (1.0 - images) * backgrounds  # (n, height, width), float32
    return np.clip(out, 0.0, 1.0, out=out)


def rectangles(
    n: int, rng: np.random.Generator, *, image: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the rectangles task: label 1 for a rectangle taller than wide, 0 for wider than tall.

    The label is drawn first (0 or 1, probability 1/2), then the pair of sides uniformly among
    all pairs with both sides in [3, 28] differing by at least 3 pixels (never square, never a
    one-pixel call), the longer one vertical for label 1; then the upper-left corner uniformly
    where the whole rectangle fits. Sides count pixels, outline included.

    ``image=False`` (rectangles): a white (1.0) one-pixel outline on black (0.0), so the
    bounding box of the white pixels is the rectangle. ``image=True`` (rectangles-img): no
    outline; the rectangle (border included) is filled with one natural patch and the rest with
    another (:func:`natural_patches`: the inside patches, then the outside ones, drawn after
    all the geometry, so a seed gives the same rectangles with and without ``image``).

    Parameters
    ----------
    n : int
        Number of images, at least 0.
    rng : numpy.random.Generator
        Source of the draws.
    image : bool, default=False
        Natural-image inside and outside instead of a white outline.

    Returns
    -------
    X : np.ndarray
        ``(n, 28, 28)`` float32 in [0, 1].
    y : np.ndarray
        ``(n,)`` int64, 1 for tall, 0 for wide.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = rectangles(2, np.random.default_rng(0))
    >>> X.shape, y.dtype, sorted(np.unique(X).tolist())
    ((2, 28, 28), dtype('int64'), [0.0, 1.0])
    >>> rows, cols = np.nonzero(X[0])
    >>> int(y[0]) == int(np.ptp(rows) > np.ptp(cols))
    True
    """
    n = check_int("n", n, low=0, owner="rectangles")
    rng = _check_rng(rng, "rectangles")
    if not is_bool(image):
        raise parameter_error("image", "a bool", image, owner="rectangles")
    labels = rng.integers(2, size=n)  # (n,) 1: tall
    sides = _RECT_SIDES[rng.integers(len(_RECT_SIDES), size=n)]  # (n, 2)
    tall = labels == 1
    height = np.where(tall, sides[:, 1], sides[:, 0])  # (n,)
    width = np.where(tall, sides[:, 0], sides[:, 1])
    top = rng.integers(_SIDE - height + 1)  # (n,) in [0, 28 - height]
    left = rng.integers(_SIDE - width + 1)
    pix = np.arange(_SIDE)
    in_rows = (pix >= top[:, None]) & (pix < (top + height)[:, None])  # (n, 28)
    in_cols = (pix >= left[:, None]) & (pix < (left + width)[:, None])
    box = in_rows[:, :, None] & in_cols[:, None, :]  # (n, 28, 28) the filled rectangle
    if image:
        inside = natural_patches(n, rng)
        X = natural_patches(n, rng)  # the outside, then the inside copied over it
        X[box] = inside[box]
    else:
        inner_rows = (pix > top[:, None]) & (pix < (top + height - 1)[:, None])
        inner_cols = (pix > left[:, None]) & (pix < (left + width - 1)[:, None])
        X = (box & ~(inner_rows[:, :, None] & inner_cols[:, None, :])).astype(np.float32)
    return X, labels.astype(np.int64)


def _pixels(bounds: np.ndarray) -> np.ndarray:
    """``(k,)`` white pixels of ``(k, 2, 28)`` row intervals."""
    return np.maximum(bounds[:, 1] - bounds[:, 0] + 1, 0).sum(axis=1).astype(np.int64)


def _half_planes(m: int, p: float, min_pixels: int, rng: np.random.Generator) -> np.ndarray:
    """The sets among ``m`` candidate intersections of half-planes with ``min_pixels`` or more.

    A candidate intersects ``k ~ geometric(p)`` (>= 1) half-planes, each bounded by the line
    through a point uniform in the image square [0, 28)^2, its normal at an angle uniform in
    [0, 2 pi); a pixel is in it when its centre (row + 0.5, col + 0.5) is on the normal's side
    or on the line. A half-plane's pixels in a row are a run open to one side, so a set is kept
    as one column interval per row (28 numbers, not 784 pixels); a candidate stops drawing once
    under ``min_pixels`` (it only shrinks). Returns ``(k, 2, 28)`` float: per set, the first
    and last white column of each row.
    """
    count = rng.geometric(p, size=m)  # (m,) half-planes per candidate
    bounds = np.empty((m, 2, _SIDE))  # (m, first/last, row); a row is empty when last < first
    bounds[:, 0], bounds[:, 1] = 0.0, _SIDE - 1.0
    centres = np.arange(_SIDE) + 0.5  # (28,) row centres
    alive = np.arange(m)
    drawn = 0
    while alive.size:
        point = rng.uniform(0.0, _SIDE, size=(alive.size, 2))  # (a, 2) (row, col) on the line
        angle = rng.uniform(0.0, 2.0 * np.pi, size=alive.size)  # a = alive.size candidates
        # Normal (nr, nc): pixel in when (y - pr) nr + (x - pc) nc >= 0, i.e. in row y,
        # x >= b when nc > 0 and x <= b when nc < 0, with b = pc - (y - pr) nr / nc. A normal
        # with nc == 0 exactly (probability ~0) is treated as nearly horizontal.
        nr, nc = np.cos(angle), np.sin(angle)
        nc = np.where(nc < 0, np.minimum(nc, -1e-12), np.maximum(nc, 1e-12))
        b = point[:, 1:] - (centres - point[:, :1]) * (nr / nc)[:, None] - 0.5  # (a, 28) col
        b = np.clip(b, -1.0, float(_SIDE))  # a bound outside the image is as good as infinite
        cur = bounds[alive]  # (a, 2, 28)
        right = (nc > 0)[:, None]  # (a, 1): the half-plane is to the right of b
        cur[:, 0] = np.where(right, np.maximum(cur[:, 0], np.ceil(b)), cur[:, 0])
        cur[:, 1] = np.where(right, cur[:, 1], np.minimum(cur[:, 1], np.floor(b)))
        bounds[alive] = cur
        drawn += 1
        alive = alive[(count[alive] > drawn) & (_pixels(cur) >= min_pixels)]
    return bounds[_pixels(bounds) >= min_pixels]


def _raster(bounds: np.ndarray) -> np.ndarray:
    """``(k, 2, 28)`` row intervals as ``(k, 28, 28)`` bool images."""
    cols = np.arange(_SIDE)
    return (cols >= bounds[:, 0, :, None]) & (cols <= bounds[:, 1, :, None])


@functools.lru_cache(maxsize=4)
def _hull_pairs(side: int) -> tuple[np.ndarray, ...]:
    """For each row r, the rows i < r < j around it, as ``(side, P)`` tables padded with i=j=r.

    Returns i, j, the weights (j - r, r - i) and 1 / (j - i) of the interpolation at r between
    rows i and j: ``(x_i (j - r) + x_j (r - i)) / (j - i)``. A padding entry gives ``x_r``.
    """
    pairs = [[(i, j) for i in range(r) for j in range(r + 1, side)] for r in range(side)]
    width = max(len(p) for p in pairs) + 1  # every row gets a padding entry: x_r itself
    i = np.array([[a for a, _ in p] + [r] * (width - len(p)) for r, p in enumerate(pairs)])
    j = np.array([[b for _, b in p] + [r] * (width - len(p)) for r, p in enumerate(pairs)])
    r = np.arange(side)[:, None]
    pad = i == j
    w_i = np.where(pad, 1, j - r).astype(np.float32)
    w_j = np.where(pad, 0, r - i).astype(np.float32)
    inv = np.where(pad, 1.0, 1.0 / np.where(pad, 1, j - i)).astype(np.float32)
    return i, j, w_i, w_j, inv


def _digitally_convex(masks: np.ndarray) -> np.ndarray:
    """Whether each ``(k, side, side)`` bool image is digitally convex: ``(k,)`` bool.

    A set S of pixel centres is digitally convex when it holds every pixel centre of its
    convex hull (S = Z^2 ∩ conv S): the rasterised hull is the set itself. The hull meets row r
    in [L(r), R(r)], where R is the upper concave envelope of the rows' last white columns,
    the maximum over rows i <= r <= j of their linear interpolation at r (L likewise, with
    first columns and minimum); S is convex when each row holds exactly the pixels from
    ceil(L(r)) to floor(R(r)). Exact: interpolations are multiples of 1 / (j - i), at least
    1/27 from an integer when not one, and float32 is within 4e-6. An image with a gap inside a
    row or a column is not convex, which settles most non-convex images without the hull.
    """
    side = masks.shape[1]
    count = masks.sum(axis=2)  # (k, side) white pixels per row
    full = count > 0
    far = 1e4  # an empty row's first/last column: makes any pair through it irrelevant
    first = np.where(full, masks.argmax(axis=2), far).astype(np.float32)  # (k, side)
    last = np.where(full, side - 1 - masks[:, :, ::-1].argmax(axis=2), -far).astype(np.float32)
    gap = (count != np.where(full, last - first + 1, 0)).any(axis=1)
    col_count = masks.sum(axis=1)  # (k, side) white pixels per column
    top, bottom = masks.argmax(axis=1), side - 1 - masks[:, ::-1].argmax(axis=1)
    gap |= (col_count != np.where(col_count > 0, bottom - top + 1, 0)).any(axis=1)
    out = ~gap
    i, j, w_i, w_j, inv = _hull_pairs(side)
    todo = np.flatnonzero(out)
    chunk = 512  # (chunk, side, P) float32 tables: ~10 MB each
    for s in range(0, todo.size, chunk):
        idx = todo[s : s + chunk]
        lo, hi = first[idx], last[idx]  # (c, side)
        right = np.floor(((hi[:, i] * w_i + hi[:, j] * w_j) * inv).max(axis=2) + 1e-3)
        left = np.ceil(((lo[:, i] * w_i + lo[:, j] * w_j) * inv).min(axis=2) - 1e-3)
        in_hull = np.maximum(right - left + 1, 0)  # (c, side) pixel centres of the hull per row
        out[idx] = (in_hull == count[idx]).all(axis=1)
    return out


def _nonconvex_sets(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 28, 28)`` bool: unions of 2-4 half-plane sets that are not convex, >= 19 pixels."""
    out = np.empty((n, _SIDE, _SIDE), bool)
    filled = 0
    while filled < n:
        m = min(2 * (n - filled) + 16, _MAX_BATCH // 2)  # about 4 in 5 unions are not convex
        parts = rng.integers(_PARTS[0], _PARTS[1] + 1, size=m)  # (m,) sets per union
        need = int(parts.sum())
        found: list[np.ndarray] = []
        while need > 0:  # about 1 in 5 candidates has 10 pixels
            bounds = _half_planes(min(5 * need + 64, _MAX_BATCH), _P_PART, _MIN_PART, rng)[:need]
            found.append(bounds)
            need -= len(bounds)
        sets = _raster(np.concatenate(found))  # (sum(parts), 28, 28)
        start = np.cumsum(parts) - parts  # (m,) each union's first set
        union = sets[start]
        for extra in range(1, _PARTS[1]):
            more = parts > extra
            union[more] |= sets[start[more] + extra]
        union = union[union.sum(axis=(1, 2)) >= _MIN_CONVEX]
        union = union[~_digitally_convex(union)][: n - filled]
        out[filled : filled + len(union)] = union
        filled += len(union)
    return out


def _convex_sets(areas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(len(areas), 28, 28)`` bool convex sets, one with each white-pixel count in ``areas``.

    Candidates (geometric(0.195) half-planes, at least 19 pixels) are drawn in rounds; one is
    taken while its pixel count is still wanted, in the order drawn, until every count is met.
    """
    want = np.bincount(areas, minlength=_SIDE * _SIDE + 1)  # (785,) sets still wanted per area
    out = np.empty((len(areas), _SIDE, _SIDE), bool)
    filled = 0
    for _ in range(10000):  # ~200 rounds for 25000 sets (rare counts come last): stops a bug
        if filled == len(areas):
            return out
        m = min(4 * (len(areas) - filled) + 1024, _MAX_BATCH)
        bounds = _half_planes(m, _P_CONVEX, _MIN_CONVEX, rng)
        area = _pixels(bounds)  # (k,)
        # Rank of each candidate among the earlier ones of its area: take it if rank < want.
        order = np.argsort(area, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(area)) - np.searchsorted(area[order], area[order])
        take = rank < want[area]
        want -= np.bincount(area[take], minlength=want.size)
        out[filled : filled + int(take.sum())] = _raster(bounds[take])
        filled += int(take.sum())
    raise RuntimeError(f"convex sets of {len(areas) - filled} pixel counts were never drawn")


def convex(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw the convex task: a white region on black, label 1 when it is convex.

    As the authors describe it (their parameters), label 1 is the intersection of
    ``k ~ geometric(0.195)`` random half-planes with at least 19 white pixels; label 0 is the
    union of 2 to 4 (uniform) intersections of ``geometric(0.07)`` half-planes with at least 10
    pixels each, kept when it is not convex. A half-plane is bounded by the line through a point
    uniform in the image square, its normal at an angle uniform in [0, 2 pi); a pixel is white
    when its centre is in every half-plane. Choices made here:

    * convex means digitally convex: the set holds every pixel centre of its convex hull
      (the rasterised hull is the set). Label-1 sets are convex by construction.
    * a non-convex union also needs at least 19 pixels, so that the two classes can match.
    * white area: with these parameters unions are larger (about 470 pixels on average against
      280); the authors balanced the means. Here label-1 sets are drawn to match the label-0
      sets' pixel counts one for one (a candidate is kept while its count is still wanted): the
      classes have the same multiset of pixel counts (``n`` even), area tells nothing.

    ``n // 2`` images have label 0 and ``n - n // 2`` label 1 (an odd one out matches a
    non-convex set drawn but not returned), in an order shuffled with ``rng``.

    Parameters
    ----------
    n : int
        Number of images, at least 0.
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    X : np.ndarray
        ``(n, 28, 28)`` float32, 0.0 or 1.0.
    y : np.ndarray
        ``(n,)`` int64, 1 for convex.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = convex(4, np.random.default_rng(0))
    >>> X.shape, y.tolist().count(1), y.tolist().count(0)
    ((4, 28, 28), 2, 2)
    >>> area = X.sum(axis=(1, 2))
    >>> sorted(area[y == 0].tolist()) == sorted(area[y == 1].tolist())
    True
    """
    n = check_int("n", n, low=0, owner="convex")
    rng = _check_rng(rng, "convex")
    n0, n1 = n // 2, n - n // 2
    nonconvex = _nonconvex_sets(n1, rng)  # (n1, 28, 28): the first n0 are label 0
    sets = _convex_sets(nonconvex.sum(axis=(1, 2)), rng)  # (n1, 28, 28) matching pixel counts
    X = np.concatenate([nonconvex[:n0], sets]).astype(np.float32)
    y = np.repeat(np.array([0, 1], np.int64), [n0, n1])
    order = rng.permutation(n)
    return X[order], y[order]


def _check_mnist(mnist: object, name: str) -> tuple[np.ndarray, np.ndarray]:
    constraint = (
        f"a tuple (images, labels) of MNIST's train then test images, uint8 {_MNIST_SHAPE}, "
        f"and their {_MNIST_SHAPE[0]} labels, for {name!r}"
    )
    if not (isinstance(mnist, tuple) and len(mnist) == 2):
        value = mnist if mnist is None else _Shown(f"a {type(mnist).__name__}")
        raise parameter_error("mnist", constraint, value, owner="regenerate")
    images, labels = np.asarray(mnist[0]), np.asarray(mnist[1])
    good_images = images.shape == _MNIST_SHAPE and images.dtype == np.uint8
    if not (good_images and labels.shape == _MNIST_SHAPE[:1] and labels.dtype.kind in "iu"):
        got = f"images of {images.dtype} {images.shape} and labels of {labels.dtype} {labels.shape}"
        raise parameter_error("mnist", constraint, _Shown(got), owner="regenerate")
    return images, labels


def _mnist_indices(seed: int, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Disjoint indices into MNIST's 70000 images: train and valid from its training set."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(_MNIST_TRAIN)  # (60000,)
    n_fit = sizes["train"] + sizes["valid"]
    rest = np.concatenate([order[n_fit:], np.arange(_MNIST_TRAIN, _MNIST_SHAPE[0])])  # (58000,)
    return {
        "train": order[: sizes["train"]],
        "valid": order[sizes["train"] : n_fit],
        "test": rest[rng.permutation(rest.size)[: sizes["test"]]],
    }


def regenerate(
    name: str, seed: int, mnist: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Regenerate one of the eight sets, its three splits at the sizes of :data:`VARIATION_SIZES`.

    Digit sets: ``np.random.default_rng(seed).permutation(60000)`` of MNIST's training images
    gives train then valid (its first 10000 and next 2000); the test images are the first 50000
    of a second permutation, from the same generator, of the other 58000 images (the rest of
    the training set and the 10000 test images), so no image is in two splits. Pixels are
    scaled by 1/255, then the set's variation is applied: none (basic), :func:`rotate_digits`
    (rot), :func:`random_background` (bg-rand), :func:`image_background` on
    :func:`natural_patches` (bg-img), or the rotation then the patch (rot-bg-img).

    The random draws of each split come from its own child of ``np.random.SeedSequence(seed)``
    (train, valid, test), and for a digit set the rotation and the background each from their
    own child of that, so that a split's images do not depend on another split's size.

    Parameters
    ----------
    name : str
        A key of :data:`VARIATION_SIZES`.
    seed : int
        At least 0.
    mnist : tuple of np.ndarray, optional
        ``(images, labels)``: MNIST's 60000 training images followed by its 10000 test images,
        uint8 ``(70000, 28, 28)``, and their ``(70000,)`` integer labels. Required for the
        digit sets (:data:`NEEDS_MNIST`), ignored for the others.

    Returns
    -------
    dict of str to (np.ndarray, np.ndarray)
        ``"train"``, ``"valid"``, ``"test"``: ``X`` float32 ``(n, 784)`` in [0, 1] (rows of
        the 28x28 images) and ``y`` int64 ``(n,)``: the digit, or the 0/1 label.

    Examples
    --------
    >>> parts = regenerate("rectangles", seed=0)
    >>> {split: X.shape for split, (X, y) in parts.items()}
    {'train': (1000, 784), 'valid': (200, 784), 'test': (50000, 784)}
    >>> regenerate("mnist-rot", seed=0)
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'mnist' parameter of regenerate must be a tuple ...
    """
    name = check_choice("name", name, VARIATION_SIZES, owner="regenerate")
    seed = check_int("seed", seed, low=0, owner="regenerate")
    sizes = dict(zip(_SPLITS, VARIATION_SIZES[name], strict=True))
    streams = dict(zip(_SPLITS, np.random.SeedSequence(seed).spawn(3), strict=True))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if name not in NEEDS_MNIST:
        for split, stream in streams.items():
            rng = np.random.default_rng(stream)
            if name == "convex":
                X, y = convex(sizes[split], rng)
            else:
                X, y = rectangles(sizes[split], rng, image=name == "rectangles-img")
            out[split] = (X.reshape(len(X), -1), y)
        return out
    images, labels = _check_mnist(mnist, name)
    rotate = "-rot" in name
    background = name.rsplit("-bg-", 1)[1] if "-bg-" in name else None  # "rand" or "img"
    for split, index in _mnist_indices(seed, sizes).items():
        rotate_rng, background_rng = (np.random.default_rng(s) for s in streams[split].spawn(2))
        X = images[index].astype(np.float32) / 255.0  # (n, 28, 28)
        if rotate:
            X = rotate_digits(X, rotate_rng)
        if background == "rand":
            X = random_background(X, background_rng)
        elif background == "img":
            X = image_background(X, natural_patches(len(X), background_rng))
        out[split] = (X.reshape(len(X), -1), labels[index].astype(np.int64))
    return out

"""``contractive data``: describe a dataset the loaders know, and draw a grid of its images.

``contractive data NAME`` loads ``NAME`` (a name of :data:`contractive.data.DATASETS` or a
``.npy``/``.npz``/``.csv`` path) through :func:`contractive.data.load_dataset`, the loader
every other command uses, and prints: the size of each split (train/valid/test for the sets
with their own validation split, train/test for the other built-in sets, the rows of a file),
the number of features and the image shape, the classes of the chosen split and how many
samples each has, the range of the values, and where the data came from. For the MNIST
variations and shape sets, that last line says whether the original files were read (and
where they are) or the set was regenerated, which is comparable to but not the same as the
original. ``--json`` prints the same as one JSON object.

``--grid PNG`` also draws ``--n`` images of the split, picked with
:func:`contractive.data.draw_indices` and ``--seed``, in a square grid with each label above
its image (:func:`contractive.plots.plot_image_grid`).

Examples
--------
>>> from contractive.cli import main
>>> main(["data", "digits", "--split", "test"])
dataset      digits
splits       train 1437, test 360
split        test: 360 samples
features     64 (images 8x8)
classes      10: 0 (39), 1 (37), 2 (47), 3 (28), 4 (42), 5 (32), 6 (37), 7 (27), 8 (30), 9 (41)
values       0 .. 1
provenance   scikit-learn's bundled copy of the UCI optical digits (sklearn.datasets.load_digits)
0
>>> main(["data", "digits", "--grid", "digits.png", "--n", "16"])
dataset      digits
...
Wrote 16 of the 1437 train images to digits.png
0

Tabular data have no grid (a usage error, status 2, one line on stderr, not shown here):

>>> import numpy as np
>>> np.save("table.npy", np.zeros((3, 5), dtype=np.float32))
>>> main(["data", "table.npy", "--grid", "table.png"])
2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..cifar import CIFAR10_CLASSES
from ..data import DATASETS, OWN_VALIDATION, SPLITS, Dataset, draw_indices, load_dataset
from .common import Command, UsageError, add_int_option

__all__ = ["COMMANDS"]

# Where a built-in set comes from, when its Dataset carries no provenance of its own.
_PROVENANCE = {
    "digits": "scikit-learn's bundled copy of the UCI optical digits "
    "(sklearn.datasets.load_digits)",
    "mnist": "the original IDX files, md5-checked",
    "fashion-mnist": "the original IDX files, md5-checked",
}
_FILE_PROVENANCE = "a user file, values as stored"


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``contractive data NAME`` to ``parser``."""
    parser.add_argument(
        "source",
        metavar="NAME",
        help=f"a dataset name ({', '.join(DATASETS)}) or a .npy/.npz/.csv path",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="folder holding the dataset files (default: CONTRACTIVE_DATA_DIR, then the cache)",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="train",
        help="which split of a built-in dataset to describe and draw (default: train; valid: "
        "the MNIST variations' own validation set); files are used whole",
    )
    parser.add_argument(
        "--grid", metavar="PNG", default=None, help="also draw --n images of the split into PNG"
    )
    add_int_option(parser, "--n", 100, "images in the --grid")
    add_int_option(parser, "--seed", 0, "seed of the images drawn for --grid", allow_zero=True)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _class_names(name: str) -> tuple[str, ...] | None:
    """The names of a dataset's labels, indexed by label, when it has some (CIFAR-10's)."""
    return CIFAR10_CLASSES if name == "cifar-bw" else None


def _parts(name: str) -> tuple[str, ...]:
    """The splits a built-in set has, without ``"all"``."""
    if name in OWN_VALIDATION:
        return ("train", "valid", "test")
    return ("train", "test")


def _describe(
    ds: Dataset, split: str | None, sizes: dict[str, int], data_dir: str | None
) -> dict[str, Any]:
    """The description of ``ds`` (the chosen split; None for a file) as a JSON-ready dict."""
    classes = None
    if ds.y is not None:
        values, counts = np.unique(ds.y, return_counts=True)
        classes = {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}
    value_range = None
    if ds.n_samples:
        value_range = [float(np.min(ds.X)), float(np.max(ds.X))]
    origin = None
    if ds.name in OWN_VALIDATION:
        from ..variations import variation_status

        origin = variation_status(ds.name, data_dir)
    default = _FILE_PROVENANCE if split is None else _PROVENANCE.get(ds.name)
    return {
        "name": ds.name,
        "kind": "file" if split is None else "built-in",
        "split": split,
        "sizes": sizes,
        "n_samples": ds.n_samples,
        "n_features": ds.n_features,
        "image_shape": None if ds.image_shape is None else list(ds.image_shape),
        "classes": classes,
        "value_range": value_range,
        "provenance": ds.provenance or default,
        "origin": origin,
        "grid": None,
    }


def _print_text(info: dict[str, Any]) -> None:
    print(f"dataset      {info['name']}")
    sizes = info["sizes"]
    if info["split"] is None:
        print(f"rows         {sizes['rows']}")
    else:
        print(f"splits       {', '.join(f'{s} {n}' for s, n in sizes.items())}")
        print(f"split        {info['split']}: {info['n_samples']} samples")
    shape = info["image_shape"]
    kind = "tabular: no image shape" if shape is None else "images " + "x".join(map(str, shape))
    print(f"features     {info['n_features']} ({kind})")
    classes = info["classes"]
    if classes is None:
        print("classes      none (unlabelled)")
    else:
        names = _class_names(info["name"])
        shown = ", ".join(
            f"{c}{' ' + names[int(c)] if names else ''} ({n})" for c, n in classes.items()
        )
        print(f"classes      {len(classes)}: {shown}")
    if info["value_range"] is not None:
        lo, hi = info["value_range"]
        print(f"values       {lo:.6g} .. {hi:.6g}")
    print(f"provenance   {info['provenance']}")
    if info["origin"] is not None:
        print(f"origin       {info['origin']}")


def _data(args: argparse.Namespace) -> int:
    """``contractive data``: describe a dataset (and draw a grid of it); returns 0."""
    grid = None if args.grid is None else Path(args.grid)
    if grid is not None and grid.suffix.lower() != ".png":
        raise UsageError(f"--grid {grid}: expected a .png file name")
    ds = load_dataset(args.source, split=args.split, data_dir=args.data_dir)
    name = str(args.source).strip().lower()
    builtin = name in DATASETS
    if grid is not None and ds.image_shape is None:
        raise UsageError(
            f"--grid needs images, and {ds.name} is tabular (no image shape); drop --grid"
        )
    if builtin:
        sizes = {
            part: ds.n_samples
            if part == args.split
            else load_dataset(name, split=part, data_dir=args.data_dir).n_samples
            for part in _parts(name)
        }
    else:
        sizes = {"rows": ds.n_samples}
    info = _describe(ds, args.split if builtin else None, sizes, args.data_dir)
    shown = 0
    if grid is not None:
        info["grid"] = str(grid)
        shown = _draw_grid(ds, grid, args.n, args.seed, info["split"])
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    _print_text(info)
    if grid is not None:
        what = "" if info["split"] is None else f"{info['split']} "
        print(f"Wrote {shown} of the {ds.n_samples} {what}images to {grid}")
    return 0


def _draw_grid(ds: Dataset, path: Path, n: int, seed: int, split: str | None) -> int:
    """Draw ``n`` images of ``ds`` drawn with ``seed`` into ``path`` (atomically); how many."""
    from ..plots import plot_image_grid

    assert ds.image_shape is not None  # _data refuses --grid for tabular data
    index = draw_indices(ds.n_samples, n, seed)
    labels: list[object] | None = None
    if ds.y is not None:
        names = _class_names(ds.name)
        labels = [names[int(v)] if names else int(v) for v in ds.y[index]]
    where = "" if split is None else f" {split}"
    title = f"{ds.name}{where}: {index.size} of {ds.n_samples} images (seed {seed})"
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_image_grid(ds.X[index], ds.image_shape, path, labels=labels, title=title)
    return int(index.size)


COMMANDS: dict[str, Command] = {
    "data": Command("describe a dataset, and draw a grid of it", _add_data_arguments, _data),
}
"""The command of this module."""

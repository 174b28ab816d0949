"""The IDX format and the MNIST / Fashion-MNIST files: where they are found, their download.

The four original ``.gz`` files of a dataset (60000 train and 10000 test images of 28x28
pixels) are md5-checked, with the same mirrors and checksums as torchvision. Files are looked
up, for each file in turn, in: the ``data_dir`` argument (the folder itself, then
``<data_dir>/<name>/``); the ``CONTRACTIVE_DATA_DIR`` environment variable (same two places);
the cache folder ``default_data_dir() / <name>``. A file found nowhere is downloaded into the
cache folder when ``download`` is true. :func:`contractive.data.load_dataset` turns the images
into a scaled float32 :class:`~contractive.data.Dataset`.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from contractive.exceptions import DataError

__all__ = [
    "DATA_DIR_ENV",
    "check_md5",
    "default_data_dir",
    "download_file",
    "load_idx_images",
    "md5_of",
    "read_idx",
    "search_dirs",
]

DATA_DIR_ENV = "CONTRACTIVE_DATA_DIR"
"""Environment variable naming a folder that holds the MNIST / Fashion-MNIST files."""

_DOWNLOAD_TIMEOUT_S = 30.0
_DOWNLOAD_CHUNK = 1 << 20
_HINT_DATA_DIR = (
    "place the four files in a folder and pass --data-dir DIR or set CONTRACTIVE_DATA_DIR"
)

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# Same mirrors and checksums as torchvision.
_MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# IDX type codes (third byte of the magic number); multi-byte types are big-endian.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def default_data_dir() -> Path:
    """Return the cache folder that downloaded datasets go into.

    This is ``$XDG_CACHE_HOME/contractive`` when ``XDG_CACHE_HOME`` is set to an absolute
    path, otherwise ``~/.cache/contractive``. Each dataset has its own subfolder (e.g.
    ``mnist``). The folder is not created here.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> default_data_dir().name
    'contractive'
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "contractive"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or raw.

    The magic number is two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64) and the number of dimensions,
    followed by one big-endian uint32 per dimension and the data. Compression is detected
    from the content, not the file name.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    np.ndarray
        A writable array of the stored shape, in native byte order.

    Raises
    ------
    DataError
        If the file is not valid gzip, not IDX, or its data is shorter or longer than its
        dimensions say.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny-idx1-ubyte"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(p)
    array([7, 8, 9], dtype=uint8)
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} could not be read: {exc}") from exc
    compressed = data[:2] == b"\x1f\x8b"
    if compressed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            # BadGzipFile is an OSError; a cut-off stream raises EOFError, a damaged one
            # zlib.error.
            raise DataError(f"{path} is not a valid gzip file ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        if not compressed and path.suffix.lower() == ".gz":
            raise DataError(f"{path} is not a valid gzip file (no gzip header)")
        raise DataError(
            f"{path} is not an IDX file: its magic number is {data[:4].hex() or 'missing'}"
        )
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: its header needs {header} bytes, found {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "is truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{path} {what}: shape {shape} needs {expected} bytes of data, found {found}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # astype copies, which also makes the result writable (frombuffer on bytes is not).
    return arr.astype(dtype.newbyteorder("="))


def download_file(
    url: str | Sequence[str],
    dest: str | os.PathLike[str],
    md5: str,
    *,
    timeout: float = _DOWNLOAD_TIMEOUT_S,
    hint: str | None = None,
) -> Path:
    """Download a file, verify its md5, and move it into place atomically.

    Each URL is tried in turn. The bytes are streamed into a temporary file in the folder of
    ``dest``, and only a file with the expected md5 is renamed to ``dest`` (``os.replace``),
    so an interrupted or corrupt download never leaves a file at ``dest``. A progress bar is
    shown when stderr is a terminal.

    Parameters
    ----------
    url : str or sequence of str
        One URL, or mirrors to try in order (any scheme ``urllib`` opens, ``file://`` too).
    dest : str or path-like
        Where the file goes; missing parent folders are created.
    md5 : str
        Expected hex md5 of the file.
    timeout : float
        Seconds to wait for the connection and for each read.
    hint : str, optional
        What to do without network, ending the failure message after "Without network, "
        (default: the MNIST advice, to place the four files in a folder and pass
        ``--data-dir DIR`` or set ``CONTRACTIVE_DATA_DIR``).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    DataError
        If no URL gave the file with the right md5; the message lists each URL and why.

    Examples
    --------
    A ``file://`` URL goes through the same checks as a download:

    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> source = folder / "source.bin"
    >>> _ = source.write_bytes(b"contractive")
    >>> md5 = "8e68ecbca2c39862a6e19d795bd896cd"  # of b"contractive"
    >>> download_file(source.as_uri(), folder / "copy" / "data.bin", md5).read_bytes()
    b'contractive'
    >>> download_file(source.as_uri(), folder / "bad.bin", "0" * 32)
    Traceback (most recent call last):
        ...
    contractive.exceptions.DataError: Could not download bad.bin; tried file:///...source.bin
    (got md5 8e68ecbca2c39862a6e19d795bd896cd, expected 00000000000000000000000000000000). ...
    >>> sorted(p.name for p in folder.iterdir())  # no partial file is left behind
    ['copy', 'source.bin']

    A caller with other files to place says so with ``hint``:

    >>> download_file(
    ...     (folder / "gone.bin").as_uri(), folder / "gone.bin", md5, hint="copy gone.bin by hand"
    ... )
    Traceback (most recent call last):
        ...
    contractive.exceptions.DataError: Could not download gone.bin; tried file:///...gone.bin
    (...). Without network, copy gone.bin by hand.

    From the network (skipped here: the tests run offline):

    >>> download_file(  # doctest: +SKIP
    ...     "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
    ...     folder / "t10k-labels-idx1-ubyte.gz",
    ...     "ec29112dd5afa0611ce80d1b7f02629c",
    ... ).name
    't10k-labels-idx1-ubyte.gz'
    """
    import urllib.request

    from tqdm import tqdm

    from .runs import atomic_writer  # torch, which runs imports, is not needed before here

    urls = [url] if isinstance(url, str) else list(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for u in urls:
        try:
            # The file replaces ``dest`` only if the with-block ends without an error.
            with atomic_writer(dest, suffix=".part") as out:
                digest = hashlib.md5(usedforsecurity=False)
                with urllib.request.urlopen(u, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length") if resp.headers else None
                    total = int(length) if length and str(length).isdigit() else None
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=dest.name,
                        disable=not sys.stderr.isatty(),
                        leave=False,
                    ) as bar:
                        while chunk := resp.read(_DOWNLOAD_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
                got = digest.hexdigest()
                if got != md5:
                    raise _WrongMd5(f"{u} (got md5 {got}, expected {md5})")
            return dest
        except _WrongMd5 as exc:
            failures.append(str(exc))
        except (OSError, ValueError) as exc:
            # URLError, HTTPError, timeouts and connection resets are all OSErrors; a
            # malformed URL is a ValueError.
            failures.append(f"{u} ({exc})")
    raise DataError(
        f"Could not download {dest.name}; tried {'; '.join(failures)}. Without network, "
        f"{_HINT_DATA_DIR if hint is None else hint}."
    )


class _WrongMd5(Exception):
    """A download finished with other bytes than expected; it is not kept."""


def md5_of(path: str | os.PathLike[str]) -> str:
    """The hex md5 of a file, read in 1 MiB chunks.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "data.bin"
    >>> _ = path.write_bytes(b"contractive")
    >>> md5_of(path)
    '8e68ecbca2c39862a6e19d795bd896cd'
    """
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as f:
        while chunk := f.read(_DOWNLOAD_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(path: str | os.PathLike[str], want: str, got: str | None = None) -> None:
    """Raise :class:`DataError` unless the file's md5 (or ``got``, when already known) is ``want``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "data.bin"
    >>> _ = path.write_bytes(b"contractive")
    >>> check_md5(path, "8e68ecbca2c39862a6e19d795bd896cd")
    >>> check_md5(path, "0" * 32)
    Traceback (most recent call last):
        ...
    contractive.exceptions.DataError: .../data.bin has md5 8e68ecbca2c39862a6e19d795bd896cd, \
expected 00000000000000000000000000000000: the file is corrupt or not the original; delete it \
and download again.
    """
    got = md5_of(path) if got is None else got
    if got != want:
        raise DataError(
            f"{path} has md5 {got}, expected {want}: the file is corrupt or not the original; "
            "delete it and download again."
        )


def search_dirs(name: str, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The folders where dataset ``name``'s files are looked for, in order.

    ``data_dir`` itself, then ``data_dir/name``; the same two under ``CONTRACTIVE_DATA_DIR``
    when it is set; last the cache folder ``default_data_dir() / name`` (where downloads go).
    Duplicates are dropped; the folders need not exist.

    Examples
    --------
    >>> [p.as_posix() for p in search_dirs("mnist", "/data")[:2]]
    ['/data', '/data/mnist']
    >>> search_dirs("mnist", None)[-1] == default_data_dir() / "mnist"
    True
    """
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        roots.append(Path(env).expanduser())
    dirs: list[Path] = []
    for root in roots:
        for d in (root, root / name):
            if d not in dirs:
                dirs.append(d)
    cache = default_data_dir() / name
    if cache not in dirs:
        dirs.append(cache)
    return dirs


def _locate_idx_files(
    name: str, files: Sequence[str], data_dir: str | os.PathLike[str] | None, download: bool
) -> dict[str, Path]:
    dirs = search_dirs(name, data_dir)
    md5s = _MD5[name]
    found: dict[str, Path] = {}
    missing: list[str] = []
    for fn in files:
        hit = next((d / fn for d in dirs if (d / fn).is_file()), None)
        if hit is None:
            missing.append(fn)
        else:
            found[fn] = hit
    # Verify what is there before any download, so a corrupt user file fails fast.
    for fn, p in found.items():
        got = md5_of(p)
        other = next((o for o in _MD5 if o != name and _MD5[o][fn] == got), None)
        if other is not None:
            raise DataError(
                f"{p} is the {other} file of that name, not the {name} one: point data_dir "
                f"(--data-dir) or CONTRACTIVE_DATA_DIR at the {name} files"
            )
        check_md5(p, md5s[fn], got)
    if missing and not download:
        looked = ", ".join(f"{d}{'' if d.is_dir() else ' (does not exist)'}" for d in dirs)
        raise DataError(
            f"{name} file(s) not found: {', '.join(missing)}; looked in {looked}. "
            f"Downloading is off (download=False): {_HINT_DATA_DIR}, or allow the download."
        )
    cache = default_data_dir() / name
    for fn in missing:
        urls = [mirror + fn for mirror in _MIRRORS[name]]
        found[fn] = download_file(urls, cache / fn, md5s[fn])
    return found


def load_idx_images(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Read the images and labels of a split of MNIST or Fashion-MNIST, raw.

    The files are located (and md5-checked) as the module docstring says, missing ones
    downloaded when ``download`` is true, then read with :func:`read_idx`.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    split : {"train", "test", "all"}
        ``"all"`` is train followed by test.
    data_dir : str or path-like, optional
        Folder holding the ``.gz`` files, directly or in a subfolder named ``name``.
    download : bool
        Download missing files into ``default_data_dir() / name``.

    Returns
    -------
    images : np.ndarray
        ``(n, height, width)``, in the files' dtype (uint8).
    labels : np.ndarray
        ``(n,)`` int64.

    Raises
    ------
    DataError
        When a file is missing (and not downloaded), corrupt, the other dataset's file of that
        name, or its arrays do not fit together.

    Examples
    --------
    A file in ``data_dir`` is found first, and md5-checked before anything is read:

    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not MNIST")
    >>> load_idx_images("mnist", "test", folder, download=False)
    Traceback (most recent call last):
        ...
    contractive.exceptions.DataError: .../t10k-images-idx3-ubyte.gz has md5 ..., expected
    9fb629c4189551a2d022fa330f9573f3: the file is corrupt or not the original; delete it and
    download again.

    With the files at hand (or a network):

    >>> images, labels = load_idx_images("mnist", "test")  # doctest: +SKIP
    >>> images.shape, images.dtype, labels.shape  # doctest: +SKIP
    ((10000, 28, 28), dtype('uint8'), (10000,))
    """
    parts = ["train", "test"] if split == "all" else [split]
    needed = [fn for part in parts for fn in _IDX_FILES[part]]
    paths = _locate_idx_files(name, needed, data_dir, download)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for part in parts:
        img_path, lab_path = (paths[fn] for fn in _IDX_FILES[part])
        img = read_idx(img_path)
        lab = read_idx(lab_path)
        if img.ndim != 3:
            raise DataError(f"{img_path} holds shape {img.shape}, expected (n, height, width)")
        if lab.ndim != 1:
            raise DataError(f"{lab_path} holds shape {lab.shape}, expected (n,)")
        if img.shape[0] != lab.shape[0]:
            raise DataError(
                f"{img_path} has {img.shape[0]} images but {lab_path} has {lab.shape[0]} labels"
            )
        images.append(img)
        labels.append(lab)
    if len({img.shape[1:] for img in images}) != 1:
        raise DataError(f"{name}: train and test images differ in size")
    stack = images[0] if len(images) == 1 else np.concatenate(images)
    if stack.shape[0] == 0:
        raise DataError(f"{paths[needed[0]]} has no rows")
    return stack, np.concatenate(labels).astype(np.int64)

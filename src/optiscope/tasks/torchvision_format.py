"""Readers for data sets stored the way torchvision stores them, without importing torchvision.

torchvision cannot be installed beside this project's torch, and optiscope never downloads data,
so a user who has MNIST, Fashion-MNIST or CIFAR-10 on disk (for example from
`torchvision.datasets.MNIST(root, download=True)` on another machine) points a task's `data_root`
at that folder and these functions parse the files directly with numpy:

- MNIST / Fashion-MNIST: the IDX files (LeCun et al.), big-endian header
  `0x00 0x00 <dtype code> <ndim>` then ndim int32 sizes, then the data; optionally gzipped.
  Looked up in `<root>/MNIST/raw`, `<root>/MNIST`, `<root>` (FashionMNIST likewise).
- CIFAR-10: the "python version" batches (`cifar-10-batches-py/data_batch_1..5`, `test_batch`),
  Python pickles of {b"data": uint8 (N, 3072), b"labels": [...]}. Unpickling can run code, so
  these are only ever read from the user's own local `data_root`, never from anywhere else.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from optiscope.errors import OptiscopeError


class DataMissingError(OptiscopeError):
    """A data set a task needs is not on disk; the message says where it looked and how to get it."""


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_FILES = {
    "x": "train-images-idx3-ubyte",
    "y": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
MNIST_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
CIFAR10_FOLDER = "cifar-10-batches-py"


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (plain or .gz) into an array of its declared shape and dtype."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise OptiscopeError(f"{path} is not an IDX file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">i4", count=ndim, offset=4)
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if ndim else 1
    data = np.frombuffer(raw, dtype, count=count, offset=4 + 4 * ndim)
    return data.reshape(tuple(int(d) for d in dims))


def _find(root: Path, folder: str, stem: str) -> Path | None:
    for base in (root / folder / "raw", root / folder, root):
        for name in (stem, stem + ".gz"):
            if (base / name).is_file():
                return base / name
    return None


def load_mnist(data_root: str | Path, dataset: str = "mnist") -> dict[str, np.ndarray]:
    """MNIST or Fashion-MNIST from torchvision-layout IDX files: x (N, 784) in [0, 1], y int64."""
    if dataset not in MNIST_FOLDERS:
        raise OptiscopeError(f"dataset must be one of {sorted(MNIST_FOLDERS)} (got {dataset!r})")
    root = Path(data_root).expanduser()
    folder = MNIST_FOLDERS[dataset]
    paths = {k: _find(root, folder, stem) for k, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise DataMissingError(
            f"{dataset}: no {', '.join(missing)} (or .gz) under data_root={str(root)!r} "
            f"(looked in {root / folder / 'raw'}, {root / folder}, {root}). optiscope never downloads "
            f"data: fetch it once elsewhere, e.g. `torchvision.datasets.{folder}('{root}', download=True)`, "
            f"or copy the four IDX files into {root / folder / 'raw'}, then set data_root to that root."
        )
    out: dict[str, np.ndarray] = {}
    for k, p in paths.items():
        arr = read_idx(p)  # type: ignore[arg-type]
        if k.startswith("x"):
            out[k] = arr.reshape(len(arr), -1).astype(np.float32) / 255.0
        else:
            out[k] = arr.astype(np.int64)
    for a, b in (("x", "y"), ("x_test", "y_test")):
        if len(out[a]) != len(out[b]):
            raise OptiscopeError(f"{dataset}: {len(out[a])} images but {len(out[b])} labels in {root}")
    return out


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")  # noqa: S301 - the user's own local file, see module doc
    data = np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32)
    return data, np.asarray(d[b"labels"], np.int64)


def load_cifar10(data_root: str | Path) -> dict[str, np.ndarray]:
    """CIFAR-10 from the python-version batches: x (N, 3, 32, 32) in [0, 1], y int64."""
    root = Path(data_root).expanduser()
    base = next((b for b in (root / CIFAR10_FOLDER, root) if (b / "test_batch").is_file()), None)
    names = [f"data_batch_{i}" for i in range(1, 6)]
    if base is None or not all((base / n).is_file() for n in names):
        raise DataMissingError(
            f"cifar10: no CIFAR-10 python batches (data_batch_1..5, test_batch) under "
            f"data_root={str(root)!r} (looked in {root / CIFAR10_FOLDER} and {root}). optiscope never "
            f"downloads data: fetch it once elsewhere, e.g. `torchvision.datasets.CIFAR10('{root}', "
            f"download=True)`, or unpack cifar-10-python.tar.gz from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html into {root}."
        )
    parts = [_read_cifar_batch(base / n) for n in names]
    xte, yte = _read_cifar_batch(base / "test_batch")
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return {
        "x": x.astype(np.float32) / 255.0, "y": y,
        "x_test": xte.astype(np.float32) / 255.0, "y_test": yte,
    }

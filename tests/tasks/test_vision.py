"""Vision: mnist1d-mlp is pinned (initialisation and data order are relied on), the functional
CNNs equal torch.nn modules with the same weights, and the torchvision-format readers parse IDX
and CIFAR-10 pickle files that the tests write in those formats."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from torch import nn

from optiscope.engine.ensemble import EnsembleTrainer
from optiscope.optim import SGD
from optiscope.tasks import make_task
from optiscope.tasks.torchvision_format import DataMissingError, load_cifar10, load_mnist, read_idx


def test_mnist1d_mlp_initialisation_and_data_order_are_unchanged():
    task = make_task("mnist1d-mlp")
    p = task.init_params(0)
    # Initialisation draws torch.rand (serial Mersenne Twister, no vectorised path, unlike
    # randn's) and scales each entry: every entry is the same on any CPU. Only a float32 sum's
    # order could vary with the SIMD width, so the sums are taken in float64 (measured identical
    # under ATEN_CPU_CAPABILITY default / avx2 / avx512 x 1 and 2 threads), with exact entries.
    assert p["layer1.weight"][0, :3].tolist() == [0.13650032877922058, 0.07444693893194199, 0.06675970554351807]
    assert float(p["layer1.weight"].double().sum()) == pytest.approx(10.338794191649868, abs=1e-9)
    assert float(p["head.bias"].double().sum()) == pytest.approx(0.022976286709308624, abs=1e-12)
    idx = task.sampler.indices(torch.tensor([0, 1]), 0)[:, :5].tolist()
    assert idx == [[470, 1287, 2550, 694, 150], [3333, 2656, 584, 3642, 2453]]
    assert task.sampler.indices(torch.tensor([0, 1]), 45)[:, :5].tolist() == [
        [690, 451, 961, 1443, 3393], [1714, 2867, 3910, 204, 2108]]


def test_mnist1d_cnn_equals_torch_conv1d_modules():
    task = make_task("mnist1d-cnn", channels=4)
    p = task.init_params(2)
    ref = nn.Sequential(
        nn.Conv1d(1, 4, 5, padding=2), nn.ReLU(),
        nn.Conv1d(4, 4, 5, padding=2, stride=2), nn.ReLU(),
        nn.Conv1d(4, 4, 5, padding=2, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(40, 10),
    )
    names = ["conv1", None, "conv2", None, "conv3", None, None, "head"]
    with torch.no_grad():
        for mod, name in zip(ref, names):
            if name:
                mod.weight.copy_(p[f"{name}.weight"])
                mod.bias.copy_(p[f"{name}.bias"])
    x = task.x[:7]
    assert torch.allclose(task.logits(p, x), ref(x[:, None, :]), atol=1e-6)


def test_digits_cnn_equals_torch_conv2d_modules_and_digits_split_is_fixed():
    task = make_task("digits-cnn", channels=3)
    p = task.init_params(1)
    ref = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 6, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(96, 10),
    )
    with torch.no_grad():
        for mod, name in zip(ref, ["conv1", None, "conv2", None, None, "head"]):
            if name:
                mod.weight.copy_(p[f"{name}.weight"])
                mod.bias.copy_(p[f"{name}.bias"])
    x = task.x[:5]
    assert torch.allclose(task.logits(p, x), ref(x.reshape(5, 1, 8, 8)), atol=1e-6)
    assert len(task.x) == 1438 and len(task.x_test) == 359 and float(task.x.max()) <= 1.0
    assert torch.equal(make_task("digits-mlp").x, task.x)


# -- torchvision-format files -------------------------------------------------------------------


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """The IDX format: 0, 0, dtype code 0x08 (ubyte), ndim, big-endian int32 sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def make_mnist(root, folder="MNIST", n=12, n_test=6, compress=False):
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, a in arrays.items():
        write_idx(raw / name, a, compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_idx_reader_round_trips_written_files(tmp_path, compress):
    arrays = make_mnist(tmp_path, compress=compress)
    suffix = ".gz" if compress else ""
    got = read_idx(tmp_path / "MNIST" / "raw" / f"train-images-idx3-ubyte{suffix}")
    assert got.shape == (12, 28, 28) and np.array_equal(got, arrays["train-images-idx3-ubyte"])
    data = load_mnist(tmp_path)
    assert data["x"].shape == (12, 784) and data["x_test"].shape == (6, 784)
    assert np.allclose(data["x"] * 255, arrays["train-images-idx3-ubyte"].reshape(12, -1))
    assert np.array_equal(data["y"], arrays["train-labels-idx1-ubyte"])


def test_fashion_mnist_folder_and_mnist_mlp_trains_an_ensemble(tmp_path):
    make_mnist(tmp_path, folder="FashionMNIST")
    task = make_task("mnist-mlp", data_root=str(tmp_path), dataset="fashion-mnist", hidden=8, batch_size=4)
    trainer = EnsembleTrainer(task, SGD, {"lr": 0.1}, [0, 1, 2, 3])
    for _ in range(2):
        assert torch.isfinite(trainer.train_step()).all()
    assert set(trainer.evaluate()) == {"test_acc", "test_loss", "train_acc", "train_loss"}


def test_missing_mnist_error_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(DataMissingError, match="never downloads.*download=True"):
        make_task("mnist-mlp", data_root=str(tmp_path))


def test_idx_reader_rejects_a_file_with_a_bad_magic_number(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(Exception, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def make_cifar(root, n_per_batch=3, n_test=4):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else n_per_batch
        d = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), b"labels": rng.integers(0, 10, n).tolist()}
        with open(base / name, "wb") as f:
            pickle.dump(d, f)
        batches[name] = d
    return batches


def test_cifar10_reader_parses_python_batches_and_cnn_trains(tmp_path):
    batches = make_cifar(tmp_path)
    data = load_cifar10(tmp_path)
    assert data["x"].shape == (15, 3, 32, 32) and data["x_test"].shape == (4, 3, 32, 32)
    first = batches["data_batch_1"][b"data"][0].reshape(3, 32, 32)
    assert np.allclose(data["x"][0] * 255, first)
    assert data["y"].tolist()[:3] == batches["data_batch_1"][b"labels"]
    task = make_task("cifar10-cnn", data_root=str(tmp_path), channels=2, batch_size=5)
    trainer = EnsembleTrainer(task, SGD, {"lr": 0.01}, [0, 1, 2, 3])
    assert torch.isfinite(trainer.train_step()).all()
    assert torch.isfinite(trainer.evaluate()["test_loss"]).all()


def test_cifar10_validation_split_is_standardised_with_the_rows_trained_on(tmp_path):
    make_cifar(tmp_path)
    task = make_task("cifar10-cnn", data_root=str(tmp_path), channels=2, batch_size=5, eval_split="validation")
    assert (len(task.y), len(task.y_val)) == (12, 3) and not hasattr(task, "x_test")
    assert task.x.double().mean(dim=(0, 2, 3)).abs().max() < 1e-6  # held-out rows not in the statistics
    trainer = EnsembleTrainer(task, SGD, {"lr": 0.01}, [0, 1])
    assert sorted(trainer.evaluate()) == ["train_acc", "train_loss", "val_acc", "val_loss"]


def test_missing_cifar_error_names_the_files_and_the_source(tmp_path):
    with pytest.raises(DataMissingError, match="data_batch_1..5.*cifar.html"):
        make_task("cifar10-cnn", data_root=str(tmp_path))

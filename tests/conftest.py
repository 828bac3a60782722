"""Shared fixtures. Tests mirror src/optiscope/; slow ones are marked `slow`, those that need a
CUDA GPU `gpu` (skipped here when torch sees none; `make gpu-check` runs them on a GPU).

OPTISCOPE_TEST_THREADS=n runs every test with `torch.set_num_threads(n)` (over the one thread
some folders pin), to check that results do not depend on the thread count; PyTorch's own
ATEN_CPU_CAPABILITY=default|avx2|avx512 does the same for the SIMD width. The header of the
pytest run says which were in force.
"""

from __future__ import annotations

import os

import pytest
import torch

TEST_THREADS = int(os.environ.get("OPTISCOPE_TEST_THREADS") or 0)


def pytest_configure(config):
    if TEST_THREADS:
        torch.set_num_threads(TEST_THREADS)


def pytest_report_header(config):
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (gpu tests skip)"
    return (
        f"torch {torch.__version__}: {torch.get_num_threads()} threads"
        f"{' (OPTISCOPE_TEST_THREADS)' if TEST_THREADS else ''}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, CUDA GPU: {gpu}"
    )


#: Why a `gpu` test is skipped, or None when it can run.
NO_GPU = None if torch.cuda.is_available() else "needs a CUDA GPU (torch.cuda.is_available() is False)"


def pytest_collection_modifyitems(config, items):
    if NO_GPU is None:
        return
    skip = pytest.mark.skip(reason=NO_GPU)
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Apply OPTISCOPE_TEST_THREADS after the fixtures (which may pin one thread) have run."""
    if TEST_THREADS:
        torch.set_num_threads(TEST_THREADS)
    return (yield)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Each test starts from the same global RNG state (tests still pass seeds explicitly)."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def tmp_store(tmp_path):
    from optiscope.store import RunStore

    return RunStore.create(tmp_path / "store")

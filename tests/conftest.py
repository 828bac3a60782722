"""Shared fixtures. Tests mirror src/optiscope/; slow ones are marked `slow`.

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
    return (
        f"torch {torch.__version__}: {torch.get_num_threads()} threads"
        f"{' (OPTISCOPE_TEST_THREADS)' if TEST_THREADS else ''}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )


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

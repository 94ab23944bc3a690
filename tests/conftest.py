"""Test configuration: a persistent JAX compilation cache shared by the test processes.

Compiling the EM program dominates the suite's run time on a 2-core CPU; the cache lets
xdist workers and notebook kernels reuse each other's programs. This configures JAX for
the test process only (bgmm itself never changes JAX's global configuration).
"""

import os
import pathlib

import jax
import pytest

_CACHE = os.environ.get(
    "BGMM_JAX_CACHE", str(pathlib.Path(__file__).resolve().parent.parent / ".jax_cache"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)  # inherited by notebook kernels
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def faithful():
    import bgmm

    return bgmm.load_faithful()


@pytest.fixture(scope="session")
def iris():
    from sklearn.datasets import load_iris

    return load_iris().data

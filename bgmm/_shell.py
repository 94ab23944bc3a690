"""Shell helpers shared by the estimator, model selection and MCMC: precision scope,
standardisation, padding, warnings. Not public API."""

from __future__ import annotations

import contextlib
import warnings
from typing import NamedTuple

import jax
import numpy as np
from sklearn.exceptions import ConvergenceWarning as _SkConvergenceWarning

DTYPES = ("float32", "float64")


class ConvergenceWarning(_SkConvergenceWarning):
    """EM stopped at ``max_iter`` without meeting ``tol`` (also caught as scikit-learn's)."""


class DegenerateFitWarning(UserWarning):
    """A component emptied or collapsed, or an M-step hit a non-positive-definite covariance."""


def precision_scope(dtype: str):
    """Run JAX in the estimator's precision without touching the global configuration."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return jax.enable_x64(dtype == "float64")


class Standardizer(NamedTuple):
    """``x' = (x - center) / scale`` (float64); scale is one scalar repeated for spherical."""

    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x, sample_weight, covariance_type: str):
        """From x (N, D) and weights (N,) or None; or many sets at once, x (S, N, D),
        weights (S, N), giving center and scale (S, D)."""
        w = np.ones(x.shape[:-1]) if sample_weight is None else sample_weight
        if not np.isnan(x).any():  # (two passes fewer: fit_many standardises 1e6 rows)
            ws = w.sum(-1)[..., None]
            center = np.einsum("...n,...nd->...d", w, x) / ws
            var = np.einsum("...n,...nd->...d", w, (x - center[..., None, :]) ** 2) / ws
        else:
            obs = ~np.isnan(x)
            ws = (w[..., None] * obs).sum(-2)
            center = (w[..., None] * np.where(obs, x, 0.0)).sum(-2) / ws
            var = (w[..., None] * np.where(obs, x - center[..., None, :], 0.0) ** 2).sum(-2) / ws
        if covariance_type == "spherical":
            var = np.broadcast_to(var.mean(-1, keepdims=True), var.shape).copy()
        scale = np.sqrt(var)
        tiny = scale <= 1e-300 * np.maximum(1.0, np.abs(center)) + 0.0
        scale = np.where(tiny | ~np.isfinite(scale), 1.0, scale)
        return cls(center, scale)

    def transform(self, x):
        """x (..., N, D) with center and scale (..., D) (one set, or many stacked)."""
        return (x - self.center[..., None, :]) / self.scale[..., None, :]

    @property
    def log_det(self) -> float:
        return float(np.sum(np.log(self.scale)))


def enable_compilation_cache(path=None, *, min_compile_time_secs: float = 0.2) -> str:
    """Keep compiled programs on disk, so that a new Python process does not compile them again.

    A first study or fit in a process spends most of its time compiling (Old Faithful:
    about 2 of the 2.3 s of ``bgmm.select``'s K = 1..6 x 4 grid); with the cache a later
    process traces the programs and loads them instead (about 1 s).

    This sets **JAX's process-wide configuration** (``jax_compilation_cache_dir`` and
    ``jax_persistent_cache_min_compile_time_secs``; JAX's own persistent cache, which
    every jitted function of the process then uses), so bgmm never calls it on import --
    call it yourself, like ``numpyro.enable_x64``. ``bgmm``'s command line does.

    path : the cache folder; ``None``: a folder already configured for JAX (the
        ``JAX_COMPILATION_CACHE_DIR`` environment variable or ``jax.config``), else
        ``$BGMM_CACHE_DIR``, else ``~/.cache/bgmm/jax``.
    min_compile_time_secs : programs that compile faster are not stored (JAX's default,
        1 s, would leave out most of bgmm's programs, which compile in 0.2-1 s).

    Returns the folder used.
    """
    import os

    if min_compile_time_secs < 0:
        raise ValueError(f"min_compile_time_secs must be >= 0, got {min_compile_time_secs!r}")
    if path is None:
        path = (jax.config.jax_compilation_cache_dir
                or os.environ.get("JAX_COMPILATION_CACHE_DIR")
                or os.environ.get("BGMM_CACHE_DIR")
                or os.path.join(os.path.expanduser("~"), ".cache", "bgmm", "jax"))
    path = os.fspath(path)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    return path


def bucket_size(n: int) -> int:
    """Rows to pad a data set of n rows to, so that small fits share compiled programs.

    Small data sets are padded (with zero-weight rows) to one of 16 sizes per octave;
    from 65,536 rows on compile time is negligible and the data is used as is.
    """
    if n >= 65536:
        return n
    n = max(n, 16)
    step = 1 << max(0, n.bit_length() - 4)
    return -(-n // step) * step


def em_weights(weight: np.ndarray, maximum_likelihood: bool) -> np.ndarray:
    """Sample weights (..., N) as EM takes them. Maximum likelihood does not depend on
    their scale, so they are divided by the mean positive weight (exactly 1 for unit
    weights): EM's ``10 eps`` guard of each component's mass is then small against one
    sample's weight even when the weights sum to 1. Under a prior their scale is the
    data's strength against the prior, and they are kept as given."""
    if not maximum_likelihood:
        return weight
    unit = np.sum(weight, axis=-1, keepdims=True) / np.sum(weight > 0, axis=-1, keepdims=True)
    return weight / unit


def pad_rows(x: np.ndarray, weight: np.ndarray, n_to: int):
    """x (..., N, D) and weight (..., N) padded to ``n_to`` rows with zero-weight rows."""
    n = x.shape[-2]
    if n_to == n:
        return x, weight
    xp = np.zeros(x.shape[:-2] + (n_to, x.shape[-1]), x.dtype)
    xp[..., :n, :] = x
    wp = np.zeros(weight.shape[:-1] + (n_to,), weight.dtype)
    wp[..., :n] = weight
    return xp, wp


def seed_from(random_state) -> int:
    """An int seed from None / int / numpy RandomState (scikit-learn's conventions)."""
    from sklearn.utils import check_random_state

    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) % (2**31)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def restart_keys(seed: int, n: int):
    """One key per restart, the i-th independent of how many are run at once."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(n, dtype=np.uint32))


@contextlib.contextmanager
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield

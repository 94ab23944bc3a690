"""Shared helpers of the benchmarks: machine description, timing, data, re-scoring."""

from __future__ import annotations

import os
import platform
import subprocess
import time

import numpy as np
from scipy.special import logsumexp


def machine() -> str:
    """One line naming the machine, core count and the load average (shared machines)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import jax

    dev = jax.devices()[0]
    return (f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on {dev.platform} "
            f"({dev.device_kind}); load average {load()}")


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def best_time(fn, repeat: int = 3) -> float:
    """Minimum wall time of ``fn()`` over ``repeat`` calls (seconds); fn must block."""
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def mixture_data(n, d, k, seed=0, separation=3.0):
    """Standardised float64 draws from a random K-component mixture of full Gaussians."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, separation, (k, d))
    a = rng.normal(size=(k, d, d)) / np.sqrt(d)
    chol = a + np.eye(d)[None]
    z = rng.integers(0, k, n)
    x = means[z] + np.einsum("nde,ne->nd", chol[z], rng.normal(size=(n, d)))
    return (x - x.mean(0)) / x.std(0)


def initial_parameters(x, k, covariance_type, seed=1):
    """Same start for every method: K random rows as means, the data variance, equal weights.

    Returns (weights, means, covariances) in scikit-learn's shapes for the type.
    """
    rng = np.random.default_rng(seed)
    n, d = x.shape
    means = x[rng.choice(n, k, replace=False)]
    var = x.var(0)
    covs = {
        "full": np.broadcast_to(np.diag(var), (k, d, d)).copy(),
        "tied": np.diag(var),
        "diag": np.broadcast_to(var, (k, d)).copy(),
        "spherical": np.full(k, var.mean()),
    }[covariance_type]
    return np.full(k, 1.0 / k), means, covs


def precisions(covs, covariance_type):
    if covariance_type in ("diag", "spherical"):
        return 1.0 / covs
    return np.linalg.inv(covs)


def mean_loglik(x, weights, means, covs, covariance_type) -> float:
    """Mean log-likelihood per sample of a mixture, in float64 numpy (the common re-scorer)."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    k = len(weights)
    weights, means, covs = (np.asarray(a, np.float64) for a in (weights, means, covs))
    out = np.empty((n, k))
    for j in range(k):
        if covariance_type == "full":
            c = covs[j]
        elif covariance_type == "tied":
            c = covs
        elif covariance_type == "diag":
            c = np.diag(covs[j])
        else:
            c = covs[j] * np.eye(d)
        chol = np.linalg.cholesky(c)
        y = np.linalg.solve(chol, (x - means[j]).T)
        out[:, j] = (np.log(weights[j]) - 0.5 * np.sum(y * y, axis=0)
                     - np.sum(np.log(np.diag(chol))) - 0.5 * d * np.log(2 * np.pi))
    return float(np.mean(logsumexp(out, axis=1)))


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001 - informational only
        return "?"

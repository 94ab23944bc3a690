"""Parameter pytrees of the mixture."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import covariance as cov


class GMMParams(NamedTuple):
    """Mixture parameters, in scikit-learn's shapes (see :mod:`bgmm.covariance`).

    weights: (K,); means: (K, D); covariances and precisions_cholesky: per type.
    ``precisions_cholesky`` is derived from ``covariances``; it is kept alongside so
    that the E-step and log densities never refactorise.
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
    precisions_cholesky: jax.Array


def make_params(weights, means, covariances, covariance_type: str) -> GMMParams:
    """Build a :class:`GMMParams` and its Cholesky factors from weights, means, covariances."""
    covariances = jnp.asarray(covariances)
    return GMMParams(
        jnp.asarray(weights),
        jnp.asarray(means),
        covariances,
        cov.precision_cholesky(covariances, covariance_type),
    )


def log_prob(x, params: GMMParams, covariance_type: str):
    """Mixture log density ``log p(x_n)`` for each row of x (N, D) -> (N,)."""
    wlp = weighted_log_prob(x, params, covariance_type)
    return jax.nn.logsumexp(wlp, axis=-1)


def weighted_log_prob(x, params: GMMParams, covariance_type: str):
    """``log w_k + log N(x_n | mu_k, Sigma_k)``, (N, K)."""
    return _safe_log(params.weights)[None, :] + cov.component_log_prob(
        x, params.means, params.precisions_cholesky, covariance_type
    )


def _safe_log(w):
    # an emptied component has weight 0: log 0 = -inf is the right value and
    # logsumexp handles it, but keep the gradient finite
    return jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf)

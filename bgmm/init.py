"""Initialisations: k-means (k-means++ seeding + Lloyd), k-means++, random, random_from_data.

Each method maps a PRNG key and the (weighted, standardised) data to initial
responsibilities (N, K), which :func:`bgmm.em.fit` takes as its start (its first step is
the initial M-step). :func:`initial_params` turns them into parameters with the same
M-step, then applies user-given ``weights_init`` / ``means_init`` / ``precisions_init``
(scikit-learn's semantics), for starts that are changed before EM. All pure and
jittable; padded rows (weight 0) are never chosen as seeds.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import covariance as cov
from .em import Data, EMConfig, global_fallback, m_step, sufficient_stats
from .params import GMMParams

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")
_HI = jax.lax.Precision.HIGHEST


class UserInit(NamedTuple):
    """Optional user-given starting values in standardised units (``None`` = not given)."""

    weights: jax.Array | None = None
    means: jax.Array | None = None
    precisions_cholesky: jax.Array | None = None


def _sq_dist_t(xt, x2, centers):
    """Squared distances (K, N) from each centre to each column of ``xt`` (D, N); ``x2``
    (N,) the columns' squared norms."""
    d = (x2[None, :] - 2.0 * jnp.matmul(centers, xt, precision=_HI)
         + jnp.sum(centers * centers, axis=1)[:, None])
    return jnp.maximum(d, 0.0)


# uniforms reserved per k-means++ step: more than the 2 + log(K) candidates for any K < 1e6
_TRIAL_SLOTS = 16


def _sample_indices(u, p):
    """Indices drawn with probability proportional to ``p >= 0`` (some > 0), one per
    uniform in ``u`` (any shape, values in [0, 1)).

    Inverse-CDF sampling as scikit-learn's k-means++ does it (one uniform per draw and a
    search in the cumulative sum), not a categorical over all N logits, which needs N
    random numbers per draw and dominated the k-means init at large N. An index of
    ``p == 0`` is never returned.
    """
    c = jnp.cumsum(p)
    # compare_all: a fused count, and a smaller program than the default binary search
    idx = jnp.searchsorted(c, u * c[-1], side="right", method="compare_all")
    last = p.shape[0] - 1 - jnp.argmax(p[::-1] > 0)  # u * c[-1] rounded up to c[-1]
    return jnp.minimum(idx, last)


def kmeans_plusplus(key, x, weight, n_components: int, n_active=None, xt=None):
    """k-means++ seeding (D^2 weighting), greedy over 2 + log(K) candidates like scikit-learn.

    Returns the (K, D) centres. ``n_active`` (traced int, optional): seed only the first
    ``n_active`` centres (the rest stay 0), with the same draws as ``n_components=n_active``,
    so a K-padded program reproduces the unpadded one. ``xt``: ``x.T`` if the caller has
    it (distances are formed candidates-first, (T, N): vectorised over N on the CPU).
    """
    xt = x.T if xt is None else xt
    x2 = jnp.sum(xt * xt, axis=0)
    n_trials = 2 + int(math.log(n_components))
    if n_active is None:
        trials_on = n_trials
    else:  # 2 + floor(log(n_active)) of the n_trials candidates drawn
        trials_on = 2 + jnp.sum(jnp.arange(1, n_trials - 1) <= jnp.log(n_active))
    # every uniform at once (one random-number kernel to compile): step i uses row i.
    # Prefix-stable in K: with JAX's (default) partitionable threefry, entry (i, j) depends
    # only on its flat index 16 i + j.
    u = jax.random.uniform(key, (n_components, _TRIAL_SLOTS), x.dtype)[:, :n_trials]
    first = _sample_indices(u[0, 0], weight)
    centers = jnp.zeros((n_components, x.shape[1]), x.dtype).at[0].set(x[first])
    closest = _sq_dist_t(xt, x2, x[first][None])[0]

    def body(i, carry):
        centers, closest = carry
        p = weight * closest
        p = jnp.where(jnp.sum(p) > 0, p, weight)  # all points already centres
        cand = _sample_indices(u[i], p)
        d_cand = jnp.minimum(closest[None, :], _sq_dist_t(xt, x2, x[cand]))  # (T, N)
        pot = jnp.sum(weight[None, :] * d_cand, axis=1)
        best = jnp.argmin(jnp.where(jnp.arange(n_trials) < trials_on, pot, jnp.inf))
        if n_active is None:
            return centers.at[i].set(x[cand[best]]), d_cand[best]
        on = i < n_active
        return (jnp.where(on, centers.at[i].set(x[cand[best]]), centers),
                jnp.where(on, d_cand[best], closest))

    centers, _ = jax.lax.fori_loop(1, n_components, body, (centers, closest))
    return centers


def _labels(xt, centers, active=None):
    """Nearest centre of each column of ``xt`` (D, N). Components first, (K, N): the
    argmin over K is then elementwise over rows of N (vectorised on the CPU); ``|x|^2``
    is left out, as it does not change the argmin."""
    d = (jnp.sum(centers * centers, axis=1)[:, None]
         - 2.0 * jnp.matmul(centers, xt, precision=_HI))
    if active is not None:
        d = jnp.where(active[:, None], d, jnp.inf)
    return jnp.argmin(d, axis=0)


def lloyd(x, weight, centers, max_iter: int = 100, tol: float = 1e-4, active=None, xt=None):
    """Weighted Lloyd iterations from ``centers``; an empty cluster keeps its centre.
    ``active`` (K,) bool, optional: only those centres take points. ``xt``: ``x.T``
    if the caller has it (e.g. the rows of :attr:`bgmm.em.Data.ft`)."""
    xt = x.T if xt is None else xt
    s = jax.lax.while_loop(lambda s: lloyd_running(s, max_iter),
                           lambda s: lloyd_step(xt, weight, s, active),
                           lloyd_start(centers, lloyd_threshold(x, tol)))
    return s[0]


def lloyd_threshold(x, tol: float = 1e-4):
    """Lloyd stops once the centres' squared shift is below this: ``tol`` times the mean
    variance of the features (scikit-learn's rule)."""
    return tol * jnp.mean(jnp.var(x, axis=0))


def lloyd_start(centers, threshold):
    """Lloyd's state: (centres, last squared shift, iterations, shift threshold)."""
    return (centers, jnp.asarray(jnp.inf, centers.dtype), jnp.asarray(0, jnp.int32), threshold)


def lloyd_running(s, max_iter: int = 100):
    """Whether :func:`lloyd` takes another step from state ``s`` (at least one is taken)."""
    return (s[2] < max_iter) & (s[1] > s[3])


def lloyd_step(xt, weight, s, active=None):
    """One weighted Lloyd iteration on the columns of ``xt`` (D, N); an empty cluster keeps
    its centre."""
    c, _, i, tol = s
    ks = jnp.arange(c.shape[0])[:, None]
    onehot = jnp.where(_labels(xt, c, active)[None, :] == ks, weight[None, :], 0.0)
    n = jnp.sum(onehot, axis=1)
    new = (jax.lax.dot_general(onehot, xt, (((1,), (1,)), ((), ())), precision=_HI)
           / jnp.maximum(n, 1e-30)[:, None])
    new = jnp.where((n > 0)[:, None], new, c)
    return new, jnp.sum((new - c) ** 2), i + 1, tol


def initial_resp(key, data: Data, n_components: int, method: str, n_active=None):
    """Initial responsibilities (N, K) by ``method`` (one of :data:`INIT_METHODS`).

    ``n_active`` (traced int, optional): only the first ``n_active`` columns are used
    (K-padded programs); "kmeans" and "k-means++" then give the unpadded model's start.
    """
    x = jnp.where(jnp.isnan(data.x), 0.0, data.x)
    w = data.weight
    k = n_components
    active = None if n_active is None else jnp.arange(k) < n_active
    if method in ("kmeans", "k-means++"):
        xt = x.T if data.ft is None else data.ft[-x.shape[1]:]  # ft ends with x^T (NaN as 0)
        centers = kmeans_plusplus(key, x, w, k, n_active, xt)
        if method == "kmeans":
            centers = lloyd(x, w, centers, active=active, xt=xt)
        return jax.nn.one_hot(_labels(xt, centers, active), k, dtype=x.dtype)
    on = 1.0 if active is None else active.astype(x.dtype)
    if method == "random":
        r = jax.random.uniform(key, (x.shape[0], k), dtype=x.dtype) * on
        return r / jnp.sum(r, axis=1, keepdims=True)
    if method == "random_from_data":
        logits = jnp.where(w > 0, 0.0, -jnp.inf)
        # K distinct rows by the Gumbel top-k trick (rows of weight 0 excluded)
        g = jax.random.gumbel(key, logits.shape, x.dtype) + logits
        idx = jax.lax.top_k(g, k)[1]
        return jnp.zeros((x.shape[0], k), x.dtype).at[idx, jnp.arange(k)].set(on)
    raise ValueError(f"init_params must be one of {INIT_METHODS}, got {method!r}")


def params_from_resp(resp, data: Data, prior, reg, cfg: EMConfig, n_active=None,
                     kind=None) -> GMMParams:
    """Starting parameters from initial responsibilities (N, K): EM's own M-step (an empty
    component takes the data's mean and variance). :func:`bgmm.em.fit` takes the
    responsibilities themselves (its first step is this M-step); this is for starts that
    are changed before EM (user-given values, streaming). ``kind``: see
    :func:`bgmm.em.m_step`."""
    active = None if n_active is None else jnp.arange(cfg.n_components) < n_active
    params, _ = m_step(sufficient_stats(data, resp, cfg.covariance_type),
                       global_fallback(data, cfg, reg, kind), prior, reg, cfg, active, kind)
    return params


def initial_params(key, data: Data, prior, reg, cfg: EMConfig, method: str,
                   user: UserInit | None = None, n_active=None) -> GMMParams:
    """Initial parameters: M-step on the initial responsibilities, then user overrides.

    ``n_active`` (traced int, optional): a model of ``n_active`` components padded to
    ``cfg.n_components``; the padding gets weight 0 (see :func:`bgmm.em.m_step`).
    User starting values are not combined with padding.
    """
    user = UserInit() if user is None else user
    if user.weights is not None and user.means is not None and user.precisions_cholesky is not None:
        params = global_fallback(data, cfg, reg)  # fully user-given: no data-driven start needed
    else:
        resp = initial_resp(key, data, cfg.n_components, method, n_active)
        params = params_from_resp(resp, data, prior, reg, cfg, n_active)
    weights, means, covs, prec_chol = params
    if user.weights is not None:
        weights = jnp.asarray(user.weights, weights.dtype)
    if user.means is not None:
        means = jnp.asarray(user.means, means.dtype)
    if user.precisions_cholesky is not None:
        prec_chol = jnp.asarray(user.precisions_cholesky, prec_chol.dtype)
        covs = cov.covariance_from_precision_cholesky(prec_chol, cfg.covariance_type)
    return GMMParams(weights, means, covs, prec_chol)

"""Missing values: the mixture on incomplete data, for EM, prediction, NUTS and imputation.

A NaN entry of ``x`` is missing (at random); each row's likelihood is the Gaussian
marginal of its observed entries,
``p(x_obs) = sum_k w_k N(x_obs | mu_k[o], Sigma_k[o, o])``. EM is the standard EM for
incomplete Gaussian data: the E-step forms the expected sufficient statistics
``sum_n r_nk E[x_n | x_obs, k]`` and ``sum_n r_nk E[x_n x_n^T | x_obs, k]`` and the
shared :func:`bgmm.em.m_step` does the rest.

Full / tied covariances use one vectorised formulation: per row and component the
missing rows and columns of ``Sigma_k`` are replaced by those of the identity and the
missing entries of ``x`` by ``mu_k`` (``Sigma~``, ``x~``), so one D x D Cholesky gives
the observed-marginal density (missing dimensions add ``log 1 = 0`` and a zero
residual). With ``v = Sigma~^{-1} (x~ - mu)`` (zero in the missing dimensions) the
conditional mean is ``mu + Sigma v`` and the conditional covariance of the missing block
``Sigma - Sigma A Sigma`` with ``A = M Sigma~^{-1} M`` (``M`` the observed mask). The
cost is O(N K D^3) (tied: one factorisation per row); rows are processed in chunks so
that the (rows, K, D, D) intermediates stay small. Diagonal and spherical covariances
factorise over features and need no matrices at all.

Everything is pure and jittable and works in any affine units (the estimator passes
standardised data). :class:`IncompleteMultivariateNormal` and :class:`IncompleteNormal`
are NumPyro distributions with the same log density, used by :mod:`bgmm.model` with
``missing=True``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.linalg import solve_triangular
from numpyro.distributions import constraints

from . import covariance as cov
from .em import Data, SuffStats
from .params import GMMParams, _safe_log

_HI = jax.lax.Precision.HIGHEST
_LOG_2PI = math.log(2.0 * math.pi)
# rows per chunk are chosen so that a chunk's (rows, K, D, D) arrays hold about this
# many numbers (32 MiB in float64)
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------------------
# the Gaussian on the observed entries (broadcasting core)


def _solve_lower(chol, b):
    """``chol^{-1} b`` for batched lower-triangular chol (..., D, D), b (..., D)."""
    shape = jnp.broadcast_shapes(chol.shape[:-2], b.shape[:-1])
    chol = jnp.broadcast_to(chol, shape + chol.shape[-2:])
    b = jnp.broadcast_to(b, shape + b.shape[-1:])
    return solve_triangular(chol, b[..., None], lower=True)[..., 0]


def _masked_cholesky(covariance, obs):
    """Cholesky factor of ``Sigma~`` = Sigma on the observed block, identity elsewhere.

    covariance (..., D, D); obs (..., D) 0/1 floats; shapes broadcast.
    """
    d = covariance.shape[-1]
    outer = obs[..., :, None] * obs[..., None, :]
    eye = jnp.eye(d, dtype=covariance.dtype)
    return jnp.linalg.cholesky(covariance * outer + eye * (1.0 - obs)[..., None, :])


def _gaussian_observed(x, loc, covariance, *, moments: bool):
    """Observed-marginal log density of ``N(loc, covariance)`` and the conditionals.

    x (..., D) with NaN for missing entries; loc (..., D); covariance (..., D, D); the
    leading shapes broadcast (for a tied covariance pass (..., 1, D, D): it is then
    factorised once per row, not per component).

    Returns ``log_prob`` (...,) and, with ``moments``, the conditional mean
    ``E[x | x_obs]`` (..., D) (equal to x on observed entries) and conditional
    covariance (..., D, D) (zero outside the missing block).
    """
    observed = ~jnp.isnan(x)
    obs = observed.astype(loc.dtype)
    x0 = jnp.where(observed, x, 0.0)  # never let NaN reach arithmetic (or gradients)
    diff = (x0 - loc) * obs  # x~ - mu: zero in the missing dimensions
    chol = _masked_cholesky(covariance, obs)
    z = _solve_lower(chol, diff)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    n_obs = jnp.sum(obs, axis=-1)
    log_prob = -0.5 * (n_obs * _LOG_2PI + log_det + jnp.sum(z * z, axis=-1))
    if not moments:
        return log_prob
    shape = z.shape[:-1]
    d = z.shape[-1]
    v = solve_triangular(jnp.broadcast_to(chol, shape + (d, d)), z[..., None], lower=True,
                         trans=1)[..., 0]  # Sigma~^{-1} (x~ - mu)
    mean = jnp.where(observed, x0, loc + jnp.einsum("...de,...e->...d", covariance, v,
                                                    precision=_HI))
    # Sigma A Sigma = (M Sigma)^T Sigma~^{-1} (M Sigma) = W^T W with W = L^{-1} M Sigma;
    # at chol's own shape, so a tied covariance is solved once per row
    w = solve_triangular(chol, jnp.broadcast_to(covariance * obs[..., :, None], chol.shape),
                         lower=True)
    cond = covariance - jnp.einsum("...ed,...ef->...df", w, w, precision=_HI)
    mis = 1.0 - obs
    cond = cond * mis[..., :, None] * mis[..., None, :]
    return log_prob, mean, jnp.broadcast_to(cond, shape + (d, d))


def _diagonal_observed(x, loc, variance):
    """Observed-marginal log density of ``N(loc, diag(variance))``; shapes broadcast."""
    observed = ~jnp.isnan(x)
    x0 = jnp.where(observed, x, 0.0)
    lp = -0.5 * (_LOG_2PI + jnp.log(variance) + (x0 - loc) ** 2 / variance)
    return jnp.sum(jnp.where(observed, lp, 0.0), axis=-1)


def _variances(params: GMMParams, covariance_type: str):
    """Per-component, per-feature variances (K, D) for diag / spherical."""
    k, d = params.means.shape
    if covariance_type == "diag":
        return params.covariances
    return jnp.broadcast_to(params.covariances[:, None], (k, d))


def _full_covariances(params: GMMParams, covariance_type: str):
    """(K, D, D) for full, (1, D, D) for tied (broadcast against the components)."""
    return params.covariances if covariance_type == "full" else params.covariances[None]


# --------------------------------------------------------------------------------------
# row chunking (full / tied): bounded memory for the (rows, K, D, D) intermediates


def _chunk_rows(n: int, k: int, d: int) -> int:
    return int(max(1, min(n, _CHUNK_ELEMENTS // max(1, k * d * d))))


def _map_chunks(fn, x, weight, k: int):
    """Apply ``fn(x_chunk, w_chunk) -> (per_row, summed)`` over row chunks.

    ``per_row`` leaves have leading dimension = rows (concatenated, padding dropped);
    ``summed`` leaves are added over chunks. Padded rows are zeros of weight 0.
    """
    n, d = x.shape
    c = _chunk_rows(n, k, d)
    if c >= n:
        return fn(x, weight)
    n_chunks = -(-n // c)
    pad = n_chunks * c - n
    xp = jnp.concatenate([x, jnp.zeros((pad, d), x.dtype)]).reshape(n_chunks, c, d)
    wp = jnp.concatenate([weight, jnp.zeros((pad,), weight.dtype)]).reshape(n_chunks, c)
    per_row, summed = jax.lax.map(lambda a: fn(*a), (xp, wp))
    per_row = jax.tree.map(lambda a: a.reshape((n_chunks * c,) + a.shape[2:])[:n], per_row)
    summed = jax.tree.map(lambda a: jnp.sum(a, axis=0), summed)
    return per_row, summed


# --------------------------------------------------------------------------------------
# E-steps


def component_log_prob_missing(x, params: GMMParams, covariance_type: str):
    """``log N(x_n[o] | mu_k[o], Sigma_k[o, o])`` for all n, k: x (N, D) with NaN -> (N, K).

    A fully observed row gives the ordinary Gaussian log density.
    """
    k, d = params.means.shape
    if covariance_type in ("diag", "spherical"):
        var = _variances(params, covariance_type)
        return _diagonal_observed(x[:, None, :], params.means[None], var[None])
    covs = _full_covariances(params, covariance_type)

    def fn(xc, _):
        return _gaussian_observed(xc[:, None, :], params.means[None], covs[None],
                                  moments=False), ()

    return _map_chunks(fn, x, jnp.ones(x.shape[0], x.dtype), k)[0]


def e_step_missing(x, params: GMMParams, covariance_type: str):
    """Responsibilities (N, K) and observed-marginal log-likelihoods (N,) of rows with NaN."""
    wlp = (_safe_log(params.weights)[None, :]
           + component_log_prob_missing(x, params, covariance_type))
    log_norm = jax.nn.logsumexp(wlp, axis=-1)
    return jnp.exp(wlp - log_norm[:, None]), log_norm


def expectation_missing(data: Data, params: GMMParams, covariance_type: str):
    """Expected sufficient statistics of incomplete data and per-row log-likelihoods.

    ``nk = sum_n r_nk``, ``s1 = sum_n r_nk E[x_n | x_obs, k]``,
    ``s2 = sum_n r_nk E[x_n x_n^T | x_obs, k]`` ((K, D, D) full / tied; the diagonal
    (K, D) for diag / spherical), ``r_nk = w_n gamma_nk``. Full / tied second moments
    are summed about the current means (``SuffStats.center``): raw ones cancel in the
    M-step's ``s2 / n - mean mean^T``, in float32 badly once D is large. ``data.ft`` is
    not used (its missing entries were zero-filled). Returns ``(SuffStats, log_norm
    (N,))``.
    """
    x, weight = data.x, data.weight
    k, d = params.means.shape
    log_w = _safe_log(params.weights)[None, :]
    if covariance_type in ("diag", "spherical"):
        var = _variances(params, covariance_type)
        wlp = log_w + _diagonal_observed(x[:, None, :], params.means[None], var[None])
        log_norm = jax.nn.logsumexp(wlp, axis=-1)
        r = jnp.exp(wlp - log_norm[:, None]) * weight[:, None]
        observed = ~jnp.isnan(x)
        x0 = jnp.where(observed, x, 0.0)
        r_mis = jnp.matmul(r.T, (~observed).astype(x.dtype), precision=_HI)  # (K, D)
        s1 = jnp.matmul(r.T, x0, precision=_HI) + params.means * r_mis
        s2 = jnp.matmul(r.T, x0 * x0, precision=_HI) + (params.means**2 + var) * r_mis
        return SuffStats(jnp.sum(r, axis=0), s1, s2), log_norm

    covs = _full_covariances(params, covariance_type)
    center = params.means

    def fn(xc, wc):
        lp, mean, cond = _gaussian_observed(xc[:, None, :], center[None], covs[None],
                                            moments=True)
        wlp = log_w + lp
        log_norm = jax.nn.logsumexp(wlp, axis=-1)
        r = jnp.exp(wlp - log_norm[:, None]) * wc[:, None]
        nk = jnp.sum(r, axis=0)
        s1 = jnp.einsum("nk,nkd->kd", r, mean, precision=_HI)
        dev = mean - center[None]
        s2 = (jnp.einsum("nk,nkd,nke->kde", r, dev, dev, precision=_HI)
              + jnp.einsum("nk,nkde->kde", r, cond, precision=_HI))
        return log_norm, SuffStats(nk, s1, s2)

    log_norm, stats = _map_chunks(fn, x, weight, k)
    return stats._replace(center=center), log_norm


# --------------------------------------------------------------------------------------
# imputation: conditional means (EM) and draws (posterior)


def _conditionals(x, params: GMMParams, covariance_type: str):
    """Per-row, per-component ``log w_k + log p(x_obs | k)`` (N, K), conditional means
    (N, K, D) and, for full / tied, conditional covariances (N, K, D, D); for diag /
    spherical the conditional variances (K, D) (those of the components)."""
    log_w = _safe_log(params.weights)[None, :]
    if covariance_type in ("diag", "spherical"):
        var = _variances(params, covariance_type)
        wlp = log_w + _diagonal_observed(x[:, None, :], params.means[None], var[None])
        observed = ~jnp.isnan(x)[:, None, :]
        mean = jnp.where(observed, jnp.where(observed, x[:, None, :], 0.0), params.means[None])
        return wlp, mean, var
    lp, mean, cond = _gaussian_observed(x[:, None, :], params.means[None],
                                        _full_covariances(params, covariance_type)[None],
                                        moments=True)
    return log_w + lp, mean, cond


def conditional_mean(x, params: GMMParams, covariance_type: str):
    """``E[x_n | x_n,obs]`` under the mixture: (N, D), observed entries unchanged.

    ``sum_k gamma_nk E[x_n | x_obs, z_n = k]`` with ``gamma`` the responsibilities given
    the observed entries.
    """
    k, d = params.means.shape

    def fn(xc, _):
        wlp, mean, _ = _conditionals(xc, params, covariance_type)
        gamma = jax.nn.softmax(wlp, axis=-1)
        out = jnp.einsum("nk,nkd->nd", gamma, mean, precision=_HI)
        return jnp.where(jnp.isnan(xc), out, xc), ()

    if covariance_type in ("diag", "spherical"):
        return fn(x, None)[0]
    return _map_chunks(fn, x, jnp.ones(x.shape[0], x.dtype), k)[0]


def sample_missing(key, x, params: GMMParams, covariance_type: str):
    """One draw of the missing entries from ``p(x_mis | x_obs, params)``: (N, D).

    ``z_n ~ Categorical(gamma_n)``, then ``x_mis ~ N(E[x_mis | x_obs, z_n],
    Cov[x_mis | x_obs, z_n])``; observed entries are returned unchanged.
    """
    k, d = params.means.shape
    missing = jnp.isnan(x)

    def fn(xc, keyc):
        kz, ke = jax.random.split(keyc)
        n = xc.shape[0]
        wlp, mean, cond = _conditionals(xc, params, covariance_type)
        z = jax.random.categorical(kz, wlp, axis=-1)
        mu = jnp.take_along_axis(mean, z[:, None, None], axis=1)[:, 0]
        eps = jax.random.normal(ke, (n, d), xc.dtype)
        if covariance_type in ("diag", "spherical"):
            draw = mu + jnp.sqrt(cond[z]) * eps
        else:
            c = jnp.take_along_axis(cond, z[:, None, None, None], axis=1)[:, 0]
            mis = jnp.isnan(xc).astype(xc.dtype)
            # identity on the observed block keeps the factorisation proper
            chol = jnp.linalg.cholesky(c + jnp.eye(d, dtype=xc.dtype) * (1.0 - mis)[:, None, :])
            draw = mu + jnp.einsum("nde,ne->nd", chol, eps, precision=_HI)
        return jnp.where(jnp.isnan(xc), draw, xc)

    n = x.shape[0]
    c = n if covariance_type in ("diag", "spherical") else _chunk_rows(n, k, d)
    n_chunks = -(-n // c)
    keys = jax.random.split(key, n_chunks)
    if n_chunks == 1:
        return fn(x, keys[0])
    pad = n_chunks * c - n
    xp = jnp.concatenate([x, jnp.zeros((pad, d), x.dtype)]).reshape(n_chunks, c, d)
    out = jax.lax.map(lambda a: fn(*a), (xp, keys)).reshape(n_chunks * c, d)[:n]
    return jnp.where(missing, out, x)


_POSTERIOR_SITES = ("weights", "means", "covariances")


def _posterior_arrays(posterior, covariance_type: str):
    """(weights (S, K), means (S, K, D), covariances (S, ...)) from a DataTree, an
    ArviZ/xarray posterior group or a mapping of arrays; leading sample dims flattened."""
    group = posterior
    children = getattr(group, "children", None)
    if children is not None and "posterior" in children:
        group = group["posterior"]  # a DataTree with a posterior group
    elif not isinstance(group, Mapping) and hasattr(group, "posterior"):
        group = group.posterior  # an object with a .posterior attribute
    trailing = {"weights": 1, "means": 2,
                "covariances": {"full": 3, "tied": 2, "diag": 2, "spherical": 1}[covariance_type]}
    out = []
    for name in _POSTERIOR_SITES:
        try:
            v = group[name]
        except (KeyError, TypeError) as err:
            raise ValueError(f"posterior needs a {name!r} variable; got {type(posterior).__name__} "
                             f"without it") from err
        a = np.asarray(getattr(v, "values", v), np.float64)
        t = trailing[name]
        if a.ndim < t + 1:
            raise ValueError(f"posterior {name!r} needs leading sample dimensions before its "
                             f"{t} parameter dimensions, got shape {a.shape}")
        out.append(a.reshape((-1,) + a.shape[a.ndim - t:]))
    s = {a.shape[0] for a in out}
    if len(s) != 1:
        raise ValueError(f"posterior variables have different numbers of draws: {sorted(s)}")
    return out


def impute_posterior(x, posterior, covariance_type: str, *, random_state=None):
    """Posterior draws of the missing entries of x: one draw per posterior sample.

    Parameters
    ----------
    x : (N, D) array, NaN marks a missing entry (data units).
    posterior : an ArviZ DataTree (its ``posterior`` group), an xarray Dataset, or a
        mapping with ``weights`` (..., K), ``means`` (..., K, D) and ``covariances``
        (..., per type) in the data's units; all leading dimensions (chain, draw) are
        flattened into S samples.
    covariance_type : the covariance type of the posterior's ``covariances``.
    random_state : None, int or numpy RandomState.

    Returns
    -------
    (S, N, D) float64 array: for each posterior draw s, x with its missing entries drawn
    from ``p(x_mis | x_obs, theta_s)`` (component first, then the conditional Gaussian),
    so the draws integrate over parameter uncertainty as well.
    """
    from ._shell import precision_scope, seed_from

    cov.check_type(covariance_type)
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D array (n_samples, n_features), got shape {x.shape}")
    check_rows(x)
    weights, means, covs = _posterior_arrays(posterior, covariance_type)
    if means.shape[-1] != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} features but the posterior means have "
                         f"{means.shape[-1]}")
    # affine-equivariant: condition in centred, scaled units for accuracy
    centre = np.nanmean(x, axis=0)
    scale = np.nanstd(x, axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    if covariance_type == "spherical":
        scale = np.full_like(scale, np.exp(np.mean(np.log(scale))))
    means = (means - centre) / scale
    if covariance_type in ("full", "tied"):
        covs = covs / np.outer(scale, scale)
    else:
        covs = covs / (scale**2 if covariance_type == "diag" else scale[0] ** 2)
    with precision_scope("float64"):
        key = jax.random.PRNGKey(seed_from(random_state))
        keys = jax.random.split(key, weights.shape[0])
        draws = _impute_draws(keys, jnp.asarray((x - centre) / scale), jnp.asarray(weights),
                              jnp.asarray(means), jnp.asarray(covs),
                              covariance_type=covariance_type)
        draws = np.asarray(draws) * scale + centre
    return np.where(np.isnan(x), draws, x)  # observed entries exactly as given


@partial(jax.jit, static_argnames=("covariance_type",))
def _impute_draws(keys, x, weights, means, covs, *, covariance_type):
    def one(key, w, m, c):
        return sample_missing(key, x, GMMParams(w, m, c, c), covariance_type)

    return jax.lax.map(lambda a: one(*a), (keys, weights, means, covs))


def check_rows(x):
    """Reject rows with no observed entry (their likelihood is not defined)."""
    empty = np.flatnonzero(np.all(np.isnan(x), axis=1))
    if empty.size:
        raise ValueError(f"every row needs at least one observed (non-NaN) entry; rows "
                         f"{empty[:10].tolist()}{' ...' if empty.size > 10 else ''} are all NaN")


# --------------------------------------------------------------------------------------
# NumPyro distributions whose log density integrates out NaN entries


class _RealVectorOrMissing(constraints.ParameterFreeConstraint):
    """Real vectors whose entries may be NaN (missing); the support of the incomplete
    Gaussians, so that NumPyro's sample validation accepts observations with NaN."""

    event_dim = 1

    def __call__(self, x):
        return jnp.all(jnp.isnan(x) | jnp.isfinite(x), axis=-1)

    def feasible_like(self, prototype):
        return jnp.zeros_like(prototype)


real_vector_or_missing = _RealVectorOrMissing()


class IncompleteMultivariateNormal(dist.Distribution):
    """``N(loc, covariance_matrix)`` whose ``log_prob`` marginalises NaN entries of the value.

    loc (..., D), covariance_matrix (..., D, D). ``log_prob(x)`` is the Gaussian log
    density of the observed entries of x (``-0.5 n_obs log 2 pi`` included); a value
    without NaN gets the ordinary density. ``sample`` draws complete vectors.
    """

    arg_constraints = {"loc": constraints.real_vector,
                       "covariance_matrix": constraints.positive_definite}
    support = real_vector_or_missing
    reparametrized_params = ["loc", "covariance_matrix"]

    def __init__(self, loc, covariance_matrix, *, validate_args=None):
        loc = jnp.asarray(loc)
        covariance_matrix = jnp.asarray(covariance_matrix)
        batch_shape = jnp.broadcast_shapes(loc.shape[:-1], covariance_matrix.shape[:-2])
        event_shape = loc.shape[-1:]
        self.loc = jnp.broadcast_to(loc, batch_shape + event_shape)
        self.covariance_matrix = jnp.broadcast_to(covariance_matrix,
                                                  batch_shape + event_shape + event_shape)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        eps = jax.random.normal(key, sample_shape + self.batch_shape + self.event_shape,
                                self.loc.dtype)
        chol = jnp.linalg.cholesky(self.covariance_matrix)
        return self.loc + jnp.einsum("...de,...e->...d", chol, eps, precision=_HI)

    def log_prob(self, value):
        return _gaussian_observed(value, self.loc, self.covariance_matrix, moments=False)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return jnp.diagonal(self.covariance_matrix, axis1=-2, axis2=-1)


class IncompleteNormal(dist.Distribution):
    """Independent normals with event shape (D,) whose ``log_prob`` skips NaN entries.

    loc (..., D), scale (..., D) standard deviations.
    """

    arg_constraints = {"loc": constraints.real_vector, "scale": constraints.positive}
    support = real_vector_or_missing
    reparametrized_params = ["loc", "scale"]

    def __init__(self, loc, scale, *, validate_args=None):
        loc, scale = jnp.asarray(loc), jnp.asarray(scale)
        shape = jnp.broadcast_shapes(loc.shape, scale.shape)
        self.loc = jnp.broadcast_to(loc, shape)
        self.scale = jnp.broadcast_to(scale, shape)
        super().__init__(shape[:-1], shape[-1:], validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        eps = jax.random.normal(key, sample_shape + self.batch_shape + self.event_shape,
                                self.loc.dtype)
        return self.loc + self.scale * eps

    def log_prob(self, value):
        return _diagonal_observed(value, self.loc, self.scale**2)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return self.scale**2


__all__ = [
    "IncompleteMultivariateNormal",
    "IncompleteNormal",
    "component_log_prob_missing",
    "conditional_mean",
    "e_step_missing",
    "expectation_missing",
    "impute_posterior",
    "sample_missing",
]

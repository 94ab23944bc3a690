"""Expectation-maximisation for the mixture: pure E-step, M-step and fit loop.

Everything here works on one data set and one starting point, in standardised units
(the shell centres and scales the data in float64 first); restarts, grids of K and
many data sets are batched with ``jax.vmap`` at the call site.

The M-step is written once, on (weighted) sufficient statistics
``n_k = sum_n r_nk``, ``s1_k = sum_n r_nk x_n``, ``s2_k = sum_n r_nk x_n x_n^T`` (the
diagonal only for diag / spherical), with ``r_nk = w_n gamma(z_nk)``; sample weights,
missing values (conditional expectations), streaming (sums over chunks) and sharded
data (sums over devices) only change how those sums are formed.

``prior=None`` (``EMConfig.map=False``) gives the maximum-likelihood estimate; with a
prior the M-step is the exact posterior mode of the model in :mod:`bgmm.model` given
the expected complete-data statistics, and the objective is the log joint density.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import covariance as cov
from .params import GMMParams, weighted_log_prob
from .priors import GMMPrior, log_prior

_HI = jax.lax.Precision.HIGHEST


@dataclass(frozen=True)
class EMConfig:
    """Static configuration: one compiled program per distinct value."""

    n_components: int
    covariance_type: str
    max_iter: int = 100
    map: bool = False
    missing: bool = False


class Data(NamedTuple):
    """x (N, D) standardised (NaN marks a missing entry when ``missing``); weight (N,);
    ft (P + D, N) or None: the fixed features ``[second moments, x]`` transposed (NaN as 0;
    see :func:`bgmm.covariance.second_moment_features`), built once per fit by
    :func:`make_data`. The E-step's log densities are then one GEMM ``coef^T ft`` and the
    M-step's sums one row-major GEMM ``ft @ r`` (CPU GEMMs contracting a leading axis are
    several times slower). ``None`` where only ``x`` is read (the initialisation, the
    centred E-step); a step that needs the features builds them then. Where EM is
    :func:`centred` (full or tied, float32, many features) ``ft`` is ``x^T`` (D, N) only."""

    x: jax.Array
    weight: jax.Array
    ft: jax.Array | None = None


class SuffStats(NamedTuple):
    """Weighted sufficient statistics: nk (K,), s1 (K, D) (sums of x), s2 (K, D, D) or (K, D):
    sums of the second moments about ``center`` (K, D) per component, or about 0 when
    ``center`` is None. Sums of several parts (chunks, devices) add up with
    :func:`add_stats` (the same ``center`` for all parts)."""

    nk: jax.Array
    s1: jax.Array
    s2: jax.Array
    center: jax.Array | None = None


def add_stats(a: SuffStats, b: SuffStats) -> SuffStats:
    """The statistics of two parts of the data, about the same centre."""
    return SuffStats(a.nk + b.nk, a.s1 + b.s1, a.s2 + b.s2, a.center)


class EMResult(NamedTuple):
    params: GMMParams
    objective: jax.Array  # objective at ``params`` (mean log-likelihood or log-posterior)
    n_iter: jax.Array  # M-steps after the initial one (a failed attempt counts)
    converged: jax.Array  # True only when |change| < tol was met
    failed: jax.Array  # an M-step gave a non-positive-definite covariance (the previous
    # parameters are kept), or the objective is not finite; stopped
    last_change: jax.Array  # the last change of the objective
    trace: jax.Array  # (max_iter,) objective before each M-step; NaN past n_iter


def centred(x, covariance_type: str) -> bool:
    """Whether EM on data ``x`` works with centred differences instead of the fixed
    features (static: a full or tied covariance in float32 with more than
    ``CENTRED_MIN_FEATURES`` features; diagonal ones have no ill-conditioned matrix to
    magnify the round-off, and stay within 2e-7 per sample of float64 at (1e5, 64, 32))."""
    return (covariance_type in ("full", "tied") and x.dtype == jnp.float32
            and x.shape[-1] > CENTRED_MIN_FEATURES)


def features_t(x, covariance_type: str):
    """The fixed features of :class:`Data`, ``[second moments, x]`` transposed (P + D, N);
    only ``x`` transposed (D, N) where EM is :func:`centred`."""
    xt = jnp.where(jnp.isnan(x), 0.0, x).T  # features-first: contiguous rows
    if centred(x, covariance_type):
        return xt
    return jnp.concatenate([cov.second_moment_features(xt, covariance_type, axis=0), xt], axis=0)


def make_data(x, weight, covariance_type: str) -> Data:
    """Bundle standardised data with its weights and fixed features."""
    x = jnp.asarray(x)
    return Data(x, jnp.asarray(weight, dtype=x.dtype), features_t(x, covariance_type))


def _ft(data: Data, covariance_type: str):
    return features_t(data.x, covariance_type) if data.ft is None else data.ft


def _weighted_sums(data: Data, r, covariance_type: str, components_first: bool = False
                   ) -> SuffStats:
    """SuffStats from weighted responsibilities r (N, K) (already times the sample weight);
    r (K, N) with ``components_first``."""
    d = data.x.shape[-1]
    ft = _ft(data, covariance_type)
    if components_first:  # contracts the minor axis of both: one row-major GEMM
        s = jax.lax.dot_general(ft, r, (((1,), (1,)), ((), ())), precision=_HI)
        nk = jnp.sum(r, axis=1)
    else:
        s = jnp.matmul(ft, r, precision=_HI)  # (P + D, K)
        nk = jnp.sum(r, axis=0)
    return SuffStats(nk, s[-d:].T, cov.second_moment_matrix(s[:-d].T, covariance_type, d))


# float32 EM of a full or tied model with more features than this works with centred
# differences, as scikit-learn and gmmx do: the E-step from (x - mu_k) U_k
# (bgmm.params.weighted_log_prob) and the M-step's second moments about the current means
# (_centred_sums), instead of the fixed features (Data.ft then holds x^T only). The
# feature expansion cancels in float32 once D is large. Measured (bench_em.py, full, 5-20
# iterations from one start, 2-core CPU; mean log-likelihood per sample, float32 minus
# float64): with the features (1e5, 8, 8) 2e-6, (1e6, 16, 8) 3e-6, (1e5, 16, 16) 7e-6,
# (1e5, 32, 16) 1.2e-4, (1e5, 64, 32) 1.3e-2; centred (1e5, 32, 16) 1.4e-5, (1e5, 64,
# 32) 2.3e-5 (gmmx 1.2e-5, 4.4e-5). Diagonal types keep the features (float32 within 2e-7
# of float64 at (1e5, 64, 32): no ill-conditioned matrix magnifies the round-off). The
# centred form costs (K, D, N) arrays: (1e5, 32, 16) full takes 183 ms per iteration in
# float32 against 84 ms with the features in float64 on this CPU, so there float64 is
# exact and faster; float32 is for accelerators.
CENTRED_MIN_FEATURES = 16


def _centred_sums(data: Data, r, center, covariance_type: str) -> SuffStats:
    """SuffStats from weighted responsibilities r (K, N) with the second moments summed
    about ``center`` (K, D), the current means (None: each component's weighted mean, 0
    where it is empty; one pass more): the M-step's covariance ``s2 / n -
    (mean - center)(mean - center)^T`` then does not cancel, and the sums of parts of the
    data (chunks, devices) add up (:func:`add_stats`). Costs a (K, D, N) product instead
    of one GEMM with the fixed features, so it is used only where EM is :func:`centred`:
    in float32 with many features the raw moments lose the covariance (``s2 / n - mean
    mean^T`` cancels about ``|mean|^2 / var`` of its digits, and a badly conditioned
    covariance magnifies the rest)."""
    d = data.x.shape[-1]
    xt = _ft(data, covariance_type)[-d:]  # x^T (D, N): ft ends with it
    nk = jnp.sum(r, axis=1)
    s1 = jax.lax.dot_general(r, xt, (((1,), (1,)), ((), ())), precision=_HI)
    if center is None:
        center = s1 / jnp.where(nk > 0, nk, 1.0)[:, None]
    # sqrt(r) (x - c): one (K, D, N) array, contracted with itself over the minor axis
    y = jnp.sqrt(r)[:, None, :] * (xt[None, :, :] - center[:, :, None])
    if covariance_type in ("full", "tied"):
        s2 = jax.lax.dot_general(y, y, (((2,), (2,)), ((0,), (0,))), precision=_HI)
    else:
        s2 = jnp.sum(y * y, axis=2)
    return SuffStats(nk, s1, s2, center)


def sufficient_stats(data: Data, resp, covariance_type: str) -> SuffStats:
    """Sums of the responsibilities (N, K) times 1, x and the second-moment features."""
    r = resp * data.weight[:, None]
    if centred(data.x, covariance_type):  # about each component's weighted mean
        return _centred_sums(data, r.T, None, covariance_type)
    return _weighted_sums(data, r, covariance_type)


def e_step(data: Data, params: GMMParams, covariance_type: str):
    """Responsibilities gamma(z_nk) (N, K) and per-sample log-likelihoods (N,).

    Uses the centred log density (accurate for any data); the EM loop uses the faster
    feature form in :func:`expectation`.
    """
    wlp = weighted_log_prob(data.x, params, covariance_type)
    log_norm = jax.nn.logsumexp(wlp, axis=-1)
    return jnp.exp(wlp - log_norm[:, None]), log_norm


def _log_weights(weights):
    return jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1.0)), -jnp.inf)


def _feature_log_prob_t(data: Data, params: GMMParams, covariance_type: str):
    """``log w_k + log N(x_n | mu_k, Sigma_k)`` transposed, (K, N), from the fixed features:
    one GEMM ``[A; B]^T ft`` (see :func:`bgmm.covariance.log_prob_coefficients`); equal to
    :func:`bgmm.params.weighted_log_prob` up to round-off on standardised data."""
    a, b, c = cov.log_prob_coefficients(params.means, params.precisions_cholesky,
                                        covariance_type)
    coef = jnp.concatenate([a, b], axis=0)  # (P + D, K), the rows of ft
    return (jax.lax.dot_general(coef, _ft(data, covariance_type), (((0,), (0,)), ((), ())),
                                precision=_HI)
            + (c + _log_weights(params.weights))[:, None])


def _about_means(data: Data, cfg: EMConfig) -> bool:
    """Whether :func:`expectation` sums the second moments about the current means
    (``SuffStats.center``; static): where EM is :func:`centred`, and for full / tied
    covariances of incomplete data (:func:`bgmm.missing.expectation_missing`)."""
    ct = cfg.covariance_type
    return centred(data.x, ct) or (cfg.missing and ct in ("full", "tied"))


def expectation(data: Data, params: GMMParams, cfg: EMConfig):
    """E-step reduced to what the M-step needs: (stats, weighted log-likelihood sum).

    The E-step and the sums of the M-step are fused: the log densities come from one
    product of the fixed features with the parameters' coefficients, a single
    exponential pass gives the responsibilities and the log normaliser, and the weighted
    responsibilities go straight into one product with the transposed features. No
    (N, K, D) array is formed (except where EM is :func:`centred`). The statistics of
    parts of the data (chunks) taken at the same ``params`` add up with :func:`add_stats`.
    """
    if cfg.missing:
        from .missing import expectation_missing

        stats, log_norm = expectation_missing(data, params, cfg.covariance_type)
        return stats, jnp.sum(data.weight * log_norm)
    # components first, (K, N): the reductions over K are elementwise over rows of N
    # (vectorised), not over a minor axis of length K; 1.1-2.7x faster per E-step on the
    # CPU than (N, K), from (1e5, 8, 8) to 1,000 sets of (500, 2).
    ct = cfg.covariance_type
    if centred(data.x, ct):  # float32, many features: centred differences (see _centred_sums)
        wlp = weighted_log_prob(data.x, params, ct).T
    else:
        data = data._replace(ft=_ft(data, ct))
        wlp = _feature_log_prob_t(data, params, ct)
    m = jnp.max(wlp, axis=0, keepdims=True)  # finite: some weight is > 0
    e = jnp.exp(wlp - m)
    s = jnp.sum(e, axis=0, keepdims=True)
    r = e * (data.weight[None, :] / s)
    log_norm = m[0] + jnp.log(s[0])
    if centred(data.x, ct):
        stats = _centred_sums(data, r, params.means, ct)
    else:
        stats = _weighted_sums(data, r, ct, components_first=True)
    return stats, jnp.sum(data.weight * log_norm)


def _definite(plain, floored, covariance_type: str, tied=False):
    """Per component, ``plain`` where its precision Cholesky factor exists, else ``floored``.

    ``tied`` (bool, may be traced): one decision for all components (a tied covariance
    held in full form). Returns ``(covariances, precisions_cholesky)``."""
    u, uf = (cov.precision_cholesky(c, covariance_type) for c in (plain, floored))
    good = jnp.all(jnp.isfinite(u).reshape(u.shape[:1] + (-1,)), axis=1)
    if covariance_type == "tied":
        good = jnp.all(good)
    elif tied is not False:
        good = jnp.where(tied, jnp.all(good), good)
    good = good.reshape(good.shape + (1,) * (u.ndim - good.ndim))
    return jnp.where(good, plain, floored), jnp.where(good, u, uf)


def _any_type_candidates(s2, nks, means, div, total, regd, floor, kind):
    """Maximum-likelihood covariances of covariance type ``kind`` (traced index into
    :data:`bgmm.covariance.COVARIANCE_TYPES`) held in full form, from full-form sums.

    Returns ``(plain, floored)`` (K, D, D) as the typed branches of :func:`m_step` form
    them (same operations, so the same numbers): full ``s2/n - mu mu^T``; tied their
    ``n_k``-weighted sum, the same for every k; diag the diagonal only; spherical its
    mean. (``bgmm.select`` fits all types of a grid with one compiled program this way.)
    """
    k, d = means.shape
    eye = jnp.eye(d, dtype=s2.dtype)
    total_s2 = jnp.sum(jnp.diagonal(s2, axis1=-2, axis2=-1), 0)
    eps = jnp.finfo(s2.dtype).eps
    full = s2 / div[:, None, None] - means[:, :, None] * means[:, None, :]
    full = 0.5 * (full + jnp.swapaxes(full, -1, -2))
    regk = jnp.maximum(regd[None, :], floor[:, None])
    tied = ((jnp.sum(s2, axis=0) - jnp.einsum("k,kd,ke->de", nks, means, means))
            / jnp.sum(nks))
    tied = 0.5 * (tied + tied.T)
    regt = jnp.maximum(regd, 16 * eps * (1.0 + jnp.max(total_s2) / total))
    var = jnp.diagonal(s2, axis1=-2, axis2=-1) / div[:, None] - means**2  # (K, D)
    sph = jnp.mean(var, axis=1)
    plain = jnp.stack([full + regd[:, None] * eye,
                       jnp.broadcast_to(tied + jnp.diag(regd), (k, d, d)),
                       (var + regd[None, :])[:, :, None] * eye,
                       (sph + jnp.mean(regd))[:, None, None] * eye])
    floored = jnp.stack([full + regk[:, :, None] * eye,
                         jnp.broadcast_to(tied + jnp.diag(regt), (k, d, d)),
                         (var + regk)[:, :, None] * eye,
                         (sph + jnp.maximum(jnp.mean(regd), floor))[:, None, None] * eye])
    return plain[kind], floored[kind]


def m_step(stats: SuffStats, fallback: GMMParams, prior: GMMPrior | None, reg, cfg: EMConfig,
           active=None, kind=None):
    """Parameters maximising the expected complete-data log-likelihood (+ log prior).

    Returns ``(params, ok)``. A component whose responsibility mass is below
    ``10 * eps * sum(n_k)`` (emptied) keeps its ``fallback`` mean and covariance under
    MLE; with a prior the posterior mode is always proper. ``ok`` is False when a
    covariance is not numerically positive definite.

    ``active`` (K,) bool, optional: a model of ``sum(active)`` components padded to
    ``cfg.n_components`` (one compiled program for a whole grid of K). Inactive
    components get weight exactly 0, so the E-step gives them no responsibility, and
    the result on the active ones equals the unpadded model's M-step.

    ``kind`` (traced int, optional; maximum likelihood with ``cfg.covariance_type ==
    "full"`` only): the model's covariance type as an index into
    :data:`bgmm.covariance.COVARIANCE_TYPES`, every type held in full form (K, D, D), so
    that one compiled program fits all four (see :func:`_any_type_candidates`).
    """
    nk, s1, s2, center = stats
    k, d = s1.shape
    dtype = s1.dtype
    ct = cfg.covariance_type
    fallback_means = fallback.means
    if center is not None:  # s2 about a centre per component: in coordinates x - center
        s1 = s1 - nk[:, None] * center
        fallback_means = fallback_means - center
    eps = jnp.finfo(dtype).eps
    regd = jnp.broadcast_to(reg, (d,)).astype(dtype)  # reg_covar in standardised units
    total = jnp.sum(nk)

    on = jnp.ones((k,), bool) if active is None else active
    k_on = jnp.sum(on).astype(dtype)  # the model's number of components
    if kind is not None and (cfg.map or ct != "full"):
        raise ValueError("m_step(kind=...) needs maximum likelihood in full form")
    if cfg.map:
        alpha = prior.weight_concentration
        weights = jnp.where(on, jnp.maximum(nk + alpha - 1.0, 0.0), 0.0)
        weights = weights / jnp.sum(weights)
        kappa, m0, nu, psi = prior.mean_precision, prior.mean, prior.dof, prior.scale
        m0 = jnp.broadcast_to(m0 if center is None else m0 - center, (k, d))
        kn = nk + kappa
        means = (s1 + kappa * m0) / kn[:, None]
        if ct in ("full", "tied"):
            q = (s2 + kappa * m0[:, :, None] * m0[:, None, :]
                 - kn[:, None, None] * means[:, :, None] * means[:, None, :])
            if ct == "full":
                covs = (psi[None] + q) / (nu + d + 2.0 + nk)[:, None, None]
            else:
                covs = (psi + jnp.sum(q, axis=0)) / (nu + d + 1.0 + k_on + total)
        else:
            q = s2 + kappa * m0**2 - kn[:, None] * means**2
            if ct == "diag":
                covs = (psi[None, :] + q) / (nu + 3.0 + nk)[:, None]
            else:
                covs = (psi + jnp.sum(q, axis=1)) / (nu + 2.0 + d + nk * d)
    else:
        nks = jnp.where(on, nk + 10 * eps, 0.0)
        weights = nks / jnp.sum(nks)
        empty = nk < 10 * eps * total  # inactive components too: they keep ``fallback``
        div = jnp.where(on, nks, 1.0)
        means = jnp.where(empty[:, None], fallback_means, s1 / div[:, None])
        if kind is not None:
            covs = None  # formed with reg below, for the type ``kind``
        elif ct == "full":
            covs = s2 / div[:, None, None] - means[:, :, None] * means[:, None, :]
        elif ct == "tied":
            covs = ((jnp.sum(s2, axis=0) - jnp.einsum("k,kd,ke->de", nks, means, means))
                    / jnp.sum(nks))
        else:
            covs = s2 / div[:, None] - means**2
            if ct == "spherical":
                covs = jnp.mean(covs, axis=1)
    # reg_covar is added as given. The moment formulas cancel: their round-off grows with
    # the second moments (~ eps * s2 / n), and in float32 it can make the covariance of a
    # component narrow and far from the centre indefinite. Such a covariance gets a floor
    # of that size under reg (as does a component collapsed onto a point with reg_covar=0);
    # the others do not: a floor added to every float32 variance (16 eps ~ 2e-6 in
    # standardised units) biased the log-likelihood by 6e-4 per sample at (1e5, 8, 8) full.
    scale2 = (s2 if ct in ("diag", "spherical") else jnp.diagonal(s2, axis1=-2, axis2=-1))
    scale2 = jnp.max(scale2 / jnp.maximum(nk, eps)[:, None], axis=-1)  # (K,)
    floor = 16 * eps * (1.0 + scale2)
    if kind is not None:
        plain, floored = _any_type_candidates(s2, nks, means, div, total, regd, floor, kind)
    elif ct == "full":
        eye = jnp.eye(d, dtype=dtype)
        sym = 0.5 * (covs + jnp.swapaxes(covs, -1, -2))
        regk = jnp.maximum(regd[None, :], floor[:, None])
        plain, floored = sym + regd[:, None] * eye, sym + regk[:, :, None] * eye
    elif ct == "tied":
        second = jnp.sum(jnp.diagonal(s2, axis1=-2, axis2=-1), 0)
        regt = jnp.maximum(regd, 16 * eps * (1.0 + jnp.max(second) / total))
        sym = 0.5 * (covs + covs.T)
        plain, floored = sym + jnp.diag(regd), sym + jnp.diag(regt)
    elif ct == "diag":
        plain, floored = covs + regd[None, :], covs + jnp.maximum(regd[None, :], floor[:, None])
    else:
        plain, floored = covs + jnp.mean(regd), covs + jnp.maximum(jnp.mean(regd), floor)
    tied = False if kind is None else kind == cov.COVARIANCE_TYPES.index("tied")
    covs, prec_chol = _definite(plain, floored, ct, tied)
    if not cfg.map and ct != "tied":
        mask = empty.reshape((k,) + (1,) * (covs.ndim - 1))
        if kind is not None:  # a tied covariance has no per-component fallback
            mask = mask & ~tied
        covs = jnp.where(mask, fallback.covariances, covs)
        prec_chol = jnp.where(mask, fallback.precisions_cholesky, prec_chol)
    if center is not None:
        means = means + center
    ok = cov.is_valid(prec_chol) & jnp.all(jnp.isfinite(means)) & jnp.all(jnp.isfinite(weights))
    return GMMParams(weights, means, covs, prec_chol), ok


def objective(loglik_sum, total_weight, params: GMMParams, prior: GMMPrior | None, cfg: EMConfig,
              active=None):
    """Mean log-likelihood per unit weight, plus the log prior / total weight under MAP."""
    lp = log_prior(params, prior, cfg.covariance_type, active) if cfg.map else 0.0
    return (loglik_sum + lp) / total_weight


def em_step(data: Data, params: GMMParams, prior, reg, cfg: EMConfig, active=None, kind=None):
    """One fused E+M step: returns (new params, ok, objective of the *input* params)."""
    stats, ll = expectation(data, params, cfg)
    obj = objective(ll, jnp.sum(data.weight), params, prior, cfg, active)
    new, ok = m_step(stats, params, prior, reg, cfg, active, kind)
    return new, ok, obj


def global_fallback(data: Data, cfg: EMConfig, reg, kind=None) -> GMMParams:
    """Data mean and variance (plus ``reg``, as every covariance gets it) for every
    component: what the initial M-step gives a component that is empty at the start
    (more components than distinct points, padding components). ``kind``: see
    :func:`m_step` (spherical: the mean variance, in full form)."""
    x = jnp.where(jnp.isnan(data.x), 0.0, data.x)
    k, d = cfg.n_components, x.shape[1]
    w = data.weight / jnp.sum(data.weight)
    mean = w @ x
    # a constant feature has variance 0: without reg its precision would be inf
    var = w @ (x - mean) ** 2 + jnp.broadcast_to(reg, (d,)).astype(x.dtype)
    if kind is not None:
        var = jnp.where(kind == cov.COVARIANCE_TYPES.index("spherical"),
                        jnp.broadcast_to(jnp.mean(var), var.shape), var)
    full = jnp.broadcast_to(jnp.diag(var), (k, d, d))
    covs = cov.from_full(full, cfg.covariance_type)
    return GMMParams(jnp.full((k,), 1.0 / k, x.dtype), jnp.broadcast_to(mean, (k, d)), covs,
                     cov.precision_cholesky(covs, cfg.covariance_type))


class _LoopState(NamedTuple):
    params: GMMParams  # the last accepted parameters (before the first M-step: the fallback)
    stats: SuffStats  # the E-step's statistics at ``params`` (first: the initial ones)
    obj: jax.Array  # objective at ``params`` (-inf before the first M-step)
    n_iter: jax.Array  # M-steps taken after the initial one (-1 before it)
    stop: jax.Array  # |change of objective| < tol: one more M-step, then converged
    converged: jax.Array
    failed: jax.Array
    trace: jax.Array  # (max_iter,) objective at the n-th parameters; NaN where not reached


def loop_start(data: Data, start, prior, reg, cfg: EMConfig, active=None,
               kind=None) -> _LoopState:
    """The state :func:`fit` starts from. ``start``: initial responsibilities (N, K) or
    their :class:`SuffStats` (the first step is then the initial M-step, with
    :func:`global_fallback` for a component that is empty), or :class:`GMMParams` (one
    E-step here)."""
    dtype = data.x.dtype
    trace = jnp.full((cfg.max_iter,), jnp.nan, dtype)
    false = jnp.asarray(False)
    if isinstance(start, GMMParams):
        stats, ll = expectation(data, start, cfg)
        obj = objective(ll, jnp.sum(data.weight), start, prior, cfg, active)
        return _LoopState(start, stats, obj, jnp.asarray(0, jnp.int32), false, false,
                          ~jnp.isfinite(obj), trace.at[0].set(obj, mode="drop"))
    if not isinstance(start, SuffStats):
        start = sufficient_stats(data, start, cfg.covariance_type)
    if start.center is None and _about_means(data, cfg):  # raw sums are sums about 0
        start = start._replace(center=jnp.zeros_like(start.s1))
    fallback = global_fallback(data, cfg, reg, kind)
    if active is not None:  # returned as they are if the initial M-step fails
        fallback = fallback._replace(weights=active / jnp.sum(active).astype(dtype))
    return _LoopState(fallback, start, jnp.asarray(-jnp.inf, dtype),
                      jnp.asarray(-1, jnp.int32), false, false, false, trace)


def loop_running(s: _LoopState, cfg: EMConfig):
    """Whether :func:`fit` takes another step from state ``s``."""
    return (s.n_iter < cfg.max_iter) & ~s.converged & ~s.failed


def loop_step(data: Data, s: _LoopState, prior, tol, reg, cfg: EMConfig, active=None,
              kind=None) -> _LoopState:
    """One step of :func:`fit`: the M-step on the statistics at the current parameters,
    then the E-step at the new ones, the convergence test and the trace. A failed M-step
    (a covariance not positive definite) keeps the current state; a non-finite objective
    at the new parameters stops the fit with them (that objective is not in the trace)."""
    new, ok = m_step(s.stats, s.params, prior, reg, cfg, active, kind)
    stats, ll = expectation(data, new, cfg)
    obj = objective(ll, jnp.sum(data.weight), new, prior, cfg, active)
    n_iter = s.n_iter + 1
    finite = jnp.isfinite(obj)
    params, stats = jax.tree.map(lambda a, b: jnp.where(ok, a, b), (new, stats),
                                 (s.params, s.stats))
    return _LoopState(
        params=params,
        stats=stats,
        obj=jnp.where(ok, obj, s.obj),
        n_iter=n_iter,
        stop=ok & (jnp.abs(obj - s.obj) < jnp.asarray(tol, obj.dtype)),
        converged=ok & finite & s.stop,
        failed=~(ok & finite),
        trace=s.trace.at[n_iter].set(jnp.where(ok, obj, jnp.nan), mode="drop"),
    )


def loop_result(s: _LoopState) -> EMResult:
    """The :class:`EMResult` of a final state."""
    n = jnp.maximum(s.n_iter, 0)
    trace = jnp.where(jnp.arange(s.trace.shape[0]) < n, s.trace, jnp.nan)
    # the change that the last convergence test saw: objective n-1 minus objective n-2
    last = jnp.where(n >= 1, s.trace[jnp.maximum(n - 1, 0)], -jnp.inf)
    before = jnp.where(n >= 2, s.trace[jnp.maximum(n - 2, 0)], -jnp.inf)
    change = jnp.where(n >= 1, last - before, jnp.inf)
    final = jnp.where(jnp.isnan(s.obj), -jnp.inf, s.obj)
    return EMResult(s.params, final, n, s.converged, s.failed, change, trace)


def fit(data: Data, start, prior, tol, reg, cfg: EMConfig, active=None,
        kind=None) -> EMResult:
    """EM from ``start`` until ``|change of objective| < tol`` or ``cfg.max_iter`` steps.

    ``start``: initial responsibilities (N, K) (or their :class:`SuffStats`; the
    initial M-step is then the loop's first step) or starting :class:`GMMParams`. The
    steps are scikit-learn's: the objective of the parameters before each M-step is
    recorded in ``trace``, and the fit stops one M-step after a change below ``tol``.
    The loop is a ``lax.while_loop`` whose body is one M-step and one E-step (each
    compiled once); the returned objective is the last E-step's, at the returned
    parameters. If an M-step fails (a covariance not positive definite even after
    ``reg``), the previous parameters are kept and the fit stops with ``failed=True``; so
    it does, with the new parameters, when their objective is not finite.
    ``active``: see :func:`m_step` (starting ``params`` must give inactive components
    weight 0). ``kind``: see :func:`m_step`.
    """
    s = jax.lax.while_loop(
        lambda s: loop_running(s, cfg),
        lambda s: loop_step(data, s, prior, tol, reg, cfg, active, kind),
        loop_start(data, start, prior, reg, cfg, active, kind))
    return loop_result(s)


def fit_fixed(data: Data, params: GMMParams, prior, reg, cfg: EMConfig, n_iter: int):
    """Exactly ``n_iter`` EM steps with no convergence test (benchmarks, parity tests)."""

    def body(_, p):
        new, ok, _ = em_step(data, p, prior, reg, cfg)
        return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, p)

    return jax.lax.fori_loop(0, n_iter, body, params)

"""``fit_many``: one mixture model fitted to each of many data sets in one compiled call.

For simulation studies, bootstrap replicates and per-subject fits: the data sets are
stacked along a leading axis, standardised one by one in float64, and every (data set,
restart) pair is fitted by the work queue of :mod:`bgmm.batch` (each fit takes exactly
the iterations it would take alone; none waits for the slowest).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from . import batch, em
from ._shell import (
    ConvergenceWarning,
    DegenerateFitWarning,
    Standardizer,
    bucket_size,
    em_weights,
    pad_rows,
    precision_scope,
    seed_from,
)
from .estimator import (
    GaussianMixture,
    _check_magnitude,
    _degenerate,
    _destandardize,
    _destandardize_prec_chol,
    _warn_if_reg_dominates,
    size_jit,
)
from .params import GMMParams

_fit_many_jit = size_jit(batch.fit_many, ("cfg", "method", "slots"))


@dataclass(frozen=True, repr=False)
class ManyFits:
    """The fits of :func:`fit_many`, stacked along a leading axis of length ``n_sets``,
    with scikit-learn's names and shapes (in the data's units) after it.

    ``lower_bound_`` is each set's mean log-likelihood per sample (per unit weight) at
    its fitted parameters, as ``GaussianMixture.score``; ``all_lower_bounds_`` (n_sets,
    n_init) the same for every restart. :meth:`estimator` gives set ``i``'s fit as a
    :class:`bgmm.GaussianMixture` (``predict``, ``sample``, ``bic``, ...).
    """

    weights_: np.ndarray
    means_: np.ndarray
    covariances_: np.ndarray
    precisions_cholesky_: np.ndarray
    lower_bound_: np.ndarray
    all_lower_bounds_: np.ndarray
    n_iter_: np.ndarray
    converged_: np.ndarray
    failed_: np.ndarray
    _estimator_params: dict
    _std: Standardizer  # center, scale: (n_sets, D)
    _weights: np.ndarray  # (n_sets, N), the sample weights given (ones if none)
    _result: em.EMResult  # (n_sets, n_init, ...), standardised units

    def __len__(self):
        return self.weights_.shape[0]

    def __repr__(self):
        p = self._estimator_params
        return (f"ManyFits({len(self)} data sets, n_components={p['n_components']}, "
                f"covariance_type={p['covariance_type']!r}, n_init={p['n_init']}; "
                f"{int(self.converged_.sum())} converged)")

    def estimator(self, i: int) -> GaussianMixture:
        """Data set ``i``'s fit as a fitted :class:`bgmm.GaussianMixture` (its best restart;
        the same attributes and warnings as ``GaussianMixture(...).fit(X[i])``)."""
        i = range(len(self))[i]
        p = self._estimator_params  # random_state: the integer seed of set 0
        gm = GaussianMixture(**{**p, "random_state": (p["random_state"] + i) % 2**31})
        w = self._weights[i]
        std = Standardizer(self._std.center[i], self._std.scale[i])
        gm.n_features_in_ = std.center.shape[0]
        gm._store(jax.tree.map(lambda a: a[i], self._result), std, None, float(w.sum()),
                  float(w[w > 0].mean()))
        return gm


def fit_many(X, n_components: int = 1, *, covariance_type: str = "full", sample_weight=None,
             tol: float = 1e-3, reg_covar: float = 1e-6, max_iter: int = 100, n_init: int = 1,
             init_params: str = "kmeans", dtype: str = "float64", random_state=None) -> ManyFits:
    """Fit a ``n_components`` Gaussian mixture by maximum-likelihood EM to each data set.

    X : array-like (n_sets, n_samples, n_features), the data sets stacked. Sets of
        different sizes: pad them to one length and give the padding ``sample_weight`` 0.
    sample_weight : optional (n_sets, n_samples), non-negative, a positive sum per set.
    The other parameters mean what they mean for :class:`bgmm.GaussianMixture` (no prior,
    no missing values, no user starting values). Data set ``i``'s restarts use the
    random stream of ``GaussianMixture(random_state=seed + i)``, where ``seed`` is the
    integer ``random_state`` (or one drawn from it), so ``fit_many(X, random_state=0)``
    fits set ``i`` as ``GaussianMixture(random_state=i).fit(X[i])`` does.

    All (set, restart) fits run in one compiled call; each takes exactly its own EM
    iterations (:mod:`bgmm.batch`). Returns a :class:`ManyFits`. Warns (once per kind,
    naming the sets) when fits did not converge, an M-step failed, or a component emptied
    or collapsed.
    """
    params = dict(n_components=n_components, covariance_type=covariance_type, tol=tol,
                  reg_covar=reg_covar, max_iter=max_iter, n_init=n_init,
                  init_params=init_params, dtype=dtype, random_state=random_state)
    GaussianMixture(**params)._check_parameters()
    x = _check_sets(X)
    n_sets, n, d = x.shape
    w = _check_weights(sample_weight, x.shape[:2])
    n_pos = (w > 0).sum(axis=1)
    if n_pos.min() < n_components:
        i = int(np.argmin(n_pos))
        raise ValueError(
            f"Expected n_samples >= n_components in every data set, but set {i} has "
            f"{n_pos[i]} samples of positive weight for n_components = {n_components}")
    std = Standardizer.fit(x, w, covariance_type)
    _warn_if_reg_dominates(reg_covar, std.scale, x.max(axis=1) > x.min(axis=1), stacklevel=3)
    n_to = bucket_size(n)
    xs, ws = pad_rows(std.transform(x), em_weights(w, True), n_to)
    seed = seed_from(random_state)
    params["random_state"] = seed  # set i: seed + i (ManyFits.estimator)
    cfg = em.EMConfig(n_components, covariance_type, int(max_iter))
    with precision_scope(dtype):
        dt = jnp.dtype(dtype)
        # the cheap compile pipeline only while the whole batch is small
        res = _fit_many_jit(n_sets * n_init * n_to, _keys(seed, n_sets, n_init), jnp.asarray(xs, dt),
                            jnp.asarray(ws, dt), jnp.asarray(reg_covar / std.scale**2, dt),
                            jnp.asarray(tol, dt), cfg=cfg, method=init_params)
        res = jax.tree.map(np.asarray, res)
    # items are restart-major (item r * n_sets + i): to (n_sets, n_init, ...)
    res = jax.tree.map(lambda a: np.swapaxes(a.reshape((n_init, n_sets) + a.shape[1:]), 0, 1),
                       res)
    obj = np.where(np.isnan(res.objective), -np.inf, res.objective)
    best = np.argmax(obj, axis=1)
    r = jax.tree.map(lambda a: a[np.arange(n_sets), best], res)
    log_det = np.sum(np.log(std.scale), axis=1)
    params_std = GMMParams(*(np.asarray(a, np.float64) for a in r.params))
    weights, means, covs = _destandardize(params_std, std, covariance_type)
    prec_chol = _destandardize_prec_chol(params_std.precisions_cholesky, std, covariance_type)
    fits = ManyFits(  # float64 attributes, as the estimator's
        weights, means, covs, prec_chol,
        r.objective - log_det, obj - log_det[:, None], r.n_iter.astype(int),
        r.converged.astype(bool), r.failed.astype(bool), params, std, w, res)
    _, empty, collapsed = _degenerate(params_std, (w > 0).sum(axis=1),
                                      reg_covar / std.scale**2, covariance_type, dtype)
    _warn(fits, max_iter, tol, empty.any(axis=1),
          collapsed if collapsed.ndim == 1 else collapsed.any(axis=1))
    return fits


def _keys(seed: int, n_sets: int, n_init: int):
    """Item ``r * n_sets + i``: restart ``r`` of set ``i``, keyed as ``GaussianMixture``'s
    restart ``r`` with ``random_state=(seed + i) % 2**31``."""
    seeds = (seed + np.arange(n_sets, dtype=np.int64)) % (2**31)
    base = jax.vmap(jax.random.PRNGKey)(seeds)
    keys = jax.vmap(lambda r: jax.vmap(lambda k: jax.random.fold_in(k, r))(base))(
        np.arange(n_init, dtype=np.uint32))
    return keys.reshape((n_init * n_sets,) + keys.shape[2:])


def _check_sets(X) -> np.ndarray:
    if np.iscomplexobj(X):
        raise TypeError("X is complex; bgmm fits real-valued data")
    try:
        x = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"X must be a numeric array of shape (n_sets, n_samples, n_features): "
                         f"{e}") from None
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError("X must have shape (n_sets, n_samples, n_features) with none of them "
                         f"0, got shape {x.shape}")
    if x.shape[1] < 2:
        raise ValueError(f"each data set needs at least 2 samples, got {x.shape[1]}")
    bad = ~np.isfinite(x)
    if bad.any():
        i, j, k = np.argwhere(bad)[0]
        what = "NaN" if np.isnan(x[i, j, k]) else "infinity"
        raise ValueError(f"X contains {what} (first in set {i}, row {j}, column {k}; "
                         f"{int(bad.sum())} non-finite entries in all); fit_many needs "
                         "complete data (GaussianMixture(missing='marginalize') handles NaN)")
    _check_magnitude(x)
    return x


def _check_weights(sample_weight, shape) -> np.ndarray:
    if sample_weight is None:
        return np.ones(shape)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != shape:
        raise ValueError(f"sample_weight must have shape (n_sets, n_samples) = {shape}, "
                         f"got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if np.any(w.sum(axis=1) <= 0):
        raise ValueError(f"sample_weight must have a positive sum in every data set; set "
                         f"{int(np.argmin(w.sum(axis=1)))} has none")
    return w


def _warn(fits: ManyFits, max_iter, tol, empty, collapsed):
    def some(mask):
        idx = np.flatnonzero(mask)
        return f"{idx.size} of {mask.size} data sets ({idx[:10].tolist()}{' ...' if idx.size > 10 else ''})"

    if fits.failed_.any():
        warnings.warn(
            f"EM stopped early in {some(fits.failed_)}: an M-step produced a covariance that "
            "is not positive definite (the last valid parameters are kept), or the objective "
            "was not finite. Increase reg_covar.",
            DegenerateFitWarning, stacklevel=3)
    if empty.any():
        warnings.warn(
            f"a component holds less than one sample's weight in {some(empty)}; an emptied "
            "component keeps weight ~0 and its previous mean and covariance "
            "(fits.estimator(i) says which). Use fewer components.",
            DegenerateFitWarning, stacklevel=3)
    if collapsed.any():
        warnings.warn(
            f"a covariance collapsed onto a point or a lower-dimensional subspace in "
            f"{some(collapsed)} (duplicate points, a constant feature or collinear features): "
            "it is singular but for reg_covar. Use fewer components, drop redundant features "
            "or raise reg_covar.", DegenerateFitWarning, stacklevel=3)
    late = ~fits.converged_ & ~fits.failed_
    if late.any():
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations (tol={tol}) in "
            f"{some(late)}. Increase max_iter or tol, or check the data.",
            ConvergenceWarning, stacklevel=3)


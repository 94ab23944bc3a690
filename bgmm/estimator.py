"""``GaussianMixture``: the scikit-learn-style shell around the pure EM core.

Flow of ``fit``: validate -> standardise in float64 (centre, scale) -> pad small data
with zero-weight rows -> initialise and run EM for all ``n_init`` restarts in one
compiled, vmapped call -> keep the best restart -> store scikit-learn's attributes in
the data's units. Prediction standardises new data the same way and runs one E-step.
"""

from __future__ import annotations

import numbers
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, _num_samples, check_is_fitted, validate_data

from . import covariance as cov
from . import em
from ._shell import (
    ConvergenceWarning,
    DegenerateFitWarning,
    Standardizer,
    bucket_size,
    em_weights,
    pad_rows,
    precision_scope,
    restart_keys,
    seed_from,
)
from .init import INIT_METHODS, UserInit, initial_params, initial_resp
from .params import GMMParams
from .priors import GMMPrior, as_arrays, log_prior_jacobian, resolve_prior, standardize_prior

MISSING = ("error", "marginalize")


def _restarts(keys, data, prior, tol, reg, user, n_active=None, *, cfg, method):
    """Init + EM for every restart key, vmapped. ``n_active`` (traced int or None): fit a
    model of ``n_active`` components padded to ``cfg.n_components``, so one program
    serves every K up to that (see :func:`bgmm.em.m_step`)."""
    active = None if n_active is None else jnp.arange(cfg.n_components) < n_active

    def one(key):
        if all(v is None for v in user):  # EM's first step is the initial M-step
            start = initial_resp(key, data, cfg.n_components, method, n_active)
        else:
            start = initial_params(key, data, prior, reg, cfg, method, user, n_active)
        return em.fit(data, start, prior, tol, reg, cfg, active)

    return jax.vmap(one)(keys)


# Small data: the run takes milliseconds and XLA's CPU compile dominates a fit, so those
# programs are compiled with the cheaper backend pipeline (per program; JAX's global
# configuration is untouched). Measured on Old Faithful: CPU compile time ~5.5 s -> ~3 s.
# The cheap code runs 2.5-4x slower (no vectorisation), which a single fit never notices
# (GaussianMixture(4, n_init=10) on 5000 x 4: 1.5 s cold / 35 ms warm, against 2.2 s /
# 12 ms with the default pipeline); bgmm.select, which runs far more per program, uses a
# lower limit (selection._GRID_SMALL_ROWS).
_SMALL_ROWS = 8192
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def size_jit(fun, static_argnames, small_rows=_SMALL_ROWS):
    """``jax.jit`` of ``fun`` twice, with the cheap XLA pipeline (small data on CPU) and with
    the default one; returns ``call(n_rows, *args, **kwargs)`` that picks by the number
    of data rows (cheap up to ``small_rows``)."""
    small = jax.jit(fun, static_argnames=static_argnames, compiler_options=_FAST_COMPILE)
    large = jax.jit(fun, static_argnames=static_argnames)

    def call(n_rows, *args, **kwargs):
        cheap = n_rows <= small_rows and jax.default_backend() == "cpu"
        return (small if cheap else large)(*args, **kwargs)

    return call


_restarts_jit = size_jit(_restarts, ("cfg", "method"))
# one small program: eagerly, the features' intermediates (two gathers, the products, the
# concatenation) would each be a full (P, N) array -- several times the data at its peak
_make_data_jit = jax.jit(em.make_data, static_argnames="covariance_type")


def _fit_restarts(keys, data, prior, tol, reg, user, n_active=None, *, cfg, method):
    """All restarts in one compiled call: init + EM, vmapped over PRNG keys."""
    return _restarts_jit(data.x.shape[0], keys, data, prior, tol, reg, user, n_active, cfg=cfg,
                         method=method)


@partial(jax.jit, static_argnames=("covariance_type", "missing"))
def _e_step(x, params, *, covariance_type, missing):
    if missing:
        from .missing import e_step_missing

        return e_step_missing(x, params, covariance_type)
    wlp_data = em.Data(x, jnp.ones(x.shape[0], x.dtype))
    return em.e_step(wlp_data, params, covariance_type)


@partial(jax.jit, static_argnames=("covariance_type",))
def _conditional_mean(x, params, *, covariance_type):
    from .missing import conditional_mean

    return conditional_mean(x, params, covariance_type)


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM in JAX: maximum likelihood, or MAP under a prior.

    Parameters
    ----------
    n_components : int, number of mixture components K.
    covariance_type : {"full", "tied", "diag", "spherical"}, scikit-learn's meaning.
    tol : float >= 0, convergence threshold on the change of the mean log-likelihood
        (mean log-posterior for MAP) per sample.
    reg_covar : float >= 0, added to the diagonal of every covariance (data units).
    max_iter : int >= 1, EM iterations per restart.
    n_init : int >= 1, restarts; all run in one compiled, vmapped call, the best kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}.
    weights_init, means_init, precisions_init : optional starting values with
        scikit-learn's shapes and semantics.
    prior : None (maximum likelihood), "default" (the data-driven prior of
        :func:`bgmm.default_prior`) or a :class:`bgmm.GMMPrior` (MAP).
    dtype : "float64" (default) or "float32": the precision of bgmm's compiled
        computations (EM, prediction); JAX's global configuration is never changed. The
        fitted attributes and ``sample`` are float64 either way (from the standardised
        fit, so that an offset such as 1e6 + small spread survives).
    missing : "error" (NaN rejected) or "marginalize" (NaN entries are missing at
        random and integrated out).
    random_state : None, int or numpy RandomState.
    verbose : accepted for scikit-learn compatibility; bgmm prints nothing (the fitted
        ``lower_bounds_`` hold the objective per iteration).

    Notes
    -----
    Policies for bad input and hard data:

    - **Validation.** Parameters, data, ``sample_weight``, the ``*_init`` arrays and the
      prior are checked before anything runs; bad values raise ``ValueError`` or
      ``TypeError`` naming the value and what was expected (``NotFittedError`` for
      prediction before ``fit``). A ``fit`` that raises leaves the estimator exactly as it
      was. NaN in ``X`` is an error unless ``missing="marginalize"``; infinity always is.
    - **Scale.** Data are centred and scaled in float64 before EM, so offsets (1e6 + small
      noise) and scales (1e-8, 1e8) fit as well in float32 as unit-scale data.
      ``reg_covar`` is in the data's units; a ``DegenerateFitWarning`` says when it is not
      small against a feature's variance.
    - **Collapse (MLE).** A component on a point or a lower-dimensional subspace
      (duplicate points, constant or collinear features) has a likelihood bounded only by
      ``reg_covar``; the fit stays positive definite and a ``DegenerateFitWarning`` names
      the component(s).
    - **Emptied components (MLE).** A component whose responsibility mass falls below
      ``10 * eps`` of the total keeps weight ~0 and its previous mean and covariance (it
      is not re-seeded, so the objective stays monotone); a ``DegenerateFitWarning``
      names every component holding less than one sample's weight.
    - **MAP.** The prior keeps every component proper (no warning needed): an emptied
      component falls back to the prior's mode.
    - **Non-PD M-step.** If a covariance is not numerically positive definite even with
      ``reg_covar``, EM stops, keeps the last valid parameters and warns
      (``DegenerateFitWarning``).
    - **Convergence.** EM that reaches ``max_iter`` without ``|change| < tol`` emits
      :class:`bgmm.ConvergenceWarning` (a scikit-learn ``ConvergenceWarning``) with the
      last change of the objective.
    - **Determinism.** The same ``random_state`` gives bit-identical results on the same
      machine; restart ``i`` uses a key folded from the seed and ``i``, so it does not
      depend on ``n_init``. ``all_lower_bounds_`` holds every restart's final objective.
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, prior=None, dtype="float64",
                 missing="error", random_state=None, verbose=0):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.prior = prior
        self.dtype = dtype
        self.missing = missing
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _check_parameters(self):
        def integer(name, low):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")

        def real(name):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or isinstance(v, bool) or not np.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")

        integer("n_components", 1)
        integer("max_iter", 1)
        integer("n_init", 1)
        real("tol")
        real("reg_covar")
        cov.check_type(self.covariance_type)
        if self.init_params not in INIT_METHODS:
            raise ValueError(f"init_params must be one of {INIT_METHODS}, got {self.init_params!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.missing not in MISSING:
            raise ValueError(f"missing must be one of {MISSING}, got {self.missing!r}")
        if not (self.prior is None or isinstance(self.prior, GMMPrior) or self.prior == "default"):
            raise ValueError(
                f"prior must be None (MLE), 'default' or a bgmm.GMMPrior, got {self.prior!r}")

    def _validate_X(self, X, reset):
        _check_numeric_columns(X)
        X = validate_data(
            self, X, reset=reset, dtype=[np.float64, np.float32],
            ensure_min_samples=2 if reset else 1, ensure_all_finite="allow-nan",
        )
        # (infinity is rejected by validate_data itself)
        if self.missing != "marginalize":
            bad = np.isnan(X)
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise ValueError(
                    f"X contains NaN (first at row {i}, column {j}; {int(bad.sum())} in all); "
                    "pass missing='marginalize' to treat NaN as missing at random, or impute")
        _check_magnitude(X)
        return X

    def _check_X_nan(self, X, fitting=False):
        if self.missing != "marginalize":
            return
        if np.any(np.all(np.isnan(X), axis=1)):
            raise ValueError("every row of X needs at least one observed (non-NaN) entry")
        unseen = np.flatnonzero(np.all(np.isnan(X), axis=0))
        if fitting and unseen.size:  # (prediction marginalises such a feature out)
            raise ValueError(f"feature(s) {unseen.tolist()} of X have no observed (non-NaN) "
                             "value: nothing can be estimated for them; drop them")

    def _resolve_prior(self, X, w):
        if self.prior is None:
            return None
        prior = GMMPrior() if self.prior == "default" else self.prior
        prior = resolve_prior(prior, X, self.n_components, self.covariance_type, w)
        if np.any(prior.weight_concentration < 1):
            raise ValueError(
                "MAP-EM needs prior weight_concentration >= 1 (the posterior mode of a sparser "
                "Dirichlet lies on the boundary); sample such a prior with MCMC instead, got "
                f"{prior.weight_concentration}")
        return prior

    def _user_init(self, n_features, std: Standardizer) -> UserInit:
        k, d, ct = self.n_components, n_features, self.covariance_type
        weights = means = prec_chol = None
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, np.float64)
            if weights.shape != (k,):
                raise ValueError(f"weights_init must have shape ({k},), got {weights.shape}")
            if np.any(weights < 0) or np.any(weights > 1) or not np.isfinite(weights).all():
                raise ValueError(f"weights_init must lie in [0, 1], got {weights}")
            if not np.isclose(weights.sum(), 1.0, atol=1e-6):
                raise ValueError(f"weights_init must sum to 1, got sum {weights.sum():.8g}")
        if self.means_init is not None:
            means = np.asarray(self.means_init, np.float64)
            if means.shape != (k, d):
                raise ValueError(f"means_init must have shape ({k}, {d}), got {means.shape}")
            if not np.isfinite(means).all():
                raise ValueError("means_init must be finite")
            means = std.transform(means)
        if self.precisions_init is not None:
            prec = np.asarray(self.precisions_init, np.float64)
            shape = cov.covariance_shape(ct, k, d)
            if prec.shape != shape:
                raise ValueError(f"precisions_init must have shape {shape} for covariance_type="
                                 f"{ct!r}, got {prec.shape}")
            covs = _covariances_from_precisions(prec, ct)
            prec_chol = _np_precision_cholesky(_standardize_cov(covs, std.scale, ct), ct)
        return UserInit(weights, means, prec_chol)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None):
        """Fit by EM (all ``n_init`` restarts at once); returns self.

        A fit that raises leaves the estimator exactly as it was (parameters and any
        previous fit).
        """
        state = dict(self.__dict__)
        try:
            return self._fit(X, sample_weight)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise

    def _fit(self, X, sample_weight):
        self._check_parameters()
        X = self._validate_X(X, reset=True)
        n, d = X.shape
        if n < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {self.n_components}, "
                f"n_samples = {n}")
        X = np.asarray(X, np.float64)
        self._check_X_nan(X, fitting=True)
        w = None
        if sample_weight is not None:
            w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            if not np.all(np.isfinite(w)) or w.sum() <= 0:
                raise ValueError("sample_weight must be finite with a positive sum")
        prior = self._resolve_prior(X, w)
        std = Standardizer.fit(X, w, self.covariance_type)
        _warn_if_reg_dominates(self.reg_covar, std.scale,
                               np.nanmax(X, axis=0) > np.nanmin(X, axis=0), stacklevel=4)
        user = self._user_init(d, std)
        weight = np.ones(n) if w is None else w
        xs, ws = pad_rows(std.transform(X), em_weights(weight, prior is None), bucket_size(n))
        cfg = em.EMConfig(self.n_components, self.covariance_type, int(self.max_iter),
                          # data without NaN take the ordinary (cheaper, identical) E-step
                          prior is not None, bool(np.isnan(X).any()))
        reg = self.reg_covar / std.scale**2
        seed = seed_from(self.random_state)
        with precision_scope(self.dtype):
            dt = jnp.dtype(self.dtype)
            data = _make_data_jit(jnp.asarray(xs, dt), jnp.asarray(ws, dt), self.covariance_type)
            prior_s = None if prior is None else as_arrays(
                standardize_prior(prior, std.center, std.scale, self.covariance_type), dt)
            user_j = UserInit(*(None if v is None else jnp.asarray(v, dt) for v in user))
            res = _fit_restarts(restart_keys(seed, self.n_init), data, prior_s,
                                jnp.asarray(self.tol, dt), jnp.asarray(reg, dt), user_j,
                                cfg=cfg, method=self.init_params)
            res = jax.tree.map(np.asarray, res)
        # the Jacobian of the standardisation: per row, over its observed features only
        log_det = float(np.sum(weight * _row_log_det(X, std)) / weight.sum())
        self._store(res, std, prior, float(weight.sum()), float(weight[weight > 0].mean()),
                    log_det)
        return self

    def _store(self, res: em.EMResult, std: Standardizer, prior, total_weight: float,
               unit_weight: float = 1.0, log_det=None):
        """Keep the best restart of ``res``; ``total_weight`` is the sum of the sample weights
        (N when unweighted), ``unit_weight`` one sample's weight (the mean positive weight:
        weights may be normalised), ``log_det`` the mean log-Jacobian of the standardisation
        (default: the complete-data one)."""
        obj = np.where(np.isnan(res.objective), -np.inf, res.objective)
        best = int(np.argmax(obj))
        r = jax.tree.map(lambda a: a[best], res)
        ct = self.covariance_type
        # mean log-Jacobian of the standardisation (per row: its observed features)
        offset = -(std.log_det if log_det is None else log_det)
        if prior is not None:
            offset += log_prior_jacobian(ct, self.n_components, np.log(std.scale)) / total_weight
        self._std = std
        self._prior = prior
        self._params_std = GMMParams(*(np.asarray(a, np.float64) for a in r.params))
        # the attributes are float64 whatever the dtype: in float32 an offset (1e6 + small
        # spread) would round the means to its spacing there (0.0625)
        self.weights_, self.means_, self.covariances_ = _destandardize(self._params_std, std, ct)
        # Sigma = S Sigma' S  =>  U = S^{-1} U' stays triangular: no refactorisation
        self.precisions_cholesky_ = _destandardize_prec_chol(self._params_std.precisions_cholesky,
                                                             std, ct)
        self.precisions_ = _precisions(self.precisions_cholesky_, ct)
        self.converged_ = bool(r.converged)
        self.n_iter_ = int(r.n_iter)
        self.lower_bound_ = float(r.objective + offset)
        self.lower_bounds_ = (r.trace[: self.n_iter_] + offset).astype(np.float64)
        self.all_lower_bounds_ = obj + offset  # per restart, at its final parameters
        if bool(r.failed) and np.isfinite(r.objective):
            warnings.warn(
                f"EM stopped after {self.n_iter_} iterations: an M-step produced a covariance "
                "that is not positive definite; the last valid parameters are kept. Increase "
                "reg_covar or use prior='default'.", DegenerateFitWarning, stacklevel=4)
        elif bool(r.failed):
            warnings.warn(
                f"EM stopped after {self.n_iter_} iterations with a non-finite objective (a "
                "covariance not positive definite from the start, or a log-likelihood that "
                "overflowed). Increase reg_covar, use prior='default' or check the data for "
                "extreme values.", DegenerateFitWarning, stacklevel=4)
        elif not self.converged_:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (best of "
                f"n_init={self.n_init}); the last change of the objective was "
                f"{float(r.last_change):.3g} > tol={self.tol}. Increase max_iter or tol, or check "
                "the data.", ConvergenceWarning, stacklevel=4)
        if prior is not None:
            return  # the prior keeps every component proper
        n_eff, empty, collapsed = _degenerate(self._params_std, total_weight / unit_weight,
                                              self.reg_covar / std.scale**2, ct, self.dtype)
        if empty.any():
            warnings.warn(
                f"component(s) {np.flatnonzero(empty).tolist()} hold less than one sample's "
                f"weight (effective counts {np.round(n_eff[empty], 3).tolist()}); an emptied "
                "component keeps weight ~0 and its previous mean and covariance. Use fewer "
                "components or prior='default'.", DegenerateFitWarning, stacklevel=4)
        if collapsed.any():
            what = ("the tied covariance" if ct == "tied"
                    else f"component(s) {np.flatnonzero(collapsed).tolist()}")
            warnings.warn(
                f"{what} collapsed onto a point or a lower-dimensional subspace (duplicate "
                "points, a constant feature or collinear features): the covariance is "
                "singular but for reg_covar, which alone sets the likelihood there. Use fewer "
                "components, drop redundant features, raise reg_covar or use prior='default'.",
                DegenerateFitWarning, stacklevel=4)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then the label of each sample (equal to ``fit(X).predict(X)``)."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    # ------------------------------------------------------------------ prediction
    def _estep(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        X = np.asarray(X, np.float64)
        self._check_X_nan(X)
        resp, log_norm = self._estep_in(X, self.dtype)
        # float32: a row far outside the data overflows the squared distance (-inf for
        # every component: NaN responsibilities); such rows are redone in float64
        bad = ~(np.isfinite(log_norm) & np.all(np.isfinite(resp), axis=1))
        if self.dtype != "float64" and bad.any():
            resp[bad], log_norm[bad] = self._estep_in(X[bad], "float64")
        return resp, log_norm - _row_log_det(X, self._std)

    def _estep_in(self, X, dtype):
        """Responsibilities and log densities (standardised units), float64 numpy."""
        with precision_scope(dtype):
            dt = jnp.dtype(dtype)
            params = GMMParams(*(jnp.asarray(a, dt) for a in self._params_std))
            n = X.shape[0]
            xs, _ = pad_rows(self._std.transform(X), np.ones(n), bucket_size(n))
            resp, log_norm = _e_step(jnp.asarray(xs, dt), params, covariance_type=self.covariance_type,
                                     missing=bool(np.isnan(X).any()))
            return (np.asarray(resp)[:n].astype(np.float64),
                    np.asarray(log_norm)[:n].astype(np.float64))

    def predict_proba(self, X):
        """Responsibilities gamma(z_nk), shape (n_samples, n_components); rows sum to 1."""
        return self._estep(X)[0]

    def impute(self, X, *, posterior=None, random_state=None):
        """Fill the missing (NaN) entries of X from the fitted mixture.

        Parameters
        ----------
        X : (n_samples, n_features), NaN marks a missing entry; every row needs one
            observed entry. Works whatever ``missing`` the estimator was fitted with.
        posterior : None, or posterior draws (an ArviZ DataTree from
            :meth:`sample_posterior`, its ``posterior`` group, or a mapping with
            ``weights``, ``means``, ``covariances`` of shapes (..., K), (..., K, D),
            (..., per type) in the data's units).
        random_state : seed of the posterior draws (default: the estimator's).

        Returns
        -------
        Without ``posterior``: (n_samples, n_features), X with each missing entry
        replaced by its conditional mean ``E[x_mis | x_obs] = sum_k gamma_nk
        E[x_mis | x_obs, z=k]`` (observed entries unchanged). With ``posterior``:
        (S, n_samples, n_features), one draw of the missing entries per posterior draw
        (see :func:`bgmm.missing.impute_posterior`).
        """
        from .missing import check_rows, impute_posterior

        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                          ensure_all_finite="allow-nan")
        X = np.asarray(X, np.float64)
        check_rows(X)
        if posterior is not None:
            rs = self.random_state if random_state is None else random_state
            return impute_posterior(X, posterior, self.covariance_type, random_state=rs)
        n = X.shape[0]
        with precision_scope(self.dtype):
            dt = jnp.dtype(self.dtype)
            params = GMMParams(*(jnp.asarray(a, dt) for a in self._params_std))
            xs, _ = pad_rows(self._std.transform(X), np.ones(n), bucket_size(n))
            out = _conditional_mean(jnp.asarray(xs, dt), params,
                                    covariance_type=self.covariance_type)
            out = np.asarray(out, np.float64)[:n]
        return np.where(np.isnan(X), out * self._std.scale + self._std.center, X)

    def predict(self, X):
        """Most probable component of each sample, shape (n_samples,)."""
        return self.predict_proba(X).argmax(axis=1)

    def score_samples(self, X):
        """Log density ``log p(x_n)`` of each sample, shape (n_samples,)."""
        return self._estep(X)[1]

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood per sample (weighted mean with ``sample_weight``)."""
        ll = self.score_samples(X)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, ll[:, None], dtype=np.float64,
                                                 ensure_non_negative=True)
            if not np.all(np.isfinite(sample_weight)) or sample_weight.sum() <= 0:
                raise ValueError("sample_weight must be finite with a positive sum")
        return float(np.average(ll, weights=sample_weight))

    def _n_parameters(self):
        return cov.n_parameters(self.covariance_type, self.n_components, self.means_.shape[1])

    def bic(self, X):
        """Bayesian information criterion ``-2 log L + p log N`` (lower is better)."""
        n = _num_samples(X)
        return -2 * self.score(X) * n + self._n_parameters() * np.log(n)

    def aic(self, X):
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better)."""
        return -2 * self.score(X) * _num_samples(X) + 2 * self._n_parameters()

    def sample(self, n_samples=1):
        """Draw ``n_samples`` from the fitted mixture; returns ``(X, y)`` like scikit-learn."""
        check_is_fitted(self)
        if not isinstance(n_samples, numbers.Integral) or isinstance(n_samples, bool) \
                or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
        rng = check_random_state(self.random_state)
        w = np.asarray(self.weights_, np.float64)
        counts = rng.multinomial(n_samples, w / w.sum())
        full = _np_to_full(np.asarray(self.covariances_, np.float64), self.covariance_type,
                           self.n_components, self.means_.shape[1])
        xs = [rng.multivariate_normal(m, c, int(c_n)) for m, c, c_n in zip(self.means_, full, counts)]
        y = np.concatenate([np.full(c_n, j, int) for j, c_n in enumerate(counts)])
        return np.vstack(xs), y

    def sample_posterior(self, X, **kwargs):
        """NUTS on the same model (prior: this estimator's), chains started at this fit.

        See :func:`bgmm.mcmc.sample_posterior` for the arguments; returns an ArviZ DataTree.
        """
        from .mcmc import sample_posterior

        return sample_posterior(self, X, **kwargs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags


# ---------------------------------------------------------------------- numpy helpers
_MAX_ABS = 1e150


def _warn_if_reg_dominates(reg_covar, scale, varying, stacklevel):
    """DegenerateFitWarning when ``reg_covar`` is not small against the variance of a
    non-constant feature (``scale`` and ``varying`` (..., D): per data set)."""
    scale, varying = np.atleast_2d(scale), np.atleast_2d(varying)
    var = np.where(varying, scale**2, np.inf)
    if reg_covar > 0.1 * np.min(var):
        i, j = np.unravel_index(np.argmin(var), var.shape)
        where = f"feature {j}" + (f" of data set {i}" if var.shape[0] > 1 else "")
        warnings.warn(
            f"reg_covar={reg_covar:g} is not small against the variance of {where} "
            f"({var[i, j]:.3g}): the regulariser dominates the covariances. Rescale the data "
            "or lower reg_covar.", DegenerateFitWarning, stacklevel=stacklevel)


def _as_real(x, name: str = "X") -> np.ndarray:
    """``x`` as a float64 array: TypeError for complex values (whose imaginary part a cast
    would drop silently)."""
    if np.iscomplexobj(x):
        raise TypeError(f"{name} is complex; bgmm fits real-valued data")
    return np.asarray(x, np.float64)


def _check_magnitude(x, name: str = "X"):
    """ValueError if ``|x|`` (NaN ignored) exceeds what squares can hold in float64."""
    big = float(np.nanmax(np.abs(x), initial=0.0))
    if big > _MAX_ABS:
        raise ValueError(
            f"{name} has entries up to {big:.3g} in magnitude; bgmm needs |x| <= {_MAX_ABS:.0e} "
            "(squares must not overflow float64): rescale the data")


def _check_numeric_columns(X):
    """A DataFrame with non-numeric columns: TypeError naming them (before any conversion)."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "columns"):
        return
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    bad = [f"{c!r} ({t})" for c, t in zip(X.columns, dtypes)
           if not (is_numeric_dtype(t) or is_bool_dtype(t))]
    if bad:
        raise TypeError(
            f"X has non-numeric column(s) {', '.join(bad)}; GaussianMixture needs numeric "
            "features: encode or drop them")


def _np_to_full(covs, ct, k, d):
    if ct == "full":
        return covs
    if ct == "tied":
        return np.broadcast_to(covs, (k, d, d))
    var = covs if ct == "diag" else np.repeat(covs[:, None], d, axis=1)
    return var[:, :, None] * np.eye(d)


def _degenerate(p: GMMParams, n_samples, reg_std, ct, dtype):
    """Maximum-likelihood fits: ``(n_eff, empty, collapsed)`` per component (tied:
    ``collapsed`` is one flag). ``n_samples``: the total weight in units of one sample's
    weight (the mean positive weight: weights may be normalised). Empty: less than one
    sample's weight, with 1e-3 slack so that a component owning exactly one sample is not
    reported; collapsed (not counting empty ones): see :func:`_collapsed`. Leading batch
    axes carry through (``n_samples`` (S,))."""
    n_eff = np.asarray(p.weights) * np.asarray(n_samples)[..., None]
    empty = n_eff < 1.0 - 1e-3
    collapsed = _collapsed(p, reg_std, ct, dtype)
    return n_eff, empty, (collapsed if ct == "tied" else collapsed & ~empty)


def _collapsed(p: GMMParams, reg_std, ct, dtype):
    """Mask of components whose covariance (standardised units) is singular but for the
    added regularisation; tied: one flag. ``reg_std`` (D,) is ``reg_covar`` standardised.
    Leading batch axes (many fits: parameters (S, K, ...), ``reg_std`` (S, D)) carry
    through."""
    eps = np.finfo(np.dtype(dtype)).eps
    d = p.means.shape[-1]
    # at least em.m_step's 16 eps floor
    regd = np.maximum(np.broadcast_to(reg_std, p.means.shape[:-2] + (d,)), 16 * eps)
    reg_eye = regd[..., :, None] * np.eye(d)
    # round-off of the moment formula s2 / n - m m^T grows with the squared mean, and
    # that of adding reg with reg (which dominates when a feature is nearly constant)
    tol = 100 * eps * (1.0 + np.sum(p.means**2, axis=-1) + np.max(regd, axis=-1)[..., None])
    if ct == "tied":
        lam = np.linalg.eigvalsh(p.covariances - reg_eye)[..., 0]
        return np.asarray(lam <= tol.max(axis=-1))
    if ct == "full":
        lam = np.linalg.eigvalsh(p.covariances - reg_eye[..., None, :, :])[..., 0]
    elif ct == "diag":
        lam = np.min(p.covariances - regd[..., None, :], axis=-1)
    else:
        lam = p.covariances - np.mean(regd, axis=-1)[..., None]
    return lam <= tol


def _row_log_det(X, std: Standardizer):
    """``sum_d log scale_d`` over each row's observed (non-NaN) features, (n_samples,)."""
    return np.where(np.isnan(X), 0.0, np.log(std.scale)).sum(axis=1)


def _standardize_cov(covs, scale, ct):
    if ct in ("full", "tied"):
        return covs / np.outer(scale, scale)
    return covs / (scale**2 if ct == "diag" else scale[0] ** 2)


def _destandardize(p: GMMParams, std: Standardizer, ct):
    """Weights, means and covariances in the data's units. Leading batch axes (many fits:
    parameters (S, K, ...), ``std`` (S, D)) carry through."""
    s = std.scale
    means = p.means * s[..., None, :] + std.center[..., None, :]
    if ct == "full":
        covs = p.covariances * (s[..., None, :, None] * s[..., None, None, :])
    elif ct == "tied":
        covs = p.covariances * (s[..., :, None] * s[..., None, :])
    elif ct == "diag":
        covs = p.covariances * s[..., None, :] ** 2
    else:
        covs = p.covariances * s[..., :1] ** 2
    return p.weights, means, covs


def _destandardize_prec_chol(u, std: Standardizer, ct):
    """Sigma = S Sigma' S  =>  U = S^{-1} U' (batch axes as :func:`_destandardize`)."""
    s = std.scale
    if ct == "full":
        return u / s[..., None, :, None]
    if ct == "tied":
        return u / s[..., :, None]
    return u / (s[..., None, :] if ct == "diag" else s[..., :1])


def _np_precision_cholesky(covs, ct):
    if ct in ("diag", "spherical"):
        return 1.0 / np.sqrt(covs)

    def one(c):
        L = np.linalg.cholesky(c)
        return np.linalg.solve(L, np.eye(c.shape[0])).T

    return one(covs) if ct == "tied" else np.stack([one(c) for c in covs])


def _precisions(prec_chol, ct):
    if ct in ("diag", "spherical"):
        return prec_chol**2
    return prec_chol @ np.swapaxes(prec_chol, -1, -2)


def _covariances_from_precisions(prec, ct):
    if ct in ("diag", "spherical"):
        if np.any(prec <= 0) or not np.isfinite(prec).all():
            raise ValueError(f"precisions_init must be positive and finite, got {prec}")
        return 1.0 / prec

    def one(p, where):
        if not np.isfinite(p).all() or not np.allclose(p, p.T):
            raise ValueError(f"precisions_init{where} must be symmetric positive definite, "
                             f"got a non-symmetric or non-finite matrix {p.tolist()}")
        lam = np.linalg.eigvalsh(p)[0]
        if lam <= 0:
            raise ValueError(f"precisions_init{where} must be symmetric positive definite, "
                             f"got smallest eigenvalue {lam:.3g}")
        return np.linalg.inv(p)

    if ct == "tied":
        return one(prec, "")
    return np.stack([one(p, f"[{i}]") for i, p in enumerate(prec)])

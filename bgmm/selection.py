"""Model selection: which number of components K, which covariance type?

Three routes, one module:

- :func:`select` fits a grid of (K, covariance type) by EM and tabulates BIC, AIC and ICL.
  The data is validated, standardised and padded once per covariance type. Each model
  is one call of one compiled program: the estimator's restart-vmapped EM
  (``bgmm.estimator._restarts``: initialisation + EM for all ``n_init`` restarts), then
  one E-step at the best restart for the scores. On data of moderate size every
  K of a covariance type runs in **one** program: the model is padded to the largest K
  with components of weight exactly 0 (``pad_components``; see :func:`bgmm.em.m_step`),
  which the E-step never assigns, the M-step never revives and the log prior leaves
  out, so a padded fit equals the unpadded one to round-off (same k-means draws). The
  k-means initialisation does not depend on the covariance type, only on the
  standardised data: it is compiled once for all types and run once per K for the
  types of one scaling (full, tied and diag share per-feature scaling; spherical has one
  scale). A study therefore compiles five programs instead of one per (K, covariance
  type). A small maximum-likelihood grid (no prior, at most 8192 padded rows and 16
  features) goes further: all its covariance types run in **one** EM program, each type
  held in full form (a diagonal or spherical covariance as a diagonal matrix, tied as K
  equal matrices; :func:`bgmm.em.m_step`'s ``kind``), so the study compiles two programs.
  Each type there takes the same EM steps as in its own program (to round-off), but
  all types run as long as the slowest and on D x D matrices, which beyond that size
  costs more than the compile it saves. Up to 2,048 padded rows the programs are compiled
  with XLA's cheaper CPU pipeline (``_GRID_SMALL_ROWS``). Compiling dominates a first
  study on small data. On a 2-core CPU (``benchmarks/bench_select.py``; K = 1..6, four
  types, ``n_init=10``; the scikit-learn loop in the same process; 2026-12-03; Old
  Faithful two runs):

  ======================  ============  ============  =============  ==================
  data                    sklearn loop  bgmm cold     bgmm warm      new process, cache
  ======================  ============  ============  =============  ==================
  Old Faithful (272 x 2)  2.7 - 3.2 s   2.2 - 2.4 s   0.16 - 0.20 s  0.98 - 1.23 s
  synthetic 2,000 x 4     3.4 s         2.6 s         0.51 s         1.13 s
  synthetic 5,000 x 4     3.5 s         3.3 s         0.42 s         1.40 s
  synthetic 20,000 x 4    14.9 s        5.9 s         1.41 s         2.13 s
  synthetic 100,000 x 4   58.3 s        14.6 s        9.3 s          9.9 s
  ======================  ============  ============  =============  ==================

  Cold is the first study in a process (trace, compile, run); warm a second one (run
  only); "new process, cache" a study in a new Python process after
  :func:`bgmm.enable_compilation_cache` stored the programs in an earlier one (trace,
  load, run). Compiling is CPU-bound (about 3.3 CPU-seconds for 2.3 s of wall time on
  Old Faithful; compiling the init and EM programs at the same time gains nothing on two
  cores). On Old Faithful one EM program per covariance type (as a MAP grid runs) takes
  4.3 - 4.5 s cold, one program per model 22 - 29 s. At 100,000 rows the run is 3.9 s of
  k-means and 5.7 s of EM; padding every K to the largest costs about 1.7x the EM work
  (``pad_components=False``: 7.1 s warm, 46 s cold).
  Calls are dispatched asynchronously; programs depend only on (max K, covariance type,
  max_iter, init method, padded N, D), so a second study of data of similar size
  compiles nothing. To reuse programs across processes call
  :func:`bgmm.enable_compilation_cache` (JAX's persistent cache: a process-wide setting,
  which bgmm never makes on import; its command line does).
- :func:`compare_loo` compares models sampled with MCMC by PSIS-LOO (``arviz.loo`` /
  ``arviz.compare``) and surfaces Pareto-k warnings; :meth:`SelectionResult.add_loo` puts
  LOO next to the EM criteria in the same table.
- :func:`sparse_mixture_k` samples an overfitted mixture with a sparse Dirichlet prior on
  the weights (Malsiner-Walli, Frühwirth-Schnatter & Grün 2016) and reports the
  posterior of the number of non-empty components.

Sign convention (scikit-learn's): **lower is better** for every criterion here,

- ``BIC = -2 log L + p log N``
- ``AIC = -2 log L + 2 p``
- ``ICL = BIC + 2 EN``, ``EN = -sum_n sum_k gamma_nk log gamma_nk`` (the classification
  entropy of the responsibilities; Biernacki, Celeux & Govaert 2000),

with ``log L`` the log-likelihood at the fitted parameters (at the MAP estimate when a
prior is given, as mclust does), ``p`` scikit-learn's number of free parameters
(:func:`bgmm.covariance.n_parameters`) and ``N`` the number of samples (the sum of
``sample_weight`` when given). mclust reports BIC and ICL with the opposite sign (larger
is better): ``mclust BIC = -bgmm BIC``. mclust's ``icl`` uses the hard-assignment
variant ``-sum_n log gamma_{n, map(n)}``; bgmm uses the soft entropy above (McLachlan &
Peel 2000, eq. 6.75), which is never larger and agrees for well-separated clusters.
LOO is reported as ``elpd_loo`` (larger is better) and ``looic = -2 elpd_loo`` (lower
is better, on the scale of the others).
"""

from __future__ import annotations

import html
import numbers
import os
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from sklearn.utils.validation import _check_sample_weight, check_array

from . import covariance as cov
from . import em
from ._shell import (
    DegenerateFitWarning,
    Standardizer,
    bucket_size,
    em_weights,
    pad_rows,
    precision_scope,
    restart_keys,
    seed_from,
)
from .estimator import GaussianMixture, _check_magnitude, _make_data_jit, _restarts, size_jit
from .init import UserInit, initial_resp
from .params import GMMParams
from .priors import GMMPrior, as_arrays, log_prior_jacobian, resolve_prior, standardize_prior

CRITERIA = ("bic", "aic", "icl")
_LOWER_IS_BETTER = {"bic": True, "aic": True, "icl": True, "looic": True, "elpd_loo": False}
_LABELS = {
    "bic": "BIC (lower is better)",
    "aic": "AIC (lower is better)",
    "icl": "ICL (lower is better)",
    "looic": "LOOIC = -2 elpd_loo (lower is better)",
    "elpd_loo": "elpd_loo (higher is better)",
}


class ParetoKWarning(UserWarning):
    """PSIS-LOO is unreliable for some observations (Pareto k above ArviZ's threshold)."""


# ------------------------------------------------------------------ compiled pieces
def _score(res: em.EMResult, data: em.Data, covariance_type: str, kind=None):
    """Best restart of ``res`` and its scores from one E-step, all in standardised units.

    Returns ``(best index, log-likelihood sum, classification entropy, smallest variance
    per component (K,), effective count per component (K,))``. ``kind``: the type of a
    model held in full form (see :func:`bgmm.em.m_step`).
    """
    obj = jnp.where(jnp.isnan(res.objective), -jnp.inf, res.objective)
    best = jnp.argmax(obj)
    p = jax.tree.map(lambda a: a[best], res.params)
    resp, log_norm = em.e_step(data, p, covariance_type)
    w = data.weight
    live = w > 0  # padded rows carry weight 0
    loglik = jnp.sum(jnp.where(live, w * log_norm, 0.0))
    rlogr = jnp.where(resp > 0, resp * jnp.log(jnp.where(resp > 0, resp, 1.0)), 0.0)
    entropy = -jnp.sum(jnp.where(live[:, None], w[:, None] * rlogr, 0.0))
    c = p.covariances
    k = p.means.shape[0]
    if kind is not None:  # diag / spherical: the diagonal itself, as their own programs
        min_var = jnp.where(kind >= cov.COVARIANCE_TYPES.index("diag"),
                            jnp.min(jnp.diagonal(c, axis1=-2, axis2=-1), axis=-1),
                            jnp.min(jnp.linalg.eigvalsh(c), axis=-1))
    elif covariance_type == "full":
        min_var = jnp.min(jnp.linalg.eigvalsh(c), axis=-1)
    elif covariance_type == "tied":
        min_var = jnp.broadcast_to(jnp.min(jnp.linalg.eigvalsh(c)), (k,))
    elif covariance_type == "diag":
        min_var = jnp.min(c, axis=-1)
    else:
        min_var = c
    n_eff = jnp.sum(jnp.where(live[:, None], w[:, None] * resp, 0.0), axis=0)
    return best, loglik, entropy, min_var, n_eff


def _fit_score(keys, data, prior, tol, reg, *, cfg, method):
    """One unpadded model of the grid in one program: init + EM for all restarts, then the
    scores of the best (one compile per model instead of two)."""
    res = _restarts(keys, data, prior, tol, reg, UserInit(), cfg=cfg, method=method)
    return res, _score(res, data, cfg.covariance_type)


# A grid runs 10-40 fits per call and one call per K, so the cheap XLA pipeline's slower
# code (see estimator._SMALL_ROWS) costs more than the compile time it saves beyond about
# 2,000 rows. Measured (2-core CPU, K = 1..6 x 4 types, n_init=10; cold / warm study):
# 1,500 x 4: 1.9 / 0.30 s cheap, 2.8 / 0.10 s default; 2,000 x 4: 2.4 / 0.48 s against
# 2.8 / 0.13 s; 4,000 x 4: 2.7 / 0.78 s against 2.8 / 0.26 s; Old Faithful 2.3 / 0.12 s
# against 3.0 / 0.05 s.
_GRID_SMALL_ROWS = 2048
_fit_score_jit = size_jit(_fit_score, ("cfg", "method"), _GRID_SMALL_ROWS)


# K-padded grids compile in two pieces, so that the initialisation (k-means++ and Lloyd's
# iterations: more than half of a model's compile time) is compiled once for all covariance
# types -- it does not depend on the type, only on the (standardised) data's shape -- and
# each type's program starts from its responsibilities. Same operations as _fit_score.
def _init_resp(keys, x, weight, n_active, *, k, method):
    data = em.Data(x, weight)
    return jax.vmap(lambda key: initial_resp(key, data, k, method, n_active))(keys)


def _fit_score_from_resp(resp, data, prior, tol, reg, n_active, *, cfg):
    active = jnp.arange(cfg.n_components) < n_active

    def one(r):
        return em.fit(data, r, prior, tol, reg, cfg, active)

    res = jax.vmap(one)(resp)
    return res, _score(res, data, cfg.covariance_type)


def _fit_score_types(resps, datas, tol, regs, n_active, *, cfg, slots):
    """Every covariance type of a maximum-likelihood grid at one K in one program.

    Each type is held in full form (``em.m_step(kind=...)``): the E-step is the full one
    (a diagonal precision has exact zeros off the diagonal) and the M-step projects the
    full-form sums onto the type, so the results equal the types' own programs to
    round-off. ``slots`` (static): per type, ``(index in COVARIANCE_TYPES, index of its
    scaling in resps / datas)``; ``regs`` (types, D). Vmapped over types, then restarts.
    """
    kinds = jnp.asarray([kind for kind, _ in slots], jnp.int32)
    resp = jnp.stack([resps[i] for _, i in slots])
    data = jax.tree.map(lambda *a: jnp.stack(a), *[datas[i] for _, i in slots])
    active = jnp.arange(cfg.n_components) < n_active

    def one_type(resp_t, data_t, reg_t, kind):
        def one(r):
            return em.fit(data_t, r, None, tol, reg_t, cfg, active, kind)

        res = jax.vmap(one)(resp_t)
        return res, _score(res, data_t, "full", kind)

    return jax.vmap(one_type)(resp, data, regs, kinds)


_init_resp_jit = size_jit(_init_resp, ("k", "method"), _GRID_SMALL_ROWS)
_fit_score_from_resp_jit = size_jit(_fit_score_from_resp, ("cfg",), _GRID_SMALL_ROWS)
_fit_score_types_jit = size_jit(_fit_score_types, ("cfg", "slots"), _GRID_SMALL_ROWS)
# one program for all covariance types (full-form E-step) up to this many features and
# padded rows
_ONE_PROGRAM_MAX_FEATURES = 16
_ONE_PROGRAM_MAX_ROWS = 8192


# ------------------------------------------------------------------ data preparation


@dataclass
class _Prepared:
    """The data of one study, standardised and padded once per covariance type."""

    X: np.ndarray  # (N, D) float64, validated
    weight: np.ndarray  # (N,)
    n_total: float  # sum of weights (N for BIC)
    std: dict  # covariance type -> Standardizer
    data: dict  # covariance type -> em.Data (device arrays)
    reg: dict  # covariance type -> reg_covar in standardised units (device array)
    dtype: str
    scaling: dict  # covariance type -> "vector" | "scalar": types of one scaling share data.x


def _prepare(X, sample_weight, covariance_types, reg_covar, dtype, full_form=False,
             maximum_likelihood=True) -> _Prepared:
    n = X.shape[0]
    w = np.ones(n) if sample_weight is None else sample_weight
    stds, datas, regs, scaling = {}, {}, {}, {}
    n_pad = bucket_size(n)
    with precision_scope(dtype):
        dt = jnp.dtype(dtype)
        cache = {}
        for ct in covariance_types:
            std = Standardizer.fit(X, sample_weight, ct)
            # full / tied share features (x x^T), diag / spherical differ by the scaling;
            # full_form: every type with x x^T (one program for all types)
            key = ("scalar" if ct == "spherical" else "vector",
                   full_form or ct in ("full", "tied"))
            if key not in cache:
                xs, ws = pad_rows(std.transform(X), em_weights(w, maximum_likelihood), n_pad)
                cache[key] = _make_data_jit(xs.astype(dt), ws.astype(dt),
                                            "full" if key[1] else "diag")
            stds[ct] = std
            datas[ct] = cache[key]
            regs[ct] = jnp.asarray(reg_covar / std.scale**2, dt)
            scaling[ct] = key[0]
    return _Prepared(X, w, float(w.sum()), stds, datas, regs, dtype, scaling)


# ------------------------------------------------------------------ results
@dataclass
class _Fit:
    """One model of the grid: the restart-batched EM result and its scores (numpy)."""

    n_components: int
    covariance_type: str
    res: Any = None  # em.EMResult of numpy arrays, all restarts
    k_fit: int = 0  # components of the compiled program (> n_components when padded)
    padded: bool = False  # fitted by the covariance type's shared (K-masked) program
    all_types: bool = False  # ... by one program for all covariance types (in full form)
    prior: GMMPrior | None = None  # resolved, data units
    row: dict = field(default_factory=dict)


def _check_grid(n_components, covariance_types, criteria, criterion):
    if isinstance(n_components, numbers.Integral):
        n_components = [n_components]
    ks = []
    for k in n_components:
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"n_components must hold integers >= 1, got {k!r}")
        ks.append(int(k))
    if not ks:
        raise ValueError("n_components must not be empty")
    ks = sorted(set(ks))
    if isinstance(covariance_types, str):
        covariance_types = [covariance_types]
    cts = list(dict.fromkeys(cov.check_type(c) for c in covariance_types))
    if not cts:
        raise ValueError("covariance_types must not be empty")
    if isinstance(criteria, str):
        criteria = [criteria]
    crit = list(dict.fromkeys(criteria))
    for c in crit:
        if c not in CRITERIA:
            raise ValueError(f"criteria must be among {CRITERIA}, got {c!r}")
    if criterion is None:
        criterion = crit[0] if crit else "bic"
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    return ks, cts, crit, criterion


def select(X, n_components: Iterable[int] | int = range(1, 10),
           covariance_types: Iterable[str] | str = ("full", "tied", "diag", "spherical"),
           criteria: Iterable[str] = CRITERIA, *, criterion: str | None = None, n_init: int = 10,
           prior=None, init_params: str = "kmeans", max_iter: int = 100, tol: float = 1e-3,
           reg_covar: float = 1e-6, sample_weight=None, dtype: str = "float64",
           random_state=0, n_jobs: int | None = None,
           pad_components: bool | None = None) -> SelectionResult:
    """Fit every (K, covariance type) of a grid by EM and rank them by BIC / AIC / ICL.

    Parameters
    ----------
    X : array-like (n_samples, n_features), finite.
    n_components : int or iterable of ints >= 1, the values of K.
    covariance_types : subset of ``("full", "tied", "diag", "spherical")``.
    criteria : criteria to report, among ``("bic", "aic", "icl")`` (all are computed;
        this sets the order of the columns and, without ``criterion``, the one that picks).
    criterion : criterion that chooses ``best_`` (default: the first of ``criteria``).
    n_init, init_params, max_iter, tol, reg_covar, dtype : as in
        :class:`bgmm.GaussianMixture`; the same for every model.
    prior : None (maximum likelihood), ``"default"`` or a :class:`bgmm.GMMPrior` (MAP;
        resolved per model, so its data-driven defaults follow K). BIC / AIC / ICL then
        use the log-likelihood at the MAP estimate (mclust's convention).
    sample_weight : optional (n_samples,) non-negative weights; ``N`` in BIC is their sum.
    random_state : None, int or RandomState; every model uses the same restart seeds, so a
        model of the grid equals ``GaussianMixture(K, covariance_type=..., n_init=...,
        random_state=...)`` fitted alone (to round-off; see ``pad_components``).
    n_jobs : threads that trace and compile models concurrently (None: one per CPU;
        -1 likewise; 1: sequential). Compilation dominates the cost of a first study on
        small data; results do not depend on it.
    pad_components : fit every K of a covariance type with one compiled program, the
        model padded to the largest K with components of weight exactly 0 (True), or one
        program per (K, covariance type) (False). Results agree to round-off either way
        for the "kmeans" and "k-means++" initialisations (same draws); padded "random"
        and "random_from_data" starts differ from the unpadded ones. None (default): pad
        for "kmeans" / "k-means++" when the padded work is small (``padded rows * max K *
        n_init <= 2**23``), i.e. where compiling costs more than running. A padded grid
        keeps the initial responsibilities (``n_init * rows * max K`` numbers) between its
        init program and each type's EM program. A padded maximum-likelihood grid of at
        most 8192 padded rows and 16 features runs all its covariance types in one EM
        program (each in full form; see the module's docstring).

    Returns
    -------
    SelectionResult, with ``best_`` (a fitted :class:`bgmm.GaussianMixture`),
    ``to_frame()``, ``plot()``, ``add_loo()``.

    A model whose EM failed (an M-step gave a non-positive-definite covariance), did not
    converge, emptied a component (less than one sample's weight) or collapsed one (a
    variance down at ``reg_covar``) is flagged in the table and is not chosen while any
    clean model exists; when none does, the best flagged one is chosen with a
    :class:`bgmm.DegenerateFitWarning`. A model with K > n_samples is reported, not fitted.
    """
    ks, cts, crit, criterion = _check_grid(n_components, covariance_types, criteria, criterion)
    # the estimator's own validation of the shared settings (one throw-away instance)
    GaussianMixture(n_components=1, covariance_type=cts[0], tol=tol, reg_covar=reg_covar,
                    max_iter=max_iter, n_init=n_init, init_params=init_params, prior=prior,
                    dtype=dtype)._check_parameters()
    if isinstance(prior, GMMPrior) and prior.weight_concentration is not None and np.any(
            np.asarray(prior.weight_concentration, np.float64) < 1):
        raise ValueError("MAP-EM needs prior weight_concentration >= 1 (use sparse_mixture_k to "
                         "sample a sparse Dirichlet prior with MCMC), got "
                         f"{prior.weight_concentration!r}")
    feature_names = list(X.columns) if isinstance(X, pd.DataFrame) else None
    X = check_array(X, dtype=np.float64, ensure_min_samples=2, ensure_all_finite=True)
    X = np.asarray(X, np.float64)
    _check_magnitude(X)
    w = None
    if sample_weight is not None:
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("sample_weight must be finite with a positive sum")
    fits = [_Fit(k, ct) for ct in cts for k in ks]
    todo = []
    for f in fits:
        if f.n_components > X.shape[0]:
            f.row["error"] = f"n_components={f.n_components} > n_samples={X.shape[0]}"
        else:
            todo.append(f)
    k_max = max((f.n_components for f in todo), default=1)
    if pad_components is None:  # only where the padded fit equals the unpadded one
        pad_components = (init_params in ("kmeans", "k-means++")
                          and bucket_size(X.shape[0]) * k_max * n_init <= 2**23)
    if not isinstance(pad_components, bool | np.bool_):
        raise ValueError(f"pad_components must be None, True or False, got {pad_components!r}")
    pad_components = bool(pad_components)
    # a small padded maximum-likelihood grid runs all its covariance types in one program
    # (each type in full form; see _fit_score_types): it compiles one EM program instead
    # of one per type, but runs every type as long as the slowest and diag / spherical on
    # D (D + 1) / 2 features instead of D, so only where compiling dominates
    one_program = (pad_components and prior is None and len(cts) > 1
                   and X.shape[1] <= _ONE_PROGRAM_MAX_FEATURES
                   and bucket_size(X.shape[0]) <= _ONE_PROGRAM_MAX_ROWS)
    prep = _prepare(X, w, cts, reg_covar, dtype, full_form=one_program,
                    maximum_likelihood=prior is None)
    seed = seed_from(random_state)
    settings = dict(n_init=n_init, prior=prior, init_params=init_params, max_iter=max_iter,
                    tol=tol, reg_covar=reg_covar, dtype=dtype, random_state=random_state,
                    seed=seed)
    with precision_scope(dtype):
        dt = jnp.dtype(dtype)
        keys = restart_keys(seed, n_init)
        tol_j = jnp.asarray(tol, dt)

    for f in todo:
        f.k_fit = k_max if pad_components else f.n_components
        f.padded = pad_components
        f.all_types = one_program
    # one call per unit: all types of one K (one program), or one model
    if one_program:
        units = [u for u in ([f for f in todo if f.n_components == k] for k in ks) if u]
    else:
        units = [[f] for f in todo]
    inits = {}  # (scaling, K) -> initial responsibilities of a padded grid, or the error
    for f in todo:  # k-means on the standardised data: one per (scaling, K)
        key = (prep.scaling[f.covariance_type], f.n_components)
        if pad_components and key not in inits:
            inits[key] = _initial_resp(prep.data[f.covariance_type], f, keys, init_params,
                                       dtype)

    def launch(unit):
        # tracing holds the GIL, XLA compilation does not: with n_jobs > 1 several
        # programs compile at once. Execution is asynchronous either way.
        try:
            with precision_scope(dtype):
                if one_program:
                    return _dispatch_types(prep, unit, tol_j, max_iter, dt, inits)
                f = unit[0]
                resp = inits.get((prep.scaling[f.covariance_type], f.n_components))
                if isinstance(resp, Exception):
                    raise resp
                return _dispatch(prep, f, prior, keys, tol_j, max_iter, init_params, dt, resp)
        except Exception as exc:  # noqa: BLE001 - one bad model must not end the study
            return exc

    # the first unit of each program compiles it (several at once with n_jobs > 1); the
    # others reuse it, so they are launched afterwards. (A padded grid's inits were
    # dispatched above, one compiled program for all.)
    seen, first, rest = set(), [], []
    for u in units:
        key = (u[0].k_fit, None if one_program else u[0].covariance_type)
        (rest if key in seen else first).append(u)
        seen.add(key)
    n_jobs = _n_jobs(n_jobs, max(len(first), 1))
    if n_jobs == 1:
        done = {id(u): launch(u) for u in first}
    else:
        with ThreadPoolExecutor(n_jobs) as ex:
            done = dict(zip(map(id, first), ex.map(launch, first)))
    done.update({id(u): launch(u) for u in rest})
    # collect only after everything is dispatched: device work overlaps compilation
    for unit in units:
        out = done[id(unit)]
        if not isinstance(out, Exception):
            try:
                out = jax.tree.map(np.asarray, out)
            except Exception as exc:  # noqa: BLE001 - a run-time failure of one unit
                out = exc
        for t, f in enumerate(unit):
            if isinstance(out, Exception):
                f.row["error"] = f"{type(out).__name__}: {out}"
                warnings.warn(f"model K={f.n_components}, covariance_type="
                              f"{f.covariance_type!r} could not be fitted: {f.row['error']}",
                              DegenerateFitWarning, stacklevel=2)
                continue
            res, scores = out
            if one_program:
                res, scores = jax.tree.map(lambda a, t=t: a[t], (res, scores))
                res = _from_full_form(res, f.covariance_type)
            f.res = _first_components(res, f.n_components, f.covariance_type)
            _fill_row(f, scores, prep, settings)
    return SelectionResult(fits, prep, settings, crit, criterion, feature_names)


def _n_jobs(n_jobs, n_models):
    if n_jobs is None:
        n_jobs = os.cpu_count() or 1
    if not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None or a non-zero integer, got {n_jobs!r}")
    if n_jobs < 0:
        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return max(1, min(int(n_jobs), n_models))


def _initial_resp(data: em.Data, f: _Fit, keys, init_params, dtype):
    """Dispatch a padded model's k-means init (the same for every type of one scaling)."""
    try:
        with precision_scope(dtype):
            return _init_resp_jit(data.x.shape[0], keys, data.x, data.weight,
                                  jnp.asarray(f.n_components, jnp.int32), k=f.k_fit,
                                  method=init_params)
    except Exception as exc:  # noqa: BLE001 - reported by each model that needs it
        return exc


def _dispatch(prep: _Prepared, f: _Fit, prior, keys, tol_j, max_iter, init_params, dt,
              resp=None):
    ct, k, k_fit = f.covariance_type, f.n_components, f.k_fit
    data, std = prep.data[ct], prep.std[ct]
    prior_s = None
    if prior is not None:
        base = GMMPrior() if prior == "default" else prior
        f.prior = resolve_prior(base, prep.X, k, ct, prep.weight)
        if np.any(f.prior.weight_concentration < 1):
            raise ValueError("MAP-EM needs prior weight_concentration >= 1; use "
                             "sparse_mixture_k (MCMC) for sparse Dirichlet priors, got "
                             f"{f.prior.weight_concentration}")
        ps = standardize_prior(f.prior, std.center, std.scale, ct)
        # padding components get concentration 1 (they are left out of the prior anyway)
        alpha = np.concatenate([ps.weight_concentration, np.ones(k_fit - k)])
        prior_s = as_arrays(ps._replace(weight_concentration=alpha), dt)
    cfg = em.EMConfig(k_fit, ct, int(max_iter), prior is not None, False)
    n_rows = data.x.shape[0]
    if not f.padded:
        return _fit_score_jit(n_rows, keys, data, prior_s, tol_j, prep.reg[ct], cfg=cfg,
                              method=init_params)
    # every K of every type (k_max too) runs its type's program from the shared init
    return _fit_score_from_resp_jit(n_rows, resp, data, prior_s, tol_j, prep.reg[ct],
                                    np.int32(k), cfg=cfg)


def _dispatch_types(prep: _Prepared, unit, tol_j, max_iter, dt, inits):
    """All covariance types of one K (maximum likelihood) in one call of one program."""
    k, k_fit = unit[0].n_components, unit[0].k_fit
    scalings = sorted({prep.scaling[f.covariance_type] for f in unit})
    resps, datas = [], []
    for sc in scalings:
        resp = inits[(sc, k)]
        if isinstance(resp, Exception):
            raise resp
        resps.append(resp)
        datas.append(next(prep.data[f.covariance_type] for f in unit
                          if prep.scaling[f.covariance_type] == sc))
    slots = tuple((cov.COVARIANCE_TYPES.index(f.covariance_type),
                   scalings.index(prep.scaling[f.covariance_type])) for f in unit)
    d = prep.X.shape[1]
    regs = np.stack([np.broadcast_to(np.asarray(prep.reg[f.covariance_type]), (d,))
                     for f in unit])
    cfg = em.EMConfig(k_fit, "full", int(max_iter), False, False)
    return _fit_score_types_jit(datas[0].x.shape[0], tuple(resps), tuple(datas), tol_j,
                                regs.astype(dt), np.int32(k), cfg=cfg, slots=slots)


def _from_full_form(res: em.EMResult, ct: str) -> em.EMResult:
    """A (restarts, K, D, D) full-form result (numpy) in covariance type ``ct``'s layout."""

    def typed(a):
        if ct == "full":
            return a
        if ct == "tied":
            return a[:, 0]
        diag = np.diagonal(a, axis1=-2, axis2=-1)
        return diag if ct == "diag" else diag[..., 0]

    p = res.params
    return res._replace(params=p._replace(covariances=typed(p.covariances),
                                          precisions_cholesky=typed(p.precisions_cholesky)))


def _first_components(res: em.EMResult, k: int, ct: str) -> em.EMResult:
    """The first ``k`` components of a (restarts, K_padded, ...) result (numpy)."""
    p = res.params
    if p.weights.shape[-1] == k:
        return res
    take = (lambda a: a) if ct == "tied" else (lambda a: a[:, :k])
    return res._replace(params=GMMParams(p.weights[:, :k], p.means[:, :k], take(p.covariances),
                                         take(p.precisions_cholesky)))


def _fill_row(f: _Fit, scores, prep: _Prepared, settings):
    best, loglik_s, entropy, min_var, n_eff = scores
    ct, k = f.covariance_type, f.n_components
    min_var, n_eff = min_var[:k], n_eff[:k]  # padding components (if any) last
    std = prep.std[ct]
    n, d = prep.X.shape
    wsum = prep.n_total
    r = jax.tree.map(lambda a: a[int(best)], f.res)
    loglik = float(loglik_s) - wsum * std.log_det
    p = cov.n_parameters(ct, k, d)
    bic = -2.0 * loglik + p * np.log(wsum)
    aic = -2.0 * loglik + 2.0 * p
    offset = -std.log_det
    if f.prior is not None:
        offset += log_prior_jacobian(ct, k, np.log(std.scale)) / wsum
    reg_floor = float(np.max(np.maximum(np.asarray(prep.reg[ct]), 16 * np.finfo(prep.dtype).eps)))
    finite = bool(np.isfinite(loglik))
    # in samples, so that normalised weights (summing to 1) do not make every component
    # "empty": maximum-likelihood EM ran on weights of mean 1 (_shell.em_weights), MAP on
    # the weights as given
    if f.prior is not None:
        n_eff = n_eff / float(np.mean(prep.weight[prep.weight > 0]))
    empty = bool(np.any(n_eff < 1.0))
    collapsed = bool(np.any(min_var < 10.0 * reg_floor))
    failed = bool(r.failed)
    converged = bool(r.converged)
    degenerate = empty or collapsed or failed or not finite
    f.row.update(
        log_likelihood=loglik,
        n_parameters=p,
        bic=bic,
        aic=aic,
        icl=bic + 2.0 * max(float(entropy), 0.0),
        entropy=max(float(entropy), 0.0),
        objective=float(r.objective) + offset,
        converged=converged,
        n_iter=int(r.n_iter),
        n_converged_restarts=int(np.sum(f.res.converged)),
        min_component_weight=float(np.min(n_eff)),
        empty=empty,
        collapsed=collapsed,
        failed=failed,
        degenerate=degenerate,
        valid=converged and not degenerate,
    )


_COLUMNS = ["log_likelihood", "n_parameters", "bic", "aic", "icl", "entropy", "objective",
            "converged", "n_iter", "n_converged_restarts", "min_component_weight", "empty",
            "collapsed", "failed", "degenerate", "valid", "error"]


class SelectionResult:
    """The outcome of :func:`select`: one fitted model per (K, covariance type).

    Attributes
    ----------
    best_ : GaussianMixture, the chosen model (``criterion`` lowest among valid models).
    best_key_ : (n_components, covariance_type) of ``best_``.
    criterion : the criterion that chose ``best_``.
    """

    def __init__(self, fits, prep, settings, criteria, criterion, feature_names=None):
        self._fits = {(f.n_components, f.covariance_type): f for f in fits}
        self._prep = prep
        self._settings = settings
        self.criteria = list(criteria) or [criterion]
        self.criterion = criterion
        self._feature_names = feature_names
        self._loo: dict = {}  # key -> (ELPDData, DataTree or None)
        self._models: dict = {}
        self.best_key_ = self._choose(criterion)
        self.best_ = None if self.best_key_ is None else self.get_model(*self.best_key_)

    # -------------------------------------------------------------- choosing
    def _choose(self, criterion):
        df = self.to_frame(loo=False)
        scores = df[criterion].astype(float)
        finite = np.isfinite(scores) & df["error"].isna()
        ok = finite & df["valid"].astype(bool)
        if ok.any():
            pool = scores[ok]
        elif finite.any():
            pool = scores[finite]
            key = pool.idxmin()
            warnings.warn(
                f"every model of the grid is degenerate or did not converge; the best by "
                f"{criterion} among them, K={key[0]} covariance_type={key[1]!r}, is kept. "
                "Inspect to_frame() (empty / collapsed / failed / converged), and consider "
                "prior='default', a larger reg_covar or max_iter, or fewer components.",
                DegenerateFitWarning, stacklevel=4)
        else:
            warnings.warn("no model of the grid could be fitted; best_ is None",
                          DegenerateFitWarning, stacklevel=4)
            return None
        k, ct = pool.idxmin()
        return int(k), str(ct)

    def best(self, criterion: str = "bic"):
        """The key (K, covariance type) chosen by ``criterion`` (same exclusion rules)."""
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        return self._choose(criterion)

    # -------------------------------------------------------------- models
    @property
    def keys(self):
        """All (n_components, covariance_type) of the grid, in table order."""
        return list(self._fits)

    def get_model(self, n_components: int, covariance_type: str) -> GaussianMixture:
        """The fitted :class:`bgmm.GaussianMixture` of one model of the grid."""
        key = (int(n_components), str(covariance_type))
        if key not in self._fits:
            raise KeyError(f"(n_components, covariance_type)={key} is not in the grid; "
                           f"grid: {self.keys}")
        if key in self._models:
            return self._models[key]
        f = self._fits[key]
        if f.res is None:
            raise ValueError(f"model {key} was not fitted: {f.row.get('error')}")
        s = self._settings
        est = GaussianMixture(
            n_components=key[0], covariance_type=key[1], tol=s["tol"],
            reg_covar=s["reg_covar"], max_iter=s["max_iter"], n_init=s["n_init"],
            init_params=s["init_params"], prior=s["prior"], dtype=s["dtype"],
            random_state=s["random_state"])
        X = self._prep.X
        if self._feature_names is not None:
            X = pd.DataFrame(X, columns=self._feature_names)
        est._validate_X(X, reset=True)  # n_features_in_ / feature_names_in_
        with warnings.catch_warnings():
            # already reported in the table (converged / empty / failed columns)
            warnings.simplefilter("ignore")
            w = self._prep.weight
            est._store(f.res, self._prep.std[key[1]], f.prior, float(w.sum()),
                       float(w[w > 0].mean()))
        self._models[key] = est
        return est

    # -------------------------------------------------------------- LOO
    def add_loo(self, key, tree, *, var_name: str | None = None):
        """Attach PSIS-LOO of an MCMC fit of model ``key`` = (K, covariance type).

        ``tree``: an ArviZ DataTree with a ``log_likelihood`` group (one value per
        observation), e.g. from :func:`bgmm.mcmc.sample_posterior` or
        ``arviz.from_numpyro(mcmc, log_likelihood=True)``; or a precomputed
        ``ELPDData`` from ``arviz.loo(..., pointwise=True)``. The table gains
        ``elpd_loo``, ``elpd_loo_se``, ``p_loo``, ``looic``, ``pareto_k_max`` and
        ``n_high_pareto_k`` for that row. Returns the ELPDData.
        """
        key = (int(key[0]), str(key[1]))
        if key not in self._fits:
            raise KeyError(f"{key} is not in the grid; grid: {self.keys}")
        elpd = _loo(key, tree, var_name)
        self._loo[key] = (elpd, None if _is_elpd(tree) else tree)
        return elpd

    def compare_loo(self, method: str = "stacking") -> pd.DataFrame:
        """``arviz.compare`` of the models with LOO attached (see :func:`compare_loo`)."""
        if len(self._loo) < 2:
            raise ValueError(f"compare_loo needs LOO for >= 2 models, have {len(self._loo)}; "
                             "use add_loo((K, covariance_type), tree)")
        return compare_loo({_name(k): e for k, (e, _) in self._loo.items()}, method=method)

    # -------------------------------------------------------------- views
    def to_frame(self, loo: bool = True) -> pd.DataFrame:
        """One row per (n_components, covariance_type): criteria, fit diagnostics, flags.

        Columns: ``log_likelihood`` (data units, at the fitted parameters),
        ``n_parameters``, the criteria (``bic``, ``aic``, ``icl``; lower is better),
        ``entropy`` (classification entropy EN), ``objective`` (EM's final objective per
        sample: mean log-likelihood, or log posterior / N under a prior), ``converged``,
        ``n_iter``, ``n_converged_restarts``, ``min_component_weight`` (smallest
        N * weight, in samples: weights in units of the mean positive sample weight),
        flags ``empty`` / ``collapsed`` / ``failed`` / ``degenerate``,
        ``valid`` (converged and not degenerate: eligible for ``best_``), ``error``; and
        with LOO attached, ``elpd_loo``, ``elpd_loo_se``, ``p_loo``, ``looic``,
        ``pareto_k_max``, ``n_high_pareto_k`` (NaN for models without MCMC).
        """
        rows = []
        for (k, ct), f in self._fits.items():
            row = {"n_components": k, "covariance_type": ct}
            row.update({c: f.row.get(c) for c in _COLUMNS})
            rows.append(row)
        df = pd.DataFrame(rows).set_index(["n_components", "covariance_type"])
        for c in ("log_likelihood", "bic", "aic", "icl", "entropy", "objective",
                  "min_component_weight"):
            df[c] = df[c].astype(float)
        for c in ("converged", "empty", "collapsed", "failed", "degenerate", "valid"):
            df[c] = df[c].fillna(False).astype(bool)
        df["n_parameters"] = [cov.n_parameters(ct, k, self._prep.X.shape[1])
                              for k, ct in df.index]
        for c in ("n_iter", "n_converged_restarts"):
            df[c] = df[c].astype("Int64")
        df["error"] = df["error"].astype(object)
        others = [c for c in CRITERIA if c not in self.criteria]
        order = ["log_likelihood", "n_parameters", *self.criteria, *others]
        df = df[order + [c for c in df.columns if c not in order]]
        if loo and self._loo:
            cols = {}
            for key, (e, _) in self._loo.items():
                cols[key] = _loo_row(e)
            loo_df = pd.DataFrame.from_dict(cols, orient="index")
            loo_df.index = pd.MultiIndex.from_tuples(loo_df.index, names=df.index.names)
            df = df.join(loo_df)
        return df

    def pivot(self, criterion: str | None = None) -> pd.DataFrame:
        """``criterion`` as a table: rows K, columns covariance types."""
        criterion = criterion or self.criterion
        df = self.to_frame()
        if criterion not in df:
            raise ValueError(f"criterion {criterion!r} not in the table; columns: {list(df)}")
        return df[criterion].unstack("covariance_type")[
            [c for c in cov.COVARIANCE_TYPES if c in df.index.get_level_values(1)]]

    def plot(self, ax=None, criterion: str | None = None):
        """``criterion`` against K, one line per covariance type; returns the Axes.

        Degenerate or non-converged models are drawn as open markers, the chosen model
        (by this criterion) with a star.
        """
        import matplotlib.pyplot as plt

        criterion = criterion or self.criterion
        df = self.to_frame()
        if criterion not in df:
            raise ValueError(f"criterion {criterion!r} not in the table; columns: {list(df)}")
        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.2))
        markers = {"full": "o", "tied": "s", "diag": "^", "spherical": "D"}
        for ct in [c for c in cov.COVARIANCE_TYPES if c in df.index.get_level_values(1)]:
            sub = df.xs(ct, level="covariance_type").sort_index()
            ks = sub.index.to_numpy()
            y = sub[criterion].to_numpy(float)
            (line,) = ax.plot(ks, y, marker=markers[ct], label=ct)
            bad = ~sub["valid"].to_numpy(bool) & np.isfinite(y)
            if bad.any():
                ax.plot(ks[bad], y[bad], linestyle="none", marker=markers[ct], markersize=9,
                        markerfacecolor="white", markeredgecolor=line.get_color())
        if criterion in CRITERIA:
            best = self._choose(criterion)
        else:
            col = df[criterion].dropna()
            best = (col.idxmin() if _LOWER_IS_BETTER.get(criterion, True) else col.idxmax()) \
                if len(col) else None
        if best is not None:
            ax.plot([best[0]], [df.loc[best, criterion]], linestyle="none", marker="*",
                    markersize=16, color="k", label=f"chosen: K={best[0]}, {best[1]}")
        ax.set_xlabel("number of components K")
        ax.set_ylabel(_LABELS.get(criterion, criterion))
        ax.set_xticks(sorted(set(df.index.get_level_values(0))))
        ax.set_title(f"{criterion.upper()} by K and covariance type (open: degenerate or "
                     "not converged)", fontsize="medium")
        ax.legend(title="covariance type")
        return ax

    def _header(self):
        n, d = self._prep.X.shape
        s = self._settings
        mode = "MLE" if s["prior"] is None else "MAP"
        best = "none" if self.best_key_ is None else \
            f"K={self.best_key_[0]}, covariance_type={self.best_key_[1]!r}"
        flagged = int((~self.to_frame(loo=False)["valid"]).sum())
        return (f"SelectionResult: {len(self._fits)} models ({mode}, n_init={s['n_init']}) on "
                f"{n} samples x {d} features; chosen by {self.criterion.upper()} (lower is "
                f"better): {best}; {flagged} flagged degenerate / not converged")

    def __repr__(self):
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            table = self.pivot().round(2).to_string()
        return f"{self._header()}\n{self.criterion.upper()}:\n{table}"

    def _repr_html_(self):
        df = self.to_frame()
        cols = ["log_likelihood", "n_parameters", *self.criteria, "converged", "degenerate"]
        cols += [c for c in ("elpd_loo", "looic", "pareto_k_max") if c in df]
        body = df[cols].round(3).to_html()
        return (f"<p><b>{html.escape(self._header())}</b></p>"
                f"<p>{self.criterion.upper()} by K (rows) and covariance type (columns):</p>"
                f"{self.pivot().round(2).to_html()}<details><summary>full table</summary>"
                f"{body}</details>")


# ------------------------------------------------------------------ LOO
def _name(key):
    return f"K={key[0]} {key[1]}"


def _is_elpd(obj):
    import arviz as az

    return isinstance(obj, az.ELPDData)


def _loo(name, tree, var_name=None):
    import arviz as az

    if _is_elpd(tree):
        if getattr(tree, "pareto_k", None) is None:
            raise ValueError(f"ELPDData for {name} must be computed with pointwise=True")
        return tree
    if "log_likelihood" not in getattr(tree, "children", {}):
        raise ValueError(f"model {name}: the DataTree has no log_likelihood group; sample with "
                         "log_likelihood=True (arviz.from_numpyro(mcmc, log_likelihood=True))")
    with warnings.catch_warnings():
        # ArviZ's own warning is replaced by ours, which names the model
        warnings.simplefilter("ignore", UserWarning)
        return az.loo(tree, pointwise=True, var_name=var_name)


def _pareto(e):
    k = np.asarray(e.pareto_k).ravel()
    good = float(getattr(e, "good_k", 0.7) or 0.7)
    return k, good


def _loo_row(e) -> dict:
    k, good = _pareto(e)
    return {"elpd_loo": float(e.elpd), "elpd_loo_se": float(e.se), "p_loo": float(e.p),
            "looic": -2.0 * float(e.elpd), "pareto_k_max": float(np.max(k)),
            "n_high_pareto_k": int(np.sum(k > good))}


def compare_loo(trees: Mapping[str, Any], *, var_name: str | None = None,
                method: str = "stacking") -> pd.DataFrame:
    """Compare MCMC fits by PSIS-LOO: ``arviz.compare``'s table with Pareto-k diagnostics.

    Parameters
    ----------
    trees : dict name -> ArviZ DataTree with a ``log_likelihood`` group (or an
        ``ELPDData`` from ``arviz.loo(..., pointwise=True)``); at least two.
    var_name : the observed variable to use when there are several.
    method : model weights, as ``arviz.compare`` (``"stacking"``, ``"BB-pseudo-BMA"``,
        ``"pseudo-BMA"``).

    Returns
    -------
    ``arviz.compare``'s DataFrame (best first; ``elpd`` higher is better) plus columns
    ``looic`` (= -2 elpd, lower is better, the scale of BIC), ``pareto_k_max``,
    ``n_high_pareto_k`` and ``pareto_k_threshold``. A :class:`ParetoKWarning` names each
    model with observations whose Pareto k exceeds the threshold (their LOO estimate is
    unreliable: refit without them, use moment matching or K-fold CV).
    """
    import arviz as az

    if not isinstance(trees, Mapping) or len(trees) < 2:
        raise ValueError("trees must be a dict of >= 2 name -> DataTree (or ELPDData), got "
                         f"{trees!r:.200}")
    elpds = {str(name): _loo(name, t, var_name) for name, t in trees.items()}
    table = az.compare(elpds, method=method, round_to="none")
    extra = {}
    bad = []
    for name, e in elpds.items():
        k, good = _pareto(e)
        n_high = int(np.sum(k > good))
        extra[name] = {"looic": -2.0 * float(e.elpd), "pareto_k_max": float(np.max(k)),
                       "n_high_pareto_k": n_high, "pareto_k_threshold": good}
        if n_high:
            bad.append(f"{name}: {n_high} of {k.size} observations (max k = {np.max(k):.2f})")
    table = table.join(pd.DataFrame.from_dict(extra, orient="index"))
    if bad:
        warnings.warn("PSIS-LOO is unreliable where Pareto k exceeds the threshold ("
                      + "; ".join(bad) + "). Check those observations, use "
                      "arviz.loo_moment_match or K-fold cross-validation.", ParetoKWarning,
                      stacklevel=2)
    return table




# ------------------------------------------------------------------ sparse finite mixture
@dataclass
class SparseMixtureResult:
    """Posterior of the number of non-empty components of an overfitted mixture.

    Attributes
    ----------
    k_posterior : pandas Series, P(K+ = k | X) for k = 1..max_components, where K+ counts
        the components that receive at least one observation under allocations
        z_n ~ p(z_n | x_n, theta) sampled once per posterior draw.
    k_expected_posterior : pandas Series, the same for the count of components with
        expected size N * w_k >= 1 (a deterministic function of the weights).
    k_draws : (chains, draws) int array of K+ per draw.
    tree : ArviZ DataTree (posterior in data units, pointwise ``log_likelihood``,
        ``observed_data``, ``sample_stats`` with ``diverging``).
    em : the EM fit (MAP, weight_concentration 1) with ``max_components`` the chains
        started from.
    """

    k_posterior: pd.Series
    k_expected_posterior: pd.Series
    k_draws: np.ndarray
    tree: Any
    em: GaussianMixture
    max_components: int
    weight_concentration: float
    covariance_type: str
    n_divergent: int

    @property
    def k_mode(self) -> int:
        """Most probable number of non-empty components."""
        return int(self.k_posterior.idxmax())

    @property
    def k_mean(self) -> float:
        return float(np.sum(self.k_posterior.index.to_numpy() * self.k_posterior.to_numpy()))

    def __repr__(self):
        post = self.k_posterior[self.k_posterior > 0].round(3).to_dict()
        return (f"SparseMixtureResult(max_components={self.max_components}, "
                f"weight_concentration={self.weight_concentration:g}, covariance_type="
                f"{self.covariance_type!r}): mode K+={self.k_mode}, mean {self.k_mean:.2f}, "
                f"P(K+ = k) = {post}; {self.n_divergent} divergent transitions")


@partial(jax.jit, static_argnames=("covariance_type",))
def _occupancy(key, x, weights, means, covs, *, covariance_type: str):
    """Per draw: sampled allocations' number of occupied components, and #(N w_k >= 1)."""
    from .params import make_params, weighted_log_prob

    n = x.shape[0]

    def one(k, w, m, c):
        p = make_params(w, m, c, covariance_type)
        z = jax.random.categorical(k, weighted_log_prob(x, p, covariance_type), axis=-1)
        counts = jnp.zeros(w.shape[0], jnp.int32).at[z].add(1)
        return jnp.sum(counts > 0), jnp.sum(n * w >= 1.0)

    keys = jax.random.split(key, weights.shape[0])
    return jax.vmap(one)(keys, weights, means, covs)


@partial(jax.jit, static_argnames=("covariance_type",))
def _pointwise_loglik(x, weights, means, covs, *, covariance_type: str):
    from .params import log_prob, make_params

    return jax.vmap(lambda w, m, c: log_prob(x, make_params(w, m, c, covariance_type),
                                             covariance_type))(weights, means, covs)


def sparse_mixture_k(X, max_components: int = 8, weight_concentration: float = 0.05, *,
                     covariance_type: str = "full", prior: GMMPrior | None = None,
                     num_warmup: int = 500, num_samples: int = 500, num_chains: int = 2,
                     chain_method: str = "vectorized", target_accept_prob: float = 0.8,
                     n_init: int = 5, random_state=0,
                     progress_bar: bool = False) -> SparseMixtureResult:
    """Number of clusters from an overfitted mixture with a sparse Dirichlet prior (NUTS).

    The model is :func:`bgmm.model.marginal_model` with ``max_components`` components and
    ``weights ~ Dirichlet(weight_concentration)``; a concentration well below 1 (0.01 to
    0.1) empties the superfluous components (Rousseau & Mengersen 2011; Malsiner-Walli,
    Frühwirth-Schnatter & Grün 2016), so the posterior of the number of non-empty
    components K+ estimates the number of clusters.

    Parameters
    ----------
    X : (n_samples, n_features) finite data.
    max_components : K of the overfitted mixture (>= 2).
    weight_concentration : the sparse Dirichlet concentration (> 0).
    covariance_type : as in :class:`bgmm.GaussianMixture`.
    prior : optional :class:`bgmm.GMMPrior` for the other hyper-parameters (its
        ``weight_concentration`` is replaced); None takes the data-driven default.
    num_warmup, num_samples, num_chains, chain_method, target_accept_prob : NumPyro NUTS.
    n_init : restarts of the EM fit that starts the chains (MAP with the same prior but
        weight concentration 1, since MAP-EM needs >= 1).
    random_state : int seed (EM restarts, NUTS, allocation draws).

    Sampling runs in the standardised units of the data (same model, exactly transformed
    prior) and the posterior is reported in data units.
    """
    import arviz as az
    from numpyro.infer import MCMC, NUTS, init_to_value

    from .model import marginal_model

    cov.check_type(covariance_type)
    if not isinstance(max_components, numbers.Integral) or max_components < 2:
        raise ValueError(f"max_components must be an integer >= 2, got {max_components!r}")
    if not np.isfinite(weight_concentration) or weight_concentration <= 0:
        raise ValueError(f"weight_concentration must be > 0, got {weight_concentration!r}")
    for name, v in (("num_warmup", num_warmup), ("num_samples", num_samples),
                    ("num_chains", num_chains)):
        if not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    X = np.asarray(check_array(X, dtype=np.float64, ensure_min_samples=2), np.float64)
    n, d = X.shape
    k = int(max_components)
    base = GMMPrior() if prior is None else prior
    if not isinstance(base, GMMPrior):
        raise TypeError(f"prior must be None or a bgmm.GMMPrior, got {type(prior).__name__}")
    mc_prior = resolve_prior(base._replace(weight_concentration=float(weight_concentration)),
                             X, k, covariance_type)
    em_prior = mc_prior._replace(weight_concentration=np.ones(k))
    seed = seed_from(random_state)
    gm = GaussianMixture(k, covariance_type=covariance_type, prior=em_prior, n_init=n_init,
                         random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an overfitted EM start need not be clean
        gm.fit(X)
    std = gm._std
    xs = std.transform(X)
    prior_s = standardize_prior(mc_prior, std.center, std.scale, covariance_type)
    p0 = gm._params_std
    w0 = np.maximum(p0.weights, 1e-6)
    init = {"weights": w0 / w0.sum(), "means": p0.means, "covariances": p0.covariances}
    with precision_scope("float64"):
        prior_j = as_arrays(prior_s, jnp.float64)
        kernel = NUTS(marginal_model, target_accept_prob=target_accept_prob,
                      init_strategy=init_to_value(values={a: jnp.asarray(b) for a, b in
                                                         init.items()}))
        mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples,
                    num_chains=num_chains, chain_method=chain_method, progress_bar=progress_bar)
        key = jax.random.PRNGKey(seed)
        mcmc.run(key, jnp.asarray(xs), n_components=k, covariance_type=covariance_type,
                 prior=prior_j, extra_fields=("diverging",))
        s = mcmc.get_samples(group_by_chain=True)
        div = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
        flat = {a: jnp.reshape(v, (-1,) + v.shape[2:]) for a, v in s.items()}
        xj = jnp.asarray(xs)
        occ, big = _occupancy(jax.random.fold_in(key, 1), xj, flat["weights"], flat["means"],
                              flat["covariances"], covariance_type=covariance_type)
        ll = _pointwise_loglik(xj, flat["weights"], flat["means"], flat["covariances"],
                               covariance_type=covariance_type)
        occ, big, ll = (np.asarray(a) for a in (occ, big, ll))
    shape = (num_chains, num_samples)
    from .estimator import _destandardize

    w, m, c = _destandardize(
        GMMParams(*(np.asarray(flat[a], np.float64) for a in ("weights", "means",
                                                                "covariances")), None),
        std, covariance_type)
    cov_dims = {"full": ["component", "feature", "feature_"], "tied": ["feature", "feature_"],
                "diag": ["component", "feature"], "spherical": ["component"]}[covariance_type]
    tree = az.from_dict(
        {"posterior": {"weights": w.reshape(shape + w.shape[1:]),
                       "means": m.reshape(shape + m.shape[1:]),
                       "covariances": c.reshape(shape + c.shape[1:]),
                       "n_nonempty": occ.reshape(shape)},
         "log_likelihood": {"x": (ll - std.log_det).reshape(shape + (n,))},
         "observed_data": {"x": X},
         "sample_stats": {"diverging": div}},
        dims={"weights": ["component"], "means": ["component", "feature"],
              "covariances": cov_dims, "x": ["obs_id", "feature"]},
        coords={"component": np.arange(k), "feature": np.arange(d),
                "feature_": np.arange(d), "obs_id": np.arange(n)},
    )
    index = pd.RangeIndex(1, k + 1, name="n_nonempty")

    def posterior(v):
        return pd.Series(np.bincount(v, minlength=k + 1)[1:] / v.size, index=index,
                         name="probability")

    return SparseMixtureResult(
        k_posterior=posterior(occ.ravel()), k_expected_posterior=posterior(big.ravel()),
        k_draws=occ.reshape(shape), tree=tree, em=gm, max_components=k,
        weight_concentration=float(weight_concentration), covariance_type=covariance_type,
        n_divergent=int(div.sum()))


__all__ = ["CRITERIA", "ParetoKWarning", "SelectionResult", "SparseMixtureResult", "compare_loo",
           "select", "sparse_mixture_k"]

"""NUTS on the marginalised mixture: EM-started chains, relabelling, Laplace at the MAP.

The posterior sampled here is the one whose mode MAP-EM finds: the same NumPyro model
(:func:`bgmm.model.marginal_model`) and the same prior (the estimator's resolved
``_prior``, in the data's units). Flow of :func:`run_nuts`:

data -> standardise (float64; prior and start values expressed in the same units, so
NUTS sees a well-conditioned problem whatever the data's scale) -> chains started at the
EM solution, jittered in NumPyro's unconstrained space -> NUTS (``vectorized`` chains on
one device, ``parallel`` over several) -> draws back to the data's units -> every draw
relabelled to the EM labelling (Hungarian assignment) -> ArviZ ``DataTree`` with the
posterior, pointwise log-likelihood (data units), posterior predictive, the EM estimate,
a Laplace approximation and the posterior of the assignments (:mod:`bgmm.inference`).

Label switching: the mixture likelihood is invariant under permutations of the
components, so the posterior has K! symmetric copies of every mode. Chains started at the
EM solution normally stay in its copy; any draw that does not is mapped back by the
permutation that minimises a distance to the EM components. Chains that sit in a
*different* (non-symmetric) mode are reported, never averaged silently.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from . import covariance as cov
from ._shell import Standardizer, precision_scope
from .covariance import check_type
from .estimator import _as_real, _check_magnitude
from .model import marginal_model
from .params import GMMParams, log_prob
from .priors import GMMPrior, as_arrays, resolve_prior, standardize_prior

CHAIN_METHODS = ("vectorized", "parallel", "sequential")
SITES = ("weights", "means", "covariances")
# "auto" mass matrix: dense up to this many unconstrained parameters (K=3, D=2 full: 17;
# K=8, D=4 full: 119), diagonal above (the dense metric's O(p^2) per step and its
# estimation from the warmup draws stop being cheap)
DENSE_MASS_MAX_DIM = 200


class DivergenceWarning(UserWarning):
    """NUTS reported divergent transitions, or a chain looks stuck."""


class LabelSwitchingWarning(UserWarning):
    """A chain sits in another mode of the posterior than the EM reference."""


# --------------------------------------------------------------------------------------
# entry points


def sample_posterior(estimator, X, *, sample_weight=None, **kwargs):
    """NUTS for a fitted :class:`bgmm.GaussianMixture`, chains started at its EM fit.

    Uses the estimator's prior (``estimator._prior``, data units); an estimator fitted by
    maximum likelihood has none, and the data-driven :func:`bgmm.default_prior` is used
    (recorded in the result's ``attrs["prior_source"]``). ``X`` (n_samples, n_features)
    should be the data the estimator was fitted to. Keyword arguments are those of
    :func:`run_nuts`. Returns an ``xarray.DataTree`` (see :func:`run_nuts`).
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    X = estimator._validate_X(X, reset=False)
    X = np.asarray(X, np.float64)
    if np.isnan(X).any():
        raise ValueError("sample_posterior needs complete data: X contains NaN (the NUTS model "
                         "does not marginalise missing entries)")
    ct = estimator.covariance_type
    from .estimator import _destandardize

    weights, means, covs = _destandardize(estimator._params_std, estimator._std, ct)
    if estimator._prior is None:
        prior, source = None, "default (the estimator was fitted by maximum likelihood)"
        em_kind = "MLE"
    else:
        prior, source, em_kind = estimator._prior, "estimator (the prior MAP-EM used)", "MAP"
    names = getattr(estimator, "feature_names_in_", None)
    kwargs.setdefault("feature_names", None if names is None else [str(n) for n in names])
    em_info = {"em_kind": em_kind, "em_lower_bound": float(estimator.lower_bound_),
               "em_converged": int(estimator.converged_), "em_n_iter": int(estimator.n_iter_)}
    return run_nuts(X, n_components=estimator.n_components, covariance_type=ct, prior=prior,
                    init_params=(weights, means, covs), sample_weight=sample_weight,
                    _prior_source=source, _em_info=em_info, **kwargs)


def run_nuts(x, *, n_components: int, covariance_type: str, prior=None, init_params=None,
             sample_weight=None, num_chains: int = 4, num_warmup: int = 1000,
             num_samples: int = 1000, seed: int = 0, jitter: float = 0.1,
             chain_method: str | None = None, progress_bar: bool | None = None,
             target_accept_prob: float = 0.9, max_tree_depth: int = 10,
             dense_mass: bool | str = "auto", dtype: str = "float64", log_likelihood: bool = True,
             posterior_predictive: bool = True, responsibilities: bool = True,
             laplace: bool = False, ci_prob: float = 0.94, feature_names=None,
             mode_threshold: float = 1.0, _prior_source: str | None = None,
             _em_info: dict | None = None):
    """Sample the posterior of the mixture with NUTS, chains started at the EM solution.

    Parameters
    ----------
    x : (n_samples, n_features) data, complete (no NaN).
    n_components, covariance_type : the model (K and one of ``bgmm.COVARIANCE_TYPES``).
    prior : :class:`bgmm.GMMPrior` in the data's units (``None`` fields filled from data),
        ``"default"`` or None (both: :func:`bgmm.default_prior`).
    init_params : the EM solution in the data's units, a :class:`bgmm.GMMParams` or a
        ``(weights (K,), means (K, D), covariances)`` tuple; None runs MAP-EM first
        (``GaussianMixture(prior=prior, n_init=5)``). It is also the relabelling reference
        and is stored in the ``em_estimate`` group.
    sample_weight : optional (n_samples,) weights scaling each observation's
        log-likelihood, as in weighted EM.
    num_chains, num_warmup, num_samples : NUTS run lengths (per chain).
    seed : int; the same seed gives the same draws.
    jitter : standard deviation of the Gaussian jitter added to the EM start in NumPyro's
        unconstrained space (standardised units), independently per chain.
    chain_method : "vectorized" (default on one device), "parallel" (default when there are
        at least ``num_chains`` devices) or "sequential".
    progress_bar : NumPyro's progress bar; None shows it only for long runs.
    target_accept_prob, max_tree_depth : NUTS settings. The default acceptance target is
        0.9 rather than NumPyro's 0.8: a component with little data (an over-fitted K) has
        a prior-dominated, funnel-shaped posterior (its mean's scale follows its covariance)
        where step sizes tuned to the bulk diverge; on Old Faithful with K=3 full the smaller
        step removed all divergences and brought R-hat from 1.015 to 1.005 for ~1.6x the
        gradient evaluations per draw. Where the over-fitted component crosses between
        modes through that funnel, 0.95 mixes more reliably: Old Faithful K=3 full with
        2000 warmup steps and 3000 draws, seeds 0-4, gave max R-hat 1.0006-1.0047 at 0.95
        and 1.0032-1.0323 at 0.9; still, about one run in five at 0.95 (2 of 9 measured,
        3000 or 6000 draws) keeps a chain stuck there (R-hat 1.018, 1.16), and bgmm warns.
    dense_mass : adapt a dense (True) or diagonal (False) mass matrix during warmup;
        "auto" (default) is dense when the model has at most ``DENSE_MASS_MAX_DIM`` (200)
        unconstrained parameters. The mixture posterior is strongly correlated (a weight
        with the means and covariances of its component; a mean with its covariance under
        the conjugate prior), which a diagonal metric cannot undo; a dense one costs
        O(p^2) per leapfrog step and an O(p^3) Cholesky per adaptation window, negligible
        next to the gradient for p in the low hundreds.
    dtype : "float64" (default) or "float32", used only inside this call.
    log_likelihood, posterior_predictive, responsibilities, laplace : which groups to add
        (``laplace`` is off by default: compiling the Hessian costs tens of seconds on a CPU).
    ci_prob : probability of the credible intervals stored for the responsibilities.
    feature_names : optional names of the features (coordinates of ``feature``).
    mode_threshold : a chain whose mean of some weight or mean differs from the median of the
        chain means by more than this many pooled posterior sd is reported as off-mode.

    Returns
    -------
    xarray.DataTree with groups ``posterior`` (weights (chain, draw, component), means
    (..., component, feature), covariances in scikit-learn's shape with ``feature2``),
    ``sample_stats``, ``log_likelihood`` (``x``: (chain, draw, observation), data units),
    ``posterior_predictive``, ``observed_data``, ``em_estimate``, ``laplace`` (if asked),
    ``responsibilities`` (per observation and component: mean, sd, lower, upper, em) and
    ``prior_hyperparameters``; diagnostics (divergences, permuted draws, off-mode and stuck
    chains, timings) are in ``attrs``.
    """
    ct = check_type(covariance_type)
    k = _positive_int("n_components", n_components)
    num_chains = _positive_int("num_chains", num_chains)
    num_warmup = _positive_int("num_warmup", num_warmup, low=0)
    num_samples = _positive_int("num_samples", num_samples)
    max_tree_depth = _positive_int("max_tree_depth", max_tree_depth)
    if not (0.0 < target_accept_prob < 1.0):
        raise ValueError(f"target_accept_prob must lie in (0, 1), got {target_accept_prob!r}")
    if not (0.0 < ci_prob < 1.0):
        raise ValueError(f"ci_prob must lie in (0, 1), got {ci_prob!r}")
    if not (np.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"jitter must be a finite number >= 0, got {jitter!r}")
    if not (isinstance(dense_mass, bool) or dense_mass == "auto"):
        raise ValueError(f"dense_mass must be True, False or 'auto', got {dense_mass!r}")
    x = _as_real(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D array (n_samples, n_features), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite (NUTS needs complete data: no NaN or inf)")
    _check_magnitude(x, "x")
    n, d = x.shape
    if n < 2:
        raise ValueError(f"x needs at least 2 samples, got {n}")
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, np.float64)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"sample_weight must be finite, >= 0, with a positive sum and shape "
                             f"({n},), got shape {w.shape}")
    if feature_names is None:
        feature_names = [f"x{j}" for j in range(d)]
    feature_names = [str(f) for f in feature_names]
    if len(feature_names) != d:
        raise ValueError(f"feature_names must have {d} entries, got {len(feature_names)}")

    if prior is None or (isinstance(prior, str) and prior == "default"):
        source = _prior_source or "default (bgmm.default_prior of x)"
        prior = GMMPrior()
    elif isinstance(prior, GMMPrior):
        source = _prior_source or "user"
    else:
        raise TypeError(f"prior must be None, 'default' or a bgmm.GMMPrior, got {prior!r}")
    prior = resolve_prior(prior, x, k, ct, w)

    em_info = dict(_em_info or {})
    if init_params is None:
        alpha = np.asarray(prior.weight_concentration, np.float64)
        # MAP-EM needs concentration >= 1 (a sparser Dirichlet's mode is on the boundary):
        # the chains then start from the MAP fit under concentration 1 (sparse_mixture_k's way)
        sparse = bool(np.any(alpha < 1))
        em_prior = prior._replace(weight_concentration=np.maximum(alpha, 1.0)) if sparse else prior
        ref = _fit_em(x, w, k, ct, em_prior, seed, dtype)
        em_info.update(em_kind="MAP (weight concentration raised to 1)" if sparse else "MAP",
                       em_source="run_nuts (GaussianMixture, n_init=5)")
    else:
        ref = _check_params(init_params, k, d, ct)
        em_info.setdefault("em_kind", "given")

    std = Standardizer.fit(x, w, ct)
    ref_s = _standardize_params(ref, std, ct)
    chain_method = _chain_method(chain_method, num_chains)
    if progress_bar is None:
        progress_bar = n * (num_warmup + num_samples) * num_chains > 2e7
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")

    key = jax.random.PRNGKey(int(seed) % (2**31))
    with precision_scope(dtype):
        dt = jnp.dtype(dtype)
        xs = jnp.asarray(std.transform(x), dt)
        ws = None if w is None else jnp.asarray(w, dt)
        prior_s = as_arrays(standardize_prior(prior, std.center, std.scale, ct), dt)
        model = partial(marginal_model, n_components=k, covariance_type=ct)
        model_kwargs = dict(x=xs, prior=prior_s, sample_weight=ws)
        init_u = chain_inits(model, model_kwargs, ref_s, num_chains, jitter,
                             jax.random.fold_in(key, 1))
        n_unconstrained = sum(int(np.prod(v.shape[1:])) for v in jax.tree.leaves(init_u))
        dense = n_unconstrained <= DENSE_MASS_MAX_DIM if dense_mass == "auto" else dense_mass
        mcmc, lock = _sampler(k, ct, num_chains, num_warmup, num_samples, chain_method,
                              progress_bar, target_accept_prob, max_tree_depth, dense,
                              (n, d, dtype, w is not None))
        with lock:
            draws_s, stats, timing = _nuts(mcmc, model_kwargs, init_u, num_chains,
                                           num_samples, jax.random.fold_in(key, 0))
        draws_s = {s: np.asarray(v, np.float64) for s, v in draws_s.items()}
        tick = time.perf_counter()
        perm = relabel_permutations(draws_s, ref_s, ct)
        timing["relabel_time_s"] = time.perf_counter() - tick
        draws_s = {s: permute_components(v, perm, s, ct) for s, v in draws_s.items()}
        loglik = ppc = lap = None
        params_s = _flat_params(draws_s, ct, dt)
        tick = time.perf_counter()
        if log_likelihood:
            loglik = np.asarray(_pointwise_loglik(xs, params_s, ct)) - std.log_det
            loglik = loglik.reshape(num_chains, num_samples, n)
        timing["log_likelihood_time_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        if posterior_predictive:
            pp = np.asarray(_predictive(jax.random.fold_in(key, 2), params_s, n, ct), np.float64)
            ppc = (pp * std.scale + std.center).reshape(num_chains, num_samples, n, d)
        timing["predictive_time_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        if laplace:
            lap = _laplace(model, model_kwargs, ref_s, num_chains * num_samples,
                           jax.random.fold_in(key, 3), ct)
        timing["laplace_time_s"] = time.perf_counter() - tick
    draws = _destandardize_draws(draws_s, std, ct)
    if lap is not None:
        lap["draws"] = _destandardize_draws(lap["draws"], std, ct)
        lap["mode"] = _destandardize_draws(lap["mode"], std, ct)

    diag = _diagnostics(draws_s, perm, stats, mode_threshold, ct, ref_s)
    attrs = {
        "sampler": "numpyro.infer.NUTS on bgmm.model.marginal_model",
        "n_components": k, "covariance_type": ct, "num_chains": num_chains,
        "num_warmup": num_warmup, "num_samples": num_samples, "seed": int(seed),
        "jitter": float(jitter), "chain_method": chain_method,
        "target_accept_prob": float(target_accept_prob), "max_tree_depth": int(max_tree_depth),
        "dense_mass": int(dense), "n_unconstrained_parameters": n_unconstrained,
        "dtype": dtype, "prior_source": source,
        "sampling_units": "standardised (x - center) / scale; draws stored in data units",
        "standardizer_center": std.center.tolist(), "standardizer_scale": std.scale.tolist(),
        "weighted": int(w is not None),
        **{f"{key_}": v for key_, v in em_info.items()},
        **timing, **diag["attrs"],
    }
    from .inference import build_datatree

    tick = time.perf_counter()
    tree = build_datatree(
        x=x, draws=draws, stats=stats, loglik=loglik, ppc=ppc, em=ref, prior=prior,
        laplace=lap, covariance_type=ct, feature_names=feature_names, attrs=attrs,
        sample_weight=w, responsibilities=responsibilities, ci_prob=ci_prob, dtype=dtype)
    tree.attrs["datatree_time_s"] = time.perf_counter() - tick
    _warn(diag)
    return tree


# --------------------------------------------------------------------------------------
# pieces (pure where they can be)


def chain_inits(model, model_kwargs, ref_s: GMMParams, num_chains: int, jitter: float, key):
    """Per-chain NUTS start values in NumPyro's unconstrained space, leading axis chain.

    The EM solution (standardised units) is mapped to the unconstrained space with
    ``numpyro.infer.util.unconstrain_fn`` and jittered there, so every chain starts at a
    valid point near the EM mode (``MCMC.run(init_params=...)`` takes unconstrained
    values with a leading ``num_chains`` axis).
    """
    from numpyro.infer.util import unconstrain_fn

    dt = model_kwargs["x"].dtype
    weights = np.maximum(np.asarray(ref_s.weights, np.float64), 1e-8)
    weights = weights / weights.sum()
    values = {"weights": jnp.asarray(weights, dt), "means": jnp.asarray(ref_s.means, dt),
              "covariances": jnp.asarray(ref_s.covariances, dt)}
    u = unconstrain_fn(model, (), model_kwargs, values)
    leaves, tree = jax.tree.flatten(u)
    keys = jax.random.split(key, len(leaves))
    out = [v[None] + jitter * jax.random.normal(kk, (num_chains,) + v.shape, dt)
           for v, kk in zip(leaves, keys)]
    return jax.tree.unflatten(tree, out)


_SAMPLERS: OrderedDict = OrderedDict()
_SAMPLERS_MAX = 4
_SAMPLERS_LOCK = threading.Lock()


def _sampler(n_components, covariance_type, num_chains, num_warmup, num_samples, chain_method,
             progress_bar, target_accept_prob, max_tree_depth, dense_mass, data_key):
    """A NumPyro ``MCMC`` for these static settings and its lock, reused across calls.

    ``jit_model_args=True`` makes the data, prior and start values arguments of the compiled
    sampler instead of constants, so a second call with the same settings and data shapes
    (another seed, another data set of the same shape -- ``data_key``: shape, dtype,
    weighted or not -- as in simulation-based calibration or a warm re-run) skips
    tracing and compiling: measured 0.5 s instead of 3.5 s for a 1-chain run on 40 points.
    A small LRU cache; an entry holds its last run's draws until it is evicted.
    """
    from numpyro.infer import MCMC, NUTS

    key = (n_components, covariance_type, num_chains, num_warmup, num_samples, chain_method,
           bool(progress_bar), float(target_accept_prob), int(max_tree_depth), bool(dense_mass),
           jax.config.jax_enable_x64, data_key)
    with _SAMPLERS_LOCK:
        if key in _SAMPLERS:
            _SAMPLERS.move_to_end(key)
            return _SAMPLERS[key]
        model = partial(marginal_model, n_components=n_components,
                        covariance_type=covariance_type)
        kernel = NUTS(model, target_accept_prob=target_accept_prob,
                      max_tree_depth=max_tree_depth, dense_mass=bool(dense_mass))
        mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples,
                    num_chains=num_chains, chain_method=chain_method,
                    progress_bar=progress_bar, jit_model_args=True)
        # an MCMC object is stateful (its last run): one caller at a time per entry
        entry = (mcmc, threading.Lock())
        _SAMPLERS[key] = entry
        while len(_SAMPLERS) > _SAMPLERS_MAX:
            _SAMPLERS.popitem(last=False)
        return entry


def _nuts(mcmc, model_kwargs, init_u, num_chains, num_samples, key):
    fields = ("num_steps", "diverging", "energy", "potential_energy", "accept_prob",
              "adapt_state.step_size")
    if num_chains == 1:
        # NumPyro reads init_params as one chain's values when num_chains == 1: a leading
        # chain axis would become part of every site's shape
        init_u = jax.tree.map(lambda a: a[0], init_u)
    # one run (warmup + sampling in one compiled program): splitting them doubles compile time
    t0 = time.perf_counter()
    mcmc.run(key, extra_fields=fields, init_params=init_u, **model_kwargs)
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    t2 = time.perf_counter()
    samples = {k_: np.asarray(v) for k_, v in samples.items()}
    ef = {k_: np.asarray(v) for k_, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    if num_chains == 1 or ef["num_steps"].ndim == 1:
        ef = {k_: v.reshape(num_chains, num_samples) for k_, v in ef.items()}
    stats = {
        "diverging": ef["diverging"].astype(bool),
        "energy": ef["energy"].astype(np.float64),
        "lp": -ef["potential_energy"].astype(np.float64),
        "n_steps": ef["num_steps"].astype(np.int64),
        "tree_depth": np.ceil(np.log2(ef["num_steps"].astype(np.float64) + 1)).astype(np.int64),
        "acceptance_rate": ef["accept_prob"].astype(np.float64),
        "step_size": ef["adapt_state.step_size"].astype(np.float64),
    }
    samp_steps = int(stats["n_steps"].sum())
    # wall time includes compilation and warmup; grad evals are those of the kept draws
    timing = {"nuts_wall_time_s": float(t2 - t0), "sampling_grad_evals": samp_steps}
    return samples, stats, timing


def _chain_method(chain_method, num_chains):
    if chain_method is None:
        return "parallel" if num_chains > 1 and jax.local_device_count() >= num_chains \
            else "vectorized"
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS} or None, got {chain_method!r}")
    if chain_method == "parallel" and jax.local_device_count() < num_chains:
        warnings.warn(f"chain_method='parallel' needs {num_chains} devices, found "
                      f"{jax.local_device_count()}; using 'sequential'", UserWarning, stacklevel=3)
        return "sequential"
    return chain_method


def _positive_int(name, v, low=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


def _check_params(p, k, d, ct) -> GMMParams:
    if isinstance(p, GMMParams):
        weights, means, covs = p.weights, p.means, p.covariances
    else:
        try:
            weights, means, covs = p
        except (TypeError, ValueError):
            raise TypeError("init_params must be a bgmm.GMMParams or a (weights, means, "
                            f"covariances) tuple, got {type(p).__name__}") from None
    weights, means, covs = (np.asarray(a, np.float64) for a in (weights, means, covs))
    shape = cov.covariance_shape(ct, k, d)
    if weights.shape != (k,) or means.shape != (k, d) or covs.shape != shape:
        raise ValueError(f"init_params must have shapes ({k},), ({k}, {d}), {shape}; got "
                         f"{weights.shape}, {means.shape}, {covs.shape}")
    if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(means))
            and np.all(np.isfinite(covs))):
        raise ValueError("init_params must be finite")
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-6):
        raise ValueError(f"init_params weights must be >= 0 and sum to 1, got {weights}")
    return GMMParams(weights, means, covs, None)


def _fit_em(x, w, k, ct, prior, seed, dtype):
    from .estimator import GaussianMixture, _destandardize

    gm = GaussianMixture(k, covariance_type=ct, prior=prior, n_init=5, random_state=seed,
                         dtype=dtype, tol=1e-6, max_iter=500).fit(x, sample_weight=w)
    weights, means, covs = _destandardize(gm._params_std, gm._std, ct)
    return GMMParams(weights, means, covs, None)


def _cov_scale(std: Standardizer, ct):
    s = std.scale
    if ct in ("full", "tied"):
        return np.outer(s, s)
    return s**2 if ct == "diag" else s[0] ** 2


def _standardize_params(p: GMMParams, std: Standardizer, ct) -> GMMParams:
    return GMMParams(np.asarray(p.weights), (np.asarray(p.means) - std.center) / std.scale,
                     np.asarray(p.covariances) / _cov_scale(std, ct), None)


def _destandardize_draws(draws_s: dict, std: Standardizer, ct) -> dict:
    return {"weights": draws_s["weights"],
            "means": draws_s["means"] * std.scale + std.center,
            "covariances": draws_s["covariances"] * _cov_scale(std, ct)}


def _flat_params(draws_s, ct, dt):
    """All draws as one GMMParams with a leading (chain * draw) axis."""
    flat = {s: jnp.asarray(v.reshape((-1,) + v.shape[2:]), dt) for s, v in draws_s.items()}
    covs = flat["covariances"]
    pc = jax.vmap(lambda c: cov.precision_cholesky(c, ct))(covs)
    return GMMParams(flat["weights"], flat["means"], covs, pc)


@partial(jax.jit, static_argnames=("ct",))
def _pointwise_loglik(xs, params: GMMParams, ct):
    """log p(x_n | theta_s) (standardised units), (S, N); one draw at a time keeps memory S*N."""
    return jax.lax.map(lambda p: log_prob(xs, p, ct), params, batch_size=64)


@partial(jax.jit, static_argnames=("n", "ct"))
def _predictive(key, params: GMMParams, n, ct):
    """One replicate data set of n rows per draw (standardised units), (S, N, D)."""
    s, k, d = params.means.shape

    def one(key_, p: GMMParams):
        kz, ke = jax.random.split(key_)
        z = jax.random.categorical(kz, jnp.log(p.weights), shape=(n,))
        eps = jax.random.normal(ke, (n, d), p.means.dtype)
        full = cov.to_full(p.covariances, ct, k, d)
        chol = jnp.linalg.cholesky(full)
        return p.means[z] + jnp.einsum("nij,nj->ni", chol[z], eps)

    keys = jax.random.split(key, s)
    return jax.lax.map(lambda a: one(*a), (keys, params), batch_size=64)


# --------------------------------------------------------------------------------------
# label switching


def relabel_cost(draw_w, draw_m, draw_c, ref_w, ref_m, ref_c, ct):
    """Cost matrices (S, K, K): entry [s, i, j] is the distance of the draw's component j
    from the reference component i (standardised units): squared distance of means plus
    squared Frobenius distance of covariances plus squared difference of weights."""
    c = np.sum((ref_m[None, :, None, :] - draw_m[:, None, :, :]) ** 2, axis=-1)
    c = c + (ref_w[None, :, None] - draw_w[:, None, :]) ** 2
    if ct != "tied":
        diff = ref_c[None, :, None] - draw_c[:, None, :]
        c = c + np.sum(diff.reshape(diff.shape[:3] + (-1,)) ** 2, axis=-1)
    return c


def relabel_permutations(draws: dict, ref: GMMParams, covariance_type: str):
    """For every draw the permutation mapping its components onto the reference's.

    ``draws`` holds ``weights`` (C, S, K), ``means`` (C, S, K, D), ``covariances``
    (C, S, ...) and ``ref`` one parameter set, both in the same (preferably standardised)
    units. Returns ``perm`` (C, S, K) of ints: relabelled component i of a draw is its
    component ``perm[..., i]`` (an optimal assignment, ``scipy.optimize.linear_sum_assignment``).
    """
    lead = draws["weights"].shape[:-1]
    k = draws["weights"].shape[-1]
    flat = {s: np.asarray(v).reshape((-1,) + np.shape(v)[len(lead):]) for s, v in draws.items()}
    cost = relabel_cost(flat["weights"], flat["means"], flat["covariances"],
                        np.asarray(ref.weights), np.asarray(ref.means),
                        np.asarray(ref.covariances), covariance_type)
    perm = np.empty(cost.shape[:2], np.int64)
    ident = np.arange(k)
    # the identity is optimal for most draws: test it cheaply before solving
    best_diag = np.trace(cost, axis1=1, axis2=2)
    for i in range(cost.shape[0]):
        if k == 1:
            perm[i] = ident
            continue
        rows, cols = linear_sum_assignment(cost[i])
        perm[i] = cols if cost[i][rows, cols].sum() < best_diag[i] else ident
    return perm.reshape(lead + (k,))


def permute_components(values, perm, site: str, covariance_type: str):
    """Reorder the component axis of one site's draws by ``perm`` (C, S, K)."""
    values = np.asarray(values)
    if site == "covariances" and covariance_type == "tied":
        return values
    idx = perm.reshape(perm.shape + (1,) * (values.ndim - perm.ndim))
    return np.take_along_axis(values, idx, axis=perm.ndim - 1)


# --------------------------------------------------------------------------------------
# diagnostics


def _diagnostics(draws_s, perm, stats, mode_threshold, ct, ref_s=None):
    c, s, k = perm.shape
    permuted = np.any(perm != np.arange(k), axis=-1)
    frac = permuted.mean(axis=1)
    switched = [int(i) for i in np.flatnonzero(frac > 0.5)]
    # per-chain means of the (relabelled, standardised) weights and means
    vals = np.concatenate([draws_s["weights"].reshape(c, s, -1),
                           draws_s["means"].reshape(c, s, -1)], axis=-1)
    chain_mean = vals.mean(axis=1)
    pooled_sd = np.sqrt(np.mean(vals.var(axis=1), axis=0)) + 1e-12
    dev = np.abs(chain_mean - np.median(chain_mean, axis=0)) / pooled_sd
    off_mode = [int(i) for i in np.flatnonzero(dev.max(axis=1) > mode_threshold)] if c > 1 else []
    div = stats["diverging"]
    moved = np.mean(np.any(np.diff(vals, axis=1) != 0, axis=-1), axis=1) if s > 1 else np.ones(c)
    acc = stats["acceptance_rate"].mean(axis=1)
    stuck = [int(i) for i in np.flatnonzero((moved < 0.5) | (acc < 0.3))]
    attrs = {
        "n_divergent": int(div.sum()),
        "n_divergent_per_chain": [int(v) for v in div.sum(axis=1)],
        "n_permuted_draws": int(permuted.sum()),
        "permuted_fraction_per_chain": [float(v) for v in frac],
        "switched_chains": switched,
        "off_mode_chains": off_mode,
        "off_mode_max_deviation_sd": [float(v) for v in dev.max(axis=1)],
        "stuck_chains": stuck,
        "mean_acceptance_per_chain": [float(v) for v in acc],
    }
    # all chains may leave the EM mode together (e.g. an over-fitted component that the
    # posterior spreads out): flag weights / means whose posterior mean is > 3 sd from EM
    far = []
    if ref_s is not None:
        for site in ("weights", "means"):
            v = draws_s[site].reshape((c * s,) + draws_s[site].shape[2:])
            z = np.abs(v.mean(0) - np.asarray(getattr(ref_s, site))) / (v.std(0) + 1e-12)
            far += [f"{site}[{', '.join(map(str, idx))}]" for idx in zip(*np.nonzero(z > 3.0))]
    attrs["far_from_em"] = far
    return {"attrs": attrs}


def _warn(diag):
    a = diag["attrs"]
    if a["n_divergent"]:
        warnings.warn(
            f"{a['n_divergent']} divergent transitions after warmup (per chain "
            f"{a['n_divergent_per_chain']}); the posterior may be biased there. Increase "
            "target_accept_prob or use a stronger prior.", DivergenceWarning, stacklevel=3)
    if a["stuck_chains"]:
        warnings.warn(f"chains {a['stuck_chains']} look stuck (mean acceptance "
                      f"{a['mean_acceptance_per_chain']}); their draws are not reliable.",
                      DivergenceWarning, stacklevel=3)
    if a["off_mode_chains"]:
        warnings.warn(
            f"chains {a['off_mode_chains']} sit in a different posterior mode from the others "
            f"(max deviation of a chain mean {a['off_mode_max_deviation_sd']} pooled sd); "
            "pooled summaries mix modes. Inspect them separately (posterior.sel(chain=...)).",
            LabelSwitchingWarning, stacklevel=3)
    if a["far_from_em"]:
        warnings.warn(
            f"the posterior is not centred at the EM solution for {a['far_from_em']} (posterior "
            "mean more than 3 sd from EM): the EM mode is not representative (too many "
            "components, or a weakly identified one?). Compare them with compare_em_mcmc.",
            LabelSwitchingWarning, stacklevel=3)
    if a["switched_chains"]:
        warnings.warn(
            f"chains {a['switched_chains']} spent most draws in a relabelled copy of the EM mode "
            f"(fraction permuted {a['permuted_fraction_per_chain']}); their draws were relabelled.",
            LabelSwitchingWarning, stacklevel=3)


# --------------------------------------------------------------------------------------
# Laplace approximation at the MAP


def _laplace(model, model_kwargs, ref_s: GMMParams, num_draws: int, key, ct,
             newton_steps: int = 20):
    """Gaussian approximation in NumPyro's unconstrained space at the posterior mode there.

    Starts at the EM solution, takes Newton steps on the potential energy (the negative log
    joint including the log-Jacobian of the transforms, the density NUTS samples), and
    draws from ``N(mode, H^{-1})``, mapped back to the constrained parameters (standardised
    units). Returns draws (1, num_draws, ...) and the Hessian's status.
    """
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import constrain_fn, potential_energy

    u0 = chain_inits(model, model_kwargs, ref_s, 1, 0.0, key)
    u0 = jax.tree.map(lambda a: a[0], u0)
    flat0, unravel = ravel_pytree(u0)

    def pe(f):
        return potential_energy(model, (), model_kwargs, unravel(f))

    ts = 0.5 ** jnp.arange(14, dtype=flat0.dtype)

    @jax.jit
    def newton(f):
        # one damped Newton step, compiled once: the first of t = 1, 1/2, ... that does not
        # increase the energy (t = 0 if none does)
        g, h = jax.grad(pe)(f), jax.hessian(pe)(f)
        step = jnp.linalg.solve(h, g)
        e = jax.vmap(lambda t: pe(f - t * step))(ts)
        ok_t = (e <= pe(f) + 1e-12) & jnp.isfinite(e)
        t = jnp.where(ok_t.any(), ts[jnp.argmax(ok_t)], 0.0)
        return f - t * step, jnp.max(jnp.abs(t * step)), jnp.all(jnp.isfinite(step)), h

    f = flat0
    ok = True
    for _ in range(newton_steps):
        f_new, size, finite, _ = newton(f)
        if not bool(finite):
            ok = False
            break
        f = f_new
        if float(size) < 1e-10:
            break
    h = newton(f)[3]
    h = 0.5 * (h + h.T)
    eig = np.linalg.eigvalsh(np.asarray(h, np.float64))
    posdef = bool(eig.min() > 0) and ok
    if not posdef:
        return None
    chol = jnp.linalg.cholesky(jnp.linalg.inv(h))
    eps = jax.random.normal(jax.random.fold_in(key, 7), (num_draws, f.shape[0]), f.dtype)
    flat = f[None, :] + eps @ chol.T
    cons = jax.vmap(lambda v: constrain_fn(model, (), model_kwargs, unravel(v)))(flat)
    mode = constrain_fn(model, (), model_kwargs, unravel(f))
    draws = {s: np.asarray(cons[s], np.float64)[None] for s in SITES}
    return {"draws": draws, "mode_unconstrained": np.asarray(f, np.float64),
            "mode": {s: np.asarray(mode[s], np.float64) for s in SITES},
            "min_hessian_eigenvalue": float(eig.min())}


__all__ = ["run_nuts", "sample_posterior", "relabel_permutations", "permute_components",
           "DivergenceWarning", "LabelSwitchingWarning", "chain_inits"]

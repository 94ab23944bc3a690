"""Sample weights (issue 9): frequency weights in EM and in the NumPyro model.

References: the same data with rows repeated (integer weights) or dropped (zero
weights), fitted or evaluated by the same public entry points.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro.infer.util import log_density

from bgmm import GaussianMixture, GMMPrior, load_faithful
from bgmm.covariance import COVARIANCE_TYPES
from bgmm.model import marginal_model, model
from bgmm.priors import resolve_prior

X100 = load_faithful()[:100]
W100 = np.random.default_rng(0).integers(1, 4, 100).astype(float)
COVS0 = np.array([[[0.07, 0.4], [0.4, 34.0]], [[0.17, 0.9], [0.9, 36.0]]])
INIT = dict(weights_init=[0.4, 0.6], means_init=[[2.0, 55.0], [4.3, 80.0]],
            precisions_init=np.linalg.inv(COVS0))
KW = dict(n_components=2, covariance_type="full", tol=1e-10, max_iter=300, random_state=0)


def _assert_same_fit(a, b, rtol=1e-8):
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=rtol)
    np.testing.assert_allclose(a.means_, b.means_, rtol=rtol)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=rtol)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=rtol)


@pytest.fixture(scope="module")
def weighted_fit():
    return GaussianMixture(**KW, **INIT).fit(X100, sample_weight=W100)


def test_integer_weights_equal_repeated_rows_from_the_same_start(weighted_fit):
    rep = GaussianMixture(**KW, **INIT).fit(np.repeat(X100, W100.astype(int), axis=0))
    _assert_same_fit(weighted_fit, rep)
    assert weighted_fit.n_iter_ == rep.n_iter_
    np.testing.assert_allclose(weighted_fit.lower_bounds_, rep.lower_bounds_, rtol=1e-8)
    # score with sample_weight is the weighted mean, equal to the repeated rows' mean
    np.testing.assert_allclose(weighted_fit.score(X100, sample_weight=W100),
                               rep.score(np.repeat(X100, W100.astype(int), axis=0)), rtol=1e-12)


def test_zero_weight_equals_dropping_the_row(weighted_fit):
    outliers = np.array([[1e3, -1e3], [50.0, 0.0], [-7.0, 300.0], [0.0, 0.0]])
    x = np.vstack([X100[:40], outliers, X100[40:]])
    w = np.concatenate([W100[:40], np.zeros(4), W100[40:]])
    g = GaussianMixture(**KW, **INIT).fit(x, sample_weight=w)
    _assert_same_fit(g, weighted_fit, rtol=1e-9)


def test_mle_is_invariant_to_the_scale_of_the_weights(weighted_fit):
    # normalised weights (sum 1) must not trip the "less than one sample's weight" warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = GaussianMixture(**KW, **INIT).fit(X100, sample_weight=W100 / W100.sum())
    _assert_same_fit(g, weighted_fit, rtol=1e-9)


@pytest.mark.parametrize("dtype, scale", [
    ("float32", 1e-9), pytest.param("float64", 1e-20, marks=pytest.mark.slow)])
def test_tiny_weights_give_the_fit_of_unit_weights(dtype, scale):
    """Maximum likelihood does not depend on the weights' scale. EM's guard of each
    component's mass (10 eps) once swamped weights near eps (float32: 1e-9 each)."""
    from bgmm import fit_many, select
    from bgmm.distributed import fit_sharded

    kw = dict(n_components=2, random_state=0, dtype=dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-9
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "empty component" warning either
        for fit in (lambda w: GaussianMixture(**kw).fit(X100, sample_weight=w),
                    lambda w: fit_many(X100[None], sample_weight=w[None], **kw).estimator(0),
                    lambda w: fit_sharded(X100, sample_weight=w, **kw)):
            _assert_same_fit(fit(W100 * scale), fit(W100), rtol=rtol)
        tables = [select(X100, (1, 2), ("full", "spherical"), n_init=2, sample_weight=w,
                         dtype=dtype).to_frame() for w in (W100, W100 * scale)]
    np.testing.assert_allclose(tables[1]["objective"], tables[0]["objective"], rtol=rtol)
    np.testing.assert_allclose(tables[1]["min_component_weight"],
                               tables[0]["min_component_weight"], rtol=rtol)
    assert tables[1]["valid"].all()


def test_map_default_prior_and_kmeans_init_match_repeated_rows():
    """The default prior uses weighted data moments (tight); k-means draws differ, so
    the fits are compared loosely (same optimum)."""
    kw = dict(n_components=2, covariance_type="full", tol=1e-9, max_iter=300, n_init=3,
              random_state=0, prior="default")
    xr = np.repeat(X100, W100.astype(int), axis=0)
    gw = GaussianMixture(**kw).fit(X100, sample_weight=W100)
    gr = GaussianMixture(**kw).fit(xr)
    for a, b in zip(gw._prior, gr._prior):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(gw._std.center, gr._std.center, rtol=1e-12)
    np.testing.assert_allclose(gw._std.scale, gr._std.scale, rtol=1e-12)
    ow, orr = np.argsort(gw.means_[:, 0]), np.argsort(gr.means_[:, 0])
    np.testing.assert_allclose(gw.lower_bound_, gr.lower_bound_, rtol=1e-6)
    np.testing.assert_allclose(gw.weights_[ow], gr.weights_[orr], rtol=1e-4)
    np.testing.assert_allclose(gw.means_[ow], gr.means_[orr], rtol=1e-4)
    np.testing.assert_allclose(gw.covariances_[ow], gr.covariances_[orr], rtol=1e-3)


@pytest.mark.parametrize(
    "w, match",
    [(np.r_[-1.0, np.ones(99)], "Negative"),
     (np.r_[np.nan, np.ones(99)], "NaN"),
     (np.r_[np.inf, np.ones(99)], "infinity"),
     (np.zeros(100), "non-zero"),
     (np.ones(7), "shape"),
     (np.ones((100, 2)), "1D")])
def test_invalid_weights_are_rejected(w, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2).fit(X100, sample_weight=w)


# ----------------------------------------------------------------------------- NumPyro model
def _prior_draw(ct, prior, seed):
    with numpyro.handlers.seed(rng_seed=seed):
        tr = numpyro.handlers.trace(marginal_model).get_trace(
            None, n_components=2, covariance_type=ct, prior=prior, n_samples=1)
    return {k: tr[k]["value"] for k in ("weights", "means", "covariances")}


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_numpyro_weights_equal_repeated_rows_and_zero_weight_drops(ct):
    x = X100[:30]
    w = W100[:30].copy()
    w[[3, 11]] = 0.0
    keep = w > 0
    xr = np.repeat(x, w.astype(int), axis=0)
    prior = resolve_prior(GMMPrior(), x, 2, ct, w)
    kw = dict(n_components=2, covariance_type=ct, prior=prior)
    with jax.enable_x64(True):
        for seed in range(2):
            v = _prior_draw(ct, prior, seed)
            lw, _ = log_density(marginal_model, (jnp.asarray(x),),
                                dict(kw, sample_weight=jnp.asarray(w)), v)
            lr, _ = log_density(marginal_model, (jnp.asarray(xr),), kw, v)
            np.testing.assert_allclose(float(lw), float(lr), rtol=1e-11)
            # explicit-z model: z repeated with its row
            z = np.random.default_rng(seed).integers(0, 2, len(x))
            lzw, _ = log_density(model, (jnp.asarray(x),),
                                 dict(kw, sample_weight=jnp.asarray(w)), dict(v, z=z))
            lzr, _ = log_density(model, (jnp.asarray(xr),), kw,
                                 dict(v, z=np.repeat(z, w.astype(int))))
            np.testing.assert_allclose(float(lzw), float(lzr), rtol=1e-11)
            # fractional weights with zeros: equal to dropping those rows
            wf = w * 0.37
            lf, _ = log_density(marginal_model, (jnp.asarray(x),),
                                dict(kw, sample_weight=jnp.asarray(wf)), v)
            ld, _ = log_density(marginal_model, (jnp.asarray(x[keep]),),
                                dict(kw, sample_weight=jnp.asarray(wf[keep])), v)
            np.testing.assert_allclose(float(lf), float(ld), rtol=1e-11)


@pytest.mark.slow
def test_nuts_posterior_with_weights_equals_repeated_rows():
    """NUTS on the weighted model and on repeated rows: same posterior means and sds
    within Monte Carlo error (ESS-based standard errors)."""
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC, NUTS, init_to_value

    ct = "diag"
    x = X100[:60]
    w = W100[:60]
    xr = np.repeat(x, w.astype(int), axis=0)
    prior = resolve_prior(GMMPrior(), x, 2, ct, w)
    em_fit = GaussianMixture(2, covariance_type=ct, prior=prior, random_state=0).fit(
        x, sample_weight=w)
    start = {"weights": em_fit.weights_, "means": em_fit.means_,
             "covariances": em_fit.covariances_}
    out = []
    with jax.enable_x64(True):
        for data, sw in ((x, w), (xr, None)):
            mcmc = MCMC(NUTS(marginal_model, init_strategy=init_to_value(values=start)),
                        num_warmup=500, num_samples=2000, num_chains=1, progress_bar=False)
            mcmc.run(jax.random.PRNGKey(1), jnp.asarray(data), n_components=2,
                     covariance_type=ct, prior=prior,
                     sample_weight=None if sw is None else jnp.asarray(sw))
            out.append({k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()})
    for name in ("weights", "means", "covariances"):
        a, b = out[0][name], out[1][name]
        se = lambda s: s.std(axis=(0, 1)) / np.sqrt(effective_sample_size(s))  # noqa: E731
        z = np.abs(a.mean((0, 1)) - b.mean((0, 1))) / np.sqrt(se(a) ** 2 + se(b) ** 2)
        assert z.max() < 4.5, (name, z)
        np.testing.assert_allclose(a.std((0, 1)), b.std((0, 1)), rtol=0.2)

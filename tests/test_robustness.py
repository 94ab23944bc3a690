"""Hard data never gives NaN silently; determinism of fits and restarts.

Every data set here has 96 rows and 3 features and every fit 3 components, so the whole
grid shares one compiled EM program per (covariance type, dtype, MLE/MAP): the cost is
compilation, not EM. The grid runs all four covariance types, float32 and float64, MLE
and MAP.
"""

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGM

import bgmm
from bgmm import ConvergenceWarning, DegenerateFitWarning

N, D, K = 96, 3, 3
TYPES = bgmm.COVARIANCE_TYPES


def blobs(seed=0, n=N, d=D, k=K, spread=6.0):
    r = np.random.default_rng(seed)
    centers = r.normal(scale=spread, size=(k, d))
    return centers[np.arange(n) % k] + r.normal(size=(n, d))


BASE = blobs()


def _dup():
    return np.repeat(BASE[:4], N // 4, axis=0)  # four distinct points, 24 copies each


def _const():
    x = BASE.copy()
    x[:, 1] = 5.0
    return x


def _collinear():
    x = BASE.copy()
    x[:, 2] = 2.0 * x[:, 0] - x[:, 1]
    return x


def _outliers():
    x = BASE.copy()
    x[:3] = [[1e4, 0.0, 0.0], [-3e4, 1.0, 2e4], [0.0, 1e5, -1e5]]
    return x


# name -> (data, reg_covar, covariance types whose MLE collapses onto a point/subspace).
# The scaled data sets get reg_covar scaled with them (reg_covar is in data units), so
# they are the same problem as BASE; `test_tiny_scale_with_default_reg_covar_warns`
# covers the unscaled default. None: collapse may or may not happen (outliers).
HARD = {
    "duplicates": (_dup(), 1e-6, set(TYPES)),
    # fewer distinct points than components: k-means leaves a cluster empty
    "two-points": (np.repeat(BASE[:2], N // 2, axis=0), 1e-6, set(TYPES)),
    "all-equal": (np.repeat(BASE[:1], N, axis=0), 1e-6, set(TYPES)),
    "constant-feature": (_const(), 1e-6, {"full", "tied", "diag"}),
    "collinear": (_collinear(), 1e-6, {"full", "tied"}),
    "offset-1e6": (1e6 + 1e-2 * BASE, 1e-6 * 1e-4, set()),
    "scale-1e-8": (1e-8 * BASE, 1e-6 * 1e-16, set()),
    "scale-1e8": (1e8 * BASE, 1e-6 * 1e16, set()),
    "outliers": (_outliers(), 1e-6, None),
}


def check_proper(gm, x, ct):
    """Finite parameters, positive definite covariances, rows of predict_proba sum to 1."""
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        a = np.asarray(getattr(gm, name), np.float64)
        assert np.isfinite(a).all(), name
    assert np.isfinite(gm.lower_bound_)
    w = np.asarray(gm.weights_, np.float64)
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-5
    covs = np.asarray(gm.covariances_, np.float64)
    full = {"full": covs, "tied": covs[None], "diag": None, "spherical": None}[ct]
    if full is None:
        assert np.all(covs > 0)
    else:
        assert np.all(np.linalg.eigvalsh(full) > 0)
    proba = gm.predict_proba(x)
    assert np.isfinite(proba).all() and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(gm.score(x))
    assert np.isfinite(gm.score_samples(x)).all()


def fit_recording(x, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        gm = bgmm.GaussianMixture(K, random_state=0, **kw).fit(x)
    return gm, [r for r in rec if issubclass(r.category, (DegenerateFitWarning, ConvergenceWarning))]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("prior", [None, "default"], ids=["MLE", "MAP"])
def test_hard_data_never_gives_nan(prior, ct, dtype):
    for name, (x, reg, collapses) in HARD.items():
        gm, rec = fit_recording(x, covariance_type=ct, dtype=dtype, prior=prior, reg_covar=reg)
        check_proper(gm, x, ct)
        degenerate = [str(r.message) for r in rec if r.category is DegenerateFitWarning]
        if prior is not None:
            assert not degenerate, (name, degenerate)  # MAP: the prior keeps the fit proper
        elif collapses is not None:
            # MLE on degenerate data: reg_covar keeps it PD, and a warning says what happened
            said = any("collapsed" in m for m in degenerate)
            assert said == (ct in collapses), (name, degenerate)


def _unit_fit(dtype, ct):
    return bgmm.GaussianMixture(K, covariance_type=ct, dtype=dtype, random_state=0).fit(BASE)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,scale,shift", [("offset-1e6", 1e-2, 1e6), ("scale-1e-8", 1e-8, 0.0),
                                              ("scale-1e8", 1e8, 0.0)])
def test_offsets_and_scales_give_the_unit_scale_fit(name, scale, shift, dtype):
    """bgmm standardises in float64 first: 1e6 + 1e-2 x in float32 is the same fit as x."""
    ref = _unit_fit(dtype, "full")
    x, reg, _ = HARD[name]
    gm = bgmm.GaussianMixture(K, covariance_type="full", dtype=dtype, reg_covar=reg,
                              random_state=0).fit(x)
    tol = 1e-9 if dtype == "float64" else 2e-4
    np.testing.assert_allclose(gm.weights_, ref.weights_, atol=tol)
    # the attributes are de-standardised in float64 whatever the dtype: at 1e6 a float32
    # mean would be rounded to its spacing there (0.0625)
    np.testing.assert_allclose(gm.means_, ref.means_ * scale + shift, atol=tol * 10 * scale,
                               rtol=0)
    np.testing.assert_allclose(gm.covariances_ / scale**2, ref.covariances_, atol=tol * 10)
    # samples are drawn from those attributes: spread like the data's, not rounded to 1e6
    xs, _ = gm.sample(400)
    np.testing.assert_allclose(xs.std(axis=0), x.std(axis=0), rtol=0.3)
    # log-likelihood per sample shifts by -D log(scale)
    assert abs(gm.score(x) - (ref.score(BASE) - D * np.log(scale))) < tol * 10


def test_huge_offset_float32_matches_sklearn_float64():
    """1e6 + small noise: float32 bgmm reaches scikit-learn's float64 log-likelihood (it
    standardises in float64 first; scikit-learn on float32 input fails on this data)."""
    x = 1e6 + 1e-2 * BASE
    sk = SkGM(K, random_state=0, n_init=3, reg_covar=1e-10, tol=1e-8).fit(x)
    gm = bgmm.GaussianMixture(K, dtype="float32", reg_covar=1e-10, tol=1e-8, random_state=0).fit(x)
    # its own initialisation: the same log-likelihood to float32 accuracy
    assert abs(gm.score(x) - sk.score(x)) < 2e-4
    # started at scikit-learn's optimum, it stays there: same labels and parameters
    gm = bgmm.GaussianMixture(K, dtype="float32", reg_covar=1e-10, tol=1e-8,
                              weights_init=sk.weights_ / sk.weights_.sum(), means_init=sk.means_,
                              precisions_init=sk.precisions_).fit(x)
    assert abs(gm.score(x) - sk.score(x)) < 2e-5
    np.testing.assert_array_equal(gm.predict(x), sk.predict(x))
    # float32 attributes: at 1e6 the spacing is 0.0625 (1e-2 * BASE has within-cluster sd 0.01)
    np.testing.assert_allclose(gm.means_, sk.means_, rtol=0, atol=0.0625)
    np.testing.assert_allclose(gm.covariances_, sk.covariances_, rtol=1e-3,
                               atol=1e-3 * np.abs(sk.covariances_).max())


def test_tiny_scale_with_default_reg_covar_warns():
    """reg_covar is in data units: at scale 1e-8 the default 1e-6 swamps the data; say so."""
    with pytest.warns(DegenerateFitWarning, match=r"reg_covar=1e-06 is not small against the "
                                                   r"variance of feature \d"):
        gm = bgmm.GaussianMixture(K, random_state=0).fit(1e-8 * BASE)
    check_proper(gm, 1e-8 * BASE, "full")
    # and so do the other fitting routes, pointing at the caller's line
    from bgmm.distributed import fit_sharded
    from bgmm.streaming import fit_streaming

    x = BASE * [1.0, 1e-8, 1.0]
    for fit in (lambda: bgmm.fit_many(x[None], K), lambda: fit_streaming(x, K),
                lambda: fit_sharded(x, K)):
        with pytest.warns(DegenerateFitWarning, match="variance of feature 1 ") as rec:
            fit()
        assert any(r.filename == __file__ for r in rec
                   if "reg_covar" in str(r.message)), [r.filename for r in rec]


@pytest.mark.parametrize("ct", ["full", pytest.param("tied", marks=pytest.mark.slow),
                                pytest.param("diag", marks=pytest.mark.slow), "spherical"])
def test_emptied_component_policy(ct):
    """MLE: a component that loses all its points keeps weight ~0 and its previous mean and
    covariance (em.m_step), and a DegenerateFitWarning names it; MAP keeps it proper."""
    means0 = np.array([BASE[0], BASE[1], [200.0, 200.0, 200.0]])  # nothing near component 2
    prec0 = {"full": np.stack([np.eye(D)] * K), "tied": np.eye(D), "diag": np.ones((K, D)),
             "spherical": np.ones(K)}[ct]
    kw = dict(covariance_type=ct, weights_init=np.full(K, 1 / K), means_init=means0,
              precisions_init=prec0)
    with pytest.warns(DegenerateFitWarning, match=r"component\(s\) \[2\] hold less than one"):
        gm = bgmm.GaussianMixture(K, random_state=0, **kw).fit(BASE)
    check_proper(gm, BASE, ct)
    assert gm.weights_[2] < 1e-12
    np.testing.assert_allclose(gm.means_[2], means0[2])  # kept, not NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        gm = bgmm.GaussianMixture(K, random_state=0, prior="default", **kw).fit(BASE)
    check_proper(gm, BASE, ct)
    assert gm.weights_[2] < 1e-3


@pytest.mark.parametrize("ct", ["full", "diag", pytest.param("tied", marks=pytest.mark.slow),
                                pytest.param("spherical", marks=pytest.mark.slow)])
def test_fewer_distinct_points_than_components_gives_sklearns_fit(ct):
    """k-means leaves a cluster empty; its start (data mean, data variance + reg_covar)
    must be proper, also where a feature is constant, and every fitting route then
    reaches scikit-learn's fit."""
    from bgmm.distributed import fit_sharded
    from bgmm.streaming import fit_streaming

    x = HARD["two-points"][0].copy()
    x[:, 1] = 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkGM(K, covariance_type=ct, random_state=0).fit(x)
        fits = {
            "estimator": bgmm.GaussianMixture(K, covariance_type=ct, random_state=0).fit(x),
            "fit_many": bgmm.fit_many(x[None], K, covariance_type=ct,
                                      random_state=0).estimator(0),
            "streaming": fit_streaming(x, K, covariance_type=ct, chunk_size=40, random_state=0),
            "sharded": fit_sharded(x, K, covariance_type=ct, random_state=0),
        }
    for name, gm in fits.items():
        check_proper(gm, x, ct)
        assert gm.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-9), name
        np.testing.assert_allclose(np.sort(gm.score_samples(x[:2])),
                                   np.sort(sk.score_samples(x[:2])), rtol=1e-8, err_msg=name)


def test_float32_prediction_far_outside_the_data_is_finite():
    """A point at 1e20 overflows float32's squared distances (-inf for every component,
    NaN responsibilities); those rows are redone in float64: scikit-learn's numbers."""
    gm = bgmm.GaussianMixture(K, covariance_type="full", dtype="float32", random_state=0)
    gm.fit(BASE)
    sk = SkGM(K, covariance_type="full")
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        setattr(sk, name, getattr(gm, name))
    q = np.r_[[[1e20, 0.0, 0.0], [0.0, -3e19, 1.0]], BASE[:3]]
    proba = gm.predict_proba(q)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba[:2], sk.predict_proba(q[:2]), atol=1e-12)
    np.testing.assert_allclose(gm.score_samples(q[:2]), sk.score_samples(q[:2]), rtol=1e-12)
    np.testing.assert_array_equal(gm.predict(q[:2]), sk.predict(q[:2]))


@pytest.mark.parametrize("prior,dtype", [
    (None, "float64"), ("default", "float32"),
    pytest.param(None, "float32", marks=pytest.mark.slow),
    pytest.param("default", "float64", marks=pytest.mark.slow)])
def test_k_close_to_n(prior, dtype):
    x = BASE[:12]
    gm = bgmm.GaussianMixture(10, dtype=dtype, prior=prior, random_state=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        gm.fit(x)
    check_proper(gm, x, "full")
    said = [str(r.message) for r in rec if r.category is DegenerateFitWarning]
    assert bool(said) == (prior is None), said  # MLE: components on single points collapse


def test_not_converged_warns_with_last_change():
    # tol=0 is never met (the default max_iter=100 keeps the compiled program shared)
    with pytest.warns(ConvergenceWarning, match=r"did not converge in max_iter=100 .*last change "
                                                r"of the objective was [0-9.e+-]+ > tol=0"):
        gm = bgmm.GaussianMixture(K, tol=0.0, random_state=0).fit(BASE)
    assert not gm.converged_ and gm.n_iter_ == 100
    check_proper(gm, BASE, "full")


def test_failed_refit_keeps_previous_fit():
    gm = bgmm.GaussianMixture(K, random_state=0).fit(BASE)
    before = {k: np.copy(v) for k, v in vars(gm).items() if k.endswith("_") and hasattr(v, "shape")}
    bad = BASE.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gm.fit(bad)
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        gm.fit(BASE[:2])
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(gm, k), v)
    assert gm.n_features_in_ == D


# ------------------------------------------------------------------ determinism
@pytest.mark.parametrize("prior", [None, pytest.param("default", marks=pytest.mark.slow)],
                         ids=["MLE", "MAP"])
def test_same_random_state_is_bit_identical(prior):
    kw = dict(n_init=4, init_params="random", prior=prior, random_state=7)
    a = bgmm.GaussianMixture(K, **kw).fit(BASE)
    b = bgmm.GaussianMixture(K, **kw).fit(BASE)
    for name in ("weights_", "means_", "covariances_", "lower_bounds_", "all_lower_bounds_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.predict_proba(BASE), b.predict_proba(BASE))


def test_restarts_do_not_depend_on_how_many_run_at_once():
    """Restart i of n_init=4 is restart i of n_init=8 (keys fold in the restart index)."""
    x = blobs(seed=3, spread=2.0)  # overlapping clusters: restarts differ
    a = bgmm.GaussianMixture(K, n_init=4, init_params="random", random_state=11).fit(x)
    b = bgmm.GaussianMixture(K, n_init=8, init_params="random", random_state=11).fit(x)
    np.testing.assert_allclose(a.all_lower_bounds_, b.all_lower_bounds_[:4], rtol=1e-12, atol=0)
    assert len(np.unique(np.round(b.all_lower_bounds_, 8))) > 1  # restarts are not all alike

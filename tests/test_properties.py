"""Property tests (hypothesis): invariants of EM over random data, K and covariance types.

Shapes are drawn so that every data set pads to the same 96-row bucket with 3 features:
the examples share compiled programs, and hypothesis explores data, K, covariance type,
precision and MLE/MAP instead of paying for compilation.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import softmax
from scipy.stats import multivariate_normal

import bgmm

D = 3
TYPES = bgmm.COVARIANCE_TYPES
SETTINGS = settings(max_examples=6, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def make_data(seed, n, k):
    r = np.random.default_rng(seed)
    centers = r.normal(scale=3.0, size=(k, D))
    scales = r.uniform(0.3, 2.0, size=(k, D))
    z = r.integers(k, size=n)
    return centers[z] + scales[z] * r.normal(size=(n, D))


def quiet_fit(x, **kw):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bgmm.ConvergenceWarning)
        warnings.simplefilter("ignore", bgmm.DegenerateFitWarning)
        return bgmm.GaussianMixture(**kw).fit(x)


def full_covs(gm, ct, k):
    c = np.asarray(gm.covariances_, np.float64)
    if ct == "full":
        return c
    if ct == "tied":
        return np.broadcast_to(c, (k, D, D))
    var = c if ct == "diag" else np.repeat(c[:, None], D, axis=1)
    return var[:, :, None] * np.eye(D)


cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2**16),
    "n": st.integers(89, 96),  # one padding bucket (96 rows)
    "k": st.sampled_from([2, 3]),
    "ct": st.sampled_from(TYPES),
    "dtype": st.sampled_from(["float64", "float32"]),
    "prior": st.sampled_from([None, "default"]),
})


@SETTINGS
@given(c=cases)
def test_objective_never_decreases(c):
    """The EM objective (log-likelihood, or log-posterior for MAP) is monotone."""
    x = make_data(c["seed"], c["n"], c["k"])
    # reg_covar=0: adding reg_covar is not part of the model, and EM with it is not
    # guaranteed monotone (scikit-learn's monotonicity test sets it to 0 too)
    gm = quiet_fit(x, n_components=c["k"], covariance_type=c["ct"], dtype=c["dtype"],
                   prior=c["prior"], reg_covar=0.0, tol=1e-9, random_state=c["seed"])
    lb = gm.lower_bounds_
    assert lb.size >= 2 and np.isfinite(lb).all()
    slack = (1e-10 if c["dtype"] == "float64" else 3e-5) * (1.0 + np.abs(lb[1:]))
    assert np.all(np.diff(lb) >= -slack), np.diff(lb).min()


@SETTINGS
@given(c=cases)
def test_responsibilities_are_the_posterior_over_components(c):
    """predict_proba is a probability distribution and equals Bayes' rule with scipy's
    Gaussian densities at the fitted parameters; score_samples is its normaliser."""
    x = make_data(c["seed"], c["n"], c["k"])
    k, ct = c["k"], c["ct"]
    gm = quiet_fit(x, n_components=k, covariance_type=ct, dtype=c["dtype"], prior=c["prior"],
                   random_state=c["seed"])
    proba = gm.predict_proba(x)
    assert proba.shape == (c["n"], k)
    assert np.all(proba >= 0) and np.all(proba <= 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    covs = full_covs(gm, ct, k)
    logp = np.stack([np.log(gm.weights_[j]) + multivariate_normal(
        gm.means_[j].astype(np.float64), covs[j]).logpdf(x) for j in range(k)], axis=1)
    atol = 1e-8 if c["dtype"] == "float64" else 2e-3
    np.testing.assert_allclose(proba, softmax(logp, axis=1), atol=atol)
    ref = np.logaddexp.reduce(logp, axis=1)
    np.testing.assert_allclose(gm.score_samples(x), ref, atol=atol, rtol=atol)


def user_init(gm, ct):
    return dict(weights_init=np.asarray(gm.weights_, np.float64) / np.sum(gm.weights_),
                means_init=np.asarray(gm.means_, np.float64),
                precisions_init=np.asarray(gm.precisions_, np.float64))


same_init = st.fixed_dictionaries({
    "seed": st.integers(0, 2**16),
    "n": st.integers(89, 96),
    "ct": st.sampled_from(TYPES),
})


@SETTINGS
@given(c=same_init)
def test_permuting_rows_does_not_change_the_fit(c):
    """Same data in another row order, same starting point: the same fit."""
    x = make_data(c["seed"], c["n"], 3)
    start = quiet_fit(x, n_components=3, covariance_type=c["ct"], max_iter=100, tol=1e-1,
                      random_state=0)
    init = user_init(start, c["ct"])
    kw = dict(n_components=3, covariance_type=c["ct"], tol=1e-10, **init)
    a = quiet_fit(x, **kw)
    perm = np.random.default_rng(c["seed"]).permutation(c["n"])
    b = quiet_fit(x[perm], **kw)
    np.testing.assert_allclose(b.weights_, a.weights_, atol=1e-7)
    np.testing.assert_allclose(b.means_, a.means_, atol=1e-6)
    np.testing.assert_allclose(b.covariances_, a.covariances_, atol=1e-6)
    np.testing.assert_allclose(b.predict_proba(x[perm]), a.predict_proba(x)[perm], atol=1e-6)


affine = st.fixed_dictionaries({
    "seed": st.integers(0, 2**16),
    "n": st.integers(89, 96),
    "ct": st.sampled_from(["full", "diag"]),
    "prior": st.sampled_from([None, "default"]),
})


@SETTINGS
@given(c=affine)
def test_affine_change_moves_means_and_covariances(c):
    """x -> A x + b (A diagonal for diag): means -> A m + b, covariances -> A S A^T.

    The default prior is built from the data's mean and covariance, so MAP is
    equivariant too; reg_covar (data units) is set to 0 for exactness.
    """
    ct = c["ct"]
    r = np.random.default_rng(c["seed"])
    x = make_data(c["seed"], c["n"], 3)
    if ct == "full":
        a_mat = r.normal(size=(D, D)) + 3 * np.eye(D)
    else:
        a_mat = np.diag(r.uniform(0.01, 100.0, D) * r.choice([-1, 1], D))
    b = r.normal(scale=1e3, size=D)
    y = x @ a_mat.T + b
    start = quiet_fit(x, n_components=3, covariance_type=ct, tol=1e-1, random_state=0)
    init = user_init(start, ct)
    a_inv = np.linalg.inv(a_mat)
    prec = init["precisions_init"]
    prec_y = (a_inv.T @ prec @ a_inv if ct == "full"
              else prec / np.diag(a_mat) ** 2)
    kw = dict(n_components=3, covariance_type=ct, tol=1e-10, reg_covar=0.0, prior=c["prior"])
    fx = quiet_fit(x, **kw, **init)
    fy = quiet_fit(y, **kw, weights_init=init["weights_init"],
                   means_init=init["means_init"] @ a_mat.T + b, precisions_init=prec_y)
    np.testing.assert_allclose(fy.weights_, fx.weights_, atol=1e-6)
    np.testing.assert_allclose(fy.means_, fx.means_ @ a_mat.T + b, rtol=1e-6, atol=1e-6 * np.abs(b).max())
    if ct == "full":
        expect = a_mat @ fx.covariances_ @ a_mat.T
    else:
        expect = fx.covariances_ * np.diag(a_mat) ** 2
    np.testing.assert_allclose(fy.covariances_, expect, rtol=1e-5,
                               atol=1e-7 * np.abs(expect).max())
    assert abs(fy.score(y) - (fx.score(x) - np.log(abs(np.linalg.det(a_mat))))) < 1e-6


@pytest.mark.parametrize("ct", [
    "full", pytest.param("tied", marks=pytest.mark.slow), "diag",
    pytest.param("spherical", marks=pytest.mark.slow)])
def test_data_sampled_from_a_fit_refits_nearby(ct):
    """Sample 4000 points from a fitted model and refit: parameters within sampling error."""
    x = make_data(5, 96, 3)
    gm = quiet_fit(x, n_components=3, covariance_type=ct, random_state=0)
    xs, _ = gm.sample(4000)
    re = quiet_fit(xs, n_components=3, covariance_type=ct, random_state=1, n_init=2)
    order = [int(np.argmin(np.linalg.norm(re.means_ - m, axis=1))) for m in gm.means_]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(re.weights_[order], gm.weights_, atol=0.04)
    spread = np.sqrt(full_covs(gm, ct, 3).diagonal(axis1=1, axis2=2))
    np.testing.assert_allclose(re.means_[order], gm.means_, atol=0.2 * spread.max())
    ratio = full_covs(re, ct, 3)[order].diagonal(axis1=1, axis2=2) / spread**2
    np.testing.assert_allclose(ratio, 1.0, atol=0.25)

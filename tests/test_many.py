"""Many fits at once: the work queue of ``bgmm.batch`` and the ``bgmm.fit_many`` shell.

References: a Python loop for the queue (Collatz step counts, a closed-form sequence of
unequal lengths), scikit-learn's ``GaussianMixture`` fitted to each data set alone, and
bgmm's own estimator (itself checked against scikit-learn in ``test_em.py``) for the
random stream and the restarts. Every data set here has 120 rows (one padding bucket),
so each covariance type compiles once.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import bgmm
from bgmm.batch import work_queue

TYPES = ("full", "tied", "diag", "spherical")


def collatz_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


@pytest.mark.parametrize("slots", [1, 7, 64])
def test_work_queue_runs_every_item_its_own_number_of_steps(slots):
    starts = np.arange(2, 60)  # 1 to 112 steps each

    def step(s, i):
        n, count, first = s
        return jnp.where(n % 2 == 0, n // 2, 3 * n + 1), count + 1, first

    out = jax.jit(lambda: work_queue(
        len(starts), slots, lambda i: (jnp.asarray(starts)[i], jnp.asarray(0), jnp.asarray(starts)[i]),
        step, lambda s: s[0] != 1, lambda s: (s[1], s[2]),
        (jnp.full(len(starts), -1), jnp.full(len(starts), -1))))()
    np.testing.assert_array_equal(out[0], [collatz_steps(int(n)) for n in starts])
    np.testing.assert_array_equal(out[1], starts)  # each result lands at its own item


def blobs(n_sets, n=120, d=2, seed=0, spread=6.0):
    """Well-separated clusters (three per set, unequal sizes, anisotropic): every
    reasonable start reaches the same optimum, so bgmm and scikit-learn can be compared
    set by set."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_sets, n, d))
    for s in range(n_sets):
        centres = rng.normal(0, spread, (3, d))
        z = rng.choice(3, n, p=[0.5, 0.3, 0.2])
        scales = rng.uniform(0.4, 1.2, (3, d))
        out[s] = centres[z] + scales[z] * rng.normal(size=(n, d))
    return out


def by_mean(means, *arrays):
    order = np.lexsort(means.T[::-1])
    return (means[order],) + tuple(a[order] for a in arrays)


@pytest.mark.parametrize("ct", TYPES)
def test_fit_many_matches_sklearn_set_by_set(ct):
    X = blobs(12, seed=1)
    # ragged sets: the last 20 rows of sets 0..5 are padding (weight 0)
    w = np.ones(X.shape[:2])
    w[:6, -20:] = 0.0
    fits = bgmm.fit_many(X, 3, covariance_type=ct, sample_weight=w, n_init=3, tol=1e-8,
                         max_iter=1000, random_state=0)
    assert fits.weights_.shape == (12, 3) and fits.means_.shape == (12, 3, 2)
    assert fits.converged_.all() and not fits.failed_.any()
    for i in range(12):
        xi = X[i][w[i] > 0]
        sk = SkGaussianMixture(3, covariance_type=ct, n_init=3, random_state=i, tol=1e-8,
                               max_iter=1000).fit(xi)
        np.testing.assert_allclose(fits.lower_bound_[i], sk.score(xi), rtol=0, atol=1e-5)
        mine = by_mean(fits.means_[i], fits.weights_[i])
        ref = by_mean(sk.means_, sk.weights_)
        np.testing.assert_allclose(mine[0], ref[0], atol=2e-3 * np.abs(ref[0]).max())
        np.testing.assert_allclose(mine[1], ref[1], atol=2e-3)
        if ct == "tied":
            np.testing.assert_allclose(fits.covariances_[i], sk.covariances_, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("ct", TYPES)
def test_fit_many_fits_each_set_as_the_estimator_does(ct):
    """Set i of ``fit_many(random_state=s)`` is ``GaussianMixture(random_state=s + i)``'s
    fit of it: the same restarts, iterations and parameters (so the queue never mixes up
    sets, restarts or slots). Noisy sets, so iteration counts differ from set to set."""
    rng = np.random.default_rng(3)
    X = rng.standard_t(3, (9, 120, 2)) * [1.0, 5.0] + [0.0, 100.0]
    fits = bgmm.fit_many(X, 3, covariance_type=ct, n_init=2, random_state=7)
    assert len(set(fits.n_iter_.tolist())) > 2
    for i in range(9):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm = bgmm.GaussianMixture(3, covariance_type=ct, n_init=2, random_state=7 + i).fit(X[i])
            est = fits.estimator(i)
        # batched and lone GEMMs round differently; slow fits on heavy tails carry it to ~1e-10
        np.testing.assert_allclose(fits.all_lower_bounds_[i], gm.all_lower_bounds_, rtol=1e-9)
        assert fits.n_iter_[i] == gm.n_iter_ and fits.converged_[i] == gm.converged_
        assert est.get_params() == gm.get_params()  # random_state 7 + i: a refit agrees
        best = int(np.argmax(gm.all_lower_bounds_))
        if np.sum(np.isclose(gm.all_lower_bounds_, gm.all_lower_bounds_[best], rtol=1e-8)) > 1:
            continue  # tied restarts: either labelling may be kept
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            np.testing.assert_allclose(getattr(fits, name)[i], getattr(gm, name), rtol=1e-6,
                                       atol=1e-9, err_msg=name)
        np.testing.assert_allclose(est.predict_proba(X[i]), gm.predict_proba(X[i]), atol=1e-7)
        assert est.score(X[i]) == pytest.approx(fits.lower_bound_[i], rel=1e-9)


def test_fit_many_float32_and_random_init():
    X = blobs(5, seed=2)
    for init in ("random", "random_from_data", "k-means++"):
        fits = bgmm.fit_many(X, 3, init_params=init, n_init=8, dtype="float32", random_state=0)
        assert fits.means_.dtype == np.float64 and np.isfinite(fits.lower_bound_).all()
        ref = np.array([SkGaussianMixture(3, n_init=4, random_state=0).fit(x).score(x) for x in X])
        # the best of 8 starts is never worse than scikit-learn's best of 4, and mostly equal
        assert np.all(fits.lower_bound_ > ref - 1e-3)
        assert np.mean(np.abs(fits.lower_bound_ - ref) < 1e-3) >= 0.6


def test_fit_many_warns_per_set_and_validates():
    X = blobs(4, seed=4)
    with pytest.warns(bgmm.ConvergenceWarning, match="4 of 4 data sets"):
        bgmm.fit_many(X, 3, max_iter=1, random_state=0)
    dup = X.copy()
    dup[1, :60] = dup[1, 0]  # half of set 1 on one point: a component collapses onto it
    with pytest.warns(bgmm.DegenerateFitWarning, match=r"collapsed .* in 1 of 4 data sets \(\[1\]"):
        fits = bgmm.fit_many(dup, 3, random_state=0)
    with pytest.warns(bgmm.DegenerateFitWarning, match="collapsed"):
        fits.estimator(1)  # the estimator of that set says the same
    assert np.isfinite(fits.lower_bound_).all()
    bad = X.copy()
    bad[2, 5, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN \(first in set 2, row 5, column 1"):
        bgmm.fit_many(bad, 3)
    with pytest.raises(ValueError, match=r"shape \(n_sets, n_samples, n_features\)"):
        bgmm.fit_many(X[0], 3)
    w = np.ones(X.shape[:2])
    w[1, 2:] = 0
    with pytest.raises(ValueError, match="set 1 has 2 samples of positive weight"):
        bgmm.fit_many(X, 3, sample_weight=w)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        bgmm.fit_many(X, 3, sample_weight=w[:, :5])
    with pytest.raises(ValueError, match="covariance_type"):
        bgmm.fit_many(X, 3, covariance_type="ful")
    with pytest.raises(ValueError, match="n_init must be an integer >= 1"):
        bgmm.fit_many(X, 3, n_init=0)

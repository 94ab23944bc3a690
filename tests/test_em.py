"""EM against scikit-learn (independent reference) and the EM objective's monotonicity."""

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.mixture import GaussianMixture as SkGM

import bgmm

TYPES = ["full", "tied", "diag", "spherical"]


def _synthetic(seed=0, n=400):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 2.0]])
    a = rng.normal(size=(3, 3, 3)) * 0.6
    covs = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(3)
    z = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    return np.stack([rng.multivariate_normal(means[k], covs[k]) for k in z])


def _data(name, faithful, iris):
    return {"faithful": faithful, "iris": iris, "synthetic": _synthetic()}[name]


def _start(X, ct, k, seed=1):
    """A non-converged starting point both implementations accept (sklearn after 1 step)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkGM(k, covariance_type=ct, max_iter=1, random_state=seed, init_params="random").fit(X)
    return dict(weights_init=sk.weights_, means_init=sk.means_, precisions_init=sk.precisions_)


@pytest.mark.parametrize("dataset", ["faithful", "iris", "synthetic"])
@pytest.mark.parametrize("ct", TYPES)
def test_parity_with_sklearn_from_same_start(dataset, ct, faithful, iris):
    X = _data(dataset, faithful, iris)
    k = 3
    start = _start(X, ct, k)
    n_iter = 15
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkGM(k, covariance_type=ct, max_iter=n_iter, tol=0.0, **start).fit(X)
        gm = bgmm.GaussianMixture(k, covariance_type=ct, max_iter=n_iter, tol=0.0, **start).fit(X)
    assert gm.n_iter_ == sk.n_iter_ == n_iter
    np.testing.assert_allclose(gm.weights_, sk.weights_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gm.means_, sk.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gm.covariances_, sk.covariances_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gm.precisions_cholesky_, sk.precisions_cholesky_, rtol=1e-7, atol=1e-9)
    # the objective before each M-step is scikit-learn's lower bound of that iteration
    np.testing.assert_allclose(gm.lower_bounds_, sk.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(gm.score_samples(X), sk.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(gm.predict_proba(X), sk.predict_proba(X), atol=1e-8)
    assert gm.bic(X) == pytest.approx(sk.bic(X), rel=1e-10)
    assert gm.aic(X) == pytest.approx(sk.aic(X), rel=1e-10)


@pytest.mark.parametrize("ct", TYPES)
def test_any_type_in_full_form_follows_sklearn(ct, iris):
    """``bgmm.select`` fits all covariance types of a grid with one program, each type
    held in full form (``em.m_step(kind=...)``: full-form E-step, M-step projected onto
    the type). From scikit-learn's start it follows scikit-learn's EM for that type."""
    import jax
    import jax.numpy as jnp

    from bgmm import covariance as cov
    from bgmm import em
    from bgmm.params import GMMParams

    x = (iris - iris.mean(0)) / iris.std(0)  # EM runs in standardised units
    n, d = x.shape
    k, n_iter = 3, 15
    start = _start(x, ct, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkGM(k, covariance_type=ct, max_iter=n_iter, tol=0.0, **start).fit(x)
    prec = start["precisions_init"]
    covs = np.linalg.inv(prec) if ct in ("full", "tied") else 1.0 / prec
    with jax.enable_x64(True):
        full = cov.to_full(jnp.asarray(covs), ct, k, d)
        p0 = GMMParams(jnp.asarray(start["weights_init"]), jnp.asarray(start["means_init"]),
                       full, cov.precision_cholesky(full, "full"))
        data = em.make_data(jnp.asarray(x), jnp.ones(n), "full")
        res = em.fit(data, p0, None, 0.0, jnp.asarray(1e-6), em.EMConfig(k, "full", n_iter),
                     kind=jnp.asarray(TYPES.index(ct)))
        c = np.asarray(res.params.covariances)
    assert int(res.n_iter) == sk.n_iter_ == n_iter and not bool(res.failed)
    typed = {"full": c, "tied": c[0], "diag": np.diagonal(c, axis1=1, axis2=2),
             "spherical": c[:, 0, 0]}[ct]
    np.testing.assert_allclose(res.params.weights, sk.weights_, rtol=1e-9)
    np.testing.assert_allclose(res.params.means, sk.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(typed, sk.covariances_, rtol=1e-8, atol=1e-10)
    with jax.enable_x64(True):  # the full form holds exactly the type's matrices
        np.testing.assert_array_equal(cov.to_full(jnp.asarray(typed), ct, k, d), c)
    np.testing.assert_allclose(np.asarray(res.trace), sk.lower_bounds_, rtol=1e-10)


def _sklearn_from_random_resp(iris, settings, k=3, seed=5):
    """Standardised iris, scikit-learn's "random" initial responsibilities (the first draw
    of ``RandomState(seed)``, normalised) and scikit-learn's fits from them, one per dict
    of ``settings``."""
    x = (iris - iris.mean(0)) / iris.std(0)
    resp = np.random.RandomState(seed).uniform(size=(x.shape[0], k))
    resp /= resp.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [SkGM(k, init_params="random", random_state=seed, **kw).fit(x) for kw in settings]
    return x, resp, fits


@pytest.mark.parametrize("max_iter,tol", [(100, 1e-3), (4, 0.0)])
@pytest.mark.parametrize("ct", TYPES)
def test_em_from_responsibilities_stops_where_sklearn_does(ct, max_iter, tol, iris):
    """em.fit from initial responsibilities (its first step is the initial M-step) takes
    scikit-learn's steps from the same responsibilities: the same number of M-steps, the
    same convergence decision (one M-step after a change below tol), the same lower
    bounds and parameters, and as objective the log-likelihood at the returned ones."""
    import jax
    import jax.numpy as jnp

    from bgmm import em

    x, resp, (sk,) = _sklearn_from_random_resp(iris, [dict(covariance_type=ct, tol=tol,
                                                           max_iter=max_iter)])
    k = resp.shape[1]
    with jax.enable_x64(True):
        data = em.make_data(jnp.asarray(x), jnp.ones(x.shape[0]), ct)
        res = em.fit(data, jnp.asarray(resp), None, tol, jnp.asarray(1e-6),
                     em.EMConfig(k, ct, max_iter))
        res = jax.tree.map(np.asarray, res)
    assert res.n_iter == sk.n_iter_ and bool(res.converged) == sk.converged_
    assert sk.converged_ == (max_iter == 100) and not res.failed
    n = int(res.n_iter)
    np.testing.assert_allclose(res.trace[:n], sk.lower_bounds_, rtol=1e-10)
    assert np.all(np.isnan(res.trace[n:]))
    assert res.last_change == pytest.approx(sk.lower_bounds_[-1] - sk.lower_bounds_[-2],
                                            rel=1e-8)
    np.testing.assert_allclose(res.params.weights, sk.weights_, rtol=1e-9)
    np.testing.assert_allclose(res.params.means, sk.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res.params.covariances, sk.covariances_, rtol=1e-8, atol=1e-10)
    assert res.objective == pytest.approx(sk.score(x), rel=1e-10)


def test_em_keeps_the_last_good_parameters_when_an_m_step_fails(iris, monkeypatch):
    """A failed M-step (forced here) stops the fit with the parameters, objective and trace
    that scikit-learn has one step earlier; a failed initial M-step returns the data's
    mean and variance with objective -inf, and a padded model keeps its padding at
    weight 0; a non-finite log-likelihood stops the fit with the parameters it was taken
    at (objective -inf; no further M-step, so nothing more in the trace)."""
    import jax
    import jax.numpy as jnp

    from bgmm import em

    x, resp, (sk1, sk2) = _sklearn_from_random_resp(iris, [dict(tol=0.0, max_iter=m)
                                                           for m in (1, 2)])
    k = resp.shape[1]
    real_m_step = em.m_step

    def failing_after(means):  # the M-step from the parameters with these means fails
        def m_step(stats, fallback, *a, **kw):
            p, ok = real_m_step(stats, fallback, *a, **kw)
            same = jnp.allclose(fallback.means[: means.shape[0]], means, rtol=1e-12, atol=0)
            return p, ok & ~same
        return m_step

    with jax.enable_x64(True):
        data = em.make_data(jnp.asarray(x), jnp.ones(x.shape[0]), "full")
        cfg = em.EMConfig(k, "full", 100)
        monkeypatch.setattr(em, "m_step", failing_after(jnp.asarray(sk1.means_)))
        res = jax.tree.map(np.asarray, em.fit(data, jnp.asarray(resp), None, 1e-3, 1e-6, cfg))
        # padded to 5 components, the initial M-step failing (from the fallback's means)
        fb = em.global_fallback(data, em.EMConfig(5, "full"), 1e-6)
        monkeypatch.setattr(em, "m_step", failing_after(fb.means))
        padded = jax.tree.map(np.asarray, em.fit(
            data, jnp.asarray(np.c_[resp, np.zeros((x.shape[0], 2))]), None, 1e-3, 1e-6,
            em.EMConfig(5, "full", 100), jnp.arange(5) < 3))
        # a non-finite log-likelihood at the parameters of step 2: stop with them
        monkeypatch.setattr(em, "m_step", real_m_step)
        real_expectation = em.expectation

        def expectation(data, params, cfg):
            stats, ll = real_expectation(data, params, cfg)
            at = jnp.allclose(params.means, jnp.asarray(sk2.means_), rtol=1e-12, atol=0)
            return stats, jnp.where(at, jnp.nan, ll)

        monkeypatch.setattr(em, "expectation", expectation)
        nan = jax.tree.map(np.asarray, em.fit(data, jnp.asarray(resp), None, 1e-3, 1e-6, cfg))
    assert nan.failed and not nan.converged and nan.n_iter == 2 and nan.objective == -np.inf
    np.testing.assert_allclose(nan.params.means, sk2.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(nan.trace[:2], sk2.lower_bounds_, rtol=1e-10)
    assert np.isnan(nan.trace[2])
    assert res.failed and not res.converged and res.n_iter == 2
    np.testing.assert_allclose(res.params.means, sk1.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res.params.covariances, sk1.covariances_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.trace[:2], sk2.lower_bounds_, rtol=1e-10)
    assert res.objective == pytest.approx(sk1.score(x), rel=1e-10)
    assert padded.failed and padded.n_iter == 0 and padded.objective == -np.inf
    np.testing.assert_allclose(padded.params.weights, [1 / 3] * 3 + [0, 0])
    np.testing.assert_allclose(padded.params.means, np.broadcast_to(x.mean(0), (5, 4)),
                               atol=1e-12)


@pytest.mark.parametrize("dataset", ["faithful", pytest.param("iris", marks=pytest.mark.slow)])
@pytest.mark.parametrize("ct", TYPES)
def test_restarts_at_least_as_good_as_sklearn(dataset, ct, faithful, iris):
    X = _data(dataset, faithful, iris)
    # run both to convergence (tol=1e-3 stops either one at a path-dependent point)
    kw = dict(n_components=3, covariance_type=ct, n_init=8, tol=1e-7, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk_scores = [SkGM(random_state=s, **kw).fit(X).score(X) for s in range(3)]
        gm = bgmm.GaussianMixture(random_state=0, **kw).fit(X)
    # as good as scikit-learn's median run with the same number of restarts
    assert gm.score(X) >= np.median(sk_scores) - 1e-6
    assert gm.converged_


_MONO = [(ct, prior, dt) for ct in TYPES for prior in (None, "default") for dt in ("float32", "float64")]
# one combination per type in the default suite (the property tests cover more); all in slow
_MONO_FAST = {("full", "default", "float32"), ("tied", None, "float64"), ("diag", "default", "float64"),
              ("spherical", None, "float32")}


@pytest.mark.parametrize("ct,prior,dtype", [
    c if c in _MONO_FAST else pytest.param(*c, marks=pytest.mark.slow) for c in _MONO])
def test_objective_never_decreases(ct, prior, dtype, iris):
    gm = bgmm.GaussianMixture(4, covariance_type=ct, prior=prior, dtype=dtype, tol=0.0,
                              max_iter=60, init_params="random", random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bgmm.ConvergenceWarning)
        gm.fit(iris)
    trace = gm.lower_bounds_
    assert np.all(np.isfinite(trace)) and len(trace) >= 2
    # float32 round-off: allow a tiny relative slack, none in float64
    slack = 1e-5 if dtype == "float32" else 1e-9
    assert np.all(np.diff(trace) >= -slack * np.abs(trace[1:]))
    assert trace[-1] > trace[0]


def test_convergence_flag_means_tolerance_met(faithful):
    with pytest.warns(bgmm.ConvergenceWarning, match="did not converge"):
        gm = bgmm.GaussianMixture(2, tol=1e-12, max_iter=3, random_state=0).fit(faithful)
    assert not gm.converged_ and gm.n_iter_ == 3
    gm = bgmm.GaussianMixture(2, tol=1e-3, random_state=0).fit(faithful)
    assert gm.converged_ and gm.n_iter_ < 100
    assert abs(gm.lower_bounds_[-1] - gm.lower_bounds_[-2]) < 1e-3


def test_float32_close_to_float64(faithful):
    kw = dict(n_components=2, random_state=0, tol=1e-6)
    g32 = bgmm.GaussianMixture(dtype="float32", **kw).fit(faithful)
    g64 = bgmm.GaussianMixture(dtype="float64", **kw).fit(faithful)
    assert g32.means_.dtype == np.float64  # attributes are float64 whatever the dtype
    assert abs(g32.score(faithful) - g64.score(faithful)) < 1e-5
    np.testing.assert_allclose(np.sort(g32.means_, 0), np.sort(g64.means_, 0), rtol=1e-4)


def test_float32_em_follows_sklearn_float64_on_narrow_components():
    """float32 EM from a fixed start, 20 iterations (tol=0), on 8 full components, some
    narrow (smallest variance 4e-5 of the standardised data) and far from the centre:
    the log-likelihood of its parameters, scored in float64 by scikit-learn, is within
    1e-5 per sample of scikit-learn's float64 EM from the same start. (A round-off floor
    of 16 eps added to every float32 variance put it 5.4e-4 away.)"""
    gap, gm = _float32_gap_to_sklearn(20000, 8, 8, 20)
    assert gm.n_iter_ == 20
    assert gap < 1e-5


def test_float32_em_with_many_features_follows_sklearn_float64():
    """float32 EM, 10 iterations from a fixed start (tol=0), 16 full components in 48
    dimensions: within 5e-5 per sample of scikit-learn's float64 EM (measured 2.6e-6). The
    second-moment features cancel in float32 here (``mean mean^T`` against ``sum r x
    x^T``, magnified by the conditioning): 5.8e-4 away; above
    ``em.CENTRED_MIN_FEATURES`` features EM works with centred differences."""
    from bgmm import em

    assert em.CENTRED_MIN_FEATURES < 48
    gap, gm = _float32_gap_to_sklearn(20000, 48, 16, 10, start_seed=1)
    assert gm.n_iter_ == 10
    assert gap < 5e-5


def _float32_gap_to_sklearn(n, d, k, n_iter, start_seed=None):
    """|mean log-likelihood| between scikit-learn's float64 EM and bgmm's float32 EM, both
    ``n_iter`` steps from one start, on a standardised mixture of K full Gaussians (some
    narrow, far from the centre); the float32 parameters are scored in float64."""
    rng = np.random.default_rng(0)
    means = rng.normal(0.0, 3.0, (k, d))
    a = rng.normal(size=(k, d, d)) / np.sqrt(d) + np.eye(d)
    z = rng.integers(0, k, n)
    x = means[z] + np.einsum("nde,ne->nd", a[z], rng.normal(size=(n, d)))
    x = (x - x.mean(0)) / x.std(0)
    if start_seed is not None:
        rng = np.random.default_rng(start_seed)
    start = dict(weights_init=np.full(k, 1.0 / k), means_init=x[rng.choice(n, k, replace=False)],
                 precisions_init=np.broadcast_to(np.diag(1.0 / x.var(0)), (k, d, d)).copy())
    kw = dict(tol=0.0, max_iter=n_iter, reg_covar=1e-6, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged: by design
        ref = SkGM(k, **kw).fit(x)
        gm = bgmm.GaussianMixture(k, dtype="float32", **kw).fit(x)
    twin = SkGM(k)
    twin.weights_, twin.means_, twin.covariances_, twin.precisions_cholesky_ = (
        np.asarray(v, np.float64)
        for v in (gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_))
    return abs(twin.score(x) - ref.score(x)), gm


@pytest.mark.parametrize("prior", [None, "default"])
@pytest.mark.parametrize("ct", TYPES)
def test_m_step_on_sums_about_a_centre_equals_the_raw_sums(ct, prior, iris):
    """The M-step from second moments summed about a centre per component (float32 with
    many features) equals the M-step from the raw sums (float64, where both are exact),
    maximum likelihood and MAP, with padding; stats of two halves add up to the whole."""
    import jax
    import jax.numpy as jnp

    from bgmm import em
    from bgmm.em import global_fallback
    from bgmm.priors import as_arrays, default_prior

    x = (iris - iris.mean(0)) / iris.std(0)
    k, k_pad, n = 3, 4, len(x)
    rng = np.random.default_rng(0)
    r = np.c_[rng.dirichlet(np.ones(k), size=n), np.zeros(n)].T  # (K, N)
    center = rng.normal(size=(k_pad, x.shape[1]))
    with jax.enable_x64(True):
        data = em.make_data(jnp.asarray(x), jnp.ones(n), ct)
        pr = None
        if prior:
            p = default_prior(x, k, ct)
            pr = as_arrays(p._replace(weight_concentration=np.r_[p.weight_concentration, 1.0]),
                           jnp.float64)
        cfg = em.EMConfig(k_pad, ct, map=prior is not None)
        fb = global_fallback(data, cfg, 1e-6)
        raw = em._weighted_sums(data, jnp.asarray(r), ct, components_first=True)
        about = em._centred_sums(data, jnp.asarray(r), jnp.asarray(center), ct)
        half = n // 2
        parts = [em._centred_sums(em.make_data(jnp.asarray(xp), jnp.ones(len(xp)), ct),
                                  jnp.asarray(rp), jnp.asarray(center), ct)
                 for xp, rp in ((x[:half], r[:, :half]), (x[half:], r[:, half:]))]
        added = em.add_stats(*parts)
        for a, b in zip(added[:3], about[:3]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        active = jnp.arange(k_pad) < k
        p_raw, ok_raw = em.m_step(raw, fb, pr, jnp.asarray(1e-6), cfg, active)
        p_c, ok_c = em.m_step(about, fb, pr, jnp.asarray(1e-6), cfg, active)
    assert bool(ok_raw) and bool(ok_c)
    for a, b in zip(p_c, p_raw):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data"])
def test_init_methods_reach_the_optimum(init, faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkGM(2, n_init=5, random_state=0).fit(faithful).score(faithful)
        # random responsibilities start every component at the data mean, where the
        # objective is flat: a loose tol would stop there, so run to convergence
        gm = bgmm.GaussianMixture(2, init_params=init, n_init=5, random_state=0, tol=1e-9,
                                  max_iter=1000).fit(faithful)
    assert gm.score(faithful) == pytest.approx(ref, abs=1e-4)


def test_kmeans_init_matches_sklearn_kmeans(faithful):
    """The k-means init (k-means++ + Lloyd) finds scikit-learn's k-means partition."""
    import jax
    import jax.numpy as jnp
    from sklearn.cluster import KMeans

    from bgmm.init import kmeans_plusplus, lloyd

    xs = (faithful - faithful.mean(0)) / faithful.std(0)
    with jax.enable_x64(True):
        w = jnp.ones(len(xs))
        c = lloyd(jnp.asarray(xs), w, kmeans_plusplus(jax.random.PRNGKey(0), jnp.asarray(xs), w, 2))
    km = KMeans(2, n_init=10, random_state=0).fit(xs)
    np.testing.assert_allclose(np.sort(np.asarray(c), 0), np.sort(km.cluster_centers_, 0), atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kmeans_plusplus_draws_follow_the_weights(dtype, faithful):
    """k-means++ draws indices by inverse CDF: frequencies match p (chi-square against the
    exact probabilities), an index of weight 0 is never drawn, even where the uniform
    rounds up to the total (trailing zero weights: padding rows), and the seeding is
    prefix-stable in K (a K-padded program seeds as the unpadded one)."""
    import jax
    import jax.numpy as jnp

    from bgmm.init import _sample_indices, kmeans_plusplus

    p = np.array([0.0, 1.0, 0.0, 3.0, 0.5, 0.0, 0.0])
    xs = (faithful - faithful.mean(0)) / faithful.std(0)
    with jax.enable_x64(dtype == "float64"):
        u = jax.random.uniform(jax.random.PRNGKey(0), (20000, 3), dtype)
        draws = np.asarray(_sample_indices(u, jnp.asarray(p, dtype))).ravel()
        # a uniform that rounds up to the total: the search runs past the last positive
        # weight, into the zero-weight tail
        edge = _sample_indices(jnp.ones(4, dtype), jnp.asarray([0.0, 1.0, 0.0, 0.0], dtype))
        x, w = jnp.asarray(xs, dtype), jnp.ones(len(xs), dtype)
        seeds = []
        for key in jax.random.split(jax.random.PRNGKey(1), 20):
            alone = kmeans_plusplus(key, x, w, 3)
            padded = kmeans_plusplus(key, x, w, 9, n_active=jnp.asarray(3))
            seeds.append((np.asarray(alone), np.asarray(padded)))
    counts = np.bincount(draws, minlength=len(p))
    assert counts[p == 0].sum() == 0
    assert stats.chisquare(counts[p > 0], p[p > 0] / p.sum() * draws.size).pvalue > 1e-3
    assert set(np.asarray(edge).tolist()) == {1}
    for alone, padded in seeds:
        np.testing.assert_array_equal(padded[:3], alone)
        np.testing.assert_array_equal(padded[3:], 0.0)
    assert len({alone.tobytes() for alone, _ in seeds}) == len(seeds)  # the keys matter


@pytest.mark.parametrize("prior", [None, "default"])
@pytest.mark.parametrize("ct", TYPES)
def test_padded_components_give_the_unpadded_m_step_and_log_prior(ct, prior, iris):
    """A K=3 model padded to 5 components (one program for a grid of K): the M-step on the
    active components and the log prior equal the unpadded model's; the padding gets
    weight exactly 0. (The unpadded log prior is checked against NumPyro in test_model.)"""
    import jax
    import jax.numpy as jnp

    from bgmm import em
    from bgmm.em import global_fallback
    from bgmm.priors import as_arrays, default_prior, log_prior

    x = (iris - iris.mean(0)) / iris.std(0)
    k, k_pad, n = 3, 5, len(x)
    rng = np.random.default_rng(0)
    resp = rng.dirichlet(np.ones(k), size=n)
    with jax.enable_x64(True):
        data = em.make_data(jnp.asarray(x), jnp.ones(n), ct)
        pr = None
        if prior:
            p = default_prior(x, k, ct)
            pr = as_arrays(p, jnp.float64)
            pr_pad = as_arrays(p._replace(weight_concentration=np.r_[p.weight_concentration,
                                                                     1.0, 1.0]), jnp.float64)
        active = jnp.arange(k_pad) < k
        outs = []
        for kk, r, act, prr in ((k, resp, None, pr),
                                (k_pad, np.c_[resp, np.zeros((n, 2))], active,
                                 pr_pad if prior else None)):
            cfg = em.EMConfig(kk, ct, map=prior is not None)
            stats = em.sufficient_stats(data, jnp.asarray(r), ct)
            fb = global_fallback(data, cfg, 1e-6)
            params, ok = em.m_step(stats, fb, prr, jnp.asarray(1e-6), cfg, act)
            lp = log_prior(params, prr, ct, act) if prior else 0.0
            outs.append((params, bool(ok), float(lp)))
    (p1, ok1, lp1), (p2, ok2, lp2) = outs
    assert ok1 and ok2
    np.testing.assert_array_equal(np.asarray(p2.weights[k:]), 0.0)
    np.testing.assert_allclose(p2.weights[:k], p1.weights, rtol=1e-13)
    np.testing.assert_allclose(p2.means[:k], p1.means, rtol=1e-12, atol=1e-14)
    take = (lambda a: a) if ct == "tied" else (lambda a: a[:k])
    np.testing.assert_allclose(take(p2.covariances), p1.covariances, rtol=1e-12, atol=1e-14)
    if prior:
        assert lp2 == pytest.approx(lp1, rel=1e-12)

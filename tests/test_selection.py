"""Model selection: BIC / AIC / ICL over a (K, covariance type) grid, LOO, sparse mixtures.

References are independent of bgmm's code: scikit-learn's ``bic`` / ``aic`` on the same
parameters, a hand computation of the classification entropy from ``predict_proba``,
the exact leave-one-out predictive density of a conjugate normal model, and data
simulated from known mixtures.

All grids here have 2 features and 257..288 samples (one padding bucket) with
``n_init=10``, so every (K, covariance type) compiles once for the whole module.
"""

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import xlogy
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import bgmm
from bgmm.selection import ParetoKWarning, compare_loo, select

matplotlib.use("Agg")

KS = (1, 2, 3)
TYPES = ("full", "tied", "diag", "spherical")


def two_diag_clusters(seed, n=280):
    """True model: K = 2, diag; the clusters are elongated along different axes, so
    tied and spherical are wrong and full only adds parameters."""
    rng = np.random.default_rng(seed)
    n1 = int(0.45 * n)
    a = rng.normal([0.0, 0.0], [2.0, 0.3], (n1, 2))
    b = rng.normal([1.0, 8.0], [0.3, 2.0], (n - n1, 2))
    return np.vstack([a, b])


@pytest.fixture(scope="module")
def faithful():
    return bgmm.load_faithful()


@pytest.fixture(scope="module")
def faithful_grid(faithful):
    return select(faithful, KS, TYPES, n_init=10, random_state=0)


@pytest.fixture(scope="module")
def simulated_grid():
    return select(two_diag_clusters(0), KS, TYPES, n_init=10, random_state=0)


def _sklearn_twin(gm):
    """A scikit-learn GaussianMixture carrying exactly bgmm's fitted parameters."""
    sk = SkGaussianMixture(gm.n_components, covariance_type=gm.covariance_type)
    sk.weights_ = np.asarray(gm.weights_, np.float64)
    sk.means_ = np.asarray(gm.means_, np.float64)
    sk.covariances_ = np.asarray(gm.covariances_, np.float64)
    sk.precisions_cholesky_ = np.asarray(gm.precisions_cholesky_, np.float64)
    sk.converged_ = True
    sk.n_features_in_ = gm.means_.shape[1]
    return sk


# ---------------------------------------------------------------------- the table
def test_table_has_one_row_per_model(faithful_grid):
    df = faithful_grid.to_frame()
    assert isinstance(df, pd.DataFrame)
    assert list(df.index.names) == ["n_components", "covariance_type"]
    assert set(df.index) == {(k, c) for k in KS for c in TYPES}
    for col in ("log_likelihood", "n_parameters", "bic", "aic", "icl", "converged",
                "degenerate", "objective", "valid"):
        assert col in df.columns
    assert df["converged"].all() and not df["degenerate"].any()
    # free parameters for D = 2: K-1 weights + 2K means + covariance terms
    assert df.loc[(2, "full"), "n_parameters"] == 1 + 4 + 6
    assert df.loc[(3, "tied"), "n_parameters"] == 2 + 6 + 3
    assert df.loc[(3, "diag"), "n_parameters"] == 2 + 6 + 6
    assert df.loc[(2, "spherical"), "n_parameters"] == 1 + 4 + 2
    # a single component has no classification uncertainty: ICL = BIC
    np.testing.assert_allclose(df.xs(1, level=0)["icl"], df.xs(1, level=0)["bic"])


def test_bic_aic_equal_sklearn_on_same_parameters(faithful, faithful_grid):
    df = faithful_grid.to_frame()
    n = faithful.shape[0]
    for k, ct in df.index:
        gm = faithful_grid.get_model(k, ct)
        sk = _sklearn_twin(gm)
        row = df.loc[(k, ct)]
        np.testing.assert_allclose(row["bic"], sk.bic(faithful), rtol=1e-10, err_msg=str((k, ct)))
        np.testing.assert_allclose(row["aic"], sk.aic(faithful), rtol=1e-10, err_msg=str((k, ct)))
        np.testing.assert_allclose(row["log_likelihood"], sk.score(faithful) * n, rtol=1e-10)
        assert row["n_parameters"] == sk._n_parameters()


def test_icl_equals_hand_computation_from_responsibilities(faithful, faithful_grid):
    df = faithful_grid.to_frame()
    for key in [(2, "full"), (3, "full"), (3, "tied"), (2, "diag"), (3, "spherical")]:
        gm = faithful_grid.get_model(*key)
        resp = gm.predict_proba(faithful)
        entropy = -np.sum(xlogy(resp, resp))
        icl = _sklearn_twin(gm).bic(faithful) + 2.0 * entropy
        np.testing.assert_allclose(df.loc[key, "icl"], icl, rtol=1e-9)
        np.testing.assert_allclose(df.loc[key, "entropy"], entropy, rtol=1e-7, atol=1e-9)
        assert df.loc[key, "icl"] > df.loc[key, "bic"]


@pytest.mark.parametrize("key", ["best", (2, "full"), (2, "diag"), (3, "spherical")])
def test_grid_model_equals_a_direct_fit(faithful, faithful_grid, key):
    """The grid shares one program for all K (padded to 3 with weight-0 components) and
    all covariance types (each in full form); each model still equals a
    GaussianMixture fitted alone."""
    fit = faithful_grid._fits[(2, "full")]
    assert fit.k_fit == 3 and fit.all_types
    k, ct = faithful_grid.best_key_ if key == "best" else key
    gm = bgmm.GaussianMixture(k, covariance_type=ct, n_init=10, random_state=0).fit(faithful)
    model = faithful_grid.get_model(k, ct)
    assert (model.n_components, model.covariance_type) == (k, ct)
    assert model.weights_.shape == (k,)
    np.testing.assert_allclose(model.means_, gm.means_, rtol=1e-12)
    np.testing.assert_allclose(model.covariances_, gm.covariances_, rtol=1e-12)
    np.testing.assert_allclose(model.lower_bound_, gm.lower_bound_, rtol=1e-12)
    np.testing.assert_allclose(faithful_grid.to_frame().loc[(k, ct), "bic"], gm.bic(faithful))
    assert model.n_features_in_ == 2
    np.testing.assert_array_equal(model.predict(faithful), gm.predict(faithful))


def test_padded_grid_runs_each_kmeans_init_once(faithful, faithful_grid, monkeypatch):
    """k-means runs on the standardised data only, so full, tied and diag (per-feature
    scaling) share each K's init, and spherical (one scale) has its own: 2 x 3 init
    calls for the 4 x 3 grid, and the same table as the study of the fixture."""
    from bgmm import selection

    calls = []
    real = selection._init_resp_jit

    def counted(n_rows, keys, x, weight, n_active, **kw):
        calls.append(int(n_active))
        return real(n_rows, keys, x, weight, n_active, **kw)

    monkeypatch.setattr(selection, "_init_resp_jit", counted)
    grid = select(faithful, KS, TYPES, n_init=10, random_state=0)
    assert sorted(calls) == sorted(2 * list(KS))
    pd.testing.assert_frame_equal(grid.to_frame(), faithful_grid.to_frame())


@pytest.mark.parametrize("types, weighted", [(TYPES, False), (("diag", "spherical"), True)])
def test_one_program_for_all_types_equals_one_program_per_type(faithful, monkeypatch, types,
                                                               weighted):
    from bgmm import selection

    w = np.random.default_rng(0).integers(0, 4, len(faithful)) if weighted else None
    kw = dict(n_init=4, random_state=2, sample_weight=w)
    one = select(faithful, (2, 4), types, **kw)
    monkeypatch.setattr(selection, "_ONE_PROGRAM_MAX_FEATURES", 0)
    per_type = select(faithful, (2, 4), types, **kw)
    assert one._fits[(2, types[0])].all_types and not per_type._fits[(2, types[0])].all_types
    a, b = one.to_frame(), per_type.to_frame()
    for col in ("log_likelihood", "objective", "bic", "icl", "min_component_weight"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-11, err_msg=col)
    np.testing.assert_array_equal(a["n_iter"], b["n_iter"])
    np.testing.assert_array_equal(a["valid"], b["valid"])


def test_padded_grid_equals_one_program_per_model_under_map(faithful):
    kw = dict(n_init=3, random_state=1, prior="default")
    grids = [select(faithful, (1, 3), "tied", pad_components=pad, **kw)
             for pad in (True, False)]
    assert grids[0]._fits[(1, "tied")].k_fit == 3 and grids[1]._fits[(1, "tied")].k_fit == 1
    a, b = (g.to_frame() for g in grids)
    for col in ("log_likelihood", "objective", "bic", "icl"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-11, err_msg=col)
    np.testing.assert_array_equal(a["n_iter"], b["n_iter"])


def test_constant_feature_grid_is_finite_and_padding_changes_nothing():
    # padding components (and the empty ones of k-means) start from the data's variance
    # plus reg_covar: on a constant feature that variance is 0
    rng = np.random.default_rng(0)
    x = np.c_[np.r_[rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 5], np.zeros(200)]
    kw = dict(n_init=2, random_state=0)
    types = ("full", "diag")  # (tied and spherical were finite before: a shared / mean variance)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        padded = select(x, (1, 2), types, **kw).to_frame()
        plain = select(x, (1, 2), types, pad_components=False, **kw).to_frame()
        sk = SkGaussianMixture(1, covariance_type="full").fit(x)
    assert not padded["failed"].any() and np.isfinite(padded["bic"]).all()
    for col in ("log_likelihood", "bic", "icl"):
        np.testing.assert_allclose(padded[col], plain[col], rtol=1e-9, err_msg=col)
    np.testing.assert_allclose(padded.loc[(1, "full"), "bic"], sk.bic(x), rtol=1e-9)


# ---------------------------------------------------------------------- choosing
def test_bic_and_icl_pick_the_true_model(simulated_grid):
    assert simulated_grid.best_key_ == (2, "diag")
    assert simulated_grid.best("bic") == (2, "diag")
    assert simulated_grid.best("icl") == (2, "diag")
    df = simulated_grid.to_frame()
    # the truth is not a near tie: the runner-up by BIC is clearly worse
    bic = df["bic"].sort_values()
    assert bic.index[0] == (2, "diag") and bic.iloc[1] - bic.iloc[0] > 3.0


def test_faithful_best_is_stable_across_seeds(faithful, faithful_grid):
    best = faithful_grid.best_key_
    bic0 = faithful_grid.to_frame().loc[best, "bic"]
    for seed in (1, 2):
        other = select(faithful, KS, TYPES, n_init=10, random_state=seed)
        assert other.best_key_ == best
        # EM stops at tol=1e-3 per sample, so restarts agree to a few tenths of BIC
        np.testing.assert_allclose(other.to_frame().loc[best, "bic"], bic0, atol=0.5)
    # Old Faithful: mclust's choice is EEE (= tied) with 3 components, BIC ~ -2314.4 in
    # mclust's sign; two full components (VVV, 2) are a close second at ~ -2322.2
    assert best == (3, "tied")
    np.testing.assert_allclose(faithful_grid.to_frame().loc[(2, "full"), "bic"], 2322.19,
                               atol=0.05)


def test_degenerate_models_are_flagged_and_never_win_silently():
    # two clusters plus three identical far-away points: with K = 3 a full component
    # collapses onto the triple point, and its likelihood (hence BIC) is spuriously best
    rng = np.random.default_rng(3)
    x = np.vstack([rng.normal([0, 0], 1.0, (140, 2)), rng.normal([6, 0], 1.0, (137, 2)),
                   np.tile([[30.0, 30.0]], (3, 1))])
    res = select(x, KS, ("full",), n_init=10, random_state=0)
    df = res.to_frame()
    assert df.loc[(3, "full"), "collapsed"] and df.loc[(3, "full"), "degenerate"]
    assert not df.loc[(3, "full"), "valid"]
    assert df["bic"].idxmin() == (3, "full")  # it would have won on BIC alone
    assert res.best_key_ != (3, "full")
    assert res.best_key_ == (2, "full") or df.loc[res.best_key_, "valid"]


def test_all_models_flagged_warns_and_still_returns_a_model(faithful):
    with pytest.warns(bgmm.DegenerateFitWarning, match="every model"):
        res = select(faithful, 1, "spherical", max_iter=1, n_init=10)
    df = res.to_frame()
    assert not df["converged"].any()
    assert res.best_key_ == (1, "spherical")
    assert res.best_ is not None


def test_models_larger_than_the_data_are_reported_not_fitted():
    x = np.array([[0.0, 1.0], [1.0, 0.5], [2.0, 2.0]])
    with pytest.warns(bgmm.DegenerateFitWarning, match="no model"):
        res = select(x, 4, "spherical")
    df = res.to_frame()
    assert "n_samples" in df.loc[(4, "spherical"), "error"]
    assert res.best_ is None


@pytest.mark.parametrize("kwargs, match", [
    ({"n_components": [0, 1]}, "n_components"),
    ({"n_components": [1.5]}, "n_components"),
    ({"covariance_types": ("full", "banana")}, "covariance_type"),
    ({"criteria": ("bic", "waic")}, "criteria"),
    ({"criterion": "loo"}, "criterion"),
    ({"n_init": 0}, "n_init"),
    ({"pad_components": "no"}, "pad_components must be None, True or False"),
    ({"prior": "flat"}, "prior"),
    ({"n_jobs": 0}, "n_jobs"),
    ({"prior": bgmm.GMMPrior(weight_concentration=0.1)}, "weight_concentration >= 1"),
])
def test_bad_arguments_raise(faithful, kwargs, match):
    with pytest.raises(ValueError, match=match):
        select(faithful, **{"n_components": 1, **kwargs})


def test_nan_rejected():
    x = np.ones((20, 2))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        select(x, 1, "diag")


# ---------------------------------------------------------------------- views
def test_plot_and_reprs(faithful_grid):
    import matplotlib.pyplot as plt

    ax = faithful_grid.plot(criterion="icl")
    assert ax.get_xlabel() == "number of components K"
    assert "ICL" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(TYPES) <= set(labels)
    assert any(lab.startswith("chosen") for lab in labels)
    plt.close(ax.figure)
    text = repr(faithful_grid)
    assert "K=3, covariance_type='tied'" in text and "BIC" in text
    page = faithful_grid._repr_html_()
    assert page.count("<table") == 2
    piv = faithful_grid.pivot("aic")
    assert list(piv.columns) == list(TYPES) and list(piv.index) == list(KS)


# ---------------------------------------------------------------------- LOO
def _normal_tree(y, sigma, rng, draws=2000, chains=2):
    """Exact posterior draws of mu for y_i ~ N(mu, sigma^2), flat prior, as a DataTree."""
    import arviz as az

    n = y.size
    mu = rng.normal(y.mean(), sigma / np.sqrt(n), (chains, draws))
    ll = stats.norm.logpdf(y[None, None, :], mu[..., None], sigma)
    return az.from_dict({"posterior": {"mu": mu}, "log_likelihood": {"y": ll},
                         "observed_data": {"y": y}})


def _exact_elpd_loo(y, sigma):
    n = y.size
    loo_mean = (y.sum() - y) / (n - 1)
    return float(np.sum(stats.norm.logpdf(y, loo_mean, sigma * np.sqrt(1 + 1 / (n - 1)))))


def test_compare_loo_matches_exact_leave_one_out():
    rng = np.random.default_rng(0)
    y = rng.normal(0.5, 1.0, 60)
    trees = {"sigma=1": _normal_tree(y, 1.0, rng), "sigma=3": _normal_tree(y, 3.0, rng)}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ParetoKWarning)
        table = compare_loo(trees)
    assert table.index[0] == "sigma=1"
    for name, sigma in (("sigma=1", 1.0), ("sigma=3", 3.0)):
        np.testing.assert_allclose(table.loc[name, "elpd"], _exact_elpd_loo(y, sigma), atol=0.1)
        np.testing.assert_allclose(table.loc[name, "looic"], -2 * table.loc[name, "elpd"])
    assert (table["n_high_pareto_k"] == 0).all()
    assert {"rank", "elpd_diff", "weight", "pareto_k_max"} <= set(table.columns)


def test_compare_loo_surfaces_pareto_k_warnings():
    rng = np.random.default_rng(1)
    y = np.append(rng.normal(0.0, 0.2, 15), 6.0)  # one gross outlier, a narrow model
    trees = {"narrow": _normal_tree(y, 0.2, rng, draws=500),
             "wide": _normal_tree(y, 3.0, rng, draws=500)}
    with pytest.warns(ParetoKWarning, match="narrow"):
        table = compare_loo(trees)
    assert table.loc["narrow", "n_high_pareto_k"] >= 1
    assert table.loc["narrow", "pareto_k_max"] > table.loc["narrow", "pareto_k_threshold"]
    with pytest.raises(ValueError, match=">= 2"):
        compare_loo({"only": trees["wide"]})


def test_loo_sits_beside_em_criteria(faithful_grid):
    import arviz as az

    rng = np.random.default_rng(2)
    n = 272
    res = select(bgmm.load_faithful(), (2, 3), ("full", "tied"), n_init=10, random_state=0)
    for key, shift in (((2, "full"), 0.0), ((3, "tied"), 0.05)):
        ll = rng.normal(-4.2 - shift, 0.01, (2, 300, n))
        res.add_loo(key, az.from_dict({"posterior": {"a": ll[..., 0]},
                                       "log_likelihood": {"x": ll}}))
    df = res.to_frame()
    assert {"elpd_loo", "looic", "pareto_k_max", "n_high_pareto_k"} <= set(df.columns)
    assert np.isnan(df.loc[(2, "tied"), "elpd_loo"])
    np.testing.assert_allclose(df.loc[(2, "full"), "looic"], -2 * df.loc[(2, "full"), "elpd_loo"])
    np.testing.assert_allclose(df.loc[(2, "full"), "elpd_loo"], -4.2 * n, rtol=1e-3)
    table = res.compare_loo()
    assert table.index[0] == "K=2 full"
    with pytest.raises(ValueError, match="log_likelihood"):
        res.add_loo((2, "full"), az.from_dict({"posterior": {"a": ll[..., 0]}}))
    with pytest.raises(KeyError):
        res.add_loo((7, "full"), None)


# ---------------------------------------------------------------------- sparse mixture
@pytest.mark.slow
def test_sparse_mixture_recovers_k():
    from bgmm.selection import sparse_mixture_k

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(c, 0.5, (50, 2)) for c in ([0, 0], [5, 0], [0, 5])])
    res = sparse_mixture_k(x, max_components=6, weight_concentration=0.05,
                           covariance_type="diag", num_warmup=300, num_samples=300,
                           num_chains=2, random_state=0)
    assert res.k_mode == 3
    assert res.k_posterior.loc[3] > 0.5
    assert abs(res.k_posterior.sum() - 1) < 1e-12
    assert "log_likelihood" in res.tree.children
    assert res.tree.posterior["weights"].shape == (2, 300, 6)

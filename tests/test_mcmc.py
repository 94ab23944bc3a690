"""NUTS on the mixture: EM-started chains, relabelling, DataTree contents, diagnostics.

References are independent of bgmm's code: scipy densities for the pointwise
log-likelihood and the responsibilities, ArviZ for R-hat / ESS, known permutations for the
relabelling, closed-form 1/sqrt(N) scaling and rank uniformity (SBC) for the posterior.
"""

import warnings

import arviz as az
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import bgmm
from bgmm.mcmc import permute_components, relabel_permutations, run_nuts
from bgmm.params import GMMParams

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def faithful_diag(faithful):
    """Old Faithful, K=2 diag, 4 chains started at MAP-EM (the default-suite NUTS run)."""
    gm = bgmm.GaussianMixture(2, covariance_type="diag", prior="default", n_init=3,
                              random_state=0).fit(faithful)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bgmm.mcmc.LabelSwitchingWarning)
        tree = gm.sample_posterior(faithful, num_chains=4, num_warmup=500, num_samples=500,
                                   seed=0)
    return gm, tree


def _mixture_logpdf(x, w, mu, cov_full):
    comp = [np.log(w[k]) + stats.multivariate_normal(mu[k], cov_full[k]).logpdf(x)
            for k in range(len(w))]
    return np.stack(comp, -1)


# ----------------------------------------------------------------------------- relabelling


@pytest.mark.parametrize("ct", ["full", "diag", "spherical", "tied"])
def test_relabelling_undoes_artificial_permutations_exactly(ct):
    rng = np.random.default_rng(3)
    c, s, k, d = 2, 50, 3, 2
    ref_means = np.array([[-4.0, 0.0], [0.0, 3.0], [4.0, -1.0]])
    ref_w = np.array([0.2, 0.3, 0.5])
    ref_cov = {"full": np.stack([np.eye(d) * v for v in (0.5, 1.0, 2.0)]),
               "diag": np.array([[0.5, 0.6], [1.0, 1.1], [2.0, 2.1]]),
               "spherical": np.array([0.5, 1.0, 2.0]), "tied": np.eye(d)}[ct]
    ref = GMMParams(ref_w, ref_means, ref_cov, None)
    draws = {"weights": ref_w + 0.01 * rng.normal(size=(c, s, k)),
             "means": ref_means + 0.1 * rng.normal(size=(c, s, k, d)),
             "covariances": ref_cov * np.exp(0.05 * rng.normal(
                 size=(c, s) + ref_cov.shape)) if ct != "tied"
             else np.broadcast_to(ref_cov, (c, s, d, d)).copy()}
    true_perm = np.broadcast_to(np.arange(k), (c, s, k)).copy()
    scramble = rng.random((c, s)) < 0.4
    for i, j in zip(*np.nonzero(scramble)):
        true_perm[i, j] = rng.permutation(k)
    scrambled = {n: permute_components(v, true_perm, n, ct) for n, v in draws.items()}
    perm = relabel_permutations(scrambled, ref, ct)
    back = {n: permute_components(v, perm, n, ct) for n, v in scrambled.items()}
    for n in draws:
        np.testing.assert_array_equal(back[n], draws[n])
    moved = np.any(true_perm != np.arange(k), axis=-1)
    assert np.array_equal(np.any(perm != np.arange(k), axis=-1), moved)


# ----------------------------------------------------------------------------- validation


def test_bad_arguments_raise(faithful):
    x = faithful[:50]
    kw = dict(n_components=2, covariance_type="diag")
    with pytest.raises(ValueError, match="covariance_type"):
        run_nuts(x, n_components=2, covariance_type="banana")
    with pytest.raises(ValueError, match="num_chains"):
        run_nuts(x, num_chains=0, **kw)
    with pytest.raises(ValueError, match="chain_method"):
        run_nuts(x, chain_method="magic", init_params=_em_tuple(x), **kw)
    with pytest.raises(ValueError, match="finite"):
        run_nuts(np.where(np.arange(50)[:, None] == 3, np.nan, x), **kw)
    with pytest.raises(ValueError, match="shapes"):
        run_nuts(x, init_params=(np.ones(3) / 3, np.zeros((3, 2)), np.ones((3, 2))), **kw)
    with pytest.raises(TypeError, match="prior"):
        run_nuts(x, prior="flat", **kw)
    with pytest.raises(ValueError, match="target_accept_prob"):
        run_nuts(x, target_accept_prob=1.5, **kw)
    with pytest.raises(ValueError, match="dense_mass"):
        run_nuts(x, dense_mass="full", **kw)
    with pytest.raises(ValueError, match="max_tree_depth must be an integer >= 1"):
        run_nuts(x, max_tree_depth=0, **kw)


def test_sparse_prior_chains_start_from_map_under_concentration_one(faithful, monkeypatch):
    """MAP-EM needs concentration >= 1; run_nuts with a sparse Dirichlet starts its chains
    from the MAP fit under concentration 1 (as sparse_mixture_k) instead of refusing."""
    import bgmm.mcmc

    real, seen = bgmm.mcmc._fit_em, {}

    def fit_em(x, w, k, ct, prior, seed, dtype):
        seen["alpha"] = np.asarray(prior.weight_concentration)
        seen["params"] = real(x, w, k, ct, prior, seed, dtype)  # MAP-EM accepts this prior
        raise RuntimeError("stop before sampling")

    monkeypatch.setattr(bgmm.mcmc, "_fit_em", fit_em)
    with pytest.raises(RuntimeError, match="stop before sampling"):
        run_nuts(faithful[:50], n_components=3, covariance_type="diag",
                 prior=bgmm.GMMPrior(weight_concentration=0.1))
    np.testing.assert_array_equal(seen["alpha"], 1.0)
    assert np.isfinite(seen["params"].means).all()


def _em_tuple(x):
    gm = bgmm.GaussianMixture(2, covariance_type="diag", prior="default", random_state=0).fit(x)
    return gm.weights_, gm.means_, gm.covariances_


# ----------------------------------------------------------------------------- the run


def test_datatree_groups_dims_shapes(faithful_diag, faithful):
    gm, tree = faithful_diag
    n, d = faithful.shape
    assert isinstance(tree, __import__("xarray").DataTree)
    for g in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive",
              "observed_data", "em_estimate", "responsibilities", "prior_hyperparameters"):
        assert g in tree.children, g
    post = tree["posterior"]
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["weights"].shape == (4, 500, 2)
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["means"].shape == (4, 500, 2, d)
    assert post["covariances"].shape == (4, 500, 2, d)  # diag: sklearn's (K, D)
    assert tree["log_likelihood"]["x"].dims == ("chain", "draw", "observation")
    assert tree["log_likelihood"]["x"].shape == (4, 500, n)
    assert tree["posterior_predictive"]["x"].shape == (4, 500, n, d)
    np.testing.assert_array_equal(tree["observed_data"]["x"].values, faithful)
    em = tree["em_estimate"]
    np.testing.assert_allclose(em["weights"].values, gm.weights_, rtol=1e-12)
    np.testing.assert_allclose(em["means"].values, gm.means_, rtol=1e-12)
    np.testing.assert_allclose(em["covariances"].values, gm.covariances_, rtol=1e-12)
    for name in ("diverging", "energy", "n_steps", "acceptance_rate", "lp"):
        assert tree["sample_stats"][name].shape == (4, 500)
    assert tree.attrs["prior_source"].startswith("estimator")
    # K - 1 stick-breaking weights + K*D means + K*D log-variances: a small model, so the
    # "auto" mass matrix is dense
    assert tree.attrs["n_unconstrained_parameters"] == 1 + 2 * d + 2 * d
    assert tree.attrs["dense_mass"] == 1
    # weights on the simplex, covariances positive: the draws are in the model's support
    np.testing.assert_allclose(post["weights"].values.sum(-1), 1.0, atol=1e-10)
    assert np.all(post["covariances"].values > 0)


def test_faithful_converges_after_relabelling(faithful_diag):
    _, tree = faithful_diag
    post = tree["posterior"].to_dataset()[["weights", "means"]]
    assert float(az.rhat(post).to_array().max()) < 1.01
    assert float(az.ess(post, method="bulk").to_array().min()) > 400
    a = tree.attrs
    assert a["n_divergent"] == int(tree["sample_stats"]["diverging"].values.sum())
    assert a["n_divergent"] == 0  # none at the default settings on this well-posed problem
    assert a["off_mode_chains"] == [] and a["stuck_chains"] == [] and a["far_from_em"] == []
    assert a["n_permuted_draws"] == 0  # well-separated components: no switching from EM


def test_posterior_mean_near_map_within_sd(faithful_diag):
    gm, tree = faithful_diag
    post = tree["posterior"]
    for name, em in (("weights", gm.weights_), ("means", gm.means_)):
        v = post[name].values.reshape((-1,) + em.shape)
        z = np.abs(v.mean(0) - em) / v.std(0)
        assert np.all(z < 1.0), (name, z)


def test_pointwise_loglik_matches_scipy_in_data_units(faithful_diag, faithful):
    _, tree = faithful_diag
    post = tree["posterior"]
    ll = tree["log_likelihood"]["x"].values
    for c, s in [(0, 0), (1, 123), (3, 499)]:
        w = post["weights"].values[c, s]
        mu = post["means"].values[c, s]
        cv = np.stack([np.diag(v) for v in post["covariances"].values[c, s]])
        ref = logsumexp(_mixture_logpdf(faithful, w, mu, cv), axis=-1)
        np.testing.assert_allclose(ll[c, s], ref, rtol=1e-9, atol=1e-9)


def test_arviz_summary_and_loo_run(faithful_diag, faithful):
    _, tree = faithful_diag
    summ = az.summary(tree, var_names=["weights", "means"])
    assert len(summ) == 2 + 2 * faithful.shape[1]
    assert np.all(summ["r_hat"].astype(float) < 1.01)
    lo = az.loo(tree)
    assert lo.n_data_points == faithful.shape[0]
    assert np.isfinite(lo.elpd) and not lo.warning
    # elpd_loo is a little below the in-sample log predictive density (sum of logmeanexp)
    ll = tree["log_likelihood"]["x"].values.reshape(-1, faithful.shape[0])
    lpd = float(np.sum(logsumexp(ll, axis=0) - np.log(ll.shape[0])))
    assert lpd - 20 < lo.elpd < lpd


def test_posterior_netcdf_roundtrip_keeps_draws_and_diagnostics(faithful_diag, tmp_path):
    _, tree = faithful_diag
    tree = tree.copy(deep=True)
    tree.attrs["far_from_em"] = ["weights[0]"]  # netCDF reads a one-string list as a string
    back = bgmm.load_posterior(bgmm.save_posterior(tree, tmp_path / "post.nc"))
    np.testing.assert_array_equal(back["posterior"]["means"].values,
                                  tree["posterior"]["means"].values)
    for key in ("stuck_chains", "off_mode_chains", "far_from_em", "n_divergent_per_chain",
                "mean_acceptance_per_chain"):
        assert back.attrs[key] == tree.attrs[key], key
        assert isinstance(back.attrs[key], list)


def test_posterior_responsibilities_match_scipy(faithful_diag, faithful):
    _, tree = faithful_diag
    r = tree["responsibilities"]
    post = tree["posterior"].to_dataset().stack(sample=("chain", "draw")).transpose("sample", ...)
    rows = [0, 5, 17, 100]
    idx = np.arange(0, post.sizes["sample"], 10)
    gam = []
    for s in idx:
        cv = np.stack([np.diag(v) for v in post["covariances"].values[s]])
        lp = _mixture_logpdf(faithful[rows], post["weights"].values[s], post["means"].values[s], cv)
        gam.append(np.exp(lp - logsumexp(lp, axis=-1, keepdims=True)))
    gam = np.stack(gam)
    np.testing.assert_allclose(r["mean"].values[rows], gam.mean(0), atol=0.02)
    np.testing.assert_allclose(r["mean"].values.sum(-1), 1.0, atol=1e-10)
    assert np.all(r["lower"].values <= r["mean"].values + 1e-12)
    assert np.all(r["mean"].values <= r["upper"].values + 1e-12)
    # a new point halfway between the clusters is uncertain; far ones are not
    new = np.array([[3.0, 67.0], [1.8, 50.0]])
    r2 = bgmm.inference.posterior_responsibilities(tree, new)
    assert r2["mean"].shape == (2, 2)
    assert r2["sd"].values[0].max() > r2["sd"].values[1].max()


def test_compare_em_mcmc_table(faithful_diag):
    gm, tree = faithful_diag
    df = bgmm.inference.compare_em_mcmc(tree)
    for col in ("em", "mean", "sd", "ci_lower", "ci_upper", "r_hat", "ess_bulk", "em_in_ci"):
        assert col in df.columns
    assert len(df) == 2 + 2 * 2 + 2 * 2
    assert df.loc["weights[0]", "em"] == pytest.approx(gm.weights_[0], rel=1e-12)
    v = tree["posterior"]["means"].values[..., 1, 0].ravel()
    assert df.loc["means[1, x0]", "mean"] == pytest.approx(v.mean(), rel=1e-12)
    assert df.loc["means[1, x0]", "sd"] == pytest.approx(v.std(ddof=1), rel=1e-12)
    assert df["em_in_ci"].all()


@pytest.mark.slow
def test_laplace_close_to_nuts(faithful):
    """Laplace at the mode (Hessian of the same log density) vs NUTS, ~100 points/component."""
    gm = bgmm.GaussianMixture(2, covariance_type="diag", prior="default", n_init=3,
                              random_state=0).fit(faithful)
    tree = gm.sample_posterior(faithful, num_chains=2, num_warmup=500, num_samples=1000,
                               seed=0, laplace=True, posterior_predictive=False)
    assert tree["laplace"]["means"].shape == (1, 2000, 2, 2)
    df = bgmm.inference.compare_em_mcmc(tree)
    np.testing.assert_allclose(df["laplace_sd"], df["sd"], rtol=0.3)
    wm = df.loc[[i for i in df.index if not i.startswith("covariances")]]
    assert np.all(np.abs(wm["laplace_mean"] - wm["mean"]) < 0.5 * wm["sd"])


def test_plots_render(faithful_diag, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bgmm import inference as inf

    _, tree = faithful_diag
    fig, axes = inf.plot_forest(tree)
    assert len(axes) == 3  # weights, means per feature
    fig.savefig(tmp_path / "forest.png")
    fig, axes = inf.plot_ppc(tree, num_draws=10)
    assert len(axes) == 3
    fig.savefig(tmp_path / "ppc.png")
    pc = inf.plot_trace(tree, var_names=["weights"])
    pc.savefig(tmp_path / "trace.png")
    pc = inf.plot_rank(tree, var_names=["weights"])
    pc.savefig(tmp_path / "rank.png")
    fig2, ax = plt.subplots(1, 3)
    inf.plot_ppc(tree, num_draws=5, ax=ax)
    plt.close("all")


def test_fixed_seed_reproduces_draws(faithful_diag, faithful):
    # same settings as the fixture (same compiled program): identical draws
    gm, tree = faithful_diag
    again = gm.sample_posterior(faithful, num_chains=4, num_warmup=500, num_samples=500, seed=0,
                                log_likelihood=False, posterior_predictive=False,
                                responsibilities=False)
    np.testing.assert_array_equal(again["posterior"]["means"].values,
                                  tree["posterior"]["means"].values)
    np.testing.assert_array_equal(again["sample_stats"]["n_steps"].values,
                                  tree["sample_stats"]["n_steps"].values)


def test_prior_is_the_map_prior_and_default_for_mle(faithful_diag, faithful, monkeypatch):
    _, tree = faithful_diag
    hp = tree["prior_hyperparameters"]
    ref = bgmm.default_prior(faithful, 2, "diag")  # what prior="default" resolves to
    np.testing.assert_allclose(hp["scale"].values, ref.scale, rtol=1e-12)
    np.testing.assert_allclose(hp["mean"].values, ref.mean, rtol=1e-12)
    # an MLE fit has no prior: sample_posterior hands None (-> default_prior) and says so
    seen = {}
    monkeypatch.setattr(bgmm.mcmc, "run_nuts", lambda x, **kw: seen.update(kw))
    gm = bgmm.GaussianMixture(2, covariance_type="diag", random_state=0).fit(faithful)
    gm.sample_posterior(faithful)
    assert seen["prior"] is None and "maximum likelihood" in seen["_prior_source"]
    np.testing.assert_allclose(seen["init_params"][1], gm.means_, rtol=1e-12)


def test_chain_starts_are_the_em_solution_jittered(faithful):
    """Unconstrained starts map back (NumPyro's constrain_fn) to the EM fit; jitter spreads them."""
    from functools import partial

    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import constrain_fn

    from bgmm.mcmc import chain_inits
    from bgmm.model import marginal_model

    x = faithful[:80]
    w, m, c = _em_tuple(x)
    prior = bgmm.default_prior(x, 2, "diag")
    with jax.enable_x64(True):
        model = partial(marginal_model, n_components=2, covariance_type="diag")
        kw = dict(x=jnp.asarray(x), prior=prior)
        for jitter in (0.0, 0.1):
            u = chain_inits(model, kw, GMMParams(w, m, c, None), 3, jitter, jax.random.PRNGKey(0))
            back = jax.vmap(lambda p: constrain_fn(model, (), kw, p))(u)
            if jitter == 0.0:
                for name, ref in (("weights", w), ("means", m), ("covariances", c)):
                    np.testing.assert_allclose(back[name], np.stack([ref] * 3), rtol=1e-9)
            else:
                spread = np.asarray(back["means"]).std(0)
                assert np.all(spread > 0) and np.all(spread < 0.5 * np.sqrt(c))


# ----------------------------------------------------------------------------- slow


# K=3 full needs a longer warmup, longer chains and a smaller step: its over-fitted third
# component (weight 0.01-0.36, 1%-99%) splits the short-eruption cluster or the long one and
# crosses between them slowly, through a funnel (the component nearly empty). Per chain the
# adapted step size varies tenfold (0.015-0.26), and a chain that adapts to the bulk crosses
# rarely. Max R-hat measured (dense mass, 4 chains):
# - 2026-11-23, EM start before 15341c5 / 91b21cf (it split the short cluster), target 0.9,
#   1000 warmup: 1000 draws, seeds 0-5: 1.018, 1.005, 1.011, 1.007, 1.006, 1.008; 3000
#   draws, seeds 0, 2, 4: 1.0045, 1.0024, 1.0026;
# - 2026-11-23, EM start of 91b21cf (-4.2657 per sample; it split the long cluster),
#   target 0.9, 1000 warmup, 3000 draws, seeds 0-3: 1.032 (57 divergences), 1.0016, 1.0028,
#   1.0078; seed 0, 2000 warmup: 1.0018;
# - 2026-12-02, EM start since 50ce024 (k-means++ draws all uniforms at once; -4.2675, it
#   splits the short cluster again), 2000 warmup, 3000 draws, seeds 0-4, run alone on one
#   core: target 0.9: 1.0113 (43 divergences in one chain), 1.0323 (min bulk ESS 148),
#   1.0032, 1.0032, 1.0080; target 0.95: 1.0024, 1.0006, 1.0020, 1.0047, 1.0023 (min ESS
#   812-2397, 4 divergences in all, 103-288 s). (Seed 0 at target 0.9 gave 1.0176 with
#   `make test-slow` on 2026-11-23's machine: which seed fails depends on round-off, i.e.
#   on the CPU and its threads, so the test needs a margin, not a lucky seed.)
# - 2026-12-02, the same EM start up to round-off (d196d05: components-first E-step, a
#   batched standardisation; the start moved in the 15th digit), target 0.95, 2000 warmup:
#   3000 draws, seeds 0-3: 1.018 (43 divergences, min bulk ESS 230), 1.0046, 1.0022, 1.0060;
#   6000 draws, seeds 0-4: 1.0056, 1.0024, 1.0020, 1.0078, 1.162 (166 divergences, one chain
#   in another mode, ESS 17); seed 0 with 4000 warmup: 1.198 (178 divergences, ESS 31).
# So about one run in five has a chain stuck in the funnel, whatever the settings: no seed
# or run length makes "R-hat < 1.01" a property of this posterior. What bgmm guarantees is
# that such a run is never silent: every failing run above raised a DivergenceWarning
# (and the worst a LabelSwitchingWarning), so for K=3 full the test asserts "converged, or
# warned"; the well-identified configurations must converge.
# Non-centred means (mu_k = m + chol(Sigma_k / kappa) eps_k through numpyro.handlers.reparam)
# were tried and were worse: seeds 0-6 gave 1.004-1.147.
@pytest.mark.slow
@pytest.mark.parametrize(("k", "ct", "num_warmup", "num_samples", "target", "overfitted"),
                         [(2, "full", 1000, 1000, 0.9, False), (2, "diag", 1000, 1000, 0.9, False),
                          (3, "full", 2000, 3000, 0.95, True), (3, "diag", 1000, 1000, 0.9, False)])
def test_faithful_all_configurations(faithful, k, ct, num_warmup, num_samples, target,
                                     overfitted):
    gm = bgmm.GaussianMixture(k, covariance_type=ct, prior="default", n_init=5,
                              random_state=0).fit(faithful)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        tree = gm.sample_posterior(faithful, num_chains=4, num_warmup=num_warmup,
                                   num_samples=num_samples, target_accept_prob=target, seed=0)
    post = tree["posterior"].to_dataset()[["weights", "means"]]
    converged = (float(az.rhat(post).to_array().max()) < 1.01
                 and float(az.ess(post, method="bulk").to_array().min()) > 400)
    warned = any(issubclass(r.category, (bgmm.mcmc.DivergenceWarning,
                                         bgmm.mcmc.LabelSwitchingWarning)) for r in rec)
    assert converged or (overfitted and warned)
    n_div = tree.attrs["n_divergent"]
    assert n_div == int(tree["sample_stats"]["diverging"].values.sum())
    if n_div:  # reported, not hidden
        assert any(issubclass(r.category, bgmm.mcmc.DivergenceWarning) for r in rec)


def _two_cluster_data(n, seed):
    rng = np.random.default_rng(seed)
    z = rng.random(n) < 0.4
    return np.where(z, -3.0, 3.0)[:, None] + rng.normal(size=(n, 1))


@pytest.mark.slow
def test_posterior_sd_shrinks_like_one_over_sqrt_n():
    """Well-separated clusters: the posterior sd of a component mean is the closed form
    sigma_k / sqrt(n_k) of a Gaussian mean (from the cluster's own points), so it shrinks
    by sqrt(8) from N=400 to N=3200. Components are matched by their mean (EM may order
    them differently at the two sizes)."""
    sds = []
    for n in (400, 3200):
        x = _two_cluster_data(n, 1)
        tree = run_nuts(x, n_components=2, covariance_type="diag", prior="default",
                        num_chains=2, num_warmup=500, num_samples=1000, seed=0,
                        posterior_predictive=False, responsibilities=False, laplace=False)
        order = np.argsort(tree["em_estimate"]["means"].values[:, 0])  # (-3 cluster, +3)
        v = tree["posterior"]["means"].values.reshape(-1, 2)[:, order]
        em = tree["em_estimate"]["means"].values[order, 0]
        # many samples per component: posterior mean within a posterior sd of the MAP
        assert np.all(np.abs(v.mean(0) - em) < v.std(0))
        clusters = [x[x[:, 0] < 0, 0], x[x[:, 0] >= 0, 0]]
        closed = np.array([c.std() / np.sqrt(c.size) for c in clusters])
        np.testing.assert_allclose(v.std(0), closed, rtol=0.1)
        sds.append(v.std(0))
    np.testing.assert_allclose(sds[0] / sds[1], np.sqrt(8), rtol=0.1)


@pytest.mark.slow
def test_simulation_based_calibration_small():
    """SBC (Talts et al. 2018), 1-D, K=2 diag: ranks of the prior draw among posterior
    draws are uniform. Components are identified by ordering on the mean."""
    from jax import random
    from numpyro.infer import Predictive

    from bgmm.model import model

    k, n, n_rep, n_keep = 2, 40, 60, 99
    # every field given: resolving only validates and broadcasts (the model itself takes a
    # resolved prior, e.g. a (K,) concentration)
    prior = bgmm.priors.resolve_prior(
        bgmm.GMMPrior(weight_concentration=5.0, mean=np.zeros(1), mean_precision=0.05,
                      dof=8.0, scale=np.ones(1) * 8.0), np.zeros((2, 1)), k, "diag")
    ranks = []
    import jax

    for r in range(n_rep):
        with jax.enable_x64(True):
            sim = Predictive(model, num_samples=1)(random.PRNGKey(100 + r), n_components=k,
                                                   covariance_type="diag", prior=prior,
                                                   n_samples=n)
        x = np.asarray(sim["x"][0], np.float64)
        order = np.argsort(np.asarray(sim["means"][0, :, 0]))
        truth = np.asarray(sim["means"][0, order, 0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = run_nuts(x, n_components=k, covariance_type="diag", prior=prior,
                            num_chains=1, num_warmup=300, num_samples=n_keep * 4, seed=r,
                            log_likelihood=False, posterior_predictive=False,
                            responsibilities=False, laplace=False)
        m = np.sort(tree["posterior"]["means"].values[0, ::4, :, 0], axis=-1)
        ranks.append((m < truth).sum(0))
    ranks = np.asarray(ranks)  # (n_rep, K), each uniform on {0..n_keep}
    for j in range(k):
        p = stats.kstest((ranks[:, j] + np.random.default_rng(j).random(n_rep)) / (n_keep + 1),
                         "uniform").pvalue
        assert p > 0.001, (j, p)


def test_chains_that_leave_the_em_mode_are_reported():
    from bgmm.mcmc import LabelSwitchingWarning, _diagnostics, _warn

    rng = np.random.default_rng(0)
    c, s = 4, 200
    means = rng.normal(size=(c, s, 2, 1))
    means[2] += 8.0  # one chain in another mode
    draws = {"weights": rng.dirichlet([5, 5], size=(c, s)), "means": means}
    st = {"diverging": np.zeros((c, s), bool), "acceptance_rate": np.full((c, s), 0.9)}
    st["diverging"][1, :3] = True
    ref = GMMParams(np.array([0.5, 0.5]), np.array([[0.0], [20.0]]), None, None)
    perm = np.broadcast_to(np.arange(2), (c, s, 2))
    diag = _diagnostics(draws, perm, st, 1.0, "diag", ref)
    a = diag["attrs"]
    assert a["off_mode_chains"] == [2]
    assert "means[1, 0]" in a["far_from_em"] and "means[0, 0]" not in a["far_from_em"]
    assert a["n_divergent"] == 3 and a["n_divergent_per_chain"] == [0, 3, 0, 0]
    with pytest.warns(LabelSwitchingWarning), pytest.warns(bgmm.mcmc.DivergenceWarning):
        _warn(diag)


def test_stuck_chain_is_reported():
    from bgmm.mcmc import DivergenceWarning, _diagnostics, _warn

    rng = np.random.default_rng(1)
    c, s = 4, 200
    draws = {"weights": rng.dirichlet([5, 5], size=(c, s)), "means": rng.normal(size=(c, s, 2, 1))}
    draws["weights"][3] = draws["weights"][3, :1]  # chain 3 never moves
    draws["means"][3] = draws["means"][3, :1]
    st = {"diverging": np.zeros((c, s), bool), "acceptance_rate": np.full((c, s), 0.9)}
    st["acceptance_rate"][3] = 0.0
    ref = GMMParams(np.array([0.5, 0.5]), np.array([[0.0], [0.0]]), None, None)
    diag = _diagnostics(draws, np.broadcast_to(np.arange(2), (c, s, 2)), st, 1.0, "diag", ref)
    assert diag["attrs"]["stuck_chains"] == [3]
    with pytest.warns(DivergenceWarning, match="stuck"):
        _warn(diag)


PARALLEL_SCRIPT = r"""
import os, sys, warnings
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import numpy as np, jax, arviz as az
assert len(jax.devices()) == 4, jax.devices()
import bgmm
warnings.simplefilter("ignore")
X = np.asarray(bgmm.load_faithful())[:120]
kw = dict(n_components=2, covariance_type="diag", num_warmup=150, num_samples=200, seed=3,
          posterior_predictive=False, responsibilities=False)
par = bgmm.run_nuts(X, **kw)  # 4 devices >= 4 chains: "parallel" is the default
vec = bgmm.run_nuts(X, chain_method="vectorized", **kw)
assert par.attrs["chain_method"] == "parallel", par.attrs["chain_method"]
assert vec.attrs["chain_method"] == "vectorized"
p, v = (t["posterior"].to_dataset()[["weights", "means"]] for t in (par, vec))
# the chains are distinct runs (not one chain copied to every device)
m = p["means"].values
assert all(np.abs(m[i] - m[j]).max() > 0 for i in range(4) for j in range(i))
# same posterior: means within 5 combined Monte Carlo standard errors
se = np.sqrt(az.mcse(p).to_array().values ** 2 + az.mcse(v).to_array().values ** 2)
diff = np.abs(p.mean(("chain", "draw")).to_array().values
              - v.mean(("chain", "draw")).to_array().values)
assert np.all(diff < 5 * se + 1e-12), (diff, se)
assert float(az.rhat(p).to_array().max()) < 1.05
print("OK")
"""


def test_parallel_chains_on_four_devices():
    """chain_method="parallel" (pmap, one chain per device; 4 forced CPU devices, set
    before JAX is imported, so in a fresh interpreter) samples the same posterior as the
    vectorized chains. Draw-by-draw equality is not expected: a round-off difference in
    one leapfrog step can flip a NUTS tree decision, after which the chains differ (seen
    here in one chain of four)."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get(
        "PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", PARALLEL_SCRIPT], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0 and "OK" in out.stdout, out.stdout[-2000:] + out.stderr[-4000:]

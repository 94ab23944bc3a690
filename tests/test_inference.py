"""EM vs MCMC table, posterior responsibilities and plots on a hand-made DataTree (no NUTS)."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from bgmm.inference import build_datatree, compare_em_mcmc, plot_forest, plot_ppc
from bgmm.inference import posterior_responsibilities as post_resp
from bgmm.params import GMMParams
from bgmm.priors import default_prior


@pytest.fixture(scope="module")
def tree():
    rng = np.random.default_rng(0)
    c, s, k, d = 2, 300, 2, 2
    x = np.concatenate([rng.normal([-2, 0], 1, (60, d)), rng.normal([2, 1], 0.5, (40, d))])
    w = rng.dirichlet([60, 40], size=(c, s))
    means = np.array([[-2.0, 0.0], [2.0, 1.0]]) + 0.1 * rng.normal(size=(c, s, k, d))
    covs = np.array([[1.0, 1.0], [0.25, 0.25]]) * np.exp(0.1 * rng.normal(size=(c, s, k, d)))
    em = GMMParams(np.array([0.6, 0.4]), np.array([[-2.0, 0.0], [2.0, 5.0]]),
                   np.array([[1.0, 1.0], [0.25, 0.25]]), None)  # means[1, x1] far outside
    stats_ = {"diverging": np.zeros((c, s), bool), "n_steps": np.full((c, s), 7)}
    attrs = {"covariance_type": "diag", "standardizer_center": [0.0, 0.0],
             "standardizer_scale": [1.0, 1.0], "prior_source": "test"}
    t = build_datatree(x=x, draws={"weights": w, "means": means, "covariances": covs},
                       stats=stats_, loglik=None, ppc=None, em=em,
                       prior=default_prior(x, k, "diag"), laplace=None, covariance_type="diag",
                       feature_names=["a", "b"], attrs=attrs, ci_prob=0.9)
    return t, x


def test_compare_table_against_numpy(tree):
    t, _ = tree
    df = compare_em_mcmc(t)
    assert list(df.index[:3]) == ["weights[0]", "weights[1]", "means[0, a]"]
    v = t["posterior"]["means"].values[:, :, 1, 1].ravel()
    row = df.loc["means[1, b]"]
    assert row["mean"] == pytest.approx(v.mean())
    assert row["ci_lower"] == pytest.approx(np.quantile(v, 0.05))
    assert row["ci_upper"] == pytest.approx(np.quantile(v, 0.95))
    assert not row["em_in_ci"] and row["em_z"] > 10
    assert df.loc["means[0, a]", "em_in_ci"]
    assert (df["r_hat"] < 1.02).all() and (df["ess_bulk"] > 300).all()  # iid draws
    with pytest.raises(ValueError, match="var_names"):
        compare_em_mcmc(t, var_names=["nope"])
    with pytest.raises(ValueError, match="ci_prob"):
        compare_em_mcmc(t, ci_prob=1.5)


def test_responsibilities_against_scipy(tree):
    t, x = tree
    r = t["responsibilities"]
    post = t["posterior"].to_dataset().stack(sample=("chain", "draw")).transpose("sample", ...)
    gam = []
    for s in range(post.sizes["sample"]):
        lp = np.stack([np.log(post["weights"].values[s, j]) + stats.multivariate_normal(
            post["means"].values[s, j], np.diag(post["covariances"].values[s, j])).logpdf(x)
            for j in range(2)], -1)
        gam.append(np.exp(lp - logsumexp(lp, -1, keepdims=True)))
    gam = np.stack(gam)
    np.testing.assert_allclose(r["mean"].values, gam.mean(0), atol=1e-10)
    np.testing.assert_allclose(r["sd"].values, gam.std(0), atol=1e-10)
    np.testing.assert_allclose(r["lower"].values, np.quantile(gam, 0.05, axis=0), atol=1e-8)
    with pytest.raises(ValueError, match="shape"):
        post_resp(t, np.zeros((3, 5)))
    assert post_resp(t, x[:4], max_draws=50).attrs["n_draws"] == 50


def test_plots_with_given_axes(tree, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, _ = tree
    fig, axes = plt.subplots(1, 3)
    f2, a2 = plot_ppc(t, num_draws=5, ax=axes)
    assert f2 is fig and len(a2) == 3
    fig, axes = plt.subplots(1, 3)
    f3, a3 = plot_forest(t, ax=axes)
    assert f3 is fig
    with pytest.raises(ValueError, match="Axes"):
        plot_forest(t, ax=axes[:1])
    plt.close("all")

"""bgmm.plotting: every function takes ax= and returns it, and draws what it claims."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from scipy.stats import entropy, norm  # noqa: E402

import bgmm  # noqa: E402
from bgmm import plotting  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    df = bgmm.load_faithful(as_frame=True)
    gm = bgmm.GaussianMixture(2, covariance_type="full", n_init=3, random_state=0).fit(df)
    return gm, df


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_plot_mixture_returns_ax_and_labels(fitted):
    gm, df = fitted
    _, ax = plt.subplots()
    assert plotting.plot_mixture(gm, df, ax=ax) is ax
    assert ax.get_xlabel() == "eruptions" and ax.get_ylabel() == "waiting"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t for t in texts if t.startswith("component ") and "weight" in t] == [
        f"component {k} (weight {w:.2f})" for k, w in enumerate(gm.weights_)]
    assert "component mean (x) and\nellipses: 1 sd solid, 2 sd dashed" in texts
    assert "50/80/95% highest-density\nregions of the mixture" in texts
    assert len(ax.patches) == 2 * 2  # 1 and 2 sd ellipses per component


def test_hdr_levels_hold_the_stated_mass():
    # standard bivariate normal: the HDR of mass p is the disc r^2 <= -2 log(1 - p), its
    # density threshold exp(-r^2 / 2) / (2 pi) = (1 - p) / (2 pi)
    g = np.linspace(-8, 8, 801)
    xx, yy = np.meshgrid(g, g)
    dens = np.exp(-0.5 * (xx**2 + yy**2)) / (2 * np.pi)
    probs = np.array([0.5, 0.8, 0.95])
    levels = plotting._hdr_levels(dens, (g[1] - g[0]) ** 2, probs)
    np.testing.assert_allclose(levels, (1 - probs) / (2 * np.pi), rtol=0.02)


def test_plot_mixture_contours_are_hdr_levels(fitted):
    gm, df = fitted
    _, ax = plt.subplots()
    plotting.plot_mixture(gm, df, ax=ax, hdr_probs=(0.5, 0.9))
    cs = next(c for c in ax.collections if hasattr(c, "levels"))
    # the 90% region's threshold is below the 50% one; both are densities in data units
    assert len(cs.levels) == 2 and 0 < cs.levels[0] < cs.levels[1]
    # sample from the fit: about 90% / 50% of draws have density above the thresholds
    draws = pd.DataFrame(gm.sample(20000)[0], columns=df.columns)
    dens = np.exp(gm.score_samples(draws))
    np.testing.assert_allclose([(dens >= cs.levels[0]).mean(), (dens >= cs.levels[1]).mean()],
                               [0.9, 0.5], atol=0.02)


def test_plot_density_1d_matches_scipy(fitted):
    _, df = fitted
    x = df[["eruptions"]]
    gm1 = bgmm.GaussianMixture(2, n_init=3, random_state=0).fit(x)
    _, ax = plt.subplots()
    assert plotting.plot_density_1d(gm1, x, ax=ax) is ax
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "mixture density")
    g, y = line.get_data()
    ref = sum(w * norm.pdf(g, m, np.sqrt(v)) for w, m, v in
              zip(gm1.weights_, gm1.means_[:, 0], gm1.covariances_.reshape(-1)))
    np.testing.assert_allclose(y, ref, rtol=1e-8)


def test_plot_em_trace(fitted):
    gm, _ = fitted
    _, ax = plt.subplots()
    assert plotting.plot_em_trace(gm, ax=ax) is ax
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), gm.lower_bounds_)
    assert "iteration" in ax.get_xlabel()
    plotting.plot_em_trace(gm, ax=ax, label="second", ls="--")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["second"]


@pytest.mark.parametrize("kind", ["entropy", "max_prob"])
def test_assignment_uncertainty_colours_are_the_uncertainty(fitted, kind):
    gm, df = fitted
    _, ax = plt.subplots()
    assert plotting.plot_assignment_uncertainty(gm, df, ax=ax, kind=kind) is ax
    resp = gm.predict_proba(df)
    expected = entropy(resp, axis=1) if kind == "entropy" else 1 - resp.max(1)
    values = ax.collections[0].get_array()
    np.testing.assert_allclose(np.sort(values), np.sort(expected), atol=1e-12)
    assert ax.get_xlabel() == "eruptions"


def test_assignment_uncertainty_from_posterior(fitted):
    gm, df = fitted
    n = len(df)
    rng = np.random.default_rng(0)
    mean = rng.dirichlet([1, 1], size=n)
    lo, hi = np.clip(mean - 0.1, 0, 1), np.clip(mean + rng.uniform(0, 0.3, (n, 1)), 0, 1)
    ds = xr.Dataset({k: (("observation", "component"), v) for k, v in
                     dict(mean=mean, lower=lo, upper=hi, em=mean, sd=0 * mean).items()},
                    attrs={"ci_prob": 0.9})
    tree = xr.DataTree.from_dict({"responsibilities": ds})
    _, ax = plt.subplots()
    plotting.plot_assignment_uncertainty(gm, df, ax=ax, posterior=tree, kind="interval")
    np.testing.assert_allclose(np.sort(ax.collections[0].get_array()),
                               np.sort((hi - lo).max(1)))
    _, ax2 = plt.subplots()
    assert plotting.plot_membership_intervals(tree, [0, 5], ax=ax2, component=1) is ax2
    np.testing.assert_allclose(ax2.get_lines()[0].get_xdata(), mean[[0, 5], 1])


def test_assignment_uncertainty_rejects_bad_kind(fitted):
    gm, df = fitted
    with pytest.raises(ValueError, match="kind"):
        plotting.plot_assignment_uncertainty(gm, df, kind="variance")
    with pytest.raises(ValueError, match="posterior"):
        plotting.plot_assignment_uncertainty(gm, df, kind="interval")


def test_plot_criterion_marks_the_choice(fitted):
    _, df = fitted
    study = bgmm.select(df, n_components=[1, 2, 3], covariance_types=["full", "diag"],
                        n_init=2, random_state=0)
    _, ax = plt.subplots()
    assert plotting.plot_criterion(study, ax=ax, criterion="bic") is ax
    table = study.to_frame()
    full = next(ln for ln in ax.get_lines() if ln.get_label() == "full")
    np.testing.assert_allclose(full.get_ydata(), table.xs("full", level=1)["bic"].to_numpy())
    assert "BIC" in ax.get_ylabel()


def test_em_vs_posterior_rows_show_quantiles_and_em():
    rng = np.random.default_rng(1)
    w = rng.dirichlet([30, 60], size=(2, 200))
    m = rng.normal([[2.0, 55.0], [4.3, 80.0]], [0.05, 0.8], size=(2, 200, 2, 2))
    crd = {"component": [0, 1], "feature": ["eruptions", "waiting"]}
    post = xr.Dataset({"weights": (("chain", "draw", "component"), w),
                       "means": (("chain", "draw", "component", "feature"), m)}, coords=crd)
    em = xr.Dataset({"weights": (("component",), [0.35, 0.65]),
                     "means": (("component", "feature"), [[2.0, 54.5], [4.29, 80.0]])},
                    coords=crd)
    tree = xr.DataTree.from_dict({"posterior": post, "em_estimate": em})
    tree.attrs.update(covariance_type="full", ci_prob=0.9)
    axes = plotting.plot_em_vs_posterior(tree, var_names=["weights", "means"])
    assert len(axes) == 2 + 4
    lo, hi = axes[4].get_lines()[0].get_xdata()  # means[1, eruptions]
    np.testing.assert_allclose([lo, hi], np.quantile(m[:, :, 1, 0], [0.05, 0.95]))
    assert axes[4].get_lines()[2].get_xdata()[0] == 4.29
    assert "means[1, eruptions]" == axes[4].get_ylabel()

"""Matplotlib views of fitted mixtures. Every function takes ``ax=`` and returns it."""

from __future__ import annotations

import numpy as np


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    return ax


def _full_covariances(gm):
    from . import covariance as cov

    k, d = gm.means_.shape
    c = np.asarray(gm.covariances_, np.float64)
    if gm.covariance_type == "full":
        return c
    if gm.covariance_type == "tied":
        return np.broadcast_to(c, (k, d, d))
    if gm.covariance_type == "diag":
        return np.stack([np.diag(v) for v in c])
    del cov
    return np.stack([v * np.eye(d) for v in c])


def _feature_names(gm, names):
    if names is not None:
        return list(names)
    if hasattr(gm, "feature_names_in_"):
        return [str(n) for n in gm.feature_names_in_]
    return [f"x{j}" for j in range(gm.means_.shape[1])]


def plot_mixture(gm, X, *, ax=None, features=(0, 1), feature_names=None, contours=True,
                 ellipses=True, soft=True, n_std=(1.0, 2.0), grid_size=150, title=None):
    """Data coloured by cluster, density contours and component ellipses (2-D views).

    gm: fitted :class:`bgmm.GaussianMixture`; X: (n_samples, n_features) data; features:
    the two columns to draw (the density is the fitted mixture's marginal over them);
    soft: shade points by their largest responsibility (uncertain points look pale).
    """
    import matplotlib.colors as mcolors
    from matplotlib.patches import Ellipse

    ax = _axes(ax)
    X = np.asarray(X, np.float64)
    i, j = features
    names = _feature_names(gm, feature_names)
    resp = gm.predict_proba(X)
    labels = resp.argmax(1)
    colors = [f"C{k % 10}" for k in range(gm.n_components)]
    rgba = np.array([mcolors.to_rgba(colors[k]) for k in labels])
    if soft:
        rgba[:, 3] = 0.25 + 0.75 * (resp.max(1) - 1.0 / gm.n_components) / (1 - 1.0 / gm.n_components + 1e-12)
    ax.scatter(X[:, i], X[:, j], c=rgba, s=14, edgecolors="none")

    means = np.asarray(gm.means_, np.float64)[:, [i, j]]
    covs = _full_covariances(gm)[:, [i, j]][:, :, [i, j]]
    w = np.asarray(gm.weights_, np.float64)
    if contours:
        pad_x = 0.1 * np.ptp(X[:, i])
        pad_y = 0.1 * np.ptp(X[:, j])
        gx = np.linspace(X[:, i].min() - pad_x, X[:, i].max() + pad_x, grid_size)
        gy = np.linspace(X[:, j].min() - pad_y, X[:, j].max() + pad_y, grid_size)
        xx, yy = np.meshgrid(gx, gy)
        pts = np.column_stack([xx.ravel(), yy.ravel()])
        dens = np.zeros(len(pts))
        for wk, m, c in zip(w, means, covs):
            diff = pts - m
            sol = np.linalg.solve(c, diff.T).T
            dens += wk * np.exp(-0.5 * np.sum(diff * sol, 1)) / (2 * np.pi * np.sqrt(np.linalg.det(c)))
        ax.contour(xx, yy, dens.reshape(xx.shape), levels=8, colors="0.35", linewidths=0.7,
                   alpha=0.8)
    if ellipses:
        for k, (m, c) in enumerate(zip(means, covs)):
            vals, vecs = np.linalg.eigh(c)
            angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
            for s in n_std:
                ax.add_patch(Ellipse(m, 2 * s * np.sqrt(vals[1]), 2 * s * np.sqrt(vals[0]),
                                     angle=angle, fill=False, lw=1.5, color=colors[k]))
            ax.plot(*m, marker="x", color="k", ms=8, mew=2)
    handles = [ax.scatter([], [], color=colors[k], s=20, label=f"component {k} (w={w[k]:.2f})")
               for k in range(gm.n_components)]
    ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.8)
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    ax.set_title(title or f"{gm.n_components}-component {gm.covariance_type} Gaussian mixture")
    return ax


def plot_density_1d(gm, x, *, ax=None, bins=40, feature_name=None, components=True):
    """Histogram of 1-D data with the fitted mixture density (and its weighted components)."""
    ax = _axes(ax)
    x = np.asarray(x, np.float64).reshape(-1)
    ax.hist(x, bins=bins, density=True, color="0.8", edgecolor="white", label="data")
    grid = np.linspace(x.min() - 0.1 * np.ptp(x), x.max() + 0.1 * np.ptp(x), 400)
    ax.plot(grid, np.exp(gm.score_samples(grid[:, None])), color="k", lw=2, label="mixture density")
    if components:
        var = _full_covariances(gm)[:, 0, 0]
        for k, (wk, m, v) in enumerate(zip(gm.weights_, gm.means_[:, 0], var)):
            pdf = wk * np.exp(-0.5 * (grid - m) ** 2 / v) / np.sqrt(2 * np.pi * v)
            ax.plot(grid, pdf, ls="--", color=f"C{k % 10}", label=f"component {k} (w={wk:.2f})")
    ax.set_xlabel(feature_name or _feature_names(gm, None)[0])
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    return ax


def plot_em_trace(gm, *, ax=None):
    """EM's objective per iteration (mean log-likelihood, or log-posterior for MAP)."""
    ax = _axes(ax)
    trace = np.asarray(gm.lower_bounds_)
    ax.plot(np.arange(1, len(trace) + 1), trace, marker="o", ms=3)
    ax.set_xlabel("EM iteration")
    what = "mean log-posterior" if gm.prior is not None else "mean log-likelihood"
    ax.set_ylabel(f"{what} per sample")
    ax.set_title(f"EM objective ({'converged' if gm.converged_ else 'not converged'} after "
                 f"{gm.n_iter_} iterations)")
    return ax

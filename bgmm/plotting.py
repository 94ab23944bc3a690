"""Matplotlib views of fitted mixtures. Every function takes ``ax=`` and returns it."""

from __future__ import annotations

import numpy as np


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    return ax


def _full_covariances(gm):
    """The fitted covariances as a (K, D, D) stack, whatever the covariance type."""
    from .estimator import _np_to_full

    k, d = gm.means_.shape
    return _np_to_full(np.asarray(gm.covariances_, np.float64), gm.covariance_type, k, d)


def _feature_names(gm, names):
    if names is not None:
        return list(names)
    if hasattr(gm, "feature_names_in_"):
        return [str(n) for n in gm.feature_names_in_]
    return [f"x{j}" for j in range(gm.means_.shape[1])]


def _hdr_levels(dens, cell_area, probs):
    """Density thresholds whose super-level sets hold ``probs`` of the mass on the grid.

    dens: density values on a regular grid; cell_area: area of one grid cell. The mass is
    normalised by the grid's total (the grid covers the data with a margin). Returns the
    thresholds in the order of ``probs``.
    """
    d = np.sort(np.asarray(dens, np.float64).ravel())[::-1]
    mass = np.cumsum(d) * cell_area
    mass /= mass[-1]
    idx = np.minimum(np.searchsorted(mass, probs), d.size - 1)
    return d[idx]


def plot_mixture(gm, X, *, ax=None, features=(0, 1), feature_names=None, contours=True,
                 ellipses=True, soft=True, n_std=(1.0, 2.0), grid_size=150, title=None,
                 hdr_probs=(0.5, 0.8, 0.95), legend_loc="outside"):
    """Data coloured by cluster, density contours and component ellipses (2-D views).

    gm: fitted :class:`bgmm.GaussianMixture`; X: (n_samples, n_features) data; features:
    the two columns to draw (the density is the fitted mixture's marginal over them);
    soft: shade points by their largest responsibility (uncertain points look pale);
    contours: draw the highest-density regions of the fitted density holding ``hdr_probs``
    of its mass (labelled in percent); ellipses: each component's ``n_std`` standard
    deviation ellipses (solid, then dashed), its mean marked by a cross; legend_loc:
    ``"outside"`` (right of the axes, never over the data; use a ``constrained`` layout or
    ``bbox_inches="tight"``), a matplotlib ``loc`` inside the axes, or None for no legend.
    """
    import matplotlib.colors as mcolors
    from matplotlib.patches import Ellipse

    ax = _axes(ax)
    resp = gm.predict_proba(X)  # before the array conversion: keeps DataFrame column names
    X = np.asarray(X, np.float64)
    i, j = features
    names = _feature_names(gm, feature_names)
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
        probs = np.sort(np.asarray(hdr_probs, np.float64))[::-1]  # increasing thresholds
        levels = _hdr_levels(dens, (gx[1] - gx[0]) * (gy[1] - gy[0]), probs)
        keep = np.concatenate([[True], np.diff(levels) > 0])  # contour needs increasing levels
        cs = ax.contour(xx, yy, dens.reshape(xx.shape), levels=levels[keep], colors="0.3",
                        linewidths=0.8, alpha=0.9, zorder=2)
        ax.clabel(cs, fmt={lv: f"{p:.0%}" for lv, p in zip(levels[keep], probs[keep])},
                  fontsize=8, inline=True)
    if ellipses:
        for k, (m, c) in enumerate(zip(means, covs)):
            vals, vecs = np.linalg.eigh(c)
            angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
            for s, ls in zip(n_std, ["-", "--", ":", "-."] * len(n_std)):
                ax.add_patch(Ellipse(m, 2 * s * np.sqrt(vals[1]), 2 * s * np.sqrt(vals[0]),
                                     angle=angle, fill=False, lw=1.6, ls=ls, color=colors[k],
                                     zorder=3))
            ax.plot(*m, marker="x", color="k", ms=8, mew=2, ls="", zorder=4)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=colors[k], ms=5,
                      label=f"component {k} (weight {w[k]:.2f})")
               for k in range(gm.n_components)]
    if ellipses:
        styles = ", ".join(f"{s:g} sd {name}" for s, name in
                           zip(n_std, ["solid", "dashed", "dotted", "dash-dot"] * len(n_std)))
        handles.append(Line2D([], [], color="0.3", ls="-", lw=1.6, marker="x", mec="k", mew=2,
                              ms=7, label=f"component mean (x) and\nellipses: {styles}"))
    if contours:
        pct = "/".join(f"{p:.0%}"[:-1] for p in sorted(hdr_probs))
        handles.append(Line2D([], [], color="0.3", lw=0.8,
                              label=f"{pct}% highest-density\nregions of the mixture"))
    if legend_loc == "outside":
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, fontsize="small", frameon=False)
    elif legend_loc is not None:
        ax.legend(handles=handles, loc=legend_loc, fontsize="small", framealpha=0.85)
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
    g = grid[:, None]
    if hasattr(gm, "feature_names_in_"):
        import pandas as pd

        g = pd.DataFrame(g, columns=list(gm.feature_names_in_))
    ax.plot(grid, np.exp(gm.score_samples(g)), color="k", lw=2.5, label="mixture density")
    if components:
        var = _full_covariances(gm)[:, 0, 0]
        for k, (wk, m, v) in enumerate(zip(gm.weights_, gm.means_[:, 0], var)):
            pdf = wk * np.exp(-0.5 * (grid - m) ** 2 / v) / np.sqrt(2 * np.pi * v)
            # thin and on top, so that they stay visible where they equal the mixture
            ax.plot(grid, pdf, ls="--", lw=1.3, color=f"C{k % 10}", zorder=3,
                    label=f"weighted component {k} (w={wk:.2f})")
    ax.set_xlabel(feature_name or _feature_names(gm, None)[0])
    ax.set_ylabel("density")
    # headroom above the tallest bar keeps the legend off the data
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    ax.legend(fontsize="small", loc="upper center", ncol=2, framealpha=0.9)
    return ax


def plot_em_trace(gm, *, ax=None, label=None, **line_kwargs):
    """EM's objective per iteration (mean log-likelihood, or log-posterior for MAP).

    The kept restart's trace (``gm.lower_bounds_``). label: legend entry (call again on the
    same ``ax`` to compare fits, e.g. two initialisations); line_kwargs go to ``ax.plot``.
    """
    ax = _axes(ax)
    trace = np.asarray(gm.lower_bounds_)
    from matplotlib.ticker import MaxNLocator

    line_kwargs.setdefault("marker", "o")
    line_kwargs.setdefault("ms", 3)
    ax.plot(np.arange(1, len(trace) + 1), trace, label=label, **line_kwargs)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("EM iteration")
    what = "mean log-posterior" if gm.prior is not None else "mean log-likelihood"
    ax.set_ylabel(f"{what} per sample")
    if label is None:
        ax.set_title(f"EM {'converged' if gm.converged_ else 'did not converge'} in "
                     f"{gm.n_iter_} iterations")
    else:
        ax.set_title("EM objective per iteration")
        ax.legend(fontsize="small")
    return ax


def plot_criterion(selection, *, ax=None, criterion=None):
    """Selection criterion (BIC / AIC / ICL / LOOIC) against K, one line per covariance type.

    selection: a :class:`bgmm.selection.SelectionResult` from :func:`bgmm.select`;
    criterion: the column to draw (default: the one that chose ``best_``). Open markers:
    degenerate or non-converged fits; star: the chosen model.
    """
    return selection.plot(ax=_axes(ax), criterion=criterion)


def _entropy(resp):
    r = np.clip(np.asarray(resp, np.float64), 1e-300, 1.0)
    return -np.sum(np.where(resp > 0, r * np.log(r), 0.0), axis=1)


def plot_assignment_uncertainty(gm, X, *, ax=None, features=(0, 1), feature_names=None,
                                kind="entropy", posterior=None, ellipses=True, cmap="viridis",
                                title=None):
    """Points coloured by how uncertain their cluster membership is.

    kind: ``"entropy"`` (of the responsibilities, in nats; 0 = certain, log K = uniform),
    ``"max_prob"`` (1 - the largest responsibility) or, with ``posterior`` (a DataTree from
    :meth:`bgmm.GaussianMixture.sample_posterior`, whose ``responsibilities`` group is used
    and whose observations must be the rows of ``X``), ``"interval"`` (the widest posterior
    credible interval of a membership probability). With ``posterior`` the responsibilities
    are the posterior membership probabilities, otherwise EM's. Returns the Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    kinds = ("entropy", "max_prob", "interval")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {kind!r}")
    if kind == "interval" and posterior is None:
        raise ValueError("kind='interval' needs posterior= (a DataTree from sample_posterior)")
    ax = _axes(ax)
    X_in = X
    X = np.asarray(X, np.float64)
    i, j = features
    names = _feature_names(gm, feature_names)
    if posterior is not None:
        r = posterior["responsibilities"]
        resp = np.asarray(r["mean"].values, np.float64)
        if resp.shape[0] != X.shape[0]:
            raise ValueError(f"posterior has {resp.shape[0]} observations, X has {X.shape[0]} rows")
        source = "posterior"
    else:
        resp = gm.predict_proba(X_in)
        source = "EM"
    k = resp.shape[1]
    if kind == "entropy":
        value, vmax = _entropy(resp), np.log(k)
        label = f"entropy of {source} membership probabilities (nats)"
    elif kind == "max_prob":
        value, vmax = 1.0 - resp.max(1), 1.0 - 1.0 / k
        label = f"1 - largest {source} membership probability"
    else:
        width = np.asarray(r["upper"].values - r["lower"].values, np.float64)
        value, vmax = width.max(1), 1.0
        ci = float(r.attrs.get("ci_prob", posterior.attrs.get("ci_prob", 0.94)))
        label = f"width of the {ci:.0%} posterior interval of membership"
    order = np.argsort(value)  # most uncertain points drawn last, on top
    sc = ax.scatter(X[order, i], X[order, j], c=value[order], cmap=cmap, vmin=0.0, vmax=vmax,
                    s=16, edgecolors="none")
    plt.colorbar(sc, ax=ax, label=label, shrink=0.9)
    if ellipses:
        means = np.asarray(gm.means_, np.float64)[:, [i, j]]
        covs = _full_covariances(gm)[:, [i, j]][:, :, [i, j]]
        for m, c in zip(means, covs):
            vals, vecs = np.linalg.eigh(c)
            angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
            ax.add_patch(Ellipse(m, 4 * np.sqrt(vals[1]), 4 * np.sqrt(vals[0]), angle=angle,
                                 fill=False, lw=1.2, ls="--", color="0.3"))
        ax.plot([], [], ls="--", color="0.3", label="2 sd ellipse (EM)")
        ax.legend(loc="best", fontsize="small", framealpha=0.8)
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    ax.set_title(title or "Uncertainty of cluster membership")
    return ax


def plot_membership_intervals(posterior, observations, *, ax=None, component=0, labels=None):
    """Posterior membership probability of chosen observations with credible intervals.

    posterior: DataTree from :meth:`bgmm.GaussianMixture.sample_posterior`; observations:
    indices of rows of the data; component: which component's probability to show. The EM
    responsibility is marked beside each interval. Returns the Axes.
    """
    ax = _axes(ax)
    r = posterior["responsibilities"]
    obs = np.asarray(observations, int)
    mean = r["mean"].values[obs, component]
    lo = r["lower"].values[obs, component]
    hi = r["upper"].values[obs, component]
    em = r["em"].values[obs, component]
    y = np.arange(len(obs))[::-1]
    ci = float(r.attrs.get("ci_prob", 0.94))
    ax.hlines(y, lo, hi, color="C0", lw=2, label=f"posterior {ci:.0%} interval")
    ax.plot(mean, y, "o", color="C0", label="posterior mean")
    ax.plot(em, y, "D", color="C3", ms=5, label="EM responsibility")
    ax.set_yticks(y)
    ax.set_yticklabels(labels if labels is not None else [f"obs {o}" for o in obs])
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel(f"probability of membership in component {component}")
    ax.legend(loc="best", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_forest(posterior, **kwargs):
    """EM estimate against posterior intervals; see :func:`bgmm.inference.plot_forest`."""
    from .inference import plot_forest as _pf

    return _pf(posterior, **kwargs)


def plot_ppc(posterior, **kwargs):
    """Posterior predictive check; see :func:`bgmm.inference.plot_ppc`."""
    from .inference import plot_ppc as _pp

    return _pp(posterior, **kwargs)


def plot_em_vs_posterior(posterior, *, var_names=("weights", "means"), ax=None, ci_prob=None):
    """EM estimate against the posterior, one row (with its own x scale) per scalar parameter.

    Each row: posterior ``ci_prob`` interval (line) and mean (dot), the EM estimate (red
    diamond) and, when the tree has a ``laplace`` group, the Laplace interval (grey, below).
    Own x scales keep every interval readable when parameters differ in size (a common
    axis shrinks the interval of a small mean next to a large one to a point).

    posterior: DataTree from :meth:`bgmm.GaussianMixture.sample_posterior`; ax: None or a
    sequence of one Axes per row. Returns the array of Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .inference import compare_em_mcmc

    table = compare_em_mcmc(posterior, var_names=var_names, ci_prob=ci_prob)
    ci = table.attrs["ci_prob"]
    n = len(table)
    if ax is None:
        fig, axes = plt.subplots(n, 1, figsize=(7.5, 0.5 * n + 1.2), layout="constrained")
        axes = np.atleast_1d(axes)
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
        if len(axes) != n:
            raise ValueError(f"ax must hold {n} Axes (one per parameter), got {len(axes)}")
        fig = axes[0].figure
    lap = "laplace_ci_lower" in table
    for a, (name, row) in zip(axes, table.iterrows()):
        a.plot([row.ci_lower, row.ci_upper], [0, 0], color="C0", lw=2, solid_capstyle="butt")
        a.plot(row["mean"], 0, "o", color="C0", ms=5)
        a.plot(row.em, 0, "D", color="C3", ms=6, zorder=4)
        if lap:
            a.plot([row.laplace_ci_lower, row.laplace_ci_upper], [-0.5, -0.5], color="0.55",
                   lw=2, solid_capstyle="butt")
        a.set_ylim(-1, 0.6)
        a.set_yticks([])
        a.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        a.tick_params(axis="x", labelsize=8)
        for side in ("top", "right", "left"):
            a.spines[side].set_visible(False)
    axes[-1].set_xlabel("parameter value (data units; each row has its own scale)")
    handles = [Line2D([], [], color="C0", lw=2, marker="o", label=f"posterior mean, {ci:.0%} interval"),
               Line2D([], [], marker="D", color="C3", ls="", label="EM estimate")]
    if lap:
        handles.append(Line2D([], [], color="0.55", lw=2, label=f"Laplace {ci:.0%} interval"))
    if ax is None:
        fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=9)
    return axes

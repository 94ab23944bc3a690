"""ArviZ 1.x results of the posterior: DataTree building, EM vs MCMC comparison, plots.

The ``xarray.DataTree`` made by :func:`bgmm.mcmc.run_nuts` holds both fits of the one
model. Groups and dimensions:

=========================== ===============================================================
group                       variables (dims)
=========================== ===============================================================
posterior                   weights (chain, draw, component), means (.., component, feature),
                            covariances (.., component, feature, feature2) for ``full``;
                            (feature, feature2) tied; (component, feature) diag;
                            (component,) spherical. Data units, relabelled to the EM labels.
sample_stats                diverging, energy, lp, n_steps, tree_depth, acceptance_rate,
                            step_size (chain, draw)
log_likelihood              x (chain, draw, observation): log p(x_n | theta), data units
posterior_predictive        x (chain, draw, observation, feature)
observed_data               x (observation, feature)
em_estimate                 weights, means, covariances of the EM fit (no sample dims)
laplace                     draws (chain=1, draw) of the Laplace approximation
responsibilities            mean, sd, lower, upper, em (observation, component)
prior_hyperparameters       weight_concentration, mean, mean_precision, dof, scale
=========================== ===============================================================
"""

from __future__ import annotations

import datetime
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from . import covariance as cov

SAMPLE_DIMS = ("chain", "draw")
PARAMS = ("weights", "means", "covariances")


def cov_dims(covariance_type: str) -> list[str]:
    """Dimension names of ``covariances`` for a covariance type (without sample dims)."""
    return {"full": ["component", "feature", "feature2"], "tied": ["feature", "feature2"],
            "diag": ["component", "feature"], "spherical": ["component"]}[covariance_type]


PARAM_DIMS = {"weights": ["component"], "means": ["component", "feature"]}


def _param_dims(name, ct):
    return cov_dims(ct) if name == "covariances" else PARAM_DIMS[name]


def build_datatree(*, x, draws, stats, loglik, ppc, em, prior, laplace, covariance_type,
                   feature_names, attrs, sample_weight=None, responsibilities=True,
                   ci_prob=0.94, dtype="float64") -> xr.DataTree:
    """Assemble the DataTree of a NUTS run (arrays in data units, see the module docstring)."""
    import arviz as az
    import numpyro

    ct = covariance_type
    n, d = x.shape
    k = draws["weights"].shape[-1]
    c, s = draws["weights"].shape[:2]
    coords = {"chain": np.arange(c), "draw": np.arange(s), "component": np.arange(k),
              "feature": list(feature_names), "feature2": list(feature_names),
              "observation": np.arange(n)}

    def dataset(values: dict, dims_of, sample=True, group_attrs=None, override=None):
        out = {}
        cd = {**coords, **(override or {})}
        for name, v in values.items():
            dims = (list(SAMPLE_DIMS) if sample else []) + dims_of(name)
            out[name] = xr.DataArray(np.asarray(v), dims=dims, coords={dm: cd[dm] for dm in dims})
        return xr.Dataset(out, attrs=group_attrs or {})

    base_attrs = {"created_at": datetime.datetime.now(datetime.UTC).isoformat(),
                  "arviz_version": az.__version__, "inference_library": "numpyro",
                  "inference_library_version": numpyro.__version__, "creation_library": "bgmm"}
    groups = {}
    groups["posterior"] = dataset({p: draws[p] for p in PARAMS}, lambda p: _param_dims(p, ct),
                                  group_attrs=base_attrs)
    groups["sample_stats"] = dataset(stats, lambda _: [], group_attrs=base_attrs)
    if loglik is not None:
        groups["log_likelihood"] = dataset({"x": loglik}, lambda _: ["observation"],
                                           group_attrs=base_attrs)
    if ppc is not None:
        groups["posterior_predictive"] = dataset({"x": ppc}, lambda _: ["observation", "feature"],
                                                 group_attrs=base_attrs)
    obs = {"x": x} if sample_weight is None else {"x": x, "sample_weight": sample_weight}
    groups["observed_data"] = dataset(
        obs, lambda nm: ["observation", "feature"] if nm == "x" else ["observation"],
        sample=False, group_attrs=base_attrs)
    em_vals = {"weights": em.weights, "means": em.means, "covariances": em.covariances}
    em_attrs = {key: attrs[key] for key in attrs if key.startswith("em_")}
    groups["em_estimate"] = dataset(em_vals, lambda p: _param_dims(p, ct), sample=False,
                                    group_attrs=em_attrs)
    if laplace is not None:
        ld = laplace["draws"]
        lds = {p: ld[p] for p in PARAMS}
        nl = ld["weights"].shape[1]
        lcoords = {"chain": [0], "draw": np.arange(nl)}
        ds = dataset(lds, lambda p: _param_dims(p, ct), override=lcoords, group_attrs={
            "method": "Gaussian in NumPyro's unconstrained space at its mode (Newton from the "
                      "EM solution; potential energy incl. log-Jacobian), mapped back",
            "min_hessian_eigenvalue": laplace["min_hessian_eigenvalue"]})
        groups["laplace"] = ds
    hp = {"weight_concentration": prior.weight_concentration, "mean": prior.mean,
          "mean_precision": prior.mean_precision, "dof": prior.dof, "scale": prior.scale}
    hp_dims = {"weight_concentration": ["component"], "mean": ["feature"],
               "mean_precision": [], "dof": [],
               "scale": {"full": ["feature", "feature2"], "tied": ["feature", "feature2"],
                         "diag": ["feature"], "spherical": []}[ct]}
    groups["prior_hyperparameters"] = dataset(
        hp, lambda nm: hp_dims[nm], sample=False,
        group_attrs={"units": "data", "source": attrs.get("prior_source", "")})
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update(_netcdf_safe(attrs))
    tree.attrs["ci_prob"] = float(ci_prob)
    if responsibilities:
        tree["responsibilities"] = posterior_responsibilities(tree, ci_prob=ci_prob, dtype=dtype)
    return tree


def _netcdf_safe(attrs: dict) -> dict:
    """Attributes netCDF can store: booleans as 0 / 1, None as "None". Lists stay lists
    (an empty one is falsy, as users test it); :func:`restore_list_attrs` undoes netCDF's
    reading them back as arrays, or a one-string list as the string."""
    out = {}
    for key, v in attrs.items():
        if isinstance(v, bool | np.bool_):
            v = int(v)
        elif v is None:
            v = "None"
        out[key] = v
    return out


# the per-chain / per-parameter diagnostics in a posterior's attrs (bgmm.mcmc)
LIST_ATTRS = ("n_divergent_per_chain", "permuted_fraction_per_chain", "switched_chains",
              "off_mode_chains", "off_mode_max_deviation_sd", "stuck_chains",
              "mean_acceptance_per_chain", "far_from_em")


def restore_list_attrs(tree):
    """The list-valued diagnostics of ``tree.attrs`` as Python lists again, after a
    netCDF round trip (which reads them as arrays, and a one-string list as a string)."""
    for key in LIST_ATTRS:
        if key in tree.attrs:
            v = tree.attrs[key]
            tree.attrs[key] = ([v] if isinstance(v, str) else np.atleast_1d(v).tolist())
    return tree


# --------------------------------------------------------------------------------------
# posterior of the assignments


def posterior_responsibilities(tree: xr.DataTree, X=None, *, ci_prob: float = 0.94,
                               dtype: str = "float64", max_draws: int | None = None):
    """Posterior of the component memberships: ``predict_proba`` with uncertainty.

    For each observation n and component k, over the posterior draws theta_s,
    ``gamma_nk(theta_s) = p(z_n = k | x_n, theta_s)``; returns an ``xarray.Dataset``
    (observation, component) with ``mean`` (the posterior probability of membership,
    ``p(z_n = k | x)``), ``sd``, ``lower`` and ``upper`` (equal-tailed ``ci_prob``
    interval of ``gamma_nk``) and ``em`` (the EM responsibilities).

    Parameters
    ----------
    tree : a DataTree from :func:`bgmm.mcmc.run_nuts`.
    X : (n_samples, n_features) points to assign; default the observed data.
    ci_prob : probability of the interval, in (0, 1).
    max_draws : use at most this many draws (evenly thinned), to bound time and memory.
    """
    from ._shell import precision_scope
    from .params import GMMParams

    if not (0.0 < ci_prob < 1.0):
        raise ValueError(f"ci_prob must lie in (0, 1), got {ci_prob!r}")
    ct = str(tree.attrs["covariance_type"])
    post = tree["posterior"].to_dataset()
    x = np.asarray(tree["observed_data"]["x"].values if X is None else X, np.float64)
    d = post.sizes["feature"]
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"X must have shape (n_samples, {d}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("X must be finite")
    stacked = post.stack(sample=SAMPLE_DIMS).transpose("sample", ...)
    m = stacked.sizes["sample"]
    sel = np.arange(m) if max_draws is None or max_draws >= m else \
        np.linspace(0, m - 1, max_draws).round().astype(int)
    # standardise with the run's centre and scale: the same conditioning NUTS had
    center = np.asarray(tree.attrs.get("standardizer_center", np.zeros(d)), np.float64)
    scale = np.asarray(tree.attrs.get("standardizer_scale", np.ones(d)), np.float64)
    w = stacked["weights"].values[sel]
    mu = (stacked["means"].values[sel] - center) / scale
    cs = _cov_scale(scale, ct)
    cv = stacked["covariances"].values[sel] / cs
    em = tree["em_estimate"].to_dataset()
    q = [(1 - ci_prob) / 2, (1 + ci_prob) / 2]
    with precision_scope(dtype):
        dt = jnp.dtype(dtype)
        xs = jnp.asarray((x - center) / scale, dt)
        pc = jax.vmap(lambda c_: cov.precision_cholesky(c_, ct))(jnp.asarray(cv, dt))
        params = GMMParams(jnp.asarray(w, dt), jnp.asarray(mu, dt), jnp.asarray(cv, dt), pc)
        # observation chunks bound the (draws, chunk, K) intermediate
        k = w.shape[-1]
        chunk = max(1, int(2e7 // max(1, len(sel) * k)))
        parts = [_resp_summary(xs[i:i + chunk], params, ct, jnp.asarray(q, dt))
                 for i in range(0, x.shape[0], chunk)]
        mean, sd, lo, hi = (np.concatenate([np.asarray(p[j]) for p in parts]) for j in range(4))
        em_p = GMMParams(jnp.asarray(em["weights"].values, dt),
                         jnp.asarray((em["means"].values - center) / scale, dt),
                         jnp.asarray(em["covariances"].values / cs, dt),
                         cov.precision_cholesky(jnp.asarray(em["covariances"].values / cs, dt), ct))
        em_r = np.asarray(_resp(xs, em_p, ct))
    dims = ["observation", "component"]
    crd = {"observation": np.arange(x.shape[0]), "component": post["component"].values}
    ds = xr.Dataset({nm: xr.DataArray(v.astype(np.float64), dims=dims, coords=crd)
                     for nm, v in [("mean", mean), ("sd", sd), ("lower", lo), ("upper", hi),
                                   ("em", em_r)]})
    ds.attrs.update(ci_prob=float(ci_prob), n_draws=int(len(sel)),
                    description="p(z_n = k | x_n, theta) over posterior draws: mean = posterior "
                                "membership probability; lower/upper equal-tailed interval")
    return ds


def _resp(xs, params, ct):
    from .params import weighted_log_prob

    wlp = weighted_log_prob(xs, params, ct)
    return jax.nn.softmax(wlp, axis=-1)


@partial(jax.jit, static_argnames=("ct",))
def _resp_summary(xs, params, ct, q):
    """Mean, sd and the q-quantiles over draws of the responsibilities, each (n, K)."""
    r = jax.vmap(lambda p: _resp(xs, p, ct))(params)  # (S, n, K)
    return r.mean(0), r.std(0), jnp.quantile(r, q[0], axis=0), jnp.quantile(r, q[1], axis=0)


def _cov_scale(s, ct):
    if ct in ("full", "tied"):
        return np.outer(s, s)
    return s**2 if ct == "diag" else s[0] ** 2


# --------------------------------------------------------------------------------------
# EM vs MCMC (vs Laplace) table


def _scalar_index(name, ds, ct):
    """(label, selection dict) for each scalar of a parameter; covariances: upper triangle."""
    da = ds[name]
    dims = [dm for dm in da.dims if dm not in SAMPLE_DIMS]
    out = []
    for idx in np.ndindex(*[da.sizes[dm] for dm in dims]):
        sel = {dm: i for dm, i in zip(dims, idx)}
        if "feature2" in sel and sel["feature2"] < sel["feature"]:
            continue
        labels = [str(da[dm].values[i]) for dm, i in zip(dims, idx)]
        out.append((f"{name}[{', '.join(labels)}]" if labels else name, sel))
    return out


def compare_em_mcmc(tree: xr.DataTree, *, var_names=PARAMS, ci_prob: float | None = None):
    """One row per scalar parameter: the EM estimate beside the posterior (and Laplace).

    Columns: ``em``; posterior ``mean``, ``sd``, ``ci_lower``, ``ci_upper`` (equal-tailed
    ``ci_prob`` interval), ``r_hat`` (rank-normalised), ``ess_bulk``, ``ess_tail``;
    ``em_in_ci`` (EM value inside the interval), ``em_z`` ((em - mean) / sd); and, when
    the tree has a ``laplace`` group, ``laplace_sd``, ``laplace_ci_lower``,
    ``laplace_ci_upper`` (the Laplace approximation is centred at the mode, so its
    centre is the EM column up to the Newton refinement and the change of variables).
    Covariance matrices contribute their upper triangle. ``ci_prob`` defaults to the tree's.
    """
    import arviz as az

    if ci_prob is None:
        ci_prob = float(tree.attrs.get("ci_prob", 0.94))
    if not (0.0 < ci_prob < 1.0):
        raise ValueError(f"ci_prob must lie in (0, 1), got {ci_prob!r}")
    var_names = [var_names] if isinstance(var_names, str) else list(var_names)
    post = tree["posterior"].to_dataset()
    bad = [v for v in var_names if v not in post]
    if bad:
        raise ValueError(f"var_names {bad} not in the posterior (has {list(post.data_vars)})")
    ct = str(tree.attrs["covariance_type"])
    em = tree["em_estimate"].to_dataset()
    rhat = az.rhat(post[var_names])
    ess_b = az.ess(post[var_names], method="bulk")
    ess_t = az.ess(post[var_names], method="tail")
    lap = tree["laplace"].to_dataset() if "laplace" in tree.children else None
    q = [(1 - ci_prob) / 2, (1 + ci_prob) / 2]
    rows, index = [], []
    for name in var_names:
        for label, sel in _scalar_index(name, post, ct):
            v = post[name].isel(sel).values.reshape(-1)
            lo, hi = np.quantile(v, q)
            e = float(em[name].isel(sel).values)
            mean, sd = float(v.mean()), float(v.std(ddof=1))
            row = {"em": e, "mean": mean, "sd": sd, "ci_lower": lo, "ci_upper": hi,
                   "r_hat": float(rhat[name].isel(sel).values),
                   "ess_bulk": float(ess_b[name].isel(sel).values),
                   "ess_tail": float(ess_t[name].isel(sel).values),
                   "em_in_ci": bool(lo <= e <= hi),
                   "em_z": (e - mean) / sd if sd > 0 else np.nan}
            if lap is not None:
                lv = lap[name].isel(sel).values.reshape(-1)
                llo, lhi = np.quantile(lv, q)
                row.update(laplace_mean=float(lv.mean()), laplace_sd=float(lv.std(ddof=1)),
                           laplace_ci_lower=llo, laplace_ci_upper=lhi)
            rows.append(row)
            index.append(label)
    df = pd.DataFrame(rows, index=pd.Index(index, name="parameter"))
    df.attrs["ci_prob"] = ci_prob
    return df


# --------------------------------------------------------------------------------------
# plots (matplotlib)


def plot_trace(tree: xr.DataTree, *, var_names=("weights", "means"), **kwargs):
    """Trace plot of the relabelled draws (arviz-plots); returns the ``PlotCollection``.

    ``pc.viz["figure"]`` / ``pc.savefig(path)`` give the figure; extra keyword arguments
    go to :func:`arviz.plot_trace`.
    """
    import arviz as az

    kwargs.setdefault("backend", "matplotlib")
    return _roomy(az.plot_trace(tree, var_names=list(var_names), **kwargs))


def plot_rank(tree: xr.DataTree, *, var_names=("weights", "means"), **kwargs):
    """Rank (fractional-rank ECDF) plot per chain (arviz-plots); returns the ``PlotCollection``.

    Uniform ranks across chains mean the chains sample the same distribution.
    """
    import arviz as az

    kwargs.setdefault("backend", "matplotlib")
    return _roomy(az.plot_rank(tree, var_names=list(var_names), **kwargs))


def _roomy(pc):
    """Give arviz-plots' grid room for its two-line titles (they overlap the x labels)."""
    try:
        fig = pc.viz["figure"].item()
        axes = [a for a in fig.axes if a.get_visible()]
        rows = len({round(a.get_position().y0, 3) for a in axes})
        cols = len({round(a.get_position().x0, 3) for a in axes})
        fig.set_size_inches(max(6.0, 3.0 * cols), 2.6 * rows)
        fig.tight_layout()
    except Exception:  # a non-matplotlib backend: leave its layout alone
        pass
    return pc


def _panels(tree, var_names):
    """Group the scalars into panels with a common scale: weights; means per feature;
    covariances per (feature, feature2)."""
    post = tree["posterior"].to_dataset()
    ct = str(tree.attrs["covariance_type"])
    panels = {}
    for name in var_names:
        for label, sel in _scalar_index(name, post, ct):
            key = (name,) + tuple((dm, i) for dm, i in sel.items() if dm in ("feature", "feature2"))
            panels.setdefault(key, []).append((label, sel))
    return panels


def _panel_title(key, post):
    name, rest = key[0], key[1:]
    if not rest:
        return name
    labels = [str(post[dm].values[i]) for dm, i in rest]
    return f"{name} [{', '.join(labels)}]"


def plot_forest(tree: xr.DataTree, *, var_names=("weights", "means"), ci_prob=None,
                ax=None, laplace=True):
    """Forest plot: posterior intervals per parameter with the EM estimate marked.

    One panel per group of comparable scale (weights; means of each feature; each
    covariance entry type). Per component: the posterior median, a thick 50% and a thin
    ``ci_prob`` interval; the EM estimate (red diamond); the Laplace interval (grey,
    below) when the tree has one. ``ax``: None (a new figure) or a sequence of as many
    Axes as panels (one Axes if there is one panel). Returns ``(fig, axes)``.
    """

    if ci_prob is None:
        ci_prob = float(tree.attrs.get("ci_prob", 0.94))
    post = tree["posterior"].to_dataset()
    em = tree["em_estimate"].to_dataset()
    lap = tree["laplace"].to_dataset() if laplace and "laplace" in tree.children else None
    panels = _panels(tree, [var_names] if isinstance(var_names, str) else var_names)
    n_rows = max(len(items) for items in panels.values())
    axes = _get_axes(ax, len(panels), sharey=False, width=3.4, height=max(2.5, 0.45 * n_rows + 1.2))
    q = [(1 - ci_prob) / 2, 0.25, 0.5, 0.75, (1 + ci_prob) / 2]
    for a, (key, items) in zip(axes, panels.items()):
        name = key[0]
        ys = np.arange(len(items))[::-1].astype(float)
        labels = []
        for y, (_, sel) in zip(ys, items):
            v = post[name].isel(sel).values.reshape(-1)
            lo, q1, med, q3, hi = np.quantile(v, q)
            a.plot([lo, hi], [y, y], color="C0", lw=1.2, solid_capstyle="butt")
            a.plot([q1, q3], [y, y], color="C0", lw=4, solid_capstyle="butt")
            a.plot(med, y, "o", color="white", mec="C0", ms=5, zorder=3)
            a.plot(float(em[name].isel(sel).values), y, "D", color="C3", ms=5, zorder=4)
            if lap is not None:
                lv = lap[name].isel(sel).values.reshape(-1)
                llo, lhi = np.quantile(lv, [q[0], q[-1]])
                a.plot([llo, lhi], [y - 0.28, y - 0.28], color="0.55", lw=1.2)
            labels.append(", ".join(str(post[dm].values[i]) for dm, i in sel.items()
                                    if dm not in ("feature", "feature2")) or name)
        a.set_yticks(ys)
        a.set_yticklabels([f"k={lb}" if name != "covariances" or len(sel) > 2 else lb
                           for lb in labels])
        a.set_ylim(-0.8, len(items) - 0.4)
        a.set_title(_panel_title(key, post), fontsize=10)
        a.grid(axis="x", alpha=0.3)
        a.tick_params(labelsize=8)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="C0", lw=4, label="posterior 50%"),
               Line2D([], [], color="C0", lw=1.2, label=f"posterior {ci_prob:.0%}"),
               Line2D([], [], marker="D", color="C3", ls="", label="EM")]
    if lap is not None:
        handles.append(Line2D([], [], color="0.55", lw=1.2, label=f"Laplace {ci_prob:.0%}"))
    fig = axes[0].figure
    if ax is None:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
                   fontsize=8, bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    else:
        axes[-1].legend(handles=handles, fontsize=7, loc="best")
    return fig, np.asarray(axes)


def plot_ppc(tree: xr.DataTree, *, num_draws: int = 50, ax=None, bins: int = 30,
             grid_size: int = 200, seed: int = 0):
    """Posterior predictive density over the data, one panel per feature (+ joint for D=2).

    Each panel: a histogram of the observed feature (density scale); the exact marginal
    mixture density of ``num_draws`` posterior draws (thin); the posterior predictive
    density (their average over all draws used, thick) and the EM density (dashed). With
    two features a last panel shows the data over contours of the posterior predictive
    density. ``ax``: None or a sequence of Axes (D, or D + 1 when D = 2). Returns
    ``(fig, axes)``.
    """
    from scipy.stats import norm

    post = tree["posterior"].to_dataset()
    ct = str(tree.attrs["covariance_type"])
    x = np.asarray(tree["observed_data"]["x"].values, np.float64)
    n, d = x.shape
    names = [str(f) for f in post["feature"].values]
    stacked = post.stack(sample=SAMPLE_DIMS).transpose("sample", ...)
    m = stacked.sizes["sample"]
    rng = np.random.default_rng(seed)
    n_avg = min(m, 1000)
    avg_idx = rng.choice(m, n_avg, replace=False)
    thin_idx = avg_idx[:min(num_draws, n_avg)]
    w_all = stacked["weights"].values
    mu_all = stacked["means"].values
    k = w_all.shape[-1]
    full_all = _to_full_np(stacked["covariances"].values, ct, k, d)
    em = tree["em_estimate"].to_dataset()
    em_full = _to_full_np(em["covariances"].values[None], ct, k, d)[0]
    n_panels = d + (1 if d == 2 else 0)
    axes = _get_axes(ax, n_panels, sharey=False, width=4.0, height=3.4, vertical=False)
    for j in range(d):
        a = axes[j]
        lo, hi = x[:, j].min(), x[:, j].max()
        pad = 0.1 * (hi - lo)
        g = np.linspace(lo - pad, hi + pad, grid_size)
        sd = np.sqrt(full_all[:, :, j, j])
        dens = np.einsum("sk,skg->sg", w_all[avg_idx],
                         norm.pdf(g[None, None, :], mu_all[avg_idx, :, j, None],
                                  sd[avg_idx, :, None]))
        a.hist(x[:, j], bins=bins, density=True, color="0.82", edgecolor="white",
               label="data")
        for i in range(len(thin_idx)):
            a.plot(g, dens[i], color="C0", alpha=0.12, lw=0.8,
                   label="posterior draws" if i == 0 else None)
        a.plot(g, dens.mean(0), color="C0", lw=2, label="posterior predictive")
        em_d = np.sum(em["weights"].values[:, None]
                      * norm.pdf(g[None, :], em["means"].values[:, j, None],
                                 np.sqrt(em_full[:, j, j])[:, None]), axis=0)
        a.plot(g, em_d, color="C3", ls="--", lw=1.5, label="EM")
        a.set_xlabel(names[j])
        a.set_ylabel("density")
        if j == 0:
            a.legend(fontsize=8, frameon=False)
    if d == 2:
        a = axes[2]
        gx = np.linspace(x[:, 0].min(), x[:, 0].max(), 120)
        gy = np.linspace(x[:, 1].min(), x[:, 1].max(), 120)
        px, py = np.meshgrid(gx, gy)
        pts = np.stack([px.ravel(), py.ravel()], -1)
        sub = avg_idx[:200]
        dens = np.zeros(pts.shape[0])
        for s in sub:
            for c in range(k):
                dens += w_all[s, c] * _mvn_pdf(pts, mu_all[s, c], full_all[s, c])
        dens /= len(sub)
        a.contour(px, py, dens.reshape(px.shape), levels=8, cmap="Blues")
        a.scatter(x[:, 0], x[:, 1], s=6, color="0.3", alpha=0.6)
        a.plot(em["means"].values[:, 0], em["means"].values[:, 1], "D", color="C3", ms=6,
               label="EM means")
        a.set_xlabel(names[0])
        a.set_ylabel(names[1])
        a.set_title("posterior predictive density", fontsize=10)
        a.legend(fontsize=8, frameon=False)
    fig = axes[0].figure
    if ax is None:
        fig.tight_layout()
    return fig, np.asarray(axes)


def _mvn_pdf(pts, mu, c):
    diff = pts - mu
    sol = np.linalg.solve(c, diff.T).T
    return np.exp(-0.5 * np.sum(diff * sol, -1)) / np.sqrt(np.linalg.det(2 * np.pi * c))


def _to_full_np(c, ct, k, d):
    s = c.shape[0]
    if ct == "full":
        return c
    if ct == "tied":
        return np.broadcast_to(c[:, None], (s, k, d, d))
    eye = np.eye(d)
    if ct == "diag":
        return c[..., None] * eye
    return c[..., None, None] * eye


def _get_axes(ax, n, *, sharey, width, height, vertical=False):
    import matplotlib.pyplot as plt

    if ax is None:
        if vertical:
            fig, axes = plt.subplots(n, 1, figsize=(width, height * n), squeeze=False)
        else:
            fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False,
                                     sharey=sharey)
        return list(axes.ravel())
    axes = list(np.atleast_1d(ax).ravel())
    if len(axes) != n:
        raise ValueError(f"ax must hold {n} Axes for this plot, got {len(axes)}")
    return axes


__all__ = ["build_datatree", "compare_em_mcmc", "posterior_responsibilities", "plot_trace",
           "plot_rank", "plot_forest", "plot_ppc", "cov_dims"]

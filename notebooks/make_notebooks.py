"""Write the three example notebooks (outputs stripped). Run: python notebooks/make_notebooks.py

Every notebook reads ``BGMM_FAST`` (set by the test suite): fewer draws, smaller grids.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """%matplotlib inline
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd  # noqa: F401
from IPython.display import display

# NumPyro's progress bar imports tqdm.auto, which warns when ipywidgets is not installed
warnings.filterwarnings("ignore", message="IProgress not found")

import bgmm  # noqa: E402
from bgmm import plotting  # noqa: E402

FAST = os.environ.get("BGMM_FAST", "0") not in ("", "0")  # the test suite sets BGMM_FAST=1
FIG_DIR = os.environ.get("BGMM_FIG_DIR")  # optional: also write every figure as PNG


def show(fig, name):
    # embed the figure in the cell's output whatever the backend and whether pyplot
    # manages it (arviz-plots' figures); optionally also save FIG_DIR/name.png
    if FIG_DIR:
        os.makedirs(FIG_DIR, exist_ok=True)
        fig.savefig(os.path.join(FIG_DIR, name + ".png"), dpi=110, bbox_inches="tight")
    display(fig)
    plt.close(fig)


plt.rcParams.update({"figure.dpi": 100, "axes.grid": False})
print("fast mode" if FAST else "full mode")"""


def nb(cells):
    out = new_notebook()
    out.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                  "language": "python"}
    out.cells = [new_markdown_cell(c[3:]) if c.startswith("md:") else new_code_cell(c)
                 for c in cells]
    for i, cell in enumerate(out.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating gives no spurious diff
    return out


QUICKSTART = [
    "md:# bgmm quickstart: Old Faithful\n\n"
    "Fit a Gaussian mixture by EM, look at the clusters, the soft assignments "
    "(responsibilities), the density and the component ellipses; draw new data from the "
    "fit; check EM's objective per iteration; and do the same for one-dimensional data.",
    SETUP,
    "md:## The data\n272 eruptions of the Old Faithful geyser: eruption duration and waiting "
    "time to the next eruption, both in minutes.",
    """faithful = bgmm.load_faithful(as_frame=True)
faithful.describe().round(2)""",
    "md:## Fit\nTwo components with full covariance matrices, maximum likelihood, five "
    "EM restarts (all run in one compiled, vectorised call).",
    """gm = bgmm.GaussianMixture(n_components=2, covariance_type="full", n_init=5, random_state=0)
gm.fit(faithful)
print(f"converged: {gm.converged_} after {gm.n_iter_} iterations; "
      f"mean log-likelihood {gm.score(faithful):.4f}; BIC {gm.bic(faithful):.1f}")
pd.DataFrame({"weight": gm.weights_,
              "mean eruptions": gm.means_[:, 0], "mean waiting": gm.means_[:, 1],
              "sd eruptions": np.sqrt(gm.covariances_[:, 0, 0]),
              "sd waiting": np.sqrt(gm.covariances_[:, 1, 1]),
              "correlation": gm.covariances_[:, 0, 1]
              / np.sqrt(gm.covariances_[:, 0, 0] * gm.covariances_[:, 1, 1])}).round(3)""",
    "md:## Clusters, soft assignments, density contours and ellipses\n"
    "Points are coloured by their most probable component; pale points have a small "
    "largest responsibility. Grey lines: contours of the fitted density; coloured "
    "ellipses: 1 and 2 standard deviations of each component.",
    """labels = ["eruption duration (min)", "waiting time to next eruption (min)"]
fig, ax = plt.subplots(figsize=(9.5, 5), layout="constrained")
plotting.plot_mixture(gm, faithful, ax=ax, feature_names=labels,
                      title="Old Faithful: 2-component full-covariance mixture (EM)")
show(fig, "01_mixture")""",
    "md:The responsibilities $p(z_n = k \\mid x_n)$ themselves. Most eruptions belong "
    "clearly to one cluster; the few between the clusters do not.",
    """resp = gm.predict_proba(faithful)
table = faithful.assign(p_component_0=resp[:, 0], p_component_1=resp[:, 1])
uncertain = np.argsort(np.abs(resp[:, 0] - 0.5))[:5]
print("Five eruptions with the least certain assignment:")
table.iloc[uncertain].round(3)""",
    """fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
plotting.plot_assignment_uncertainty(gm, faithful, ax=axes[0], feature_names=labels,
                                     kind="entropy")
k_short = int(np.argmin(gm.means_[:, 0]))  # the component of short eruptions
axes[1].scatter(faithful["eruptions"], resp[:, k_short], c=[f"C{k}" for k in resp.argmax(1)],
                s=14, alpha=0.7)
axes[1].axhline(0.5, color="0.5", lw=0.8, ls=":")
axes[1].set_xlabel(labels[0])
axes[1].set_ylabel(f"responsibility of component {k_short} (short eruptions)")
axes[1].set_ylim(-0.03, 1.03)
axes[1].set_title("Membership switches within a narrow band of durations")
show(fig, "01_uncertainty")""",
    "md:## New data from the fitted model\n`sample` returns draws and their components.",
    """Xs, zs = gm.sample(500)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True, sharey=True, layout="constrained")
axes[0].scatter(faithful["eruptions"], faithful["waiting"], s=10, color="0.3")
axes[0].set_title(f"observed ({len(faithful)} eruptions)")
for k in range(gm.n_components):
    axes[1].scatter(Xs[zs == k, 0], Xs[zs == k, 1], s=10, color=f"C{k}",
                    label=f"component {k}")
axes[1].set_title("500 draws from the fitted mixture")
axes[1].legend()
for a in axes:
    a.set_xlabel(labels[0])
axes[0].set_ylabel(labels[1])
show(fig, "01_sample")""",
    "md:## EM's objective per iteration\nEM never decreases the log-likelihood. From the "
    "k-means start (the default) it converges in a few iterations. From random "
    "responsibilities both components start near the overall mean: EM creeps along a "
    "plateau before the components separate. With the default `tol=1e-3` it would stop on "
    "that plateau (one reason for k-means starts and several restarts), so this fit uses "
    "`tol=1e-8`.",
    """gm_random = bgmm.GaussianMixture(n_components=2, covariance_type="full", n_init=1,
                                 init_params="random", tol=1e-8, random_state=1).fit(faithful)
fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
plotting.plot_em_trace(gm, ax=ax, label=f"k-means start ({gm.n_iter_} iterations)")
plotting.plot_em_trace(gm_random, ax=ax, ls="--",
                       label=f"random start, tol=1e-8 ({gm_random.n_iter_} iterations)")
show(fig, "01_em_trace")
for fit in (gm, gm_random):
    assert np.all(np.diff(fit.lower_bounds_) >= -1e-9)""",
    "md:## One dimension: eruption durations\nThe mixture density over a histogram of the "
    "data, with each weighted component.",
    """durations = faithful[["eruptions"]]
gm1 = bgmm.GaussianMixture(n_components=2, n_init=5, random_state=0).fit(durations)
fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
plotting.plot_density_1d(gm1, durations, ax=ax, bins=30,
                         feature_name="eruption duration (min)")
ax.set_title("Old Faithful eruption durations: 2-component mixture")
show(fig, "01_density_1d")
print("weights", gm1.weights_.round(3), "means", gm1.means_.ravel().round(3),
      "sd", np.sqrt(gm1.covariances_.ravel()).round(3))""",
    "md:## Saving and loading\nA fitted estimator is saved to a versioned `.npz` file "
    "(arrays plus a JSON header; no pickle) and predicts identically after loading.",
    """import tempfile

path = bgmm.save_estimator(gm, os.path.join(tempfile.mkdtemp(), "faithful_k2.npz"))
gm_back = bgmm.load_estimator(path)
assert np.array_equal(gm_back.predict_proba(faithful), gm.predict_proba(faithful))
print("reloaded from", path.name, "- identical predictions")""",
]


POSTERIOR = [
    "md:# Posterior uncertainty with NUTS\n\n"
    "The same two-component model as in the quickstart, now sampled with NUTS "
    "(NumPyro) under bgmm's default weakly informative prior. Chains start at the EM "
    "solution. We check convergence (R-hat, ESS, trace and rank plots), compare EM with "
    "the posterior, show label switching and relabelling, the uncertainty of cluster "
    "membership, and a posterior predictive check.",
    SETUP,
    """faithful = bgmm.load_faithful(as_frame=True)
labels = ["eruption duration (min)", "waiting time to next eruption (min)"]
gm = bgmm.GaussianMixture(n_components=2, covariance_type="full", prior="default",
                          n_init=5, random_state=0).fit(faithful)
if FAST:
    run = dict(num_chains=2, num_warmup=100, num_samples=100)
else:
    run = dict(num_chains=4, num_warmup=1000, num_samples=1000)
post = gm.sample_posterior(faithful, seed=0, **run)
post""",
    "md:## Convergence diagnostics\nR-hat near 1 (below 1.01) and bulk/tail effective "
    "sample sizes in the hundreds mean the chains agree and the summaries are precise. "
    "Divergent transitions would point to a region NUTS cannot explore.",
    """import arviz as az

summary = az.summary(post, var_names=["weights", "means"], kind="all")
print(f"divergent transitions: {post.attrs['n_divergent']}; "
      f"max R-hat {summary['r_hat'].max():.3f}; min bulk ESS {summary['ess_bulk'].min():.0f}")
summary.round(3)""",
    """def arviz_figure(pc, name, title):
    \"\"\"Legend of the chains, room between the rows of panels, a title.\"\"\"
    pc.add_legend("chain")
    fig = pc.viz["figure"].item()
    fig.set_size_inches(13, 6)
    fig.subplots_adjust(hspace=0.6, top=0.84)
    fig.suptitle(title)
    show(fig, name)


# thin, translucent lines: with 1000 draws per chain thick ones merge into a block
arviz_figure(bgmm.inference.plot_trace(post, var_names=["weights", "means"],
                                       visuals={"trace": {"linewidth": 0.5, "alpha": 0.7}}),
             "02_trace", "Trace of every chain after warm-up (weights; means in minutes)")""",
    "md:Rank plots: the fractional-rank ECDF of each chain minus the uniform CDF. Chains "
    "that sample the same distribution stay near zero; each panel prints the p value of "
    "ArviZ's multi-chain uniformity test (small p: the chains disagree) and highlights the "
    "ranks that contribute most to a deviation.",
    """arviz_figure(bgmm.inference.plot_rank(post, var_names=["weights", "means"]), "02_rank",
             "Fractional-rank ECDF minus the uniform CDF, per chain")""",
    "md:## EM versus the posterior\nThe MAP estimate from EM (under the same prior) beside "
    "the posterior mean, sd and 94% interval. For this well-separated mixture EM sits "
    "in the middle of the posterior; the Laplace approximation at the mode is close too.",
    """em_vs_mcmc = bgmm.compare_em_mcmc(post)
em_vs_mcmc[["em", "mean", "sd", "ci_lower", "ci_upper", "r_hat", "ess_bulk",
            "em_in_ci"]].round(3)""",
    """axes = plotting.plot_em_vs_posterior(post, var_names=["weights", "means", "covariances"])
show(axes[0].figure, "02_forest")""",
    "md:## Label switching\nThe likelihood does not change when the components are "
    "renumbered, so the posterior has $K!$ symmetric modes. Chains started at random points "
    "settle in whichever labelling is nearest; to show this deterministically we run NUTS "
    "directly with NumPyro (on standardised data) with two chains started at the EM "
    "solution and two at the same solution with the labels swapped. A pooled summary of "
    "these draws would average the two clusters into nonsense. "
    "`bgmm.mcmc.relabel_permutations` maps every draw onto a reference labelling (the EM "
    "fit) by an optimal assignment; `sample_posterior` does this automatically.",
    """from functools import partial

import jax
from numpyro.infer import MCMC, NUTS

from bgmm._shell import Standardizer, precision_scope
from bgmm.mcmc import chain_inits, permute_components, relabel_permutations
from bgmm.params import GMMParams
from bgmm.priors import as_arrays

std = Standardizer.fit(faithful.to_numpy(), None, "full")
xs = std.transform(faithful.to_numpy())
em_std = gm._params_std  # the EM fit in the same standardised units
swapped = GMMParams(em_std.weights[::-1], em_std.means[::-1], em_std.covariances[::-1], None)
n_draws = 60 if FAST else 500
with precision_scope("float64"):
    model = partial(bgmm.marginal_model, n_components=2, covariance_type="full")
    kwargs = dict(x=jax.numpy.asarray(xs),
                  prior=as_arrays(bgmm.default_prior(xs, 2, "full"), jax.numpy.float64))
    starts = [chain_inits(model, kwargs, ref, 2, 0.1, jax.random.PRNGKey(i))
              for i, ref in enumerate([em_std, swapped])]
    init = jax.tree.map(lambda a, b: jax.numpy.concatenate([a, b]), *starts)
    mcmc = MCMC(NUTS(model), num_warmup=n_draws, num_samples=n_draws, num_chains=4,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(3), init_params=init, **kwargs)
raw = {k: np.asarray(v, np.float64) for k, v in mcmc.get_samples(group_by_chain=True).items()}
perm = relabel_permutations(raw, em_std, "full")
fixed = {k: permute_components(v, perm, k, "full") for k, v in raw.items()}
print("fraction of draws relabelled, per chain:", (perm[..., 0] != 0).mean(1).round(2))

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True, layout="constrained")
for a, draws, title in [(axes[0], raw, "before relabelling"),
                        (axes[1], fixed, "after relabelling to the EM labels")]:
    for c in range(4):
        minutes = draws["means"][c, :, 0, 0] * std.scale[0] + std.center[0]
        a.plot(minutes, color=f"C{c}", lw=0.8, label=f"chain {c}")
    a.set_xlabel("draw (after warm-up)")
    a.set_title(f"mean eruption duration of component 0, {title}", fontsize=10)
axes[0].set_ylabel("minutes")
axes[1].legend(loc="center right", fontsize="small")
show(fig, "02_label_switching")""",
    "md:## Uncertain membership\nThe posterior of each eruption's membership probability "
    "$p(z_n = k \\mid x_n, \\theta)$ over the draws. Eruptions between the clusters have "
    "membership probabilities near 1/2 and wide intervals; the rest are certain.",
    """r = post["responsibilities"]
width = (r["upper"] - r["lower"]).max("component").values
between = np.argsort(width)[::-1][:8]
fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained",
                         gridspec_kw={"width_ratios": [1.4, 1]})
plotting.plot_assignment_uncertainty(gm, faithful, ax=axes[0], posterior=post, kind="interval",
                                     feature_names=labels)
axes[0].scatter(faithful["eruptions"].iloc[between], faithful["waiting"].iloc[between], s=80,
                facecolors="none", edgecolors="r", label="shown on the right")
axes[0].legend(loc="upper left", fontsize="small")
names = [f"#{i}: {faithful['eruptions'].iloc[i]:.2f} min, {faithful['waiting'].iloc[i]:.0f} min"
         for i in between]
plotting.plot_membership_intervals(post, between, ax=axes[1], component=0, labels=names)
axes[1].set_title("most uncertain eruptions", fontsize=10)
show(fig, "02_membership")""",
    "md:## Posterior predictive check\nHistograms of the data against the mixture density "
    "of posterior draws (thin), the posterior predictive density (thick) and EM's density "
    "(dashed); right: the joint predictive density.",
    """fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), layout="constrained")
plotting.plot_ppc(post, num_draws=40, ax=axes)
for a, lab in zip(axes, labels):
    a.set_xlabel(lab)
    a.set_title(f"marginal of {lab.split(' (')[0]}", fontsize=10)
axes[2].set_xlabel(labels[0])
axes[2].set_ylabel(labels[1])
show(fig, "02_ppc")""",
    "md:## Saving the posterior\nThe whole DataTree (posterior, diagnostics, EM "
    "estimate, responsibilities) goes to netCDF and comes back unchanged.",
    """import tempfile

path = bgmm.save_posterior(post, os.path.join(tempfile.mkdtemp(), "faithful_posterior.nc"))
back = bgmm.load_posterior(path)
assert np.array_equal(back.posterior["means"].values, post.posterior["means"].values)
print("groups:", list(back.children))""",
]


COMPARISON = [
    "md:# Choosing the number of components and the covariance type\n\n"
    "BIC, AIC and ICL over a grid of models fitted by EM; PSIS-LOO (ArviZ) for models "
    "sampled with NUTS; and a sparse overfitted mixture whose posterior says how many "
    "components the data use. Old Faithful first, then Fisher's iris (scikit-learn).",
    SETUP,
    """faithful = bgmm.load_faithful(as_frame=True)
k_max = 4 if FAST else 7
study = bgmm.select(faithful, n_components=range(1, k_max + 1), n_init=3 if FAST else 10,
                    random_state=0)
study""",
    "md:All criteria are on the deviance scale: lower is better. BIC penalises "
    "parameters by $\\log N$, AIC by 2, and ICL adds the classification entropy to BIC, so "
    "it prefers well-separated clusters.",
    """table = study.to_frame()
table[["log_likelihood", "n_parameters", "bic", "aic", "icl", "converged", "valid"]].round(2)""",
    """def criteria_figure(study, title, zoom=250):
    \"\"\"BIC / AIC / ICL against K; y axis zoomed on the best models, one legend below.\"\"\"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained")
    table = study.to_frame()
    for a, crit in zip(axes, ["bic", "aic", "icl"]):
        plotting.plot_criterion(study, ax=a, criterion=crit)
        handles, names = a.get_legend_handles_labels()
        a.get_legend().remove()
        k, ct = study.best(crit)
        a.set_title(f"{crit.upper()}: chooses K={k}, {ct}", fontsize=11)
        lo = table[crit].min()
        a.set_ylim(lo - 0.1 * zoom, lo + zoom)  # models above the range are clearly worse
    names = [("chosen model" if n.startswith("chosen") else n) for n in names]
    if not table["valid"].all():  # explain the open markers
        from matplotlib.lines import Line2D

        handles = handles + [Line2D([], [], marker="o", ls="", mfc="none", mec="0.3", ms=8)]
        names = names + ["open: degenerate or not converged (never chosen)"]
    fig.legend(handles, names, loc="outside lower center", ncol=len(names),
               title="covariance type")
    fig.suptitle(title)
    return fig


fig = criteria_figure(study, "Old Faithful: criteria against K (y axis zoomed on the best "
                             "models; K=1 and spherical lie above)")
show(fig, "03_criteria_faithful")""",
    "md:## PSIS-LOO with ArviZ\nSample K = 2 and K = 3 (full covariances) with NUTS "
    "under bgmm's default prior, the chains started at the grid's EM fits, then compare "
    "their expected log predictive density estimated by Pareto-smoothed importance "
    "sampling leave-one-out. `elpd` higher is better; `dse` is the standard "
    "error of the difference; Pareto k above the threshold flags unreliable estimates.",
    """nuts = dict(num_chains=2, num_warmup=100, num_samples=100) if FAST else \\
    dict(num_chains=4, num_warmup=1000, num_samples=1000)
trees = {}
for k in (2, 3):
    gm_k = study.get_model(k, "full")  # the ML fit from the grid: no refit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # K=3 overfits: reported in the diagnostics below
        trees[f"K={k} full"] = gm_k.sample_posterior(
            faithful, seed=1, laplace=False, posterior_predictive=False,
            responsibilities=False, **nuts)
    study.add_loo((k, "full"), trees[f"K={k} full"])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    loo_table = bgmm.compare_loo(trees)
loo_table[["rank", "elpd", "se", "elpd_diff", "dse", "p", "weight", "looic",
           "pareto_k_max", "n_high_pareto_k"]].round(2)""",
    """import arviz as az

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
for a, (name, tree) in zip(axes, trees.items()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high Pareto k: drawn in red below
        loo = az.loo(tree, pointwise=True)
    k_hat = np.asarray(loo.pareto_k).ravel()
    high = k_hat > loo.good_k
    obs = np.arange(k_hat.size)
    a.scatter(obs[~high], k_hat[~high], s=10, color="C0", label="observation")
    a.scatter(obs[high], k_hat[high], s=18, color="C3",
              label=f"above the threshold ({high.sum()})")
    a.axhline(loo.good_k, color="C3", ls="--", lw=1, label=f"threshold k = {loo.good_k:.2f}")
    a.set_ylim(min(k_hat.min(), 0) - 0.05, max(k_hat.max(), loo.good_k) + 0.3)  # legend room
    a.set_xlabel("observation (row of the data)")
    a.set_ylabel("Pareto shape k of the PSIS weights")
    a.set_title(f"{name}: elpd_loo {loo.elpd:.1f} (se {loo.se:.1f})", fontsize=10)
    a.legend(loc="upper right", ncol=3, fontsize="small")
show(fig, "03_pareto_k")""",
    "md:## The sparse overfitted mixture\nFit more components than needed with a sparse "
    "Dirichlet prior on the weights (concentration 0.05): superfluous components empty "
    "out, and the posterior of the number of non-empty components $K_+$ estimates the "
    "number of clusters.",
    """sparse = bgmm.sparse_mixture_k(
    faithful, max_components=5 if FAST else 8, weight_concentration=0.05,
    num_warmup=150 if FAST else 500, num_samples=150 if FAST else 500,
    num_chains=2, random_state=0)
print(sparse)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
kp = sparse.k_posterior
axes[0].bar(kp.index, kp.values, color="C0")
axes[0].set_xlabel("number of non-empty components $K_+$")
axes[0].set_ylabel("posterior probability")
axes[0].set_xticks(kp.index)
axes[0].set_title("Old Faithful: posterior of $K_+$", fontsize=10)
# the weights of each draw sorted (largest first): invariant to label switching
w = sparse.tree.posterior["weights"].values.reshape(-1, sparse.max_components)
w_sorted = -np.sort(-w, axis=1)
axes[1].boxplot(w_sorted, showfliers=False)
axes[1].set_xticks(np.arange(1, w.shape[1] + 1), [str(i) for i in range(1, w.shape[1] + 1)])
axes[1].set_xlabel("rank of the weight within a posterior draw (1 = largest)")
axes[1].set_ylabel("component weight")
axes[1].set_title("sorted weights: superfluous components are near 0", fontsize=10)
show(fig, "03_sparse")""",
    "md:## A second data set: Fisher's iris\n150 flowers, four measurements (cm). Three "
    "species, two of which overlap. Which model do the criteria pick?",
    """from sklearn.datasets import load_iris

iris = load_iris(as_frame=True)
X_iris = iris.data
iris_study = bgmm.select(X_iris, n_components=range(1, (5 if FAST else 8) + 1),
                         covariance_types=("full", "diag") if FAST else
                         ("full", "tied", "diag", "spherical"),
                         n_init=3 if FAST else 10, random_state=0)
fig = criteria_figure(iris_study, "iris: criteria against K (y axis zoomed on the best "
                                  "models)", zoom=400)
show(fig, "03_criteria_iris")
iris_study.pivot("bic").round(1)""",
    "md:Open markers are fits in which a component collapsed onto a few points (iris "
    "has many tied measurements): the likelihood is unbounded there, so such fits look "
    "best by every criterion but are flagged and never chosen.\n\n"
    "How does the BIC choice compare with the species? (The species are not used "
    "to fit.)",
    """from sklearn.metrics import adjusted_rand_score

best = iris_study.best_
k, ct = iris_study.best_key_
crosstab = pd.crosstab(iris.target_names[iris.target], best.predict(X_iris),
                       rownames=["species"], colnames=[f"component (K={k}, {ct})"])

print(f"adjusted Rand index vs species: {adjusted_rand_score(iris.target, best.predict(X_iris)):.3f}")
crosstab""",
    """fig, ax = plt.subplots(figsize=(9.5, 5), layout="constrained")
plotting.plot_mixture(best, X_iris, ax=ax, features=(2, 3),
                      title=f"iris: BIC choice K={k} {ct} (petal measurements)")
show(fig, "03_iris_mixture")""",
]


def main():
    for name, cells in [("01_quickstart", QUICKSTART), ("02_posterior_uncertainty", POSTERIOR),
                        ("03_model_comparison", COMPARISON)]:
        nbformat.write(nb(cells), HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()

"""Command line: ``bgmm demo``, ``bgmm fit``, ``bgmm select``.

``bgmm fit data.csv --n-components 3 --out result`` writes ``result.npz`` (the fitted
estimator, :func:`bgmm.save_estimator`), ``result.png`` and, with ``--mcmc``,
``result.nc`` (the posterior DataTree, :func:`bgmm.save_posterior`).
``bgmm select data.csv --max-components 8 --out study`` writes ``study.csv`` (the table)
and ``study.png`` (criterion against K). Input: CSV or Parquet with a header row.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _fmt(a, prec=4):
    return np.array2string(np.asarray(a), precision=prec, suppress_small=True, max_line_width=100)


def demo(args) -> int:
    """Fit mixtures to Old Faithful, choose K and covariance type by BIC, report and plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import load_faithful, select
    from .plotting import plot_em_trace, plot_mixture

    df = load_faithful(as_frame=True)
    X = df.to_numpy()
    print(f"Old Faithful: {X.shape[0]} eruptions x {X.shape[1]} features ({', '.join(df.columns)})")
    print(f"Choosing K in 1..{args.max_components} and the covariance type by BIC "
          f"(n_init={args.n_init}, prior={args.prior or 'none (MLE)'})\n")
    t0 = time.perf_counter()
    res = select(df, n_components=range(1, args.max_components + 1), n_init=args.n_init,
                 prior=args.prior, random_state=args.seed)
    table = res.to_frame()
    bics = res.pivot("bic")
    flags = (~table["valid"].astype(bool)).unstack("covariance_type")[bics.columns]
    print(f"{'covariance':>10} " + "".join(f"{'K=' + str(k):>11}" for k in bics.index))
    for ct in bics.columns:
        cells = [f"{bics.loc[k, ct]:10.1f}" + ("*" if flags.loc[k, ct] else " ") for k in bics.index]
        print(f"{ct:>10} " + "".join(cells))
    print("BIC (lower is better; * = flagged: not converged, emptied or collapsed component)")
    gm = res.best_
    k, ct = res.best_key_
    bic = float(bics.loc[k, ct])
    print(f"\nChosen model: K={k}, covariance_type={ct!r}   ({time.perf_counter() - t0:.1f} s for "
          f"{len(table)} fits, {args.n_init} restarts each)")
    print(f"  converged:       {gm.converged_} after {gm.n_iter_} EM iterations")
    print(f"  log-likelihood:  {gm.score(df) * X.shape[0]:.3f}  (mean {gm.score(df):.5f} per eruption)")
    print(f"  BIC:             {bic:.3f}    AIC: {gm.aic(df):.3f}")
    print(f"  weights:         {_fmt(gm.weights_)}")
    print(f"  means ({', '.join(df.columns)}):\n{_fmt(gm.means_)}")
    print(f"  covariances:\n{_fmt(gm.covariances_)}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # wide: the mixture's legend sits right of its panel
    fig, axes = plt.subplots(1, 2, figsize=(14.5, 5), layout="constrained",
                             gridspec_kw={"width_ratios": [1.8, 1]})
    plot_mixture(gm, df, ax=axes[0], feature_names=["eruption duration (min)",
                                                    "waiting time to next eruption (min)"],
                 title=f"Old Faithful: {k}-component {ct} mixture (BIC {bic:.1f})")
    plot_em_trace(gm, ax=axes[1])
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"\nPicture (data, cluster assignments, density contours, 1 and 2 sd ellipses, EM trace): "
          f"{out.resolve()}")
    return 0


def _progress(msg: str) -> None:
    print(f"[bgmm {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def read_table(path, columns=None):
    """Read a CSV or Parquet file with a header; returns a float DataFrame of the columns.

    columns: comma-separated names (or a list); default every numeric column.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise ValueError(f"data file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    elif suffix in (".csv", ".txt", ".tsv", ".gz"):
        tsv = path.name.lower().endswith((".tsv", ".tsv.gz"))
        df = pd.read_csv(path, sep="\t" if tsv else ",")
    else:
        raise ValueError(f"data file must be .csv, .tsv or .parquet, got {str(path)!r}")
    if columns:
        names = [c.strip() for c in columns.split(",")] if isinstance(columns, str) \
            else list(columns)
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise ValueError(f"columns {missing} not in {str(path)!r}; it has {list(df.columns)}")
        df = df[names]
    else:
        dropped = [c for c in df.columns if c not in df.select_dtypes("number").columns]
        for c in dropped:  # a numeric column with a few bad cells is an error, not text
            as_num = pd.to_numeric(df[c], errors="coerce")
            if as_num.notna().mean() >= 0.5:
                i = int(np.flatnonzero(as_num.isna() & df[c].notna())[0])
                raise ValueError(f"column {c!r} is numeric but for entries such as {df[c].iloc[i]!r} "
                                 f"(row {i}); fix them or leave the column out with --columns")
        if dropped:
            _progress(f"ignoring non-numeric column(s) {[str(c) for c in dropped]}")
        df = df.select_dtypes("number")
        if df.shape[1] == 0:
            raise ValueError(f"{str(path)!r} has no numeric columns; choose with --columns")
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise ValueError(f"columns {bad} are not numeric")
    df = df.astype(np.float64)
    df.columns = [str(c) for c in df.columns]
    n_nan = int(df.isna().any(axis=1).sum())
    if n_nan:
        _progress(f"dropping {n_nan} rows with missing values")
        df = df.dropna()
    if len(df) < 2:
        raise ValueError(f"need at least 2 complete rows, got {len(df)}")
    return df


def _out_paths(out: str):
    base = Path(out)
    if base.suffix in (".npz", ".png", ".nc", ".csv"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    return base


def _param_table(gm, names):
    import pandas as pd

    from .plotting import _full_covariances

    var = np.diagonal(_full_covariances(gm), axis1=1, axis2=2)  # (K, D)
    rows = {}
    for k in range(gm.n_components):
        row = {"weight": gm.weights_[k]}
        row.update({f"mean[{n}]": gm.means_[k, j] for j, n in enumerate(names)})
        row.update({f"sd[{n}]": np.sqrt(var[k, j]) for j, n in enumerate(names)})
        rows[f"component {k}"] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def fit(args) -> int:
    """Fit one mixture to a data file, print it, save estimator, picture (and posterior)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from . import GaussianMixture, save_estimator, save_posterior
    from .plotting import plot_density_1d, plot_em_trace, plot_mixture

    df = read_table(args.data, args.columns)
    names = list(df.columns)
    base = _out_paths(args.out)
    _progress(f"read {len(df)} rows x {df.shape[1]} columns ({', '.join(names)}) from {args.data}")
    gm = GaussianMixture(args.n_components, covariance_type=args.covariance_type,
                         n_init=args.n_init, prior=args.prior, max_iter=args.max_iter,
                         tol=args.tol, random_state=args.seed)
    t0 = time.perf_counter()
    _progress(f"EM: K={args.n_components}, covariance_type={args.covariance_type!r}, "
              f"{args.n_init} restarts ({'MAP' if args.prior else 'MLE'})")
    gm.fit(df)
    X = df.to_numpy()
    n = X.shape[0]
    _progress(f"EM done in {time.perf_counter() - t0:.1f} s")
    print(f"\nGaussian mixture: K={gm.n_components}, covariance_type={gm.covariance_type!r}, "
          f"{'MAP (prior ' + repr(args.prior) + ')' if args.prior else 'maximum likelihood'}")
    print(f"data: {args.data} ({n} rows; columns {', '.join(names)})")
    print(f"converged: {gm.converged_} after {gm.n_iter_} EM iterations")
    print(f"log-likelihood {gm.score(df) * n:.3f}   BIC {gm.bic(df):.3f}   AIC {gm.aic(df):.3f}\n")
    with pd.option_context("display.width", 160, "display.max_columns", 50,
                           "display.float_format", "{:.4g}".format):
        print(_param_table(gm, names).to_string())
    counts = np.bincount(gm.predict(df), minlength=gm.n_components)
    print("\nobservations per component (hard assignment): "
          + ", ".join(f"{k}: {c}" for k, c in enumerate(counts)))

    npz = save_estimator(gm, base.with_suffix(".npz"))
    print(f"\nestimator: {npz.resolve()}   (load with bgmm.load_estimator)")

    tree = None
    if args.mcmc:
        _progress(f"NUTS: {args.num_chains} chains x ({args.num_warmup} warmup + "
                  f"{args.num_samples} draws), started at the EM fit")
        t0 = time.perf_counter()
        tree = gm.sample_posterior(df, num_chains=args.num_chains, num_warmup=args.num_warmup,
                                   num_samples=args.num_samples, seed=args.seed,
                                   progress_bar=True)
        _progress(f"NUTS done in {time.perf_counter() - t0:.1f} s")
        from .inference import compare_em_mcmc

        tab = compare_em_mcmc(tree, var_names=("weights", "means"))
        cols = ["em", "mean", "sd", "ci_lower", "ci_upper", "r_hat", "ess_bulk"]
        print(f"\nEM vs posterior ({tab.attrs['ci_prob']:.0%} intervals; "
              f"{tree.attrs['n_divergent']} divergent transitions):")
        with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
            print(tab[cols].to_string())
        nc = save_posterior(tree, base.with_suffix(".nc"))
        print(f"posterior: {Path(nc).resolve()}   (load with bgmm.load_posterior)")

    png = base.with_suffix(".png")
    d = X.shape[1]
    if d == 1:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
        plot_density_1d(gm, df, ax=axes[0], feature_name=names[0])
    else:
        fig, axes = plt.subplots(1, 2, figsize=(14.5, 5), layout="constrained",
                                 gridspec_kw={"width_ratios": [1.8, 1]})
        plot_mixture(gm, df, ax=axes[0], features=(0, 1))
    plot_em_trace(gm, ax=axes[1])
    fig.savefig(png, dpi=120)
    plt.close(fig)
    what = "histogram and density" if d == 1 else \
        f"data ({names[0]} vs {names[1]}), assignments, contours, ellipses"
    print(f"picture ({what}; EM trace): {png.resolve()}")
    return 0


def select_cmd(args) -> int:
    """Fit a grid of K and covariance types, print the criteria table, write table and plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from . import select
    from .plotting import plot_criterion

    df = read_table(args.data, args.columns)
    base = _out_paths(args.out)
    cts = [c.strip() for c in args.covariance_types.split(",")]
    ks = range(args.min_components, args.max_components + 1)
    _progress(f"read {len(df)} rows x {df.shape[1]} columns ({', '.join(df.columns)})")
    _progress(f"fitting {len(ks) * len(cts)} models: K={ks.start}..{ks.stop - 1} x "
              f"{', '.join(cts)}; {args.n_init} restarts each")
    t0 = time.perf_counter()
    res = select(df, n_components=ks, covariance_types=cts, criterion=args.criterion,
                 n_init=args.n_init, prior=args.prior, random_state=args.seed)
    _progress(f"done in {time.perf_counter() - t0:.1f} s")
    table = res.to_frame()
    crit = res.criterion
    print(f"\n{crit.upper()} (lower is better) by K (rows) and covariance type (columns):")
    with pd.option_context("display.width", 160, "display.float_format", "{:.2f}".format):
        print(res.pivot().to_string())
        cols = ["log_likelihood", "n_parameters", "bic", "aic", "icl", "converged", "valid"]
        print("\nall models:")
        print(table[cols].to_string())
    if res.best_key_ is not None:
        k, ct = res.best_key_
        print(f"\nchosen by {crit.upper()}: K={k}, covariance_type={ct!r}")
    flagged = table.index[~table["valid"]].tolist()
    if flagged:
        print(f"flagged (degenerate or not converged, never chosen): {flagged}")
    csv = base.with_suffix(".csv")
    table.to_csv(csv)
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    plot_criterion(res, ax=ax)
    png = base.with_suffix(".png")
    fig.savefig(png, dpi=120)
    plt.close(fig)
    print(f"\ntable: {csv.resolve()}\npicture ({crit.upper()} against K): {png.resolve()}")
    if args.save_best and res.best_ is not None:
        from . import save_estimator

        npz = save_estimator(res.best_, base.with_name(base.name + "-best.npz"))
        print(f"chosen model: {npz.resolve()}")
    return 0


def _data_args(p):
    p.add_argument("data", help="CSV (.csv/.tsv) or Parquet (.parquet) file with a header row; "
                                "one observation per row")
    p.add_argument("--columns", default=None,
                   help="comma-separated column names to model, e.g. 'eruptions,waiting' "
                        "(default: every numeric column); rows with missing values are dropped")
    p.add_argument("--prior", choices=["default"], default=None,
                   help="'default': MAP-EM under bgmm's weakly informative data-driven prior "
                        "(default: maximum likelihood)")
    p.add_argument("--n-init", type=int, default=5,
                   help="EM restarts per model, the best kept (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bgmm", description="Gaussian mixture models: EM, MAP and NUTS.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="fit Old Faithful (embedded), choose K by BIC, print and plot",
                       description="Fit Gaussian mixtures to the embedded Old Faithful data, choose "
                                   "K and the covariance type by BIC, print the fitted model and "
                                   "write a picture.")
    d.add_argument("--out", default="bgmm-demo.png", help="PNG path for the picture (default: %(default)s)")
    d.add_argument("--max-components", type=int, default=4, help="largest K tried (default: %(default)s)")
    d.add_argument("--n-init", type=int, default=5, help="EM restarts per model (default: %(default)s)")
    d.add_argument("--prior", choices=["default"], default=None,
                   help="'default' for MAP-EM under the data-driven prior (default: MLE)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    d.set_defaults(func=demo)

    f = sub.add_parser(
        "fit", help="fit one mixture to a CSV/Parquet file; save it, print it, plot it",
        description="Fit a K-component Gaussian mixture by EM (maximum likelihood, or MAP with "
                    "--prior default), print the parameters, and write OUT.npz (the estimator; "
                    "bgmm.load_estimator), OUT.png (data, assignments, density contours, "
                    "ellipses and the EM trace) and, with --mcmc, OUT.nc (the NUTS posterior "
                    "as an ArviZ DataTree; bgmm.load_posterior).")
    _data_args(f)
    f.add_argument("--n-components", "-k", type=int, required=True,
                   help="number of mixture components K")
    f.add_argument("--covariance-type", default="full",
                   choices=["full", "tied", "diag", "spherical"],
                   help="covariance structure: full (each component its own matrix), tied "
                        "(one shared matrix), diag (axis-aligned), spherical (one variance "
                        "per component); default: %(default)s")
    # the library's defaults, as `select` uses: a model of the study refits to its row
    f.add_argument("--max-iter", type=int, default=100,
                   help="EM iterations per restart (default: %(default)s)")
    f.add_argument("--tol", type=float, default=1e-3,
                   help="EM stops when the mean log-likelihood per sample changes less "
                        "(default: %(default)s)")
    f.add_argument("--mcmc", action="store_true",
                   help="also sample the posterior with NUTS, started at the EM fit, and "
                        "write OUT.nc; prints an EM vs posterior table with R-hat and ESS")
    f.add_argument("--num-chains", type=int, default=4,
                   help="NUTS chains (with --mcmc; default: %(default)s)")
    f.add_argument("--num-warmup", type=int, default=1000,
                   help="NUTS warm-up iterations per chain (with --mcmc; default: %(default)s)")
    f.add_argument("--num-samples", type=int, default=1000,
                   help="NUTS draws kept per chain (with --mcmc; default: %(default)s)")
    f.add_argument("--out", required=True,
                   help="output path without extension: writes OUT.npz, OUT.png (and OUT.nc)")
    f.set_defaults(func=fit)

    s = sub.add_parser(
        "select", help="choose K and the covariance type by BIC / AIC / ICL",
        description="Fit every K in MIN..MAX components for each covariance type by EM, "
                    "print BIC, AIC and ICL (lower is better; fits that are degenerate or did "
                    "not converge are flagged and never chosen), and write OUT.csv (the full "
                    "table) and OUT.png (the criterion against K).")
    _data_args(s)
    s.add_argument("--max-components", type=int, default=8, help="largest K tried (default: %(default)s)")
    s.add_argument("--min-components", type=int, default=1, help="smallest K tried (default: %(default)s)")
    s.add_argument("--covariance-types", default="full,tied,diag,spherical",
                   help="comma-separated covariance types to try (default: %(default)s)")
    s.add_argument("--criterion", choices=["bic", "aic", "icl"], default="bic",
                   help="criterion that chooses the model and is plotted (default: %(default)s)")
    s.add_argument("--save-best", action="store_true",
                   help="also save the chosen model as OUT-best.npz")
    s.add_argument("--out", default="bgmm-select",
                   help="output path without extension: writes OUT.csv and OUT.png (default: %(default)s)")
    s.set_defaults(func=select_cmd)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._shell import enable_compilation_cache

    enable_compilation_cache()  # an application may set JAX's global configuration
    for name in ("n_components", "max_components", "min_components", "n_init", "max_iter",
                 "num_chains", "num_warmup", "num_samples"):
        v = getattr(args, name, None)
        if v is not None and v < (0 if name == "num_warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if getattr(args, "min_components", 1) > getattr(args, "max_components", 1):
        parser.error("--min-components must not exceed --max-components")
    if hasattr(args, "covariance_types"):
        from . import COVARIANCE_TYPES

        bad = [c for c in args.covariance_types.split(",") if c.strip() not in COVARIANCE_TYPES]
        if bad:
            parser.error(f"--covariance-types: unknown {bad}; choose from {COVARIANCE_TYPES}")
    try:
        return args.func(args)
    except ValueError as e:
        print(f"bgmm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

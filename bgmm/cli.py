"""Command line: ``bgmm demo``."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def _fmt(a, prec=4):
    return np.array2string(np.asarray(a), precision=prec, suppress_small=True, max_line_width=100)


def demo(args) -> int:
    """Fit mixtures to Old Faithful, choose K and covariance type by BIC, report and plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import COVARIANCE_TYPES, GaussianMixture, load_faithful
    from .plotting import plot_em_trace, plot_mixture

    df = load_faithful(as_frame=True)
    X = df.to_numpy()
    print(f"Old Faithful: {X.shape[0]} eruptions x {X.shape[1]} features ({', '.join(df.columns)})")
    print(f"Choosing K in 1..{args.max_components} and the covariance type by BIC "
          f"(n_init={args.n_init}, prior={args.prior or 'none (MLE)'})\n")
    t0 = time.perf_counter()
    rows = []
    for ct in COVARIANCE_TYPES:
        for k in range(1, args.max_components + 1):
            gm = GaussianMixture(k, covariance_type=ct, n_init=args.n_init, prior=args.prior,
                                 random_state=args.seed)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                gm.fit(df)
            rows.append((gm.bic(X), ct, k, gm, len(caught) > 0))
    print(f"{'covariance':>10} " + " ".join(f"{'K=' + str(k):>10}" for k in range(1, args.max_components + 1)))
    for ct in COVARIANCE_TYPES:
        cells = [f"{r[0]:10.1f}" + ("*" if r[4] else " ") for r in rows if r[1] == ct]
        print(f"{ct:>10} " + "".join(cells))
    print("BIC (lower is better; * = a warning was raised during that fit)")
    best = min((r for r in rows if not r[4]), key=lambda r: r[0], default=min(rows, key=lambda r: r[0]))
    bic, ct, k, gm, _ = best
    print(f"\nChosen model: K={k}, covariance_type={ct!r}   ({time.perf_counter() - t0:.1f} s for "
          f"{len(rows)} fits)")
    print(f"  converged:       {gm.converged_} after {gm.n_iter_} EM iterations")
    print(f"  log-likelihood:  {gm.score(X) * X.shape[0]:.3f}  (mean {gm.score(X):.5f} per eruption)")
    print(f"  BIC:             {bic:.3f}    AIC: {gm.aic(X):.3f}")
    print(f"  weights:         {_fmt(gm.weights_)}")
    print(f"  means ({', '.join(df.columns)}):\n{_fmt(gm.means_)}")
    print(f"  covariances:\n{_fmt(gm.covariances_)}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained",
                             gridspec_kw={"width_ratios": [1.6, 1]})
    plot_mixture(gm, df, ax=axes[0], feature_names=["eruption duration (min)",
                                                    "waiting time to next eruption (min)"],
                 title=f"Old Faithful: {k}-component {ct} mixture (BIC {bic:.1f})")
    plot_em_trace(gm, ax=axes[1])
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"\nPicture (data, cluster assignments, density contours, 1 and 2 sd ellipses, EM trace): "
          f"{out.resolve()}")
    return 0


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
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

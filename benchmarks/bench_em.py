"""EM per iteration: bgmm vs scikit-learn vs gmmx, side by side.

Same process, same (standardised) data, same initial parameters, the same fixed number
of iterations (tol = 0, no convergence test), compile time excluded; ms per EM
iteration (E-step + M-step). The final parameters of every method are re-scored in
float64 numpy so the table shows that all reached the same answer.

    python benchmarks/bench_em.py                 # (1e4, 2, 3) and (1e5, 8, 8), all types
    python benchmarks/bench_em.py --large         # also (1e6, 16, 8) and (1e5, 64, 32)
    python benchmarks/bench_em.py --types full --dtypes float32 --sizes 100000,8,8

scikit-learn's time per iteration is ``(t(n_iter) - t(1)) / (n_iter - 1)`` so its
fixed costs (validation, initial Cholesky factors, final E-step) are not counted;
gmmx (full and diag, float32 only: it rejects float64) and bgmm run ``n_iter``
iterations in one compiled loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    best_time,
    git_rev,
    initial_parameters,
    load,
    machine,
    mean_loglik,
    mixture_data,
    precisions,
)

from bgmm import em  # noqa: E402
from bgmm.params import make_params  # noqa: E402

DEFAULT_SIZES = [(10_000, 2, 3), (100_000, 8, 8)]
LARGE_SIZES = [(1_000_000, 16, 8), (100_000, 64, 32)]
TYPES = ("full", "diag", "tied", "spherical")


def n_iters(n, d, k):
    work = n * d * d * k
    return 20 if work <= 1e8 else 10 if work <= 1e9 else 5


@partial(jax.jit, static_argnames=("cfg", "n_iter"))
def _bgmm_run(data, p0, reg, *, cfg, n_iter):
    return em.fit_fixed(data, p0, None, reg, cfg, n_iter)


def run_bgmm(x, init, ct, dtype, n_iter, reg=1e-6):
    n, d = x.shape
    k = len(init[0])
    with jax.enable_x64(dtype == "float64"):
        dt = jnp.dtype(dtype)
        data = em.make_data(jnp.asarray(x, dt), jnp.ones(n, dt), ct)
        p0 = make_params(*(jnp.asarray(a, dt) for a in init), ct)
        cfg = em.EMConfig(k, ct, n_iter)
        run = partial(_bgmm_run, data, p0, jnp.asarray(reg, dt), cfg=cfg, n_iter=n_iter)
        out = jax.block_until_ready(run())  # compile
        t = best_time(lambda: jax.block_until_ready(run()), repeat=2)
        out = jax.tree.map(np.asarray, out)
    return t / n_iter, (out.weights, out.means, out.covariances)


def run_sklearn(x, init, ct, dtype, n_iter, reg=1e-6):
    from sklearn.mixture import GaussianMixture

    k = len(init[0])
    xs = x.astype(dtype)

    def fit(m):
        g = GaussianMixture(k, covariance_type=ct, max_iter=m, tol=0.0, reg_covar=reg,
                            weights_init=init[0], means_init=init[1],
                            precisions_init=precisions(init[2], ct))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return g.fit(xs)

    t1 = best_time(lambda: fit(1), repeat=2)
    t = time.perf_counter()
    g = fit(n_iter)
    tn = time.perf_counter() - t
    return max(tn - t1, 1e-9) / (n_iter - 1), (g.weights_, g.means_, g.covariances_)


def run_gmmx(x, init, ct, dtype, n_iter, reg=1e-6):
    from gmmx import EMFitter, GaussianMixtureModelJax

    with jax.enable_x64(dtype == "float64"):
        dt = jnp.dtype(dtype)
        w, m, c = (jnp.asarray(a, dt) for a in init)
        gmm = GaussianMixtureModelJax.from_squeezed(means=m, covariances=c, weights=w,
                                                    covariance_type=ct)
        fitter = EMFitter(max_iter=n_iter, tol=0.0, reg_covar=reg)
        xj = jnp.asarray(x, dt)
        res = jax.block_until_ready(fitter.fit(xj, gmm))  # compile
        assert int(res.n_iter) == n_iter, res.n_iter
        t = best_time(lambda: jax.block_until_ready(fitter.fit(xj, gmm)), repeat=2)
        g = res.gmm
        out = (g.weights_numpy, g.means_numpy, g.covariances.values_numpy)
    return t / n_iter, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large", action="store_true", help="add (1e6,16,8) and (1e5,64,32)")
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--sizes", nargs="*", default=None, help="N,D,K triples")
    ap.add_argument("--iters", type=int, default=None, help="iterations (default by size)")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--no-gmmx", action="store_true")
    a = ap.parse_args(argv)
    sizes = ([tuple(int(float(v)) for v in s.split(",")) for s in a.sizes] if a.sizes
             else DEFAULT_SIZES + (LARGE_SIZES if a.large else []))
    types = a.types.split(",")
    dtypes = a.dtypes.split(",")
    print(f"# bench_em  git {git_rev()}  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"# machine: {machine()}")
    print("# ms per EM iteration (E+M), compile excluded; ll = mean log-likelihood per "
          "sample of the final parameters re-scored in float64; ratio = other / bgmm")
    hdr = (f"{'type':9} {'dtype':7} {'N':>8} {'D':>3} {'K':>3} {'it':>3} | {'bgmm':>8} "
           f"{'sklearn':>8} {'gmmx':>8} | {'sk/bgmm':>7} {'gx/bgmm':>7} | {'ll bgmm':>14} "
           f"{'ll sklearn-bgmm':>15} {'ll gmmx-bgmm':>13}")
    print(hdr)
    print("-" * len(hdr))
    for n, d, k in sizes:
        x = mixture_data(n, d, k)
        for ct in types:
            init = initial_parameters(x, k, ct)
            for dtype in dtypes:
                it = a.iters or n_iters(n, d, k)
                tb, pb = run_bgmm(x, init, ct, dtype, it)
                llb = mean_loglik(x, *pb, ct)
                ts = tg = np.nan
                lls = llg = np.nan
                if not a.no_sklearn:
                    ts, ps = run_sklearn(x, init, ct, dtype, it)
                    lls = mean_loglik(x, *ps, ct)
                if not a.no_gmmx and ct in ("full", "diag") and dtype == "float32":
                    tg, pg = run_gmmx(x, init, ct, dtype, it)
                    llg = mean_loglik(x, *pg, ct)
                print(f"{ct:9} {dtype:7} {n:8d} {d:3d} {k:3d} {it:3d} | {tb * 1e3:8.2f} "
                      f"{ts * 1e3:8.2f} {tg * 1e3:8.2f} | {ts / tb:7.1f} {tg / tb:7.1f} | "
                      f"{llb:14.8f} {lls - llb:15.2e} {llg - llb:13.2e}", flush=True)
    print(f"# load average at end: {load()}")


if __name__ == "__main__":
    main()

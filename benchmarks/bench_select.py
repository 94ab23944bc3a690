"""Wall time of a (K, covariance type) model-selection grid: bgmm.select vs a scikit-learn loop.

Same grid, same n_init, max_iter, tol, reg_covar and k-means initialisation on both
sides; scikit-learn fits each model in a Python loop (its restarts are a loop too) and
computes BIC. For bgmm each model is compiled code run once: init + EM for all restarts,
vmapped, then the scoring E-step. By default (K padded) all K share one k-means init
program and, on small data (at most 8192 padded rows, 16 features), all K and all
covariance types share one EM program (each type held in full form); there the script
also times one padded EM program per covariance type (as MAP grids and larger grids run).
It always times ``pad_components=False`` (one fused program per model). It times
``bgmm.select`` on the whole grid cold (JAX's caches cleared: trace + compile + run,
programs compiled on several threads) and warm (programs cached: run only); compile ~
cold - warm. It also times the study in two new processes with JAX's persistent
compilation cache on (``bgmm.enable_compilation_cache``): the first compiles and stores,
the second loads the programs from disk. ``--per-model`` also times each unpadded model's first
(compile + run) and second (run) call, sequentially.

    python benchmarks/bench_select.py faithful
    python benchmarks/bench_select.py synthetic --n 20000 --d 4 --true-k 4

Compile time depends on (K, covariance type, max_iter, init, padded N, D) only: within
one process a second study of data of a similar size pays run time only, and so does a
later ``bgmm.GaussianMixture(...).fit`` of any model of the grid.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import bgmm
from bgmm import em, selection
from bgmm._shell import precision_scope, restart_keys
from bgmm.selection import _fit_score_jit, _prepare, select

TYPES = ("full", "tied", "diag", "spherical")


def synthetic(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 4.0, (k, d))
    sizes = rng.multinomial(n, np.full(k, 1.0 / k))
    xs = []
    for c, m in zip(centers, sizes):
        a = rng.normal(size=(d, d)) * 0.5 + np.eye(d)
        xs.append(rng.normal(size=(m, d)) @ a.T + c)
    return np.vstack(xs)


def time_sklearn(x, ks, n_init, max_iter, tol, reg):
    out = {}
    t0 = time.perf_counter()
    for ct in TYPES:
        for k in ks:
            t = time.perf_counter()
            sk = SkGaussianMixture(k, covariance_type=ct, n_init=n_init, max_iter=max_iter,
                                   tol=tol, reg_covar=reg, init_params="kmeans", random_state=0)
            sk.fit(x)
            out[(k, ct)] = (time.perf_counter() - t, sk.bic(x))
    return time.perf_counter() - t0, out


def time_bgmm_per_model(x, ks, n_init, max_iter, tol, reg):
    """First call (trace + compile + run) and second call (run) of each model's programs."""
    prep = _prepare(x, None, TYPES, reg, "float64")
    out = {}
    with precision_scope("float64"):
        keys = restart_keys(0, n_init)
        tol_j = jnp.asarray(tol, jnp.float64)
        for ct in TYPES:
            for k in ks:
                cfg = em.EMConfig(k, ct, max_iter, False, False)

                def call(ct=ct, cfg=cfg):  # select's program for one unpadded model
                    data = prep.data[ct]
                    return jax.block_until_ready(_fit_score_jit(
                        data.x.shape[0], keys, data, None, tol_j, prep.reg[ct], cfg=cfg,
                        method="kmeans"))

                t = time.perf_counter()
                call()
                first = time.perf_counter() - t
                t = time.perf_counter()
                call()
                run = time.perf_counter() - t
                out[(k, ct)] = (first - run, run)
    return out


def time_new_process(a, cache_dir):
    """``bgmm.select`` in a fresh Python process with JAX's persistent compilation cache
    (``bgmm.enable_compilation_cache``): the first process compiles and stores the programs,
    the second traces them and loads them from disk. Seconds of the select call only."""
    argv = [sys.executable, os.path.abspath(__file__), a.data, "--n", str(a.n), "--d",
            str(a.d), "--true-k", str(a.true_k), "--kmax", str(a.kmax), "--n-init",
            str(a.n_init), "--max-iter", str(a.max_iter), "--tol", str(a.tol), "--reg",
            str(a.reg), "--child-with-cache", cache_dir]
    out = []
    for _ in range(2):
        r = subprocess.run(argv, capture_output=True, text=True, check=True)
        out.append(float(r.stdout.split()[-1]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", choices=["faithful", "synthetic"])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--d", type=int, default=4)
    ap.add_argument("--true-k", type=int, default=4)
    ap.add_argument("--kmax", type=int, default=6)
    ap.add_argument("--n-init", type=int, default=10)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--reg", type=float, default=1e-6)
    ap.add_argument("--per-model", action="store_true",
                    help="also time each model's first (compile) and second (run) call")
    ap.add_argument("--no-cache-runs", action="store_true",
                    help="skip the two new-process runs with the persistent compilation cache")
    ap.add_argument("--child-with-cache", metavar="DIR", help=argparse.SUPPRESS)
    a = ap.parse_args()
    x = bgmm.load_faithful() if a.data == "faithful" else synthetic(a.n, a.d, a.true_k)
    ks = list(range(1, a.kmax + 1))
    kw = dict(n_init=a.n_init, max_iter=a.max_iter, tol=a.tol, reg_covar=a.reg, random_state=0)
    if a.child_with_cache:  # see time_new_process
        bgmm.enable_compilation_cache(a.child_with_cache)
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        select(x, ks, TYPES, **kw)
        print(f"{time.perf_counter() - t:.4f}")
        return
    print(f"data={a.data} N={x.shape[0]} D={x.shape[1]} K=1..{a.kmax} x {len(TYPES)} types "
          f"= {len(ks) * len(TYPES)} models, n_init={a.n_init}, max_iter={a.max_iter}, "
          f"tol={a.tol}; jax {jax.__version__} on {jax.devices()[0].platform}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    warnings.simplefilter("ignore")

    sk_total, sk = time_sklearn(x, ks, a.n_init, a.max_iter, a.tol, a.reg)
    jax.clear_caches()
    t = time.perf_counter()
    res = select(x, ks, TYPES, **kw)  # trace + compile (threads) + run
    cold = time.perf_counter() - t
    t = time.perf_counter()
    res = select(x, ks, TYPES, **kw)  # programs cached: run only
    warm = time.perf_counter() - t
    first = res._fits[(ks[0], TYPES[0])]
    pad, one = first.k_fit > ks[0], first.all_types
    if one:  # K padded, one EM program per covariance type (as MAP and larger grids run)
        one_max = selection._ONE_PROGRAM_MAX_FEATURES
        selection._ONE_PROGRAM_MAX_FEATURES = 0
        jax.clear_caches()
        t = time.perf_counter()
        res_pt = select(x, ks, TYPES, **kw)
        cold_pt = time.perf_counter() - t
        t = time.perf_counter()
        select(x, ks, TYPES, **kw)
        warm_pt = time.perf_counter() - t
        selection._ONE_PROGRAM_MAX_FEATURES = one_max
        diff_pt = float(np.max(np.abs(res.to_frame()["bic"] - res_pt.to_frame()["bic"])))
    jax.clear_caches()
    t = time.perf_counter()
    res_np = select(x, ks, TYPES, pad_components=False, **kw)  # one program per (K, type)
    cold_np = time.perf_counter() - t
    t = time.perf_counter()
    select(x, ks, TYPES, pad_components=False, **kw)
    warm_np = time.perf_counter() - t
    diff = float(np.max(np.abs(res.to_frame()["bic"] - res_np.to_frame()["bic"])))
    df = res.to_frame()
    per = None
    if a.per_model:
        jax.clear_caches()
        per = time_bgmm_per_model(x, ks, a.n_init, a.max_iter, a.tol, a.reg)

    print(f"\n{'model':>14} {'sklearn s':>10} {'BIC sklearn':>12} {'BIC bgmm':>12}"
          + (f" {'bgmm compile s':>15} {'bgmm run s':>11}" if per else ""))
    for (k, ct), (t_sk, bic_sk) in sk.items():
        line = f"{f'K={k} {ct}':>14} {t_sk:10.3f} {bic_sk:12.2f} {df.loc[(k, ct), 'bic']:12.2f}"
        if per:
            line += f" {per[(k, ct)][0]:15.2f} {per[(k, ct)][1]:11.4f}"
        print(line)
    print(f"\nscikit-learn loop over the grid:                  {sk_total:9.2f} s")
    what = ("K padded: one EM program for all types, one init program" if one else
            "K padded: one EM program per type, one init program" if pad else "not padded")
    print(f"bgmm.select (default: {what}):")
    print(f"  cold (trace + compile + run):                   {cold:9.2f} s   "
          f"(sklearn / bgmm = {sk_total / cold:.2f}x)")
    print(f"  warm (programs cached, run only):               {warm:9.2f} s   "
          f"(sklearn / bgmm = {sk_total / warm:.1f}x)")
    print(f"  => compile ~ cold - warm = {cold - warm:.2f} s, run = {warm:.2f} s")
    if not a.no_cache_runs:
        with tempfile.TemporaryDirectory() as cache_dir:
            store, load = time_new_process(a, cache_dir)
        print("  new process, bgmm.enable_compilation_cache (JAX's persistent cache):")
        print(f"    first (compile + store):                    {store:9.2f} s   "
              f"(sklearn / bgmm = {sk_total / store:.2f}x)")
        print(f"    next (trace + load from disk + run):        {load:9.2f} s   "
              f"(sklearn / bgmm = {sk_total / load:.2f}x)")
    if one:
        print("bgmm.select, K padded, one EM program per covariance type:")
        print(f"  cold {cold_pt:.2f} s (sklearn / bgmm = {sk_total / cold_pt:.2f}x), warm "
              f"{warm_pt:.2f} s (sklearn / bgmm = {sk_total / warm_pt:.1f}x); max |BIC - "
              f"default's| = {diff_pt:.2e}")
    print("bgmm.select(pad_components=False) (one program per (K, type)):")
    print(f"  cold {cold_np:.2f} s (sklearn / bgmm = {sk_total / cold_np:.2f}x), warm {warm_np:.2f} s"
          f" (sklearn / bgmm = {sk_total / warm_np:.1f}x); max |BIC padded - not padded| "
          f"= {diff:.2e}")
    if per:
        comp = sum(c for c, _ in per.values())
        run = sum(r for _, r in per.values())
        print(f"per model, sequential: compile {comp:.2f} s ({comp / len(per):.2f} s each), "
              f"run {run:.2f} s")
    cols = ["log_likelihood", "n_parameters", "bic", "aic", "icl", "converged", "degenerate"]
    print("\nbgmm.select table (lower is better; mclust BIC = -BIC):")
    print(df[cols].round(2).to_string())
    print(f"chosen by BIC: bgmm {res.best_key_}, sklearn "
          f"{min(sk, key=lambda key: sk[key][1])}")


if __name__ == "__main__":
    main()

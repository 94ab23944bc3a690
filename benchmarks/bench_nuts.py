"""NUTS on the marginalised mixture: gradient evaluations per second and ESS per second.

    python benchmarks/bench_nuts.py                      # vectorized and sequential chains
    python benchmarks/bench_nuts.py --parallel 4         # + 4 chains on 4 CPU devices

bgmm.mcmc.run_nuts (NumPyro NUTS on :func:`bgmm.marginal_model`, default data-driven
prior, float64, bgmm's NUTS defaults: dense mass for these small models,
``target_accept_prob=0.9``), chains started at the EM (MAP) fit. Data: Old Faithful
(272 x 2, K=2, full) and N=1e5 synthetic (D=2, K=3, full). Each configuration is run
twice; the second call reuses run_nuts's cached sampler, so its time excludes tracing and
compiling. ``--methods`` lists the chain methods run on one device; ``--parallel n``
re-runs in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=n`` and
``chain_method="parallel"``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import load, machine, mixture_data  # noqa: E402

import bgmm  # noqa: E402


def run(name, x, k, chains, method, warmup, samples):
    """Two identical bgmm.mcmc.run_nuts calls; the second reuses the cached, compiled sampler,
    so its NUTS time (warmup + sampling in one program) excludes tracing and compiling."""
    import arviz as az

    ct = "full"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = bgmm.GaussianMixture(k, covariance_type=ct, prior="default", random_state=0,
                                  n_init=2).fit(x)
        kw = dict(n_components=k, covariance_type=ct, prior=gm._prior,
                  init_params=(gm.weights_, gm.means_, gm.covariances_), num_chains=chains,
                  num_warmup=warmup, num_samples=samples, chain_method=method, seed=0,
                  log_likelihood=False, posterior_predictive=False, responsibilities=False)
        cold = bgmm.mcmc.run_nuts(x, **kw).attrs["nuts_wall_time_s"]
        tree = bgmm.mcmc.run_nuts(x, **kw)
    a = tree.attrs
    dt = a["nuts_wall_time_s"]
    # leapfrog steps of warmup estimated from the kept draws' (same trajectory lengths)
    steps = a["sampling_grad_evals"] * (warmup + samples) / samples
    post = tree["posterior"].to_dataset()[["weights", "means"]]
    ess = float(az.ess(post, method="bulk").to_array().min())
    print(f"{name:22} {x.shape[0]:7d} {chains:3d} {method:10} | {cold:8.2f} {dt:8.2f} "
          f"{steps / dt:10.0f} {dt / steps * chains * 1e3:9.2f} | {ess:8.1f} {ess / dt:8.2f} "
          f"| {load()}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--methods", default="vectorized,sequential",
                    help="comma-separated chain methods run on one device")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--big-n", type=float, default=1e5)
    ap.add_argument("--big-samples", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=0)
    ap.add_argument("--no-header", action="store_true")
    a = ap.parse_args(argv)
    if not a.no_header:
        print(f"# machine: {machine()}; {jax.local_device_count()} device(s)")
        print(f"{'data':22} {'N':>7} {'ch':>3} {'method':10} | {'cold s':>8} {'warm s':>8} "
              f"{'grad/s':>10} {'ms/step':>9} | {'min ESS':>8} {'ESS/s':>8} | load")
    methods = [m for m in a.methods.split(",") if m]
    big = mixture_data(int(a.big_n), 2, 3, seed=2)
    for method in methods:
        if method == "parallel" and jax.local_device_count() < a.chains:
            print(f"# skip parallel: {jax.local_device_count()} device(s) < {a.chains} chains")
            continue
        run("Old Faithful K=2", bgmm.load_faithful(), 2, a.chains, method, a.warmup, a.samples)
        run("synthetic D=2 K=3", big, 3, a.chains, method, a.big_samples, a.big_samples)
    if a.parallel:
        env = dict(os.environ,
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={a.parallel}")
        subprocess.run([sys.executable, __file__, "--no-header", "--methods", "parallel",
                        "--chains", str(a.parallel), "--warmup", str(a.warmup),
                        "--samples", str(a.samples), "--big-n", str(a.big_n),
                        "--big-samples", str(a.big_samples)], env=env, check=True)
    if not a.no_header:
        print("# cold / warm = NUTS time (warmup + sampling) of the first / second identical "
              "run_nuts call; grad/s = leapfrog steps of all chains (warmup steps estimated) "
              "per warm second; ms/step = warm time x chains / steps; ESS = min bulk ESS "
              f"(ArviZ) of weights and means; load average at end: {load()}")


if __name__ == "__main__":
    main()

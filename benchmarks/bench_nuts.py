"""NUTS on the marginalised mixture: gradient evaluations per second and ESS per second.

    python benchmarks/bench_nuts.py                      # vectorized and sequential chains
    python benchmarks/bench_nuts.py --parallel 4         # + 4 chains on 4 CPU devices

NumPyro NUTS on :func:`bgmm.marginal_model` with the default data-driven prior
(float64), chains started at the EM (MAP) fit, with bgmm's NUTS defaults (dense mass
matrix for these small models, ``target_accept_prob=0.9``, as :func:`bgmm.mcmc.run_nuts`).
Data: Old Faithful (272 x 2, K=2, full) and N=1e5 synthetic (D=2, K=3, full). Timing
covers the sampling phase only (warmup run separately, compile excluded); gradient
evaluations = sum of leapfrog steps over chains; ESS = the minimum over all parameters
(NumPyro's ``effective_sample_size``). ``--methods`` lists the chain methods run on one
device; ``--parallel n`` re-runs in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=n`` and ``chain_method="parallel"``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import load, machine, mixture_data  # noqa: E402

import bgmm  # noqa: E402
from bgmm.priors import GMMPrior, as_arrays, resolve_prior  # noqa: E402


def run(name, x, k, chains, method, warmup, samples):
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC, NUTS, init_to_value

    ct = "full"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = bgmm.GaussianMixture(k, covariance_type=ct, prior="default", random_state=0,
                                  n_init=2).fit(x)
    prior = resolve_prior(GMMPrior(), x, k, ct)
    init = dict(weights=gm.weights_, means=gm.means_, covariances=gm.covariances_)
    with jax.enable_x64(True):
        # data and prior as arguments of the compiled sampler (jit_model_args, as run_nuts):
        # without it NumPyro cannot cache the sampling program (array keyword arguments) and
        # every run() recompiles, which swamped the timings of earlier versions of this script
        model = partial(bgmm.marginal_model, n_components=k, covariance_type=ct)
        kernel = NUTS(model, init_strategy=init_to_value(values=init),
                      dense_mass=True, target_accept_prob=0.9)
        mcmc = MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=chains,
                    chain_method=method, progress_bar=False, jit_model_args=True)
        kw = dict(x=jnp.asarray(x), prior=as_arrays(prior, jnp.float64))
        mcmc.warmup(jax.random.PRNGKey(0), extra_fields=("num_steps",), **kw)
        # the first run() after warmup compiles the sampling loop: time a second one
        mcmc.post_warmup_state = mcmc.last_state
        mcmc.run(jax.random.PRNGKey(1), extra_fields=("num_steps",), **kw)
        jax.block_until_ready(mcmc.get_samples())
        mcmc.post_warmup_state = mcmc.last_state
        t = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(2), extra_fields=("num_steps",), **kw)
        samples_ = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
        dt = time.perf_counter() - t
        steps = int(np.sum(np.asarray(mcmc.get_extra_fields()["num_steps"])))
        ess = min(float(np.min(effective_sample_size(np.asarray(v)))) for v in samples_.values())
    print(f"{name:22} {x.shape[0]:7d} {chains:3d} {method:10} | {dt:8.2f} "
          f"{steps / dt:10.0f} {dt / steps * chains * 1e3:9.2f} | {ess:8.1f} {ess / dt:8.1f}",
          flush=True)


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
        print(f"{'data':22} {'N':>7} {'ch':>3} {'method':10} | {'time s':>8} {'grad/s':>10} "
              f"{'ms/step':>9} | {'min ESS':>8} {'ESS/s':>8}")
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
        print("# grad/s = leapfrog steps of all chains per second; ms/step = per chain step "
              f"wall time x chains / steps; load average at end: {load()}")


if __name__ == "__main__":
    main()

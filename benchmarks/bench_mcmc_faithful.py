"""NUTS on Old Faithful: R-hat, ESS, divergences, wall time and speed (K=2,3; full, diag).

Run: PYTHONPATH=$PWD python benchmarks/bench_mcmc_faithful.py [num_warmup num_samples]
Speed = kept-draw gradient evaluations (sum of num_steps) / steady-state time, where the
steady-state time is the run's wall time minus that of a 10+10 run of the same shapes
(compilation, measured the same way).
"""
import sys
import time
import warnings

import arviz as az
import numpy as np

import bgmm

nw, ns = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (1000, 1000)
X = np.asarray(bgmm.load_faithful())
for k in (2, 3):
    for ct in ("full", "diag"):
        gm = bgmm.GaussianMixture(k, covariance_type=ct, prior="default", n_init=5,
                                  random_state=0).fit(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            gm.sample_posterior(X, num_chains=4, num_warmup=10, num_samples=10, seed=1,
                                log_likelihood=False, posterior_predictive=False,
                                responsibilities=False, laplace=False)
            t_compile = time.perf_counter() - t
            t = time.perf_counter()
            tree = gm.sample_posterior(X, num_chains=4, num_warmup=nw, num_samples=ns, seed=0)
            wall = time.perf_counter() - t
        post = tree["posterior"].to_dataset()[["weights", "means"]]
        rhat = float(az.rhat(post).to_array().max())
        ess = float(az.ess(post, method="bulk").to_array().min())
        a = tree.attrs
        steady = a["nuts_wall_time_s"] - t_compile
        print(f"K={k} {ct:4s}: max R-hat {rhat:.4f}  min ESS bulk {ess:.0f}  divergences "
              f"{a['n_divergent']}  permuted {a['n_permuted_draws']}  off-mode "
              f"{a['off_mode_chains']}  NUTS wall {a['nuts_wall_time_s']:.1f}s (compile ~"
              f"{t_compile:.1f}s) total sample_posterior {wall:.1f}s  grad evals/s "
              f"{a['sampling_grad_evals'] * (nw + ns) / ns / steady:.0f} (approx., warmup "
              f"counted like sampling)  kept grad evals {a['sampling_grad_evals']}  "
              f"min ESS/s {ess / steady:.1f}", flush=True)

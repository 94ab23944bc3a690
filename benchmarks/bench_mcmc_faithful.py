"""NUTS on Old Faithful: R-hat, ESS, divergences, wall time and speed (K=2,3; full, diag).

Run: PYTHONPATH=$PWD python benchmarks/bench_mcmc_faithful.py [num_warmup num_samples]
Each configuration runs twice with a persistent compilation cache: the first wall time
includes compilation, the second is (nearly) compile-free and gives the speed:
gradient evaluations/s = (kept-draw sum of num_steps) * (warmup + samples) / samples / time
(warmup steps assumed as long as sampling steps), and min bulk ESS / time.
"""
import os
import sys
import tempfile
import time
import warnings

import arviz as az
import jax
import numpy as np

import bgmm

jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("BGMM_JAX_CACHE", os.path.join(tempfile.gettempdir(), "bgmm_jc")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)
nw, ns = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (1000, 1000)
configs = [(int(c[0]), c[1:]) for c in sys.argv[3:]] or [(2, "full"), (2, "diag"), (3, "full"),
                                                        (3, "diag")]
X = np.asarray(bgmm.load_faithful())
for k, ct in configs:
    gm = bgmm.GaussianMixture(k, covariance_type=ct, prior="default", n_init=5,
                              random_state=0).fit(X)
    walls = []
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            tree = gm.sample_posterior(X, num_chains=4, num_warmup=nw, num_samples=ns, seed=0)
            walls.append(time.perf_counter() - t)
    post = tree["posterior"].to_dataset()[["weights", "means"]]
    rhat = float(az.rhat(post).to_array().max())
    ess = float(az.ess(post, method="bulk").to_array().min())
    a = tree.attrs
    nuts = a["nuts_wall_time_s"]
    grads = a["sampling_grad_evals"] * (nw + ns) / ns
    print(f"K={k} {ct:4s}: max R-hat {rhat:.4f}  min ESS bulk {ess:.0f}  divergences "
          f"{a['n_divergent']}  permuted {a['n_permuted_draws']}  off-mode {a['off_mode_chains']}"
          f"  sample_posterior wall {walls[0]:.1f}s cold / {walls[1]:.1f}s warm (NUTS part "
          f"{nuts:.1f}s)  grad evals/s {grads / nuts:.0f}  min ESS/s {ess / nuts:.0f}", flush=True)

"""NUTS on Old Faithful: R-hat, ESS, divergences, wall time and speed (K=2,3; full, diag).

Run: PYTHONPATH=$PWD python benchmarks/bench_mcmc_faithful.py [num_warmup num_samples [2full ...]]

Each configuration runs ``sample_posterior`` twice in one process, with the defaults of
the issue (4 chains from the EM fit, ``seed=0``) and no persistent compilation cache: the
first ("cold") wall time includes tracing and compiling; the second ("warm") reuses
run_nuts's cached sampler, so it is the sampling cost plus the post-processing. Speed is
taken from the warm NUTS part (warmup + sampling, one compiled program):
gradient evaluations/s ~= (leapfrog steps of the kept draws) * (warmup + samples) / samples
/ NUTS time (warmup trajectories assumed as long as sampling ones: an estimate), and
min bulk ESS / NUTS time. R-hat and bulk ESS are ArviZ's, over weights and means after
relabelling. The load average is printed with each line (shared machine).
"""
import os
import sys
import time
import warnings

import arviz as az
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import load, machine  # noqa: E402

import bgmm  # noqa: E402

nw, ns = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (1000, 1000)
configs = [(int(c[0]), c[1:]) for c in sys.argv[3:]] or [(2, "full"), (2, "diag"), (3, "full"),
                                                        (3, "diag")]
X = np.asarray(bgmm.load_faithful())
print(f"# machine: {machine()}; jax devices {jax.local_device_count()}")
print(f"# 4 chains, {nw} warmup + {ns} draws each, seed 0, bgmm defaults (dense mass 'auto', "
      "target_accept_prob 0.9)")
for k, ct in configs:
    gm = bgmm.GaussianMixture(k, covariance_type=ct, prior="default", n_init=5,
                              random_state=0).fit(X)
    walls, nuts = [], []
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            tree = gm.sample_posterior(X, num_chains=4, num_warmup=nw, num_samples=ns, seed=0)
            walls.append(time.perf_counter() - t)
        nuts.append(tree.attrs["nuts_wall_time_s"])
    post = tree["posterior"].to_dataset()[["weights", "means"]]
    rhat = float(az.rhat(post).to_array().max())
    ess = float(az.ess(post, method="bulk").to_array().min())
    a = tree.attrs
    ss = tree["sample_stats"]
    grads = a["sampling_grad_evals"] * (nw + ns) / ns
    print(f"K={k} {ct:4s}: max R-hat {rhat:.4f}  min bulk ESS {ess:.0f}  divergences "
          f"{a['n_divergent']}  permuted draws {a['n_permuted_draws']}  off-mode "
          f"{a['off_mode_chains']}  dense mass {a['dense_mass']}  mean leapfrog steps/draw "
          f"{float(ss['n_steps'].mean()):.1f}  | sample_posterior wall {walls[0]:.1f}s cold / "
          f"{walls[1]:.1f}s warm (NUTS {nuts[0]:.1f}s / {nuts[1]:.1f}s)  grad evals/s "
          f"~{grads / nuts[1]:.0f}  min ESS/s {ess / nuts[1]:.1f}  | load {load()}", flush=True)

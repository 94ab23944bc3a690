"""Cost of restarts: ``n_init=16`` vs ``n_init=1`` (all restarts in one vmapped call).

    python benchmarks/bench_restarts.py [--sizes N,D,K ...] [--dtype float64]

Each fit runs ``--iters`` EM iterations with tol=0 (so every restart does the same
work) after its k-means initialisation; wall time of ``GaussianMixture.fit`` with
the compiled program cached (the second call), best of 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time, load, machine, mixture_data  # noqa: E402

import bgmm  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", default=["272,2,2", "10000,2,3", "100000,8,8"])
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--n-init", type=int, default=16)
    a = ap.parse_args(argv)
    print(f"# machine: {machine()}")
    print(f"{'N':>8} {'D':>3} {'K':>3} {'dtype':8} | {'n_init=1 s':>10} "
          f"{'n_init=' + str(a.n_init) + ' s':>11} | {'ratio':>6}")
    for s in a.sizes:
        n, d, k = (int(float(v)) for v in s.split(","))
        x = bgmm.load_faithful() if (n, d) == (272, 2) else mixture_data(n, d, k)
        times = []
        for n_init in (1, a.n_init):
            gm = bgmm.GaussianMixture(k, n_init=n_init, tol=0.0, max_iter=a.iters,
                                      dtype=a.dtype, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gm.fit(x)  # compile
                times.append(best_time(lambda: gm.fit(x), repeat=2))  # noqa: B023
        print(f"{n:8d} {d:3d} {k:3d} {a.dtype:8} | {times[0]:10.3f} {times[1]:11.3f} | "
              f"{times[1] / times[0]:6.2f}", flush=True)
    print(f"# load average at end: {load()}")


if __name__ == "__main__":
    main()

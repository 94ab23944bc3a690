"""Streaming EM over a large float32 .npy file on disk: seconds per iteration, peak RSS.

    python benchmarks/bench_streaming.py --n 100000000 --path /tmp/big.npy   # 3.2 GB
    python benchmarks/bench_streaming.py                                      # 1e7 rows

The file is written once (if absent) with a K=8 mixture in 8 dimensions; the fit runs
``--iters`` EM iterations with tol=0 and reports the wall time per iteration (a pass
over the whole file) and memory: the peak of the process's anonymous resident memory
(``RssAnon`` in /proc/self/status, sampled every 0.1 s: what the fit allocates) and
the peak total RSS (``ru_maxrss``, which also counts the memory-mapped file's pages
that the kernel keeps cached and can drop at any time).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine  # noqa: E402

from bgmm.streaming import fit_streaming  # noqa: E402


def write(path, n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, (k, d)).astype(np.float32)
    m = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    step = 1 << 20
    for i in range(0, n, step):
        b = min(step, n - i)
        m[i:i + b] = means[rng.integers(0, k, b)] + rng.standard_normal((b, d), np.float32)
    m.flush()
    del m


class AnonPeak(threading.Thread):
    """Samples RssAnon (MiB) from /proc/self/status until stopped; keeps the peak."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop = 0.0, threading.Event()

    def sample(self):
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        self.peak = max(self.peak, int(line.split()[1]) / 1024)
        except OSError:  # not Linux
            pass

    def run(self):
        while not self.stop.wait(0.1):
            self.sample()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=float, default=1e7)
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=1 << 18)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--path", default="/tmp/bgmm_stream_bench.npy")
    a = ap.parse_args(argv)
    n = int(a.n)
    print(f"# machine: {machine()}")
    if not os.path.exists(a.path):
        t = time.perf_counter()
        write(a.path, n, a.d, a.k)
        print(f"# wrote {a.path}: {os.path.getsize(a.path) / 1e9:.2f} GB in "
              f"{time.perf_counter() - t:.1f} s")
    src = np.load(a.path, mmap_mode="r")
    mon = AnonPeak()
    mon.sample()
    before = mon.peak
    mon.start()
    t = time.perf_counter()
    g = fit_streaming(src, a.k, chunk_size=a.chunk, max_iter=a.iters, tol=0.0, dtype=a.dtype,
                      init_params="k-means++", random_state=0, verbose=1)
    total = time.perf_counter() - t
    mon.stop.set()
    mon.join()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # passes: 1 (moments + subsample) + iters (EM) + 1 (final score)
    print(f"N={src.shape[0]:.3g} D={src.shape[1]} K={a.k} {a.dtype} chunk={a.chunk}: "
          f"{total:.1f} s total for {a.iters} iterations + 2 passes "
          f"(~{total / (a.iters + 2):.1f} s per pass), peak anonymous RSS {mon.peak:.0f} MiB "
          f"({before:.0f} MiB before the fit), peak total RSS incl. cached file pages {rss:.0f} MiB, "
          f"file {os.path.getsize(a.path) / 2**20:.0f} MiB, mean log-lik {g.lower_bound_:.6f}")


if __name__ == "__main__":
    main()

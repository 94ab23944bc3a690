"""Streaming EM equals the in-memory fit and keeps memory bounded.

References: scikit-learn's GaussianMixture from the same starting parameters, and
bgmm's in-memory estimator (the same starting parameters, the same k-means init).
"""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SK

import bgmm
from bgmm import streaming
from bgmm.streaming import fit_streaming


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (1500, 3)),
                        rng.normal(0, 0.5, (1000, 3)) + [4.0, 1.0, -2.0],
                        rng.normal(0, 0.7, (500, 3)) + [-3.0, 2.0, 2.0]])
    return x[rng.permutation(len(x))]


def _three_fits(x, ct, max_iter, dtype="float64"):
    """scikit-learn (float64), bgmm in memory and bgmm streaming (chunks of 700), K=3,
    ``max_iter`` steps (tol=0) from the start scikit-learn reaches after 2 steps."""
    sk0 = SK(3, covariance_type=ct, random_state=0, max_iter=2).fit(x)
    kw = dict(covariance_type=ct, weights_init=sk0.weights_, means_init=sk0.means_,
              precisions_init=sk0.precisions_, max_iter=max_iter, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (SK(3, **kw).fit(x), bgmm.GaussianMixture(3, dtype=dtype, **kw).fit(x),
                fit_streaming(x, 3, chunk_size=700, dtype=dtype, **kw))


@pytest.mark.parametrize("ct", ["full", pytest.param("diag", marks=pytest.mark.slow)])
def test_matches_sklearn_and_in_memory_fit(X, ct):
    ref, one, st = _three_fits(X, ct, 12)  # 3000 = 4 x 700 + 200 padded
    for a in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(st, a), getattr(ref, a), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(getattr(st, a), getattr(one, a), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(st.lower_bounds_, one.lower_bounds_, rtol=0, atol=1e-12)
    assert abs(st.lower_bound_ - ref.lower_bound_) < 1e-10
    assert st.n_iter_ == 12 and st.n_samples_seen_ == len(X)


@pytest.mark.parametrize("ct", ["full", "tied"])
def test_float32_with_many_features_matches_in_memory_fit_and_sklearn(ct):
    """float32, full or tied, more than ``em.CENTRED_MIN_FEATURES`` features: EM sums
    second moments about the current means, chunk by chunk; the chunks' sums add up to
    the in-memory fit's, and both follow scikit-learn's float64 EM from the same start."""
    from bgmm import em

    rng = np.random.default_rng(1)
    d = em.CENTRED_MIN_FEATURES + 4
    centres = rng.normal(0.0, 3.0, (3, d))
    x = np.concatenate([rng.normal(0, s, (n, d)) + c
                        for c, s, n in zip(centres, (1.0, 0.3, 0.6), (1500, 1000, 500))])
    x = x[rng.permutation(len(x))]
    ref, one, st = _three_fits(x, ct, 8, dtype="float32")
    assert st.n_iter_ == one.n_iter_ == 8
    np.testing.assert_allclose(st.lower_bounds_, one.lower_bounds_, rtol=0, atol=1e-5)
    for a in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(st, a), getattr(one, a), rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(getattr(st, a), getattr(ref, a), rtol=1e-3, atol=1e-4)
    assert abs(st.score(x) - ref.score(x)) < 1e-5


def test_non_finite_objective_stops_with_the_current_parameters(X, monkeypatch):
    """A pass whose log-likelihood is not finite (forced from the third pass on) stops
    the fit with the parameters it was taken at, as ``bgmm.em.fit`` does: that step is
    not counted, the lower bounds and parameters are those of the fit stopped one step
    earlier (max_iter=2), the objective is -inf and a DegenerateFitWarning says why."""
    kw = dict(tol=0.0, random_state=0, chunk_size=700)
    ref = fit_streaming(X, 2, max_iter=2, **kw)
    real, calls = streaming._pass_stats, []

    def pass_stats(*a, **k):
        calls.append(1)
        stats, ll = real(*a, **k)
        return stats, (ll * np.nan if len(calls) >= 3 else ll)

    monkeypatch.setattr(streaming, "_pass_stats", pass_stats)
    with pytest.warns(bgmm.DegenerateFitWarning, match="non-finite objective"):
        st = fit_streaming(X, 2, max_iter=50, **kw)
    assert st.n_iter_ == 2 and not st.converged_ and st.lower_bound_ == -np.inf
    np.testing.assert_array_equal(st.lower_bounds_, ref.lower_bounds_)
    np.testing.assert_array_equal(st.means_, ref.means_)


def test_no_false_emptied_warning(X):
    """Regression: the streaming fit passed one total weight where the estimator expected
    per-row weights, so every component was reported "emptied" (effective count = its
    weight). Three well-filled clusters must not warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", bgmm.DegenerateFitWarning)
        st = fit_streaming(X, 3, chunk_size=700, max_iter=200, tol=1e-6, random_state=0)
    assert st.converged_
    np.testing.assert_allclose(np.sort(st.weights_), [1 / 6, 1 / 3, 1 / 2], atol=0.01)


def test_sources_agree_and_one_compile(X, tmp_path):
    x32 = X.astype(np.float32)
    np.save(tmp_path / "a.npy", x32[:1234])
    np.save(tmp_path / "b.npy", x32[1234:])
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32,
                                   shape=X.shape)
    mm[:] = x32
    mm.flush()
    sources = {
        "array": x32,
        "files": [tmp_path / "a.npy", str(tmp_path / "b.npy")],
        "memmap": np.load(tmp_path / "m.npy", mmap_mode="r"),
        "iterator": lambda: (x32[i:i + 333] for i in range(0, len(x32), 333)),
    }
    before = streaming._chunk_expectation._cache_size()
    fits = {k: fit_streaming(s, 3, chunk_size=512, random_state=3, max_iter=20)
            for k, s in sources.items()}
    # ragged chunks and four source kinds, one compiled chunk program
    assert streaming._chunk_expectation._cache_size() - before <= 1
    for k, g in fits.items():
        np.testing.assert_allclose(g.means_, fits["array"].means_, rtol=1e-12, err_msg=k)
    # k-means++ init on the subsample (here all rows) reaches the in-memory optimum
    one = bgmm.GaussianMixture(3, random_state=3).fit(X)
    assert abs(fits["array"].lower_bound_ - one.lower_bound_) < 1e-4
    assert fits["array"].converged_


def test_bad_sources(X):
    with pytest.raises(TypeError, match="source"):
        fit_streaming(42, 2)
    with pytest.raises(ValueError, match="2-D"):
        fit_streaming(X[:, 0], 2)
    with pytest.raises(ValueError, match="chunk_size"):
        fit_streaming(X, 2, chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size"):
        fit_streaming(X, 2, chunk_size=True)
    with pytest.raises(ValueError, match="init_subsample"):
        fit_streaming(X, 2, init_subsample=True)
    with pytest.raises(ValueError, match="n_features"):
        fit_streaming(lambda: iter([X[:10], X[:10, :2]]), 2)
    bad = X.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_streaming(bad, 2)
    with pytest.raises(ValueError, match="n_samples"):
        fit_streaming(X[:3], 5, init_subsample=10)


def test_a_source_that_changes_between_passes_is_an_error(X):
    """Each EM iteration re-reads the source: it must give the first pass's data again."""
    bad = X.copy()
    bad[5, 1] = np.nan

    def passes(*later):  # a callable source: pass 0 gives X, the next ones ``later``
        it = iter([X, *later])
        return lambda: iter([next(it, X)])

    once = iter([X])
    cases = [(passes(bad), ValueError, "NaN"),
             (passes(X[:-10]), ValueError, "rows on a later pass but"),
             (passes(np.c_[X, X[:, :1]]), ValueError, "a chunk has 4 features, the first pass had 3"),
             (passes(X + 1j), TypeError, "real numbers"),
             (lambda: once, ValueError, "rows on a later pass but .* fresh iterator")]
    for source, exc, match in cases:
        with pytest.raises(exc, match=match):
            fit_streaming(source, 2, max_iter=3, tol=0.0, random_state=0)


MEMORY_SCRIPT = textwrap.dedent(r"""
    import resource, sys, numpy as np
    from bgmm.streaming import fit_streaming
    path, n = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    m = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 8))
    for i in range(0, n, 1 << 18):
        k = min(1 << 18, n - i)
        m[i:i + k] = rng.normal(size=(k, 8)) + 3.0 * (rng.random((k, 1)) < 0.5)
    m.flush(); del m
    src = np.load(path, mmap_mode="r")
    kw = dict(chunk_size=1 << 15, init_subsample=5000)
    fit_streaming(src[:100_000], 2, max_iter=2, **kw)  # compile, warm up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    g = fit_streaming(np.load(path, mmap_mode="r"), 2, max_iter=2, tol=0.0, **kw)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert g.n_iter_ == 2 and np.isfinite(g.lower_bound_)
    print("GREW_KB", grew)
""")


def test_peak_memory_bounded(tmp_path):
    n = 1_000_000  # 32 MB of float32 on disk
    r = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "big.npy"), str(n)],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 0, r.stdout + r.stderr
    grew_kb = int(r.stdout.split("GREW_KB")[1].split()[0])
    assert grew_kb < 12_000, f"peak RSS grew by {grew_kb} kB while streaming a 32 MB file"

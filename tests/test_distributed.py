"""Data-parallel EM on 4 forced CPU devices equals the single-device fit.

The device count must be fixed before JAX is imported, so the checks run in a fresh
interpreter; the reference is bgmm's own single-device estimator from the same start
(itself checked against scikit-learn in tests/test_em.py) and scikit-learn directly.
"""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(r"""
    import os, sys, warnings
    FULL = sys.argv[1] == "full"
    TYPES = ("full", "tied", "diag", "spherical") if FULL else ("full", "spherical")
    import numpy as np
    import jax
    assert len(jax.devices()) == 4, jax.devices()
    from sklearn.mixture import GaussianMixture as SK
    import bgmm
    from bgmm.distributed import fit_sharded, make_mesh
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    n = 1024  # a bucket size: the single-device fit pads nothing either
    X = np.concatenate([rng.normal(0, 1, (n // 2, 3)),
                        rng.normal(0, 0.5, (n // 2, 3)) + [4.0, 1.0, -2.0]])
    X = X[rng.permutation(n)]
    for ct in TYPES:
        sk0 = SK(3, covariance_type=ct, random_state=0, max_iter=2).fit(X)
        init = dict(weights_init=sk0.weights_, means_init=sk0.means_,
                    precisions_init=sk0.precisions_)
        kw = dict(covariance_type=ct, max_iter=30, tol=0.0, **init)
        one = bgmm.GaussianMixture(3, **kw).fit(X)
        many = fit_sharded(X, 3, **kw)
        ref = SK(3, **kw).fit(X)
        for a in ("weights_", "means_", "covariances_"):
            np.testing.assert_allclose(getattr(many, a), getattr(one, a), rtol=1e-9, atol=1e-11)
            np.testing.assert_allclose(getattr(many, a), getattr(ref, a), rtol=1e-7, atol=1e-9)
        assert abs(many.lower_bound_ - one.lower_bound_) < 1e-10
        np.testing.assert_array_equal(many.predict(X), one.predict(X))
    # k-means init, restarts, a prior and sample weights through the sharded path
    w = rng.uniform(0.5, 2.0, n)
    kw = dict(covariance_type="full", n_init=3, random_state=1, prior="default")
    one = bgmm.GaussianMixture(2, **kw).fit(X, sample_weight=w)
    many = fit_sharded(X, 2, sample_weight=w, **kw)
    np.testing.assert_allclose(many.means_, one.means_, rtol=1e-8, atol=1e-10)
    assert many.n_iter_ == one.n_iter_
    # data really split: 4 shards of 256 rows; float32 too; a 2-device sub-mesh
    from bgmm import em
    from bgmm.distributed import shard_data
    d = shard_data(em.make_data(np.zeros((8, 2)), np.ones(8), "full"), make_mesh())
    assert {s.data.shape[0] for s in d.x.addressable_shards} == {2}
    assert len(d.x.sharding.device_set) == 4
    if not FULL:
        print("OK"); raise SystemExit
    m32 = fit_sharded(X, 2, dtype="float32", random_state=0, devices=jax.devices()[:2])
    o32 = bgmm.GaussianMixture(2, dtype="float32", random_state=0).fit(X)
    np.testing.assert_allclose(m32.means_, o32.means_, rtol=1e-4, atol=1e-4)
    # a global jax.Array input (the multi-host form) gives the same fit
    from jax.sharding import NamedSharding, PartitionSpec as P
    mesh = make_mesh()
    with jax.enable_x64(True):
        Xg = jax.device_put(X, NamedSharding(mesh, P("data")))
    g = fit_sharded(Xg, 3, mesh=mesh, covariance_type="diag", max_iter=30, tol=0.0,
                    random_state=0)
    o = bgmm.GaussianMixture(3, covariance_type="diag", max_iter=30, tol=0.0,
                             random_state=0).fit(X)
    np.testing.assert_allclose(g.means_, o.means_, rtol=1e-8, atol=1e-10)
    print("OK")
""")


def _run(mode):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stdout + r.stderr


def test_sharded_fit_matches_single_device():
    _run("fast")


@pytest.mark.slow
def test_sharded_fit_all_types_float32_global_array():
    _run("full")


def test_bad_arguments():
    import numpy as np

    from bgmm.distributed import fit_sharded

    x = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="missing"):
        fit_sharded(x, 2, missing="marginalize")
    from bgmm.distributed import make_mesh

    with pytest.raises(ValueError, match="axis_name"):
        fit_sharded(x, 2, mesh=make_mesh(), axis_name="batch")
    with pytest.raises(ValueError, match="sample_weight"):
        fit_sharded(x, 2, sample_weight=-np.ones(20))
    with pytest.raises(ValueError, match="n_components"):
        fit_sharded(x, 0)

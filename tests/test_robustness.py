"""Hard data never gives NaN silently; degenerate fits are reported; determinism."""

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGM

import bgmm

TYPES = ["full", "tied", "diag", "spherical"]
_rng = np.random.default_rng(0)
_BASE = np.concatenate([_rng.normal(size=(100, 3)), _rng.normal(size=(100, 3)) + 4])
HARD = {
    "duplicates": np.repeat(_BASE[:20], 10, axis=0),
    "constant-feature": np.column_stack([_BASE[:, :2], np.full(200, 3.0)]),
    "collinear": np.column_stack([_BASE[:, :2], 2 * _BASE[:, 0] - _BASE[:, 1]]),
    "offset-1e6": _BASE * 1e-3 + 1e6,
    "scale-1e-8": _BASE * 1e-8,
    "scale-1e8": _BASE * 1e8,
    "outliers": np.vstack([_BASE, _rng.normal(size=(5, 3)) * 1e6]),
    "K-close-to-N": _BASE[:8],
}


def _check_proper(gm, X):
    assert np.all(np.isfinite(gm.weights_)) and np.all(np.isfinite(gm.means_))
    assert np.all(np.isfinite(gm.covariances_)) and np.all(np.isfinite(gm.precisions_cholesky_))
    full = {"full": gm.covariances_, "tied": gm.covariances_[None]}.get(gm.covariance_type)
    if full is not None:
        assert np.all(np.linalg.eigvalsh(np.asarray(full, np.float64)) > 0)
    else:
        assert np.all(gm.covariances_ > 0)
    p = gm.predict_proba(X)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    assert np.isfinite(gm.score(X))


def _fit(X, ct, dtype, prior):
    k = 6 if len(X) < 10 else 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gm = bgmm.GaussianMixture(k, covariance_type=ct, dtype=dtype, prior=prior,
                                  random_state=0).fit(X)
    return gm, [w.category for w in caught]


def _hard_case(case, ct, dtype, prior):
    X = HARD[case]
    gm, caught = _fit(X, ct, dtype, prior)
    _check_proper(gm, X)
    if case == "K-close-to-N" and prior is None:
        # 6 components on 8 points: some collapse onto single points; that must be said
        assert bgmm.DegenerateFitWarning in caught
    if prior is not None:
        assert bgmm.DegenerateFitWarning not in caught  # the prior keeps every fit proper


@pytest.mark.parametrize("prior", [None, "default"])
@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("case", list(HARD))
def test_hard_data_float32(case, ct, prior):
    _hard_case(case, ct, "float32", prior)


@pytest.mark.slow
@pytest.mark.parametrize("prior", [None, "default"])
@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("case", list(HARD))
def test_hard_data_float64(case, ct, prior):
    _hard_case(case, ct, "float64", prior)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_offset_float32_matches_sklearn_float64(dtype):
    """Standardising in float64 first keeps float32 fits exact on data at 1e6 + noise."""
    X = HARD["offset-1e6"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkGM(2, n_init=3, random_state=0, tol=1e-8, max_iter=500).fit(X)
        gm = bgmm.GaussianMixture(2, n_init=3, random_state=0, tol=1e-8, max_iter=500,
                                  dtype=dtype).fit(X)
    assert gm.score(X) == pytest.approx(sk.score(X), abs=1e-4 if dtype == "float32" else 1e-8)


def test_emptied_component_policy():
    """A start with a component far from all data: MLE empties it (weight ~0, previous mean
    kept, DegenerateFitWarning); MAP keeps it proper at the prior."""
    X = _BASE[:, :2]
    start = dict(weights_init=[0.45, 0.45, 0.1], means_init=[[0, 0], [4, 4], [1e3, 1e3]],
                 precisions_init=np.stack([np.eye(2)] * 3))
    with pytest.warns(bgmm.DegenerateFitWarning, match=r"component\(s\) \[2\]"):
        gm = bgmm.GaussianMixture(3, **start).fit(X)
    assert gm.weights_[2] < 1e-10
    np.testing.assert_allclose(gm.means_[2], [1e3, 1e3])
    _check_proper(gm, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bgmm.DegenerateFitWarning)
        gm = bgmm.GaussianMixture(3, prior="default", **start).fit(X)
    _check_proper(gm, X)


def test_non_convergence_warning_names_the_change(faithful):
    with pytest.warns(bgmm.ConvergenceWarning, match=r"last change of the objective was [0-9.e-]+"):
        bgmm.GaussianMixture(3, max_iter=2, tol=1e-10, random_state=0).fit(faithful)


def test_same_seed_bit_identical(faithful):
    a = bgmm.GaussianMixture(3, n_init=4, random_state=7).fit(faithful)
    b = bgmm.GaussianMixture(3, n_init=4, random_state=7).fit(faithful)
    for name in ("weights_", "means_", "covariances_", "lower_bounds_", "all_lower_bounds_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_restarts_do_not_depend_on_batch_size(faithful):
    a = bgmm.GaussianMixture(3, n_init=4, random_state=7).fit(faithful)
    b = bgmm.GaussianMixture(3, n_init=8, random_state=7).fit(faithful)
    np.testing.assert_allclose(a.all_lower_bounds_, b.all_lower_bounds_[:4], rtol=1e-12)

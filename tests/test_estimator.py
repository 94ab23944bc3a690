"""The scikit-learn estimator contract."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import bgmm


@pytest.fixture(scope="module")
def fitted(faithful):
    return bgmm.GaussianMixture(2, random_state=0).fit(faithful)


def test_attributes_and_shapes(fitted, faithful):
    gm = fitted
    assert gm.weights_.shape == (2,) and gm.means_.shape == (2, 2)
    assert gm.covariances_.shape == gm.precisions_.shape == gm.precisions_cholesky_.shape == (2, 2, 2)
    assert gm.n_features_in_ == 2 and gm.converged_ and gm.n_iter_ >= 1
    np.testing.assert_allclose(gm.weights_.sum(), 1.0)
    for p, c in zip(gm.precisions_, gm.covariances_):
        np.testing.assert_allclose(p @ c, np.eye(2), atol=1e-8)
    proba = gm.predict_proba(faithful)
    assert proba.shape == (272, 2) and isinstance(proba, np.ndarray)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert np.array_equal(gm.predict(faithful), proba.argmax(1))
    assert gm.score_samples(faithful).shape == (272,)
    assert gm.score(faithful) == pytest.approx(gm.score_samples(faithful).mean())


def test_fit_predict_equals_fit_then_predict(faithful):
    gm = bgmm.GaussianMixture(3, random_state=1, n_init=3)
    labels = gm.fit_predict(faithful)
    assert np.array_equal(labels, clone(gm).fit(faithful).predict(faithful))


def test_sample_reproduces_the_mixture(fitted):
    X, y = fitted.sample(200_000)
    assert X.shape == (200_000, 2) and y.shape == (200_000,)
    np.testing.assert_allclose(np.bincount(y) / len(y), fitted.weights_, atol=5e-3)
    for k in range(2):
        np.testing.assert_allclose(X[y == k].mean(0), fitted.means_[k], rtol=5e-3)
        np.testing.assert_allclose(np.cov(X[y == k].T), fitted.covariances_[k], rtol=3e-2, atol=1e-3)


@pytest.mark.parametrize("ct", ["tied", "diag", "spherical"])
def test_sample_shapes_other_types(ct, faithful):
    gm = bgmm.GaussianMixture(2, covariance_type=ct, random_state=0).fit(faithful)
    X, y = gm.sample(5000)
    assert X.shape == (5000, 2) and set(np.unique(y)) <= {0, 1}


def test_inputs_dataframe_jax_and_float32(faithful):
    df = bgmm.load_faithful(as_frame=True)
    assert list(df.columns) == ["eruptions", "waiting"] and df.shape == (272, 2)
    gm = bgmm.GaussianMixture(2, random_state=0).fit(df)
    assert list(gm.feature_names_in_) == ["eruptions", "waiting"]
    ref = gm.predict_proba(df)
    # a JAX array made without x64 holds float32 data: same fit to float32 accuracy
    gj = bgmm.GaussianMixture(2, random_state=0).fit(jnp.asarray(faithful))
    np.testing.assert_allclose(gj.predict_proba(jnp.asarray(faithful)), ref, atol=1e-5)
    assert isinstance(gj.means_, np.ndarray)


def test_precision_is_local(faithful):
    before = jax.config.jax_enable_x64
    g64 = bgmm.GaussianMixture(2, random_state=0).fit(faithful)
    g32 = bgmm.GaussianMixture(2, random_state=0, dtype="float32").fit(faithful)
    assert jax.config.jax_enable_x64 == before
    # the attributes are float64 either way (de-standardised in float64)
    assert g64.means_.dtype == np.float64 and g32.means_.dtype == np.float64


def test_clone_pipeline_gridsearch(faithful):
    gm = bgmm.GaussianMixture(2, covariance_type="diag", random_state=0)
    assert clone(gm).get_params() == gm.get_params()
    gm.set_params(n_components=3)
    assert gm.n_components == 3
    pipe = make_pipeline(StandardScaler(), bgmm.GaussianMixture(2, random_state=0)).fit(faithful)
    assert pipe.predict(faithful).shape == (272,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = GridSearchCV(bgmm.GaussianMixture(random_state=0),
                            {"n_components": [1, 2, 3], "covariance_type": ["full", "spherical"]},
                            cv=3).fit(faithful)
    assert grid.best_params_["n_components"] >= 2
    assert np.isfinite(grid.best_score_)


def test_pickle_roundtrip(fitted, faithful):
    import pickle

    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(faithful), fitted.predict_proba(faithful))


def test_em_trace_is_recorded(fitted):
    tr = fitted.lower_bounds_
    assert len(tr) == fitted.n_iter_ and np.all(np.diff(tr) >= -1e-12)


def test_load_faithful_frame_matches_array(faithful):
    df = bgmm.load_faithful(as_frame=True)
    assert isinstance(df, pd.DataFrame)
    np.testing.assert_array_equal(df.to_numpy(), faithful)
    assert faithful.shape == (272, 2)


def test_passes_sklearn_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(bgmm.GaussianMixture(), on_fail=None)
    failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    assert len(results) > 40 and not failed

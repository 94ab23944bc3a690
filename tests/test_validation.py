"""Bad input gets a clear error naming the problem, and nothing is changed."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

import bgmm

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 2))
X_NAN = X.copy()
X_NAN[3, 1] = np.nan
X_INF = X.copy()
X_INF[5, 0] = np.inf

GM = bgmm.GaussianMixture
P = bgmm.GMMPrior

# (id, estimator kwargs, fit args, expected exception, message pattern)
CASES = [
    ("nan", {}, (X_NAN,), ValueError, "NaN"),
    ("inf", {}, (X_INF,), ValueError, "infinity"),
    ("1d", {}, (X[:, 0],), ValueError, "2D array"),
    ("3d", {}, (X[None],), ValueError, "dim 3"),
    ("empty", {}, (np.empty((0, 2)),), ValueError, "0 sample"),
    ("one-sample", {}, (X[:1],), ValueError, "1 sample"),
    ("fewer-samples-than-K", {"n_components": 5}, (X[:4],), ValueError, "n_samples >= n_components"),
    ("non-numeric-frame", {}, (pd.DataFrame({"a": ["x"] * 40, "b": np.arange(40.0)}),), ValueError,
     "could not convert|numeric"),
    ("n_components<1", {"n_components": 0}, (X,), ValueError, "n_components must be an integer >= 1"),
    ("n_components-float", {"n_components": 2.5}, (X,), ValueError, "n_components must be an integer"),
    ("covariance_type", {"covariance_type": "banana"}, (X,), ValueError, "covariance_type must be one of"),
    ("init_params", {"init_params": "mystery"}, (X,), ValueError, "init_params must be one of"),
    ("reg_covar<0", {"reg_covar": -1e-3}, (X,), ValueError, "reg_covar must be a finite number >= 0"),
    ("tol<0", {"tol": -1.0}, (X,), ValueError, "tol must be a finite number >= 0"),
    ("max_iter<1", {"max_iter": 0}, (X,), ValueError, "max_iter must be an integer >= 1"),
    ("n_init<1", {"n_init": 0}, (X,), ValueError, "n_init must be an integer >= 1"),
    ("dtype", {"dtype": "float16"}, (X,), ValueError, "dtype must be"),
    ("missing", {"missing": "ignore"}, (X,), ValueError, "missing must be one of"),
    ("weights_init-shape", {"n_components": 2, "weights_init": [1.0]}, (X,), ValueError,
     r"weights_init must have shape \(2,\)"),
    ("weights_init-sum", {"n_components": 2, "weights_init": [0.5, 0.6]}, (X,), ValueError,
     "weights_init must sum to 1"),
    ("weights_init-negative", {"n_components": 2, "weights_init": [1.5, -0.5]}, (X,), ValueError,
     r"weights_init must lie in \[0, 1\]"),
    ("means_init-shape", {"n_components": 2, "means_init": np.zeros((3, 2))}, (X,), ValueError,
     r"means_init must have shape \(2, 2\)"),
    ("precisions_init-shape", {"n_components": 2, "precisions_init": np.ones((2, 2))}, (X,),
     ValueError, r"precisions_init must have shape \(2, 2, 2\)"),
    ("precisions_init-not-pd", {"n_components": 2,
                                "precisions_init": np.array([[[1.0, 2.0], [2.0, 1.0]]] * 2)},
     (X,), ValueError, "precisions_init must be symmetric positive definite"),
    ("precisions_init-diag-negative", {"n_components": 2, "covariance_type": "diag",
                                       "precisions_init": -np.ones((2, 2))}, (X,), ValueError,
     "precisions_init must be positive"),
    ("prior-type", {"prior": "flat"}, (X,), ValueError, "prior must be None"),
    ("prior-dof", {"prior": P(dof=0.5)}, (X,), ValueError, "prior dof must be a scalar > 1"),
    ("prior-scale-negative", {"covariance_type": "diag", "prior": P(scale=[-1.0, 1.0])}, (X,),
     ValueError, "prior scale must be positive"),
    ("prior-scale-not-pd", {"prior": P(scale=[[1.0, 2.0], [2.0, 1.0]])}, (X,), ValueError,
     "prior scale must be a symmetric positive definite"),
    ("prior-scale-shape", {"prior": P(scale=[1.0, 1.0])}, (X,), ValueError,
     r"prior scale must have shape \(2, 2\)"),
    ("prior-mean-length", {"prior": P(mean=[0.0, 0.0, 0.0])}, (X,), ValueError,
     r"prior mean must have shape \(2,\)"),
    ("prior-kappa", {"prior": P(mean_precision=0.0)}, (X,), ValueError,
     "prior mean_precision must be a positive scalar"),
    ("prior-alpha", {"n_components": 2, "prior": P(weight_concentration=[1.0, -2.0])}, (X,),
     ValueError, "prior weight_concentration must be a positive"),
    ("prior-sparse-alpha-for-MAP", {"prior": P(weight_concentration=0.1)}, (X,), ValueError,
     "MAP-EM needs prior weight_concentration >= 1"),
    ("prior-nan", {"prior": P(mean=[np.nan, 0.0])}, (X,), ValueError, "prior mean must be finite"),
]


@pytest.mark.parametrize("kwargs,args,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_clearly(kwargs, args, exc, match):
    gm = GM(**kwargs)
    before = gm.get_params()
    with pytest.raises(exc, match=match):
        gm.fit(*args)
    assert gm.get_params().keys() == before.keys()
    for k, v in before.items():
        assert gm.get_params()[k] is v
    assert not hasattr(gm, "means_")


@pytest.mark.parametrize("w,match", [
    (-np.ones(40), "Negative values in data passed to `sample_weight`"),
    (np.full(40, np.nan), "NaN"),
    (np.ones(39), r"sample_weight.shape == \(39,\), expected \(40,\)"),
    (np.zeros(40), "at least one non-zero"),
])
def test_bad_sample_weight(w, match):
    with pytest.raises(ValueError, match=match):
        GM(2).fit(X, sample_weight=w)


def test_predict_checks():
    with pytest.raises(NotFittedError):
        GM(2).predict(X)
    gm = GM(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2"):
        gm.predict(np.ones((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        gm.predict_proba(X_NAN)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
        gm.sample(0)

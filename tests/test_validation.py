"""Bad input gets a clear error naming the problem, and nothing is changed."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
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

# (id, estimator kwargs, fit args, expected exception, message pattern); fit on an unfitted estimator
CASES = [
    ("nan", {}, (X_NAN,), ValueError, r"X contains NaN \(first at row 3, column 1.*missing='marginalize'"),
    ("inf", {}, (X_INF,), ValueError, "infinity"),
    ("1d", {}, (X[:, 0],), ValueError, "2D array"),
    ("3d", {}, (X[None],), ValueError, "dim 3"),
    ("empty", {}, (np.empty((0, 2)),), ValueError, "0 sample"),
    ("one-sample", {}, (X[:1],), ValueError, "1 sample"),
    ("fewer-samples-than-K", {"n_components": 5}, (X[:4],), ValueError, "n_samples >= n_components"),
    ("non-numeric-frame", {}, (pd.DataFrame({"a": ["x"] * 40, "b": np.arange(40.0)}),), TypeError,
     r"X has non-numeric column\(s\) 'a' \(.*\); GaussianMixture needs numeric features"),
    ("categorical-frame", {}, (pd.DataFrame({"a": np.arange(40.0),
                                             "c": pd.Categorical(["u", "v"] * 20)}),),
     TypeError, r"non-numeric column\(s\) 'c' \(category\)"),
    ("string-array", {}, (np.array([["a", "b"]] * 10),), ValueError, "could not convert string to float"),
    ("complex-X", {}, (X.astype(complex),), ValueError, "Complex data not supported"),
    ("sparse-X", {}, (sp.csr_matrix(X),), TypeError, "dense data is required"),
    ("overflowing-X", {}, (X * 1e200,), ValueError, r"bgmm needs \|x\| <= 1e\+150"),
    ("negative-sample_weight", {}, (X, None, -np.ones(40)), ValueError,
     "Negative values in data passed to `sample_weight`"),
    ("nan-sample_weight", {}, (X, None, np.full(40, np.nan)), ValueError, "sample_weight contains NaN"),
    ("sample_weight-shape", {}, (X, None, np.ones(39)), ValueError,
     r"sample_weight.shape == \(39,\), expected \(40,\)"),
    ("zero-sample_weight", {}, (X, None, np.zeros(40)), ValueError, "at least one non-zero"),
    ("n_components<1", {"n_components": 0}, (X,), ValueError, "n_components must be an integer >= 1"),
    ("n_components-float", {"n_components": 2.5}, (X,), ValueError, "n_components must be an integer"),
    ("covariance_type", {"covariance_type": "banana"}, (X,), ValueError, "covariance_type must be one of"),
    ("init_params", {"init_params": "mystery"}, (X,), ValueError, "init_params must be one of"),
    ("reg_covar<0", {"reg_covar": -1e-3}, (X,), ValueError, "reg_covar must be a finite number >= 0"),
    ("tol<0", {"tol": -1.0}, (X,), ValueError, "tol must be a finite number >= 0"),
    ("max_iter<1", {"max_iter": 0}, (X,), ValueError, "max_iter must be an integer >= 1"),
    ("n_init<1", {"n_init": 0}, (X,), ValueError, "n_init must be an integer >= 1"),
    ("dtype", {"dtype": "float16"}, (X,), ValueError, "dtype must be 'float32' or 'float64', got 'float16'"),
    ("random_state", {"random_state": "seed"}, (X,), ValueError, "cannot be used to seed"),
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
     (X,), ValueError, r"precisions_init\[0\] must be symmetric positive definite, got smallest "
                       "eigenvalue -1"),
    ("precisions_init-not-symmetric", {"n_components": 2, "precisions_init": np.array(
        [np.eye(2), [[1.0, 0.5], [0.0, 1.0]]])}, (X,), ValueError,
     r"precisions_init\[1\] must be symmetric positive definite, got a non-symmetric"),
    ("precisions_init-tied-not-pd", {"n_components": 2, "covariance_type": "tied",
                                     "precisions_init": -np.eye(2)}, (X,), ValueError,
     "precisions_init must be symmetric positive definite, got smallest eigenvalue -1"),
    ("means_init-nan", {"n_components": 2, "means_init": np.full((2, 2), np.nan)}, (X,),
     ValueError, "means_init must be finite"),
    ("precisions_init-diag-negative", {"n_components": 2, "covariance_type": "diag",
                                       "precisions_init": -np.ones((2, 2))}, (X,), ValueError,
     "precisions_init must be positive"),
    ("prior-type", {"prior": "flat"}, (X,), ValueError, "prior must be None"),
    ("prior-dof", {"prior": P(dof=0.5)}, (X,), ValueError, "prior dof must be a scalar > 1"),
    ("prior-dof-diag", {"covariance_type": "diag", "prior": P(dof=0.0)}, (X,), ValueError,
     "prior dof must be a scalar > 0 for covariance_type='diag'"),
    ("prior-dict", {"prior": {"dof": 3.0}}, (X,), ValueError, "prior must be None"),
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
    ("missing-feature-never-observed", {"missing": "marginalize"},
     (np.c_[X, np.full(40, np.nan)],), ValueError, r"feature\(s\) \[2\] of X have no observed"),
]



def _fitted():
    return GM(2, random_state=0).fit(X)


# calls on a fitted estimator: (id, method, args, expected exception, message pattern)
FITTED_CASES = [
    ("predict-other-n-features", "predict", (np.ones((4, 3)),), ValueError,
     "X has 3 features, but GaussianMixture is expecting 2 features"),
    ("score-other-n-features", "score_samples", (np.ones((4, 1)),), ValueError,
     "X has 1 features, but GaussianMixture is expecting 2"),
    ("predict-nan", "predict_proba", (X_NAN,), ValueError, "X contains NaN"),
    ("predict-1d", "predict", (X[0],), ValueError, "2D array"),
    ("sample-0", "sample", (0,), ValueError, "n_samples must be an integer >= 1"),
    ("sample-bool", "sample", (True,), ValueError, "n_samples must be an integer >= 1"),
    ("score-negative-weight", "score", (X, None, -np.ones(40)), ValueError, "Negative values"),
    ("score-zero-weights", "score", (X, None, np.zeros(40)), ValueError, "non-zero"),
    ("score-weights-wrong-length", "score", (X, None, np.ones(3)), ValueError,
     r"sample_weight.shape == \(3,\), expected \(40,\)"),
    ("refit-nan", "fit", (X_NAN,), ValueError, "X contains NaN"),
    ("refit-other-K-too-few-samples", "fit", (X[:1],), ValueError, "1 sample"),
]
UNFITTED_CASES = [(f"{m}-before-fit", m, (X,), NotFittedError, "not fitted yet")
                  for m in ("predict", "predict_proba", "score", "score_samples", "bic", "aic")]
UNFITTED_CASES.append(("sample-before-fit", "sample", (3,), NotFittedError, "not fitted yet"))

ALL = ([(c[0], c[1], "fit", c[2], c[3], c[4], False) for c in CASES]
       + [(c[0], {}, c[1], c[2], c[3], c[4], True) for c in FITTED_CASES]
       + [(c[0], {}, c[1], c[2], c[3], c[4], False) for c in UNFITTED_CASES])


@pytest.mark.parametrize("kwargs,method,args,exc,match,fitted", [c[1:] for c in ALL],
                         ids=[c[0] for c in ALL])
def test_bad_input_is_rejected_clearly(kwargs, method, args, exc, match, fitted):
    """Every bad input raises a ValueError / TypeError (NotFittedError before fit) whose
    message names the problem, and the estimator is left exactly as it was."""
    gm = _fitted() if fitted else GM(**kwargs)
    before = gm.get_params()
    state = {k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in vars(gm).items()}
    with pytest.raises(exc, match=match):
        getattr(gm, method)(*args)
    assert gm.get_params().keys() == before.keys()
    for k, v in before.items():
        assert gm.get_params()[k] is v
    assert vars(gm).keys() == state.keys()
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(getattr(gm, k), v)
    if not fitted:
        assert not hasattr(gm, "means_") and not hasattr(gm, "n_features_in_")


def test_good_inputs_of_other_types_are_accepted():
    """Integers, booleans and float32 arrays are numeric data, not errors."""
    for x in ((X * 10).astype(int), X > 0, X.astype(np.float32)):
        gm = GM(1, random_state=0).fit(x)
        assert np.isfinite(gm.score(x))


def _sharded(x):
    from bgmm.distributed import fit_sharded

    return fit_sharded(x, 2)


def _streaming(x):
    from bgmm.streaming import fit_streaming

    return fit_streaming(x, 2)


def _nuts(x):
    from bgmm.mcmc import run_nuts

    return run_nuts(x, n_components=2, covariance_type="full")


# the other entry points: complex data and |x| beyond what float64 squares can hold
@pytest.mark.parametrize("name, fit", [
    ("select", lambda x: bgmm.select(x, 2)), ("fit_many", lambda x: bgmm.fit_many(x[None], 2)),
    ("fit_sharded", _sharded), ("fit_streaming", _streaming), ("run_nuts", _nuts)])
@pytest.mark.parametrize("bad, exc, match", [
    (X + 1j, (TypeError, ValueError), "[Cc]omplex"),
    (X * 1e160, ValueError, "entries up to .* rescale")])
def test_every_entry_point_rejects_complex_and_huge_data(name, fit, bad, exc, match):
    with pytest.raises(exc, match=match):
        fit(bad)


@pytest.mark.parametrize("args, match", [
    ((X, 2, "bad"), "covariance_type must be one of"),
    ((X[:, 0], 2, "full"), "2-D array"),
    ((X, 0, "full"), "n_components must be an integer >= 1")])
def test_default_prior_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        bgmm.default_prior(*args)

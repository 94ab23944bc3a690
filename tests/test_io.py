"""Saving and loading: the reloaded estimator predicts identically."""

import numpy as np
import pytest

import bgmm
from bgmm.io import load_estimator, save_estimator


@pytest.mark.parametrize("ct,prior", [("full", None), ("diag", "default"), ("spherical", "object")])
def test_estimator_roundtrip(ct, prior, tmp_path, faithful):
    if prior == "object":
        prior = bgmm.GMMPrior(mean_precision=0.5, dof=4.0)
    df = bgmm.load_faithful(as_frame=True)
    gm = bgmm.GaussianMixture(2, covariance_type=ct, prior=prior, random_state=3).fit(df)
    path = save_estimator(gm, tmp_path / "model")
    assert path.suffix == ".npz"
    again = load_estimator(path)
    assert again.get_params().keys() == gm.get_params().keys()
    assert again.covariance_type == ct and again.n_iter_ == gm.n_iter_
    np.testing.assert_array_equal(again.predict_proba(df), gm.predict_proba(df))
    np.testing.assert_array_equal(again.score_samples(df), gm.score_samples(df))
    np.testing.assert_array_equal(again.means_, gm.means_)
    assert list(again.feature_names_in_) == ["eruptions", "waiting"]
    assert again.lower_bound_ == gm.lower_bound_
    if isinstance(prior, bgmm.GMMPrior):  # the user's prior, not the one resolved from df
        assert again.prior._asdict().keys() == prior._asdict().keys()
        for f, v in prior._asdict().items():
            assert (getattr(again.prior, f) is None) == (v is None), f
        # so a clone refits like the original estimator on other data (and other K)
        from sklearn.base import clone

        other = df * [60.0, 1.0]
        for k in (2, 3):
            a = clone(again).set_params(n_components=k).fit(other)
            b = clone(gm).set_params(n_components=k).fit(other)
            assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-12)


def test_unknown_or_newer_format_is_refused(tmp_path, faithful):
    import json

    gm = bgmm.GaussianMixture(1).fit(faithful)
    path = save_estimator(gm, tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = dict(z)
    header = json.loads(arrays["header"].tobytes())
    header["version"] = 99
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "newer.npz", **arrays)
    with pytest.raises(ValueError, match="format version 99"):
        load_estimator(tmp_path / "newer.npz")
    np.savez(tmp_path / "foreign.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not a saved bgmm estimator"):
        load_estimator(tmp_path / "foreign.npz")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a saved bgmm estimator"):
        load_estimator(tmp_path / "data.csv")
    np.savez(tmp_path / "other.npz", header=np.frombuffer(b'{"format": "x"}', np.uint8))
    with pytest.raises(ValueError, match="not a saved bgmm estimator"):
        load_estimator(tmp_path / "other.npz")

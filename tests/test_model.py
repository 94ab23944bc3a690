"""The NumPyro model: explicit vs marginal density, MAP objective == NumPyro log joint."""

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import Predictive
from numpyro.infer.util import log_density
from scipy import stats

import bgmm
from bgmm.model import marginal_model, model
from bgmm.priors import default_prior

TYPES = ["full", "tied", "diag", "spherical"]


def _params_from(gm):
    return {"weights": jnp.asarray(gm.weights_), "means": jnp.asarray(gm.means_),
            "covariances": jnp.asarray(gm.covariances_)}


@pytest.mark.parametrize("ct", TYPES)
def test_marginal_equals_logsumexp_over_z_of_explicit(ct, faithful):
    k = 2
    with jax.enable_x64(True):
        x = jnp.asarray(faithful[:4])
        prior = default_prior(faithful, k, ct)
        params = Predictive(model, num_samples=1)(jax.random.PRNGKey(1), n_components=k,
                                                  covariance_type=ct, prior=prior, n_samples=4)
        params = {n: params[n][0] for n in ("weights", "means", "covariances")}
        kw = dict(n_components=k, covariance_type=ct, prior=prior)
        joint = [log_density(model, (x,), kw, {**params, "z": jnp.asarray(z)})[0]
                 for z in itertools.product(range(k), repeat=4)]
        marginal = log_density(marginal_model, (x,), kw, params)[0]
        total = jax.nn.logsumexp(jnp.stack(joint))
    assert float(marginal) == pytest.approx(float(total), rel=1e-12)


@pytest.mark.parametrize("ct", TYPES)
def test_map_objective_equals_numpyro_log_joint(ct, faithful):
    gm = bgmm.GaussianMixture(3, covariance_type=ct, prior="default", random_state=0).fit(faithful)
    prior = default_prior(faithful, 3, ct)
    kw = dict(n_components=3, covariance_type=ct, prior=prior)
    with jax.enable_x64(True):
        lj = float(log_density(marginal_model, (jnp.asarray(faithful),), kw, _params_from(gm))[0])
    assert gm.lower_bound_ == pytest.approx(lj / len(faithful), rel=1e-10)
    # ... and the MLE objective is the mean log-likelihood, i.e. scikit-learn's score
    mle = bgmm.GaussianMixture(3, covariance_type=ct, random_state=0).fit(faithful)
    assert mle.lower_bound_ == pytest.approx(mle.score(faithful), rel=1e-12)


def test_map_with_user_prior_and_weights(faithful):
    prior = bgmm.GMMPrior(weight_concentration=[2.0, 3.0], mean=[3.5, 70.0], mean_precision=0.5,
                          dof=6.0, scale=np.diag([0.5, 40.0]))
    w = np.random.default_rng(0).integers(1, 4, len(faithful)).astype(float)
    gm = bgmm.GaussianMixture(2, prior=prior, random_state=0, tol=1e-10, max_iter=500).fit(
        faithful, sample_weight=w)
    resolved = bgmm.priors.resolve_prior(prior, faithful, 2, "full")
    kw = dict(n_components=2, covariance_type="full", prior=resolved, sample_weight=jnp.asarray(w))
    with jax.enable_x64(True):
        lj = float(log_density(marginal_model, (jnp.asarray(faithful),), kw, _params_from(gm))[0])
    assert gm.lower_bound_ == pytest.approx(lj / w.sum(), rel=1e-10)
    # MAP is a stationary point of the log joint: no coordinate move improves it
    with jax.enable_x64(True):
        def f(p):
            return log_density(marginal_model, (jnp.asarray(faithful),), kw, p)[0]
        p0 = _params_from(gm)
        for step in (1e-4, -1e-4):
            moved = {**p0, "means": p0["means"].at[0, 1].add(step)}
            assert float(f(moved)) <= float(f(p0)) + 1e-9


def test_numpyro_prior_densities_match_scipy():
    """The model's inverse-Wishart / inverse-gamma sites are scipy's distributions."""
    import numpyro.distributions as dist

    psi = np.array([[2.0, 0.3], [0.3, 1.0]])
    sigma = np.array([[1.5, -0.2], [-0.2, 0.7]])
    with jax.enable_x64(True):
        ours = float(dist.InverseWishart(5.0, scale_matrix=jnp.asarray(psi)).log_prob(sigma))
        ig = float(dist.InverseGamma(1.5, 0.25).log_prob(0.8))
    assert ours == pytest.approx(stats.invwishart(df=5.0, scale=psi).logpdf(sigma), rel=1e-10)
    assert ig == pytest.approx(stats.invgamma(1.5, scale=0.25).logpdf(0.8), rel=1e-10)


@pytest.mark.parametrize("ct", TYPES)
def test_prior_predictive_shapes(ct, faithful):
    k = 3
    prior = default_prior(faithful, k, ct)
    with jax.enable_x64(True):
        draws = Predictive(model, num_samples=7)(jax.random.PRNGKey(0), n_components=k,
                                                 covariance_type=ct, prior=prior, n_samples=50)
    shapes = {"full": (k, 2, 2), "tied": (2, 2), "diag": (k, 2), "spherical": (k,)}
    assert draws["weights"].shape == (7, k)
    assert draws["means"].shape == (7, k, 2)
    assert draws["covariances"].shape == (7,) + shapes[ct]
    assert draws["z"].shape == (7, 50) and draws["x"].shape == (7, 50, 2)
    assert np.all(np.isfinite(draws["x"]))


def test_default_prior_is_scale_aware(faithful):
    p = default_prior(faithful, 2, "full")
    np.testing.assert_allclose(p.mean, faithful.mean(0))
    np.testing.assert_allclose(p.scale, np.cov(faithful.T, bias=True) / 2.0, rtol=1e-8)
    assert p.dof == 4.0 and p.mean_precision == 0.01
    np.testing.assert_allclose(default_prior(faithful, 2, "diag").scale,
                               faithful.var(0) / 2.0, rtol=1e-8)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_map_is_affine_equivariant(ct, faithful):
    """Fitting rescaled data (units changed) gives the rescaled MAP: the default prior and
    the internal standardisation move with the data."""
    a = np.array([60.0, 1 / 60.0])  # minutes -> seconds, minutes -> hours
    b = np.array([-100.0, 5.0])
    # reg_covar is in data units (scikit-learn semantics), so it is switched off here
    kw = dict(n_components=2, covariance_type=ct, prior="default", tol=1e-12, max_iter=1000, reg_covar=0.0,
              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g1 = bgmm.GaussianMixture(**kw).fit(faithful)
        g2 = bgmm.GaussianMixture(**kw).fit(faithful * a + b)
    order1, order2 = np.argsort(g1.means_[:, 0]), np.argsort(g2.means_[:, 0])
    np.testing.assert_allclose(g2.means_[order2], (g1.means_ * a + b)[order1], rtol=1e-5)
    scale = np.outer(a, a) if ct == "full" else a**2
    np.testing.assert_allclose(g2.covariances_[order2], (g1.covariances_ * scale)[order1], rtol=1e-4)
    # densities transform with the Jacobian
    assert g2.score(faithful * a + b) == pytest.approx(g1.score(faithful) - np.log(a).sum(), rel=1e-8)

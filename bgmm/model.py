"""The generative mixture model in NumPyro: one prior for MAP-EM, NUTS and prediction.

``model`` is the explicit form with the latent assignments ``z``; with ``x=None`` it
samples the prior predictive (parameters, ``z`` and ``x``), with ``x`` given it
conditions on data. ``marginal_model`` is the same joint density with ``z`` summed out
(``MixtureSameFamily``), the form NUTS and the MAP objective of :mod:`bgmm.em` use.

Sites: ``weights`` (K,), ``means`` (K, D), ``covariances`` in scikit-learn's shape for
the covariance type, ``z`` (N,) and ``x`` (N, D). ``prior`` is a resolved
:class:`bgmm.priors.GMMPrior` in the data's units. ``sample_weight`` (N,) scales each
observation's log-likelihood (``numpyro.handlers.scale``), as in weighted EM.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from .priors import GMMPrior


def sample_parameters(n_components: int, covariance_type: str, prior: GMMPrior):
    """Sample ``weights``, ``covariances`` and ``means`` from the prior."""
    k = n_components
    alpha, m0, kappa, nu, psi = (jnp.asarray(v) for v in prior)
    d = m0.shape[-1]
    weights = numpyro.sample("weights", dist.Dirichlet(alpha))
    if covariance_type == "tied":
        covs = numpyro.sample("covariances", dist.InverseWishart(nu, scale_matrix=psi))
        with numpyro.plate("components", k):
            means = numpyro.sample(
                "means", dist.MultivariateNormal(m0, covariance_matrix=covs / kappa))
        return weights, means, covs
    with numpyro.plate("components", k):
        if covariance_type == "full":
            covs = numpyro.sample("covariances", dist.InverseWishart(nu, scale_matrix=psi))
            means = numpyro.sample(
                "means", dist.MultivariateNormal(m0, covariance_matrix=covs / kappa))
        elif covariance_type == "diag":
            covs = numpyro.sample(
                "covariances",
                dist.InverseGamma(jnp.broadcast_to(nu / 2, (d,)), psi / 2).to_event(1))
            means = numpyro.sample("means", dist.Normal(m0, jnp.sqrt(covs / kappa)).to_event(1))
        else:
            covs = numpyro.sample("covariances", dist.InverseGamma(nu / 2, psi / 2))
            means = numpyro.sample(
                "means", dist.Normal(m0, jnp.sqrt(covs[:, None] / kappa)).to_event(1))
    return weights, means, covs


def component_distribution(means, covariances, covariance_type: str):
    """Batch of K Gaussians (event shape (D,)) in NumPyro."""
    if covariance_type in ("full", "tied"):
        chol = jnp.linalg.cholesky(covariances)
        if covariance_type == "tied":
            chol = jnp.broadcast_to(chol, means.shape + means.shape[-1:])
        return dist.MultivariateNormal(means, scale_tril=chol)
    sd = jnp.sqrt(covariances if covariance_type == "diag" else covariances[:, None])
    return dist.Normal(means, jnp.broadcast_to(sd, means.shape)).to_event(1)


def _n_obs(x, n_samples):
    if x is not None:
        return x.shape[0]
    if n_samples is None:
        raise ValueError("give x or n_samples")
    return n_samples


def model(x=None, *, n_components: int, covariance_type: str, prior: GMMPrior,
          n_samples: int | None = None, sample_weight=None):
    """Explicit generative model: ``z_n ~ Categorical(weights)``, ``x_n | z_n ~ N(mu, Sigma)``."""
    weights, means, covs = sample_parameters(n_components, covariance_type, prior)
    n = _n_obs(x, n_samples)
    comp = component_distribution(means, covs, covariance_type)
    with numpyro.plate("data", n):
        with numpyro.handlers.scale(scale=1.0 if sample_weight is None else sample_weight):
            z = numpyro.sample("z", dist.Categorical(probs=weights))
            if covariance_type in ("full", "tied"):
                obs_dist = dist.MultivariateNormal(comp.loc[z], scale_tril=comp.scale_tril[z])
            else:
                base = comp.base_dist
                obs_dist = dist.Normal(base.loc[z], base.scale[z]).to_event(1)
            return numpyro.sample("x", obs_dist, obs=x)


def mixture_distribution(weights, means, covariances, covariance_type: str):
    """The marginal mixture ``sum_k w_k N(mu_k, Sigma_k)`` as one NumPyro distribution."""
    return dist.MixtureSameFamily(
        dist.Categorical(probs=weights),
        component_distribution(means, covariances, covariance_type),
    )


def marginal_model(x=None, *, n_components: int, covariance_type: str, prior: GMMPrior,
                   n_samples: int | None = None, sample_weight=None):
    """The same model with ``z`` summed out; what NUTS samples and MAP-EM maximises."""
    weights, means, covs = sample_parameters(n_components, covariance_type, prior)
    n = _n_obs(x, n_samples)
    mix = mixture_distribution(weights, means, covs, covariance_type)
    with numpyro.plate("data", n):
        with numpyro.handlers.scale(scale=1.0 if sample_weight is None else sample_weight):
            return numpyro.sample("x", mix, obs=x)

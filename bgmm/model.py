"""The generative mixture model in NumPyro: one prior for MAP-EM, NUTS and prediction.

``model`` is the explicit form with the latent assignments ``z``; with ``x=None`` it
samples the prior predictive (parameters, ``z`` and ``x``), with ``x`` given it
conditions on data. ``marginal_model`` is the same joint density with ``z`` summed out
(``MixtureSameFamily``), the form NUTS and the MAP objective of :mod:`bgmm.em` use.

Sites: ``weights`` (K,), ``means`` (K, D), ``covariances`` in scikit-learn's shape for
the covariance type, ``z`` (N,) and ``x`` (N, D). ``prior`` is a resolved
:class:`bgmm.priors.GMMPrior` in the data's units. ``sample_weight`` (N,) scales each
observation's log-likelihood (``numpyro.handlers.scale``; rows of weight 0 are masked
out), as in weighted EM. ``missing=True`` integrates out NaN entries of ``x``.
"""

from __future__ import annotations

import contextlib

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


def component_distribution(means, covariances, covariance_type: str, missing: bool = False):
    """Batch of K Gaussians (event shape (D,)) in NumPyro.

    With ``missing`` their ``log_prob`` integrates out NaN entries of the value (the
    Gaussian marginal of the observed entries, :mod:`bgmm.missing`).
    """
    if missing:
        from .missing import IncompleteMultivariateNormal, IncompleteNormal

        if covariance_type in ("full", "tied"):
            return IncompleteMultivariateNormal(means, covariances)
        var = covariances if covariance_type == "diag" else covariances[..., None]
        return IncompleteNormal(means, jnp.sqrt(var))
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


@contextlib.contextmanager
def _weighted(sample_weight):
    """Scale each observation's log density by its weight; weight-0 rows are masked out
    (NumPyro's ``scale`` needs positive factors), which is the same as dropping them."""
    if sample_weight is None:
        yield
        return
    w = jnp.asarray(sample_weight)
    positive = w > 0
    with numpyro.handlers.mask(mask=positive), \
            numpyro.handlers.scale(scale=jnp.where(positive, w, 1.0)):
        yield


def model(x=None, *, n_components: int, covariance_type: str, prior: GMMPrior,
          n_samples: int | None = None, sample_weight=None, missing: bool = False):
    """Explicit generative model: ``z_n ~ Categorical(weights)``, ``x_n | z_n ~ N(mu, Sigma)``.

    ``missing=True``: NaN entries of x are missing at random and integrated out.
    """
    weights, means, covs = sample_parameters(n_components, covariance_type, prior)
    n = _n_obs(x, n_samples)
    comp = component_distribution(means, covs, covariance_type)
    with numpyro.plate("data", n):
        with _weighted(sample_weight):
            z = numpyro.sample("z", dist.Categorical(probs=weights))
            if missing:
                obs_dist = component_distribution(
                    means[z], covs if covariance_type == "tied" else covs[z], covariance_type,
                    missing=True)
            elif covariance_type in ("full", "tied"):
                obs_dist = dist.MultivariateNormal(comp.loc[z], scale_tril=comp.scale_tril[z])
            else:
                base = comp.base_dist
                obs_dist = dist.Normal(base.loc[z], base.scale[z]).to_event(1)
            return numpyro.sample("x", obs_dist, obs=x)


def mixture_distribution(weights, means, covariances, covariance_type: str,
                         missing: bool = False):
    """The marginal mixture ``sum_k w_k N(mu_k, Sigma_k)`` as one NumPyro distribution.

    With ``missing`` its ``log_prob`` is that of the observed (non-NaN) entries.
    """
    return dist.MixtureSameFamily(
        dist.Categorical(probs=weights),
        component_distribution(means, covariances, covariance_type, missing),
    )


def marginal_model(x=None, *, n_components: int, covariance_type: str, prior: GMMPrior,
                   n_samples: int | None = None, sample_weight=None, missing: bool = False):
    """The same model with ``z`` summed out; what NUTS samples and MAP-EM maximises.

    ``missing=True``: NaN entries of x are missing at random; each row's likelihood is
    the mixture of the Gaussian marginals of its observed entries (as in MAP-EM with
    ``missing="marginalize"``).
    """
    weights, means, covs = sample_parameters(n_components, covariance_type, prior)
    n = _n_obs(x, n_samples)
    mix = mixture_distribution(weights, means, covs, covariance_type, missing)
    with numpyro.plate("data", n):
        with _weighted(sample_weight):
            return numpyro.sample("x", mix, obs=x)

"""Conjugate-style priors of the mixture, their log densities, defaults from data.

The prior, shared by MAP-EM and MCMC (one model, :mod:`bgmm.model`):

- ``weights ~ Dirichlet(weight_concentration)``
- ``full``:  ``Sigma_k ~ InverseWishart(dof, scale)``, ``mu_k | Sigma_k ~ N(mean, Sigma_k / mean_precision)``
- ``tied``:  ``Sigma ~ InverseWishart(dof, scale)``, ``mu_k | Sigma ~ N(mean, Sigma / mean_precision)``
- ``diag``:  ``sigma2_kj ~ InverseGamma(dof / 2, scale_j / 2)``,
  ``mu_kj | sigma2_kj ~ N(mean_j, sigma2_kj / mean_precision)``
- ``spherical``: ``sigma2_k ~ InverseGamma(dof / 2, scale / 2)``,
  ``mu_k | sigma2_k ~ N(mean, sigma2_k I / mean_precision)``

(a one-dimensional inverse-Wishart ``IW(nu, psi)`` is ``InverseGamma(nu / 2, psi / 2)``,
so ``dof`` and ``scale`` mean the same thing for every type). With the default
``dof`` the prior mean of every covariance equals ``scale``.

The data-driven default follows mclust's ``priorControl``: ``mean`` = the data mean,
``mean_precision = 0.01``, ``dof = D + 2`` (``3`` for diag / spherical) and
``scale = cov(X) / K^(2/D)`` (its diagonal, or the mean of its diagonal).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, multigammaln

from .covariance import check_type
from .params import GMMParams


class GMMPrior(NamedTuple):
    """Hyper-parameters of the prior; ``None`` fields take the data-driven default.

    weight_concentration: scalar or (K,) Dirichlet concentration (> 0; >= 1 for MAP-EM).
    mean: (D,) prior mean of the component means.
    mean_precision: scalar kappa > 0; the means' prior covariance is Sigma_k / kappa.
    dof: scalar degrees of freedom (> D - 1 for full / tied, > 0 for diag / spherical).
    scale: (D, D) positive definite (full, tied), (D,) positive (diag) or positive scalar
        (spherical).
    """

    weight_concentration: object = None
    mean: object = None
    mean_precision: object = None
    dof: object = None
    scale: object = None


def default_prior(x, n_components: int, covariance_type: str, sample_weight=None) -> GMMPrior:
    """The weakly informative, scale-aware default prior for data x (N, D) (numpy, float64)."""
    return resolve_prior(GMMPrior(), x, n_components, covariance_type, sample_weight)


def resolve_prior(prior: GMMPrior, x, n_components: int, covariance_type: str,
                  sample_weight=None) -> GMMPrior:
    """Fill the ``None`` fields of ``prior`` from data and validate every field.

    Returns a prior of float64 numpy arrays with full shapes; raises ``ValueError``
    naming the offending field.
    """
    if not isinstance(prior, GMMPrior):
        raise TypeError(f"prior must be None, 'default' or a bgmm.GMMPrior, got {type(prior).__name__}")
    check_type(covariance_type)
    if isinstance(n_components, bool) or not isinstance(n_components, int | np.integer) \
            or n_components < 1:
        raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"x must be a 2-D array (n_samples, n_features), got shape {x.shape}")
    n, d = x.shape
    k = n_components
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    obs = ~np.isnan(x)
    xz = np.where(obs, x, 0.0)
    wsum = (w[:, None] * obs).sum(0)
    mean = (w[:, None] * xz).sum(0) / wsum
    xc = np.where(obs, x - mean, 0.0)
    data_cov = (w[:, None] * xc).T @ xc / np.sqrt(np.outer(wsum, wsum))
    # a constant feature or collinear features would give a singular default scale (NaN
    # log prior in float32): lift the correlation matrix's smallest eigenvalue to 1e-5,
    # each feature relative to its own variance (1 for a constant one, as the shell's
    # Standardizer); well-conditioned data are left exactly as they are
    var = np.diag(data_cov)
    ref = np.where(var > 0, var, 1.0)
    lam = float(np.linalg.eigvalsh(data_cov / np.sqrt(np.outer(ref, ref)))[0])
    if lam < 1e-5:
        data_cov = data_cov + np.diag((1e-5 - lam) * ref)
    shrink = float(k) ** (2.0 / d)

    def field(name, value, default):
        v = default if value is None else np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError(f"prior {name} must be finite, got {v}")
        return v

    alpha = field("weight_concentration", prior.weight_concentration, np.ones(k))
    alpha = np.broadcast_to(alpha, (k,)) if alpha.ndim == 0 else alpha
    if alpha.shape != (k,) or np.any(alpha <= 0):
        raise ValueError(
            f"prior weight_concentration must be a positive scalar or have shape ({k},), got {alpha}"
        )
    m0 = field("mean", prior.mean, mean)
    if m0.shape != (d,):
        raise ValueError(f"prior mean must have shape ({d},), got {m0.shape}")
    kappa = field("mean_precision", prior.mean_precision, np.array(0.01))
    if kappa.shape != () or kappa <= 0:
        raise ValueError(f"prior mean_precision must be a positive scalar, got {kappa}")
    matrix = covariance_type in ("full", "tied")
    dof = field("dof", prior.dof, np.array(d + 2.0 if matrix else 3.0))
    min_dof = d - 1.0 if matrix else 0.0
    if dof.shape != () or dof <= min_dof:
        raise ValueError(
            f"prior dof must be a scalar > {min_dof:g} for covariance_type={covariance_type!r} "
            f"with {d} features, got {dof}"
        )
    default_scale = {
        "full": data_cov / shrink,
        "tied": data_cov / shrink,
        "diag": np.diag(data_cov) / shrink,
        "spherical": np.array(np.mean(np.diag(data_cov)) / shrink),
    }[covariance_type]
    scale = field("scale", prior.scale, default_scale)
    if scale.shape != default_scale.shape:
        raise ValueError(
            f"prior scale must have shape {default_scale.shape} for covariance_type="
            f"{covariance_type!r}, got {scale.shape}"
        )
    if matrix:
        if not np.allclose(scale, scale.T) or np.any(np.linalg.eigvalsh(scale) <= 0):
            raise ValueError("prior scale must be a symmetric positive definite matrix")
    elif np.any(scale <= 0):
        raise ValueError(f"prior scale must be positive, got {scale}")
    return GMMPrior(alpha, m0, kappa, dof, scale)


def standardize_prior(prior: GMMPrior, center, scale, covariance_type: str) -> GMMPrior:
    """Express a resolved prior in the units of ``(x - center) / scale``."""
    center = np.asarray(center, np.float64)
    s = np.asarray(scale, np.float64)
    if covariance_type in ("full", "tied"):
        psi = prior.scale / np.outer(s, s)
    elif covariance_type == "diag":
        psi = prior.scale / s**2
    else:
        psi = prior.scale / s[0] ** 2
    return GMMPrior(prior.weight_concentration, (prior.mean - center) / s,
                    prior.mean_precision, prior.dof, psi)


def log_prior_jacobian(covariance_type: str, n_components: int, log_scale) -> float:
    """``log p(theta) - log p'(theta')`` for the standardisation ``x' = (x - c) / s``.

    The map theta -> theta' is linear, so this is a constant: means contribute
    ``-sum(log s)`` each, a full covariance ``-(D + 1) sum(log s)``, a variance ``-2 log s_j``.
    """
    log_s = np.asarray(log_scale, np.float64)
    d = log_s.shape[0]
    k = n_components
    total = -k * log_s.sum()
    if covariance_type == "full":
        total -= k * (d + 1) * log_s.sum()
    elif covariance_type == "tied":
        total -= (d + 1) * log_s.sum()
    elif covariance_type == "diag":
        total -= 2.0 * k * log_s.sum()
    else:
        total -= 2.0 * k * log_s[0]
    return float(total)


# --------------------------------------------------------------------------------------
# log densities (pure, jittable); closed forms, checked against NumPyro in the tests


def _log_dirichlet(w, alpha, active=None):
    """log Dir(w | alpha); with ``active`` (K,) bool, of the active entries only."""
    on = jnp.ones(alpha.shape, bool) if active is None else active
    a = jnp.where(on, alpha, 1.0)
    log_w = jnp.log(jnp.where(on, w, 1.0))
    return (gammaln(jnp.sum(jnp.where(on, a, 0.0))) - jnp.sum(jnp.where(on, gammaln(a), 0.0))
            + jnp.sum(jnp.where(a == 1.0, 0.0, (a - 1.0) * log_w)))


def _log_inv_gamma(v, a, b):
    return a * jnp.log(b) - gammaln(a) - (a + 1.0) * jnp.log(v) - b / v


def _log_inv_wishart(prec_chol, nu, psi):
    """log IW(Sigma | nu, psi) with Sigma^{-1} = U U^T; U upper triangular (D, D)."""
    d = psi.shape[-1]
    logdet_psi = 2.0 * jnp.sum(jnp.log(jnp.diag(jnp.linalg.cholesky(psi))))
    log_det_u = jnp.sum(jnp.log(jnp.diag(prec_chol)))  # = -0.5 log|Sigma|
    trace = jnp.sum(prec_chol * jnp.matmul(psi, prec_chol, precision=jax.lax.Precision.HIGHEST))
    return (0.5 * nu * logdet_psi - 0.5 * nu * d * math.log(2.0) - multigammaln(0.5 * nu, d)
            + (nu + d + 1.0) * log_det_u - 0.5 * trace)


def log_prior(params: GMMParams, prior: GMMPrior, covariance_type: str, active=None):
    """``log p(weights, means, covariances)`` under the prior (scalar).

    ``active`` (K,) bool (optional): the components of a K-padded model that exist;
    the others (weight 0) are left out, so the value equals the log prior of the model
    made of the active components alone.
    """
    k, d = params.means.shape
    on = jnp.ones((k,), bool) if active is None else active
    u = params.precisions_cholesky
    kappa = prior.mean_precision
    lp = _log_dirichlet(params.weights, prior.weight_concentration, active)
    diff = params.means - prior.mean[None, :]
    log_2pi = math.log(2.0 * math.pi)
    if covariance_type in ("full", "tied"):
        uk = u if covariance_type == "full" else jnp.broadcast_to(u, (k, d, d))
        y = jnp.einsum("kd,kde->ke", diff, uk, precision=jax.lax.Precision.HIGHEST)
        log_det = jnp.sum(jnp.log(jnp.diagonal(uk, axis1=-2, axis2=-1)), axis=-1)
        lp += jnp.sum(jnp.where(on, -0.5 * d * log_2pi + 0.5 * d * jnp.log(kappa) + log_det
                                - 0.5 * kappa * jnp.sum(y * y, axis=-1), 0.0))
        if covariance_type == "full":
            lp += jnp.sum(jnp.where(on, jax.vmap(_log_inv_wishart, (0, None, None))(
                u, prior.dof, prior.scale), 0.0))
        else:
            lp += _log_inv_wishart(u, prior.dof, prior.scale)
    else:
        var = params.covariances if covariance_type == "diag" else params.covariances[:, None]
        var_b = jnp.broadcast_to(var, (k, d))
        lp += jnp.sum(jnp.where(on[:, None], -0.5 * log_2pi + 0.5 * jnp.log(kappa / var_b)
                                - 0.5 * kappa * diff**2 / var_b, 0.0))
        lig = _log_inv_gamma(params.covariances, 0.5 * prior.dof, 0.5 * prior.scale)
        lp += jnp.sum(jnp.where(on.reshape((k,) + (1,) * (lig.ndim - 1)), lig, 0.0))
    return lp


def as_arrays(prior: GMMPrior, dtype) -> GMMPrior:
    return GMMPrior(*(jnp.asarray(v, dtype=dtype) for v in prior))


__all__ = ["GMMPrior", "default_prior", "resolve_prior", "log_prior"]

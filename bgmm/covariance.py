"""The four covariance types: shapes, Cholesky factors, log-densities, moments, counts.

Every function here is pure and jittable; ``covariance_type`` is a static string and
array shapes follow scikit-learn:

=========== ======================= =========================
type        covariances             precisions_cholesky
=========== ======================= =========================
full        (K, D, D)               (K, D, D) upper triangular
tied        (D, D)                  (D, D) upper triangular
diag        (K, D)                  (K, D)
spherical   (K,)                    (K,)
=========== ======================= =========================

``precision = U @ U.T`` with ``U`` the precision Cholesky factor (``U = L^{-T}`` for
``covariance = L @ L.T``), exactly scikit-learn's convention.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_HI = jax.lax.Precision.HIGHEST


def check_type(covariance_type: str) -> str:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}"
        )
    return covariance_type


def covariance_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def n_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Number of free parameters of the mixture (scikit-learn's ``_n_parameters``)."""
    k, d = n_components, n_features
    cov = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return int(cov + k * d + k - 1)


def precision_cholesky(covariances, covariance_type: str):
    """Upper-triangular precision Cholesky factors from covariances (no explicit inverse).

    A covariance that is not numerically positive definite gives NaN entries, which
    callers test for with :func:`is_valid`.
    """
    if covariance_type in ("diag", "spherical"):
        return jax.lax.rsqrt(covariances)

    def one(cov):
        chol = jnp.linalg.cholesky(cov)
        eye = jnp.eye(cov.shape[-1], dtype=cov.dtype)
        return solve_triangular(chol, eye, lower=True).T

    return one(covariances) if covariance_type == "tied" else jax.vmap(one)(covariances)


def covariance_from_precision_cholesky(prec_chol, covariance_type: str):
    """Inverse of :func:`precision_cholesky` (used for user-given ``precisions_init``)."""
    if covariance_type in ("diag", "spherical"):
        return 1.0 / prec_chol**2

    def one(u):
        eye = jnp.eye(u.shape[-1], dtype=u.dtype)
        # precision = U U^T  =>  covariance = U^{-T} U^{-1}
        uinv = solve_triangular(u, eye, lower=False)
        return jnp.matmul(uinv.T, uinv, precision=_HI)

    return one(prec_chol) if covariance_type == "tied" else jax.vmap(one)(prec_chol)


def precisions(prec_chol, covariance_type: str):
    if covariance_type in ("diag", "spherical"):
        return prec_chol**2
    return jnp.matmul(prec_chol, jnp.swapaxes(prec_chol, -1, -2), precision=_HI)


def log_det_precision_cholesky(prec_chol, covariance_type: str, n_features: int):
    """``log|U_k|`` per component, i.e. ``-0.5 log|Sigma_k|``; shape (K,) or ()."""
    if covariance_type == "full":
        return jnp.sum(jnp.log(jnp.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)
    if covariance_type == "tied":
        return jnp.sum(jnp.log(jnp.diag(prec_chol)))
    if covariance_type == "diag":
        return jnp.sum(jnp.log(prec_chol), axis=-1)
    return n_features * jnp.log(prec_chol)


def component_log_prob(x, means, prec_chol, covariance_type: str):
    """``log N(x_n | mu_k, Sigma_k)`` for all n, k; x (N, D) -> (N, K).

    The Mahalanobis terms are formed from centred differences (not a moment expansion)
    so that narrow components stay accurate in float32.
    """
    n_features = x.shape[-1]
    log_det = log_det_precision_cholesky(prec_chol, covariance_type, n_features)
    if covariance_type == "full":
        k, d, _ = prec_chol.shape
        # one GEMM for all components: (N, D) @ (D, K*D)
        w = jnp.transpose(prec_chol, (1, 0, 2)).reshape(d, k * d)
        y = jnp.matmul(x, w, precision=_HI).reshape(x.shape[0], k, d)
        y = y - jnp.einsum("kd,kde->ke", means, prec_chol, precision=_HI)
        maha = jnp.sum(y * y, axis=-1)
    elif covariance_type == "tied":
        y = jnp.matmul(x, prec_chol, precision=_HI)
        mu = jnp.matmul(means, prec_chol, precision=_HI)
        diff = y[:, None, :] - mu[None, :, :]
        maha = jnp.sum(diff * diff, axis=-1)
    elif covariance_type == "diag":
        diff = (x[:, None, :] - means[None, :, :]) * prec_chol[None, :, :]
        maha = jnp.sum(diff * diff, axis=-1)
    else:
        diff = x[:, None, :] - means[None, :, :]
        maha = jnp.sum(diff * diff, axis=-1) * (prec_chol**2)[None, :]
    return -0.5 * (n_features * math.log(2.0 * math.pi) + maha) + log_det


def log_prob_coefficients(means, prec_chol, covariance_type: str):
    """Coefficients of ``log N(x | mu_k, Sigma_k)`` as a linear function of features of x.

    Returns ``(A, B, c)``, A (P, K), B (D, K), c (K,), such that for all n, k

        log N(x_n | mu_k, Sigma_k) = t(x_n) @ A[:, k] + x_n @ B[:, k] + c[k]

    with ``t = second_moment_features(x, covariance_type)`` (P = D (D + 1) / 2 for full
    and tied, D for diag and spherical). With the features computed once per fit the
    E-step is one GEMM per feature block instead of an (N, K, D) difference array. The
    expansion ``x'Lx - 2 x'L mu + mu'L mu`` cancels when a component is narrow compared
    with its distance from the origin, so it is used only on centred, scaled data (EM in
    standardised units); :func:`component_log_prob` keeps the centred form.
    """
    d = means.shape[-1]
    k = means.shape[0]
    const = -0.5 * d * math.log(2.0 * math.pi)
    log_det = log_det_precision_cholesky(prec_chol, covariance_type, d)
    if covariance_type in ("full", "tied"):
        iu, ju = _triu_indices(d)
        # off-diagonal pairs appear once in the upper triangle but twice in x'Lx
        mult = jnp.asarray((iu != ju) + 1.0, means.dtype)
        if covariance_type == "full":
            lam = jnp.matmul(prec_chol, jnp.swapaxes(prec_chol, -1, -2), precision=_HI)
            a = -0.5 * mult[:, None] * lam[:, iu, ju].T
            v = jnp.einsum("kd,kde->ke", means, prec_chol, precision=_HI)  # U_k' mu_k
            b = jnp.einsum("kde,ke->dk", prec_chol, v, precision=_HI)  # L_k mu_k
        else:
            lam = jnp.matmul(prec_chol, prec_chol.T, precision=_HI)
            a = jnp.broadcast_to((-0.5 * mult * lam[iu, ju])[:, None], (iu.size, k))
            v = jnp.matmul(means, prec_chol, precision=_HI)
            b = jnp.matmul(prec_chol, v.T, precision=_HI)
    else:
        u = prec_chol if covariance_type == "diag" else jnp.broadcast_to(prec_chol[:, None], (k, d))
        a = -0.5 * (u * u).T
        v = means * u
        b = (u * v).T
    c = const - 0.5 * jnp.sum(v * v, axis=-1) + log_det
    return a, b, c


# --------------------------------------------------------------------------------------
# second moments: the features whose responsibility-weighted sums the M-step needs


def _triu_indices(n_features: int):
    import numpy as np

    return np.triu_indices(n_features)


def second_moment_features(x, covariance_type: str, axis: int = -1):
    """Per-sample second-moment features: upper triangle of x x^T (full, tied) or x**2.

    ``axis``: the features' axis of ``x`` and of the result (0 for ``x.T``, (D, N)).
    Computed once per fit; the M-step then needs one product ``resp^T @ features``.
    """
    if covariance_type in ("diag", "spherical"):
        return x * x
    iu, ju = _triu_indices(x.shape[axis])
    return jnp.take(x, iu, axis=axis) * jnp.take(x, ju, axis=axis)


def second_moment_matrix(s2, covariance_type: str, n_features: int):
    """(K, P) upper-triangular sums -> symmetric (K, D, D); diag/spherical unchanged."""
    if covariance_type in ("diag", "spherical"):
        return s2
    iu, ju = _triu_indices(n_features)
    out = jnp.zeros(s2.shape[:-1] + (n_features, n_features), s2.dtype)
    out = out.at[..., iu, ju].set(s2)
    return out.at[..., ju, iu].set(s2)


def to_full(covariances, covariance_type: str, n_components: int, n_features: int):
    """Any covariance type as a (K, D, D) stack of full matrices."""
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return jnp.broadcast_to(covariances, (n_components, n_features, n_features))
    eye = jnp.eye(n_features, dtype=covariances.dtype)
    if covariance_type == "diag":
        return covariances[:, :, None] * eye
    return covariances[:, None, None] * eye


def from_full(full, covariance_type: str, weights=None):
    """Project (K, D, D) matrices onto a covariance type (tied: weighted average)."""
    if covariance_type == "full":
        return full
    if covariance_type == "tied":
        w = jnp.ones(full.shape[0], full.dtype) / full.shape[0] if weights is None else weights
        return jnp.einsum("k,kde->de", w, full)
    diag = jnp.diagonal(full, axis1=-2, axis2=-1)
    return diag if covariance_type == "diag" else jnp.mean(diag, axis=-1)


def is_valid(prec_chol):
    return jnp.all(jnp.isfinite(prec_chol))

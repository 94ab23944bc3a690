"""Data-parallel EM across devices: samples sharded along a mesh axis, parameters replicated.

The EM core is unchanged: :func:`bgmm.em.expectation` reduces the data to sufficient
statistics with products that contract over the sample axis, so when the data arrays
are laid out with a :class:`jax.sharding.NamedSharding` along the samples, ``jax.jit``
partitions the same program: each device computes its shard's partial sums and XLA
inserts one all-reduce of the (small) ``SuffStats`` per iteration; the M-step then runs
replicated. Results equal the single-device fit up to the order of floating-point
summation.

One process, several devices (GPUs, TPU cores, or CPU devices forced with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before JAX is imported)::

    from bgmm.distributed import fit_sharded
    gm = fit_sharded(X, n_components=8, covariance_type="full")   # all local devices

Several hosts (``jax.distributed``): run the same script on every host; JAX's global
view of the devices makes the same jitted program span them::

    import jax
    jax.distributed.initialize()          # coordinator address etc. from the cluster env
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    mesh = Mesh(np.array(jax.devices()), ("data",))   # devices of all hosts
    # each process loads its own rows x_local (same number of rows on every process)
    X = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), x_local)
    gm = fit_sharded(X, n_components=8, mesh=mesh)    # identical call on every host

Given a global :class:`jax.Array` the standardisation moments are computed in JAX over
the sharded array (global reductions), so no host ever holds all the rows; the data-
driven prior defaults need the rows on one host, so that path is maximum likelihood
only (``prior=None``). The
multi-host path is the same program as the tested multi-device one but has only been
exercised here on one host.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import em
from ._shell import (
    Standardizer,
    em_weights,
    pad_rows,
    precision_scope,
    restart_keys,
    seed_from,
)
from .estimator import GaussianMixture, _fit_restarts, _make_data_jit, _warn_if_reg_dominates
from .init import UserInit
from .priors import as_arrays, standardize_prior


def make_mesh(devices=None, axis_name: str = "data") -> Mesh:
    """A one-axis mesh over ``devices`` (default: all of ``jax.devices()``)."""
    devs = jax.devices() if devices is None else list(devices)
    if len(devs) == 0:
        raise ValueError("devices must name at least one device, got an empty list")
    return Mesh(np.array(devs), (axis_name,))


def shard_data(data: em.Data, mesh: Mesh, axis_name: str = "data") -> em.Data:
    """Place ``Data`` with its sample axis split over ``axis_name`` of ``mesh``.

    The number of rows must be a multiple of the axis size (pad with zero-weight rows).
    """
    rows = NamedSharding(mesh, P(axis_name))
    cols = NamedSharding(mesh, P(None, axis_name))
    ft = None if data.ft is None else jax.device_put(data.ft, cols)
    return em.Data(jax.device_put(data.x, rows), jax.device_put(data.weight, rows), ft)


@jax.jit
def _moments(x, w):
    # weighted mean and variance over the (possibly sharded) sample axis
    ws = jnp.sum(w)
    center = jnp.sum(w[:, None] * x, axis=0) / ws
    var = jnp.sum(w[:, None] * (x - center) ** 2, axis=0) / ws
    return center, var


def _standardizer_from_moments(center, var, covariance_type):
    center = np.asarray(center, np.float64)
    var = np.asarray(var, np.float64)
    if covariance_type == "spherical":
        var = np.full_like(var, var.mean())
    scale = np.sqrt(var)
    tiny = scale <= 1e-300 * np.maximum(1.0, np.abs(center))
    return Standardizer(center, np.where(tiny | ~np.isfinite(scale), 1.0, scale))


def fit_sharded(X, n_components: int = 1, *, mesh: Mesh | None = None, devices=None,
                axis_name: str = "data", sample_weight=None, **estimator_params):
    """Fit a :class:`bgmm.GaussianMixture` by EM with the samples sharded across devices.

    Parameters
    ----------
    X : array (n_samples, n_features): numpy (split over the mesh here) or a global
        ``jax.Array`` already sharded along its rows (multi-host; see the module notes).
    n_components : int, number of components K.
    mesh : optional ``jax.sharding.Mesh``; default a one-axis mesh over ``devices``.
    devices : optional list of devices for the default mesh (default: all devices).
    axis_name : the mesh axis the samples are split along.
    sample_weight : optional (n_samples,) non-negative weights (numpy input only).
    **estimator_params : any other :class:`bgmm.GaussianMixture` parameter
        (covariance_type, tol, max_iter, n_init, init_params, *_init, prior, dtype, ...).

    Returns the fitted estimator; its attributes, ``predict`` and ``score`` work as after
    ``GaussianMixture.fit`` (prediction runs on the default device).
    """
    gm = GaussianMixture(n_components, **estimator_params)
    gm._check_parameters()
    if gm.missing != "error":
        raise ValueError(f"fit_sharded supports missing='error' only, got {gm.missing!r}")
    if mesh is None:
        mesh = make_mesh(devices, axis_name)
    elif devices is not None:
        raise ValueError("give mesh or devices, not both")
    if axis_name not in mesh.axis_names:
        raise ValueError(f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}")
    n_shards = mesh.shape[axis_name]
    ct = gm.covariance_type
    dt = jnp.dtype(gm.dtype)
    global_array = isinstance(X, jax.Array) and not X.is_fully_addressable

    if global_array:
        if sample_weight is not None:
            raise ValueError("sample_weight is supported for host (numpy) input only")
        if X.ndim != 2 or X.shape[0] % n_shards:
            raise ValueError(f"a sharded X must be 2-D with rows a multiple of {n_shards}, "
                             f"got shape {X.shape}")
        if gm.prior is not None:
            raise ValueError("a prior's data-driven defaults need the rows on one host; use "
                             f"prior=None with a multi-host array, got {gm.prior!r}")
        n, d = X.shape
        gm.n_features_in_ = d
        with precision_scope("float64"):
            w64 = jax.device_put(jnp.ones(n), NamedSharding(mesh, P(axis_name)))
            std = _standardizer_from_moments(*_moments(X.astype(jnp.float64), w64), ct)
        weight_total, unit_weight = float(n), 1.0
        prior = None
    else:
        X = gm._validate_X(np.asarray(X), reset=True)
        X = np.asarray(X, np.float64)
        n, d = X.shape
        if n < n_components:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{n_components}, n_samples = {n}")
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
        if w.shape != (n,) or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("sample_weight must be finite, non-negative, shape (n_samples,) "
                             "with a positive sum")
        prior = gm._resolve_prior(X, None if sample_weight is None else w)
        std = Standardizer.fit(X, w, ct)
        _warn_if_reg_dominates(gm.reg_covar, std.scale, X.max(axis=0) > X.min(axis=0),
                               stacklevel=3)
        weight_total, unit_weight = float(w.sum()), float(w[w > 0].mean())

    user = gm._user_init(d, std)
    cfg = em.EMConfig(n_components, ct, int(gm.max_iter), prior is not None, False)
    reg = gm.reg_covar / std.scale**2
    with precision_scope(gm.dtype):
        if global_array:
            xs = ((X.astype(dt) - jnp.asarray(std.center, dt)) / jnp.asarray(std.scale, dt))
            ws = jax.device_put(jnp.ones(n, dt), NamedSharding(mesh, P(axis_name)))
        else:
            n_pad = -(-n // n_shards) * n_shards
            xs, ws = pad_rows(std.transform(X), em_weights(w, prior is None), n_pad)
            xs, ws = jnp.asarray(xs, dt), jnp.asarray(ws, dt)
        data = shard_data(_make_data_jit(xs, ws, ct), mesh, axis_name)
        prior_s = None if prior is None else as_arrays(
            standardize_prior(prior, std.center, std.scale, ct), dt)
        user_j = UserInit(*(None if v is None else jnp.asarray(v, dt) for v in user))
        res = _fit_restarts(restart_keys(seed_from(gm.random_state), gm.n_init), data,
                            prior_s, jnp.asarray(gm.tol, dt), jnp.asarray(reg, dt), user_j,
                            cfg=cfg, method=gm.init_params)
        res = jax.tree.map(np.asarray, res)
    gm._store(res, std, prior, weight_total, unit_weight)
    return gm


__all__ = ["fit_sharded", "make_mesh", "shard_data"]

"""Streaming EM: data larger than memory, read in fixed-size chunks on every iteration.

EM needs the data only through sums (:class:`bgmm.em.SuffStats` and the
log-likelihood), so each iteration runs the jitted per-chunk
:func:`bgmm.em.expectation` over the chunks, adds the statistics on the device and
takes one :func:`bgmm.em.m_step`. Every chunk has the same shape (the last one is padded
with zero-weight rows), so there is one compiled program. JAX dispatches asynchronously:
reading chunk i + 1 from disk overlaps the device's work on chunk i.

Flow: one pass for the standardisation moments (count, mean, variance; merged per chunk
in float64) and a uniform random subsample (the smallest random keys), the
initialisation (k-means / k-means++ / ... on the standardised subsample), EM passes,
one final scoring pass. With the same starting parameters the result equals the
in-memory :class:`bgmm.GaussianMixture` fit up to the order of summation. Memory is
bounded by the chunk size (memmaps and ``.npy`` files are read with plain file reads,
so the page cache is not charged to the process).

Sources: a 2-D array (numpy array or ``np.memmap``), a path or a list of paths of
``.npy`` files (2-D, same number of columns), or a callable returning a fresh iterator of
2-D chunks (any sizes) each time it is called (once per pass).
"""

from __future__ import annotations

import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import em
from ._shell import Standardizer, precision_scope, seed_from
from .estimator import GaussianMixture, _check_magnitude, _warn_if_reg_dominates
from .init import INIT_METHODS, UserInit, initial_params

# ---------------------------------------------------------------------------- sources


def _npy_header(path):
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(f)
        return shape, fortran, dtype, f.tell()


def _read_rows(path, offset, dtype, n_cols, start, stop):
    # plain reads (no mmap): the pages stay in the page cache, not in this process's RSS
    count = (stop - start) * n_cols
    with open(path, "rb") as f:
        f.seek(offset + start * n_cols * dtype.itemsize)
        out = np.fromfile(f, dtype=dtype, count=count)
    return out.reshape(stop - start, n_cols)


def _file_blocks(path, offset, dtype, shape, block):
    for start in range(0, shape[0], block):
        yield _read_rows(path, offset, dtype, shape[1], start, min(start + block, shape[0]))


def as_source(source, chunk_size: int):
    """A callable returning an iterator over 2-D float blocks of at most chunk_size rows."""
    if callable(source) and not isinstance(source, np.ndarray):
        return source
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    if isinstance(source, np.memmap) and source.ndim == 2 and source.flags.c_contiguous \
            and isinstance(getattr(source, "filename", None), str) and source.base is not None:
        m = source
        return lambda: _file_blocks(m.filename, m.offset, m.dtype, m.shape, chunk_size)
    if isinstance(source, np.ndarray):
        if source.ndim != 2:
            raise ValueError(f"an array source must be 2-D (n_samples, n_features), got "
                             f"shape {source.shape}")
        a = source
        return lambda: (a[i:i + chunk_size] for i in range(0, a.shape[0], chunk_size))
    if isinstance(source, (list, tuple)):
        files = []
        for p in source:
            if not isinstance(p, (str, os.PathLike)):
                raise TypeError(f"a list source must hold paths of .npy files, got {type(p)}")
            shape, fortran, dtype, offset = _npy_header(p)
            if len(shape) != 2 or fortran:
                raise ValueError(f"{p}: expected a 2-D C-ordered .npy array, got shape "
                                 f"{shape} (fortran_order={fortran})")
            files.append((os.fspath(p), offset, dtype, shape))

        def gen():
            for f in files:
                yield from _file_blocks(*f, chunk_size)

        return gen
    raise TypeError("source must be a 2-D array / memmap, a path or list of .npy paths, or a "
                    f"callable returning an iterator of 2-D chunks; got {type(source).__name__}")


def _rechunk(blocks, chunk_size):
    """Re-cut blocks of any sizes into chunks of exactly chunk_size rows (the last short)."""
    buf, n_buf, d = [], 0, None
    for b in blocks:
        b = np.asarray(b)
        if b.ndim != 2:
            raise ValueError(f"every chunk must be 2-D (rows, n_features), got shape {b.shape}")
        if d is None:
            d = b.shape[1]
        elif b.shape[1] != d:
            raise ValueError(f"chunks disagree on n_features: {b.shape[1]} vs {d}")
        buf.append(b)
        n_buf += b.shape[0]
        while n_buf >= chunk_size:
            cat = np.concatenate(buf) if len(buf) > 1 else buf[0]
            yield cat[:chunk_size]
            rest = cat[chunk_size:]
            buf, n_buf = ([rest] if rest.shape[0] else []), rest.shape[0]
    if n_buf:
        yield np.concatenate(buf)


# ---------------------------------------------------------------------------- passes


def _first_pass(blocks, n_sub, rng):
    """Count, mean, M2 (Chan's merge, float64), NaN check and a uniform subsample."""
    n, mean, m2 = 0, None, None
    keys = rows = None
    for c in blocks:
        _check_chunk(c)
        nc = c.shape[0]
        c = np.asarray(c, np.float64)
        mc = c.mean(0)
        m2c = ((c - mc) ** 2).sum(0)
        if n == 0:
            mean, m2 = mc, m2c
        else:
            delta = mc - mean
            tot = n + nc
            mean = mean + delta * (nc / tot)
            m2 = m2 + m2c + delta**2 * (n * nc / tot)
        n += nc
        # uniform subsample without replacement: keep the n_sub smallest random keys
        k = rng.random(nc)
        if keys is None:
            keys, rows = k, c
        else:
            if keys.size >= n_sub:  # only rows that can enter the current sample
                cand = k < keys.max()
                k, c = k[cand], c[cand]
            keys, rows = np.concatenate([keys, k]), np.concatenate([rows, c])
        if keys.size > n_sub:
            keep = np.argpartition(keys, n_sub)[:n_sub]
            keys, rows = keys[keep], rows[keep]
    if n == 0:
        raise ValueError("the source yielded no rows")
    return n, mean, m2 / n, rows


def _std_from_moments(mean, var, covariance_type):
    if covariance_type == "spherical":
        var = np.full_like(var, var.mean())
    scale = np.sqrt(var)
    tiny = scale <= 1e-300 * np.maximum(1.0, np.abs(mean))
    return Standardizer(mean, np.where(tiny | ~np.isfinite(scale), 1.0, scale))


_IN_FLIGHT = 2


@partial(jax.jit, static_argnames=("cfg",))
def _chunk_expectation(x, n_valid, center, scale, params, *, cfg):
    # standardise on the device (float64 when computing in float64, so the same numbers
    # as the estimator's numpy standardisation); rows >= n_valid are padding, weight 0
    dt = params.means.dtype
    xs = (x.astype(dt) - center) / scale
    weight = (jnp.arange(x.shape[0]) < n_valid).astype(dt)
    xs = jnp.where(weight[:, None] > 0, xs, 0.0)
    return em.expectation(em.make_data(xs, weight, cfg.covariance_type), params, cfg)


@partial(jax.jit, static_argnames=("cfg",))
def _m_step(stats, params, reg, *, cfg):
    return em.m_step(stats, params, None, reg, cfg)


@partial(jax.jit, static_argnames=("cfg", "method"))
def _init(key, x, weight, reg, user, *, cfg, method):
    return initial_params(key, em.make_data(x, weight, cfg.covariance_type), None, reg, cfg,
                          method, user)


def _pass_stats(blocks, std, params, cfg, chunk_size, dt, n_rows):
    """One pass: summed SuffStats and weighted log-likelihood over all chunks. Every pass
    re-reads the source: it must give the first pass's rows (``n_rows``), features and
    finite values again (a callable must return a fresh iterator)."""
    tot = None
    pending = []
    center, scale = jnp.asarray(std.center, dt), jnp.asarray(std.scale, dt)
    seen = 0
    # float32 and float64 chunks pass as they are (cast on the device); others as float64
    for c in blocks:
        n = c.shape[0]
        _check_chunk(c, center.shape[0])
        seen += n
        if c.dtype not in (np.float32, np.float64):
            c = np.asarray(c, np.float64)
        if n < chunk_size:
            c = np.concatenate([c, np.zeros((chunk_size - n, c.shape[1]), c.dtype)])
        out = _chunk_expectation(c, n, center, scale, params, cfg=cfg)
        tot = out if tot is None else (em.add_stats(tot[0], out[0]), tot[1] + out[1])
        # back-pressure: dispatch is asynchronous, and without a bound a fast reader would
        # queue the whole file in device buffers; keep at most _IN_FLIGHT chunks pending
        pending.append(tot[1])
        if len(pending) > _IN_FLIGHT:
            pending.pop(0).block_until_ready()
    if seen != n_rows:
        raise ValueError(f"the source gave {seen} rows on a later pass but {n_rows} on the "
                         "first: it must give the same data on every pass (a callable source "
                         "must return a fresh iterator each time)")
    return tot


def _check_chunk(c, d=None):
    """Real, finite chunks of ``d`` features, within float64's squares (one reduction)."""
    if not np.issubdtype(c.dtype, np.number) or np.iscomplexobj(c):
        raise TypeError(f"chunks must hold real numbers, got dtype {c.dtype}")
    if d is not None and c.shape[1] != d:
        raise ValueError(f"a chunk has {c.shape[1]} features, the first pass had {d}")
    if not np.isfinite(np.max(np.abs(c), initial=0.0)):  # one reduction for NaN and inf
        raise ValueError("the data contain NaN or infinite values")
    _check_magnitude(c, "the data")


def fit_streaming(source, n_components: int = 1, *, covariance_type: str = "full",
                  chunk_size: int = 65536, tol: float = 1e-3, reg_covar: float = 1e-6,
                  max_iter: int = 100, init_params: str = "kmeans",
                  init_subsample: int = 100_000, weights_init=None, means_init=None,
                  precisions_init=None, dtype: str = "float64", random_state=None,
                  verbose: int = 0) -> GaussianMixture:
    """Maximum-likelihood EM over a data source read chunk by chunk on every iteration.

    Parameters
    ----------
    source : (n_samples, n_features) array or ``np.memmap``; a path or list of paths of
        2-D ``.npy`` files; or a callable returning a new iterator of 2-D chunks per call.
    n_components, covariance_type, tol, reg_covar, max_iter, weights_init, means_init,
        precisions_init, dtype, random_state : as in :class:`bgmm.GaussianMixture`
        (tol on the change of the mean log-likelihood per sample).
    chunk_size : rows per device call (fixed: one compilation); memory ~ chunk_size x
        (n_features + 2 x number of second-moment features) x itemsize, twice over.
    init_params : one of :data:`bgmm.init.INIT_METHODS`, run on a uniform random
        subsample of ``init_subsample`` rows (drawn in the first pass).
    verbose : print the objective per iteration when > 0.

    Returns a fitted :class:`bgmm.GaussianMixture` (``predict``, ``score``, ``bic`` on
    in-memory data; ``lower_bounds_`` holds the per-iteration objective).
    """
    gm = GaussianMixture(n_components, covariance_type=covariance_type, tol=tol,
                         reg_covar=reg_covar, max_iter=max_iter, init_params=init_params,
                         weights_init=weights_init, means_init=means_init,
                         precisions_init=precisions_init, dtype=dtype,
                         random_state=random_state)
    gm._check_parameters()

    def integer(v):
        return isinstance(v, int | np.integer) and not isinstance(v, bool)

    if not integer(chunk_size) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    if not integer(init_subsample) or init_subsample < n_components:
        raise ValueError(f"init_subsample must be an integer >= n_components, got "
                         f"{init_subsample!r}")
    assert init_params in INIT_METHODS
    make_blocks = as_source(source, chunk_size)
    seed = seed_from(random_state)
    rng = np.random.default_rng(seed)

    n, mean, var, sub = _first_pass(_rechunk(make_blocks(), chunk_size), init_subsample, rng)
    d = mean.shape[0]
    if n < n_components:
        raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                         f"{n_components}, n_samples = {n}")
    gm.n_features_in_ = d
    std = _std_from_moments(mean, var, covariance_type)
    _warn_if_reg_dominates(reg_covar, std.scale, var > 0, stacklevel=3)
    user = gm._user_init(d, std)
    cfg = em.EMConfig(n_components, covariance_type, int(max_iter))
    reg = reg_covar / std.scale**2
    trace = []
    with precision_scope(dtype):
        dt = jnp.dtype(dtype)
        reg_j = jnp.asarray(reg, dt)
        user_j = UserInit(*(None if v is None else jnp.asarray(v, dt) for v in user))
        subs = jnp.asarray(std.transform(sub), dt)
        params = _init(jax.random.PRNGKey(seed), subs, jnp.ones(subs.shape[0], dt), reg_j,
                       user_j, cfg=cfg, method=init_params)
        obj, change, converged, failed, n_iter = -np.inf, np.inf, False, False, 0
        while n_iter < max_iter:
            t0 = time.perf_counter()
            stats, ll = _pass_stats(_rechunk(make_blocks(), chunk_size), std, params, cfg,
                                    chunk_size, dt, n)
            new_obj = float(ll) / n
            if not np.isfinite(new_obj):  # at the current parameters: stop with them, as
                failed = True  # bgmm.em.fit does (no M-step: not an iteration)
                break
            new, ok = _m_step(stats, params, reg_j, cfg=cfg)
            ok = bool(ok)
            change = new_obj - obj
            obj = new_obj
            trace.append(obj)
            n_iter += 1
            if verbose:
                # in the data's units (the loop works in standardised units)
                print(f"iteration {n_iter}: mean log-likelihood {obj - std.log_det:.10g} "
                      f"({time.perf_counter() - t0:.2f} s)")
            if not ok:
                failed = True
                break
            params = new
            if abs(change) < tol:
                converged = True
                break
        _, ll = _pass_stats(_rechunk(make_blocks(), chunk_size), std, params, cfg,
                            chunk_size, dt, n)
        final = float(ll) / n
        params = jax.tree.map(np.asarray, params)
    trace_arr = np.full(max_iter, np.nan)
    trace_arr[:len(trace)] = trace
    res = em.EMResult(
        params=jax.tree.map(lambda a: a[None], params),
        objective=np.array([final if np.isfinite(final) else -np.inf]),
        n_iter=np.array([n_iter]), converged=np.array([converged]),
        failed=np.array([failed]), last_change=np.array([change]), trace=trace_arr[None])
    gm._store(res, std, None, float(n), 1.0)
    gm.n_samples_seen_ = n
    return gm


__all__ = ["fit_streaming", "as_source"]

"""Saving and loading fitted estimators and posteriors.

An estimator is saved as one ``.npz`` file (numpy's zip of arrays, no pickle): the
fitted arrays, the internal standardisation and standardised parameters, the resolved
prior, and a JSON header with the format name, its version, the bgmm version and the
constructor parameters. :func:`load_estimator` refuses files of an unknown format or a
newer version. A posterior (an ArviZ ``DataTree``) is saved with
:func:`save_posterior` to netCDF (``.nc``) or zarr (``.zarr``) and read back with
:func:`load_posterior`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT = "bgmm.GaussianMixture"
VERSION = 1

_FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
           "lower_bounds_", "all_lower_bounds_")
_SCALARS = ("converged_", "n_iter_", "lower_bound_", "n_features_in_")
_ARRAY_PARAMS = ("weights_init", "means_init", "precisions_init")


def save_estimator(estimator, path) -> Path:
    """Write a fitted :class:`bgmm.GaussianMixture` to ``path`` (``.npz`` is appended if missing)."""
    from sklearn.utils.validation import check_is_fitted

    from . import __version__

    check_is_fitted(estimator)
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    params = estimator.get_params()
    arrays = {}
    for name in _ARRAY_PARAMS:
        if params[name] is not None:
            arrays[f"param_{name}"] = np.asarray(params[name])
        params[name] = params[name] is not None
    prior = params.pop("prior")
    given = None  # the GMMPrior's fields as the user gave them (None: resolved from the data)
    if prior is not None and not isinstance(prior, str):
        given = [f for f, v in prior._asdict().items() if v is not None]
        for f in given:
            arrays[f"param_prior_{f}"] = np.asarray(getattr(prior, f))
        prior = "object"
    params["prior"] = prior
    rs = params["random_state"]
    if rs is not None and not isinstance(rs, (int, np.integer)):
        params["random_state"] = None  # a RandomState object is not serialisable
    header = {
        "format": FORMAT, "version": VERSION, "bgmm_version": __version__,
        "params": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()},
        "fitted": {k: (getattr(estimator, k).item() if isinstance(getattr(estimator, k), np.generic)
                       else getattr(estimator, k)) for k in _SCALARS},
        "feature_names_in": (None if not hasattr(estimator, "feature_names_in_")
                             else [str(c) for c in estimator.feature_names_in_]),
        "has_prior": estimator._prior is not None,
        "prior_given_fields": given,
    }
    for k in _FITTED:
        arrays[k] = np.asarray(getattr(estimator, k))
    arrays["std_center"], arrays["std_scale"] = estimator._std
    for k, v in estimator._params_std._asdict().items():
        arrays[f"std_{k}"] = np.asarray(v)
    if estimator._prior is not None:
        for k, v in estimator._prior._asdict().items():
            arrays[f"prior_{k}"] = np.asarray(v)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_estimator(path):
    """Read an estimator written by :func:`save_estimator`; it predicts identically."""
    from ._shell import Standardizer
    from .estimator import GaussianMixture
    from .params import GMMParams
    from .priors import GMMPrior

    try:
        with np.load(Path(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (KeyError, ValueError, OSError) as e:
        raise ValueError(f"{path} is not a saved bgmm estimator (an .npz written by "
                         f"bgmm.save_estimator): {e}") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved bgmm estimator (format {header.get('format')!r})")
    if header["version"] > VERSION:
        raise ValueError(f"{path} was written in format version {header['version']}; this bgmm "
                         f"reads versions <= {VERSION}: upgrade bgmm")
    params = header["params"]
    for name in _ARRAY_PARAMS:
        params[name] = arrays.pop(f"param_{name}") if params[name] else None
    prior = None
    if header["has_prior"]:
        prior = GMMPrior(*(arrays.pop(f"prior_{f}") for f in GMMPrior._fields))
    if params["prior"] == "object":
        given = header.get("prior_given_fields")
        if given is None:  # written before the user's prior was kept: the resolved one
            params["prior"] = GMMPrior(*(np.asarray(v) for v in prior))
        else:  # a refit resolves the missing fields from its data, as the original would
            params["prior"] = GMMPrior(**{f: arrays.pop(f"param_prior_{f}") for f in given})
    gm = GaussianMixture(**params)
    for k in _FITTED:
        setattr(gm, k, arrays[k])
    for k, v in header["fitted"].items():
        setattr(gm, k, v)
    if header["feature_names_in"] is not None:
        gm.feature_names_in_ = np.asarray(header["feature_names_in"], dtype=object)
    gm._std = Standardizer(arrays["std_center"], arrays["std_scale"])
    gm._params_std = GMMParams(*(arrays[f"std_{f}"] for f in GMMParams._fields))
    gm._prior = prior
    return gm


def save_posterior(tree, path) -> Path:
    """Write a posterior ``DataTree`` to netCDF (``.nc``) or zarr (``.zarr``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".zarr":
        tree.to_zarr(path, mode="w")
    else:
        tree.to_netcdf(path)
    return path


def load_posterior(path):
    """Read a posterior ``DataTree`` written by :func:`save_posterior` (fully loaded)."""
    import xarray as xr

    path = Path(path)
    engine = "zarr" if path.suffix == ".zarr" else None
    from .inference import restore_list_attrs

    with xr.open_datatree(path, engine=engine) as tree:
        return restore_list_attrs(tree.load())

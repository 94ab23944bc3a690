"""Embedded demo data."""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_faithful(as_frame: bool = False):
    """Old Faithful geyser eruptions: 272 rows, columns ``eruptions`` (min), ``waiting`` (min).

    Returns a (272, 2) float64 array, or a pandas DataFrame with ``as_frame=True``.
    """
    path = resources.files("bgmm") / "data" / "faithful.csv"
    with path.open("r") as fh:
        header = fh.readline().strip().split(",")
        data = np.loadtxt(fh, delimiter=",", dtype=np.float64)
    if as_frame:
        import pandas as pd

        return pd.DataFrame(data, columns=header)
    return data

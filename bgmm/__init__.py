"""bgmm: one Gaussian mixture model, fitted by EM (MLE / MAP) or sampled with NUTS."""

from . import inference, mcmc
from ._shell import ConvergenceWarning, DegenerateFitWarning, enable_compilation_cache
from .covariance import COVARIANCE_TYPES
from .datasets import load_faithful
from .estimator import GaussianMixture
from .inference import compare_em_mcmc, posterior_responsibilities
from .io import load_estimator, load_posterior, save_estimator, save_posterior
from .many import ManyFits, fit_many
from .mcmc import run_nuts
from .model import marginal_model, model
from .params import GMMParams
from .priors import GMMPrior, default_prior
from .selection import SelectionResult, compare_loo, select, sparse_mixture_k

__version__ = "0.1.0"

__all__ = [
    "COVARIANCE_TYPES",
    "ConvergenceWarning",
    "DegenerateFitWarning",
    "GMMParams",
    "GMMPrior",
    "GaussianMixture",
    "ManyFits",
    "SelectionResult",
    "compare_loo",
    "default_prior",
    "enable_compilation_cache",
    "load_estimator",
    "load_faithful",
    "load_posterior",
    "compare_em_mcmc",
    "fit_many",
    "inference",
    "mcmc",
    "posterior_responsibilities",
    "run_nuts",
    "marginal_model",
    "model",
    "save_estimator",
    "save_posterior",
    "select",
    "sparse_mixture_k",
]

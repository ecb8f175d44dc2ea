"""lmm: linear mixed models (lme4's ``lmer``) for Python with a fast C++ core.

Example:
    >>> import lmm
    >>> res = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))
    >>> print(res)  # doctest: +SKIP
"""

from . import datasets
from .formula import FormulaError, parse_formula
from .inference import anova
from .many import ManyResult, lmer_many
from .model import LinearMixedModel, lmer
from .results import LmmResult

__version__ = "0.1.0"


def __getattr__(name: str):
    # statsmodels users' names, imported on first use (``import lmm`` stays lean).
    if name in ("MixedLM", "mixedlm"):
        from .compat import statsmodels

        return getattr(statsmodels, name)
    raise AttributeError(f"module 'lmm' has no attribute {name!r}")

__all__ = ["FormulaError", "anova", "LinearMixedModel", "LmmResult", "ManyResult", "MixedLM", "datasets", "lmer",
           "lmer_many", "mixedlm", "parse_formula", "__version__"]

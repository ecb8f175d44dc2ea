"""Other packages' APIs on lmm's models.

:mod:`lmm.compat.statsmodels` is statsmodels' ``MixedLM`` (``MixedLM``, ``MixedLM.from_formula``,
``mixedlm``, results with statsmodels' attributes), fitted by lmm: a statsmodels user's script
runs after changing only the import.
"""

from . import statsmodels

__all__ = ["statsmodels"]

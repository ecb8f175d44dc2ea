"""From a parsed formula and a data frame to the arrays the core needs.

The design holds the response ``y``, the fixed-effects model matrix ``X`` and,
per random-effects term, the level codes of its grouping factor and the
columns ``z`` of its own model matrix (n × p_k). The random-effects matrix Z is
never formed.

This is also where input is validated, before any heavy work, with messages
in the user's terms (column names, formula text):

- rows with missing values in the columns a formula uses are dropped with a
  warning that counts them per column (``missing="raise"`` refuses them); rows
  where an expression evaluates to NaN (``log`` of a negative value) likewise;
- infinite values, and values so large or small that their squares overflow or
  underflow (the core works on crossproducts), raise ``ValueError``;
- a constant response, or one the fixed effects (alone or with one
  random-effects term) fit exactly, raises ``ValueError``: the residual
  variance would be 0 and the likelihood unbounded;
- aliased fixed-effects columns are dropped with a warning naming them, as
  lme4 does; predictors on very different scales get lme4's warning;
- a grouping factor with one level, as many levels as observations, or more
  random effects than observations, raises ``ValueError`` naming the term.

Modules, one concern each: :mod:`.data` (data input, rows used, weights and offset,
argument and value checks), :mod:`.evaluation` (the formula's values on the rows),
:mod:`.fixed` (QR of [X_c y], rank test, scale check, centring), :mod:`.response`
(constant and exactly fitted responses, the shift ``y_coef``), :mod:`.terms`
(random-effects terms: order, ``||`` pieces, identifiability, shared columns),
:mod:`.learned` (``scale()``, ``poly()``, ``ns()``, ``bs()`` learned from row chunks in
map/reduce rounds, for data beyond memory) and :mod:`.build` (:class:`Design` and
:func:`build_design`, the pipeline).
"""

from __future__ import annotations

from .build import Design, build_design
from .data import MAX_MAGNITUDE, OFFSET_COLUMN, WEIGHTS_COLUMN, as_frame, with_column
from .evaluation import evaluate_offset
from .fixed import RANK_TOL, SCALE_TOL
from .learned import LearningRound, TransformLearner, learn_over_chunks
from .response import EXACT_FIT_TOL
from .terms import ReTerm

__all__ = ["Design", "ReTerm", "as_frame", "build_design", "evaluate_offset", "with_column", "WEIGHTS_COLUMN",
           "OFFSET_COLUMN", "RANK_TOL", "SCALE_TOL", "MAX_MAGNITUDE", "EXACT_FIT_TOL", "TransformLearner",
           "LearningRound", "learn_over_chunks"]


"""lme4 model formulas with R's meaning.

Users paste formulas written for R's ``lme4::lmer``.  This package parses them and
builds the model matrices exactly as R's ``model.matrix`` does:

* :func:`parse_formula` splits ``response ~ fixed + (expr | group) + ...`` into the
  response expression, the fixed-effects right-hand side and the random-effects terms,
  expanding ``||`` (lme4's ``expandDoubleVerts``) and nested groups ``a/b`` (lme4's
  ``expandSlash``) with lme4's names and order.
* :func:`model_matrix` evaluates a right-hand side such as ``"1 + Days"`` or
  ``"0 + Machine"`` on a :class:`pandas.DataFrame` and returns a dense Fortran-ordered
  float64 matrix with R's columns, column order and column names (treatment contrasts,
  R's rules for when a factor gets contrasts and when indicator columns).
* :func:`evaluate_response`, :func:`required_columns`, :func:`check_columns`,
  :func:`grouping_codes` and :func:`grouping_factor` serve the design step.

Formula text is parsed once, by :func:`parse_formula` (no ``eval`` of user text): the
parsed formula carries syntax-tree objects (:class:`Terms`, :class:`Expression`,
:class:`RandomTerm`) that every later stage takes, so nothing is parsed again.

The formula language is R's: operators ``+ - * / : ^ %in%``, ``0``/``1``/``-1``,
parentheses, and inside function calls R arithmetic (``+ - * / ^ %% %/%``), comparisons and ``& | !``.  Supported
functions: ``I``, ``log`` (with ``base``), ``exp``, ``sqrt``, ``abs`` and other
elementwise maths, ``scale``, ``poly`` (orthogonal like R's, or ``raw = TRUE``), the
splines ``ns`` and ``bs`` (:mod:`.splines`), ``factor``, ``as.factor``, ``ordered``,
``relevel``, ``C`` (treatment, sum, helmert and poly contrasts), ``pmin``, ``pmax``; as a
grouping factor also ``interaction(a, b, sep = ".", lex.order = FALSE)``.

Data types follow R: numeric columns (integer too) are numeric; pandas ``Categorical``
columns are factors with their category order (ordered categoricals get R's polynomial
contrasts, as ordered factors do in R); string/object columns are factors with sorted
levels; bool columns are R logicals (levels ``FALSE``, ``TRUE``; column ``xTRUE``).
As in lme4's model frame, unused levels of factors are dropped.

Known differences from R (all deliberate or documented edge cases):

* R sorts character levels with the locale's collation (ICU on most systems).  This
  package approximates ICU's root collation for ASCII text (punctuation < digits <
  letters, case-insensitive first, lower case before upper case on ties), vectorized
  over the distinct strings; non-ASCII letters are sorted after ``z`` by code point,
  string by string.
* ``y ~ (1 | g) - 1`` (every fixed term removed, ``-1`` last) keeps an intercept in lme4
  because of a quirk of its ``nobars``; here ``-1`` removes the intercept, as R's
  formula rules say.
* ``(1 | a:b/c)``: lme4 mangles the group name; here the groups are ``c:(a:b)`` and
  ``a:b``.  Groups are column names combined with ``:`` and ``/``, ``factor(g)`` or one
  ``interaction(...)`` call (lme4 also evaluates other expressions).
* ``poly()``, ``scale()``, ``ns()`` and ``bs()`` use the data passed in, unless a recorded
  :class:`ModelFrameState` is given: then new data are evaluated with the fitting data's
  coefficients, knots and factor levels, as R's ``predict(fit, newdata)``.
* Missing values are not removed: they give NaN in the affected columns.  Drop
  incomplete rows first (``data.dropna(subset=required_columns(parsed))``) to reproduce
  R's ``na.omit``; ``poly()`` refuses missing values as R does.
* Not supported: ``cbind()`` responses, ``.``, ``%in%`` as a value
  operator, functions not listed above.

Modules, one concept each: :mod:`.errors`, :mod:`.syntax` (tokens, syntax tree,
parser, deparser), :mod:`.functions` (signatures of the R functions), :mod:`.checks`,
:mod:`.terms` (R's ``terms()``), :mod:`.bars` (random-effects terms, ``||``, ``/``),
:mod:`.parsed` (:func:`parse_formula`), :mod:`.values` (R's values of columns),
:mod:`.collation` (R's order of strings),
:mod:`.evaluate` (evaluation, function library, transform state), :mod:`.splines` (R's
spline bases), :mod:`.matrix` (model matrices), :mod:`.response`, :mod:`.grouping`
(grouping factors).

Example:
>>> p = parse_formula("Reaction ~ Days + (Days | Subject)")
>>> p.response, p.fixed, p.random[0].name
('Reaction', 'Days', 'Subject')
"""

from __future__ import annotations

from .bars import RandomTerm
from .errors import FormulaError, FormulaNotImplementedError, FormulaTypeError
from .evaluate import Columns, TransformState
from .grouping import GroupLevels, grouping_codes, grouping_factor
from .matrix import ModelFrameState, model_matrix
from .parsed import ParsedFormula, check_columns, parse_formula, required_columns
from .response import Expression, evaluate_response, parse_expression
from .terms import Terms, parse_rhs

__all__ = [
    "FormulaError",
    "FormulaTypeError",
    "FormulaNotImplementedError",
    "RandomTerm",
    "ParsedFormula",
    "Terms",
    "Expression",
    "parse_formula",
    "parse_rhs",
    "parse_expression",
    "required_columns",
    "check_columns",
    "model_matrix",
    "evaluate_response",
    "grouping_factor",
    "grouping_codes",
    "GroupLevels",
    "ModelFrameState",
    "TransformState",
    "Columns",
]

# The public classes are documented (and shown in tracebacks) as lmm.formula's.
for _cls in (FormulaError, FormulaTypeError, FormulaNotImplementedError):
    _cls.__module__ = __name__
del _cls

"""Errors of the formula engine: what is wrong, quoted with a caret under the formula text."""

from __future__ import annotations

__all__ = ["FormulaError", "FormulaTypeError", "FormulaNotImplementedError"]


class FormulaError(ValueError):
    """A malformed formula, or one that does not fit the data.

    The message quotes the formula and points at the offending position with a caret
    line.  The parts are also available as attributes: ``reason`` (the first line),
    ``formula`` (the text) and ``pos`` (0-based offset into ``formula``, or None).

    Example:
        >>> from lmm.formula import parse_formula
        >>> try:
        ...     parse_formula("y ~ x + (1 | )")
        ... except FormulaError as e:
        ...     print(e)
        the random-effects term has no grouping factor right of '|'; write (1 | g)
            y ~ x + (1 | )
                         ^
    """

    def __init__(
        self,
        reason: str,
        formula: str | None = None,
        pos: int | None = None,
        end: int | None = None,
    ) -> None:
        self.reason = reason
        self.formula = formula
        self.pos = pos
        self.end = end
        super().__init__(_render_error(reason, formula, pos, end))


class FormulaTypeError(FormulaError, TypeError):
    """A variable of the wrong type, e.g. a categorical response or arithmetic on a factor.

    Subclass of both :class:`FormulaError` and :class:`TypeError`.
    """


class FormulaNotImplementedError(FormulaError, NotImplementedError):
    """Valid R formula syntax that lmm does not support (``offset()``, ``cbind()``, ``.``).

    Subclass of both :class:`FormulaError` and :class:`NotImplementedError`.
    """


def _render_error(reason: str, formula: str | None, pos: int | None, end: int | None) -> str:
    if formula is None:
        return reason
    shown = formula.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    if pos is None:
        return f"{reason}\n    {shown}"
    pos = min(max(pos, 0), len(shown))
    width = max(1, (end if end is not None else pos + 1) - pos)
    return f"{reason}\n    {shown}\n    {' ' * pos}{'^' * width}"

"""The printed summary of a fit, as lme4's and lmerTest's ``summary``."""

from __future__ import annotations

import html

import numpy as np

from ..covariance import components
from ..inference.contrasts import check_ddf

__all__ = ["format_summary", "format_summary_html"]


def _table(rows: list[list[str]], align: list[str]) -> list[str]:
    """Columns padded to their widest cell; align is 'l' or 'r' per column."""
    widths = [max(len(r[j]) for r in rows) for j in range(len(align))]
    return [" ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)).rstrip()
            for r in rows]


def _abbreviate(name: str, width: int = 6) -> str:
    """R's abbreviate(): drop lower-case vowels, then lower-case letters, from the right."""
    chars = list(name)
    for droppable in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > width and i > 0:
            if chars[i] in droppable and chars[i - 1] != " ":
                del chars[i]
            i -= 1
    return "".join(chars[:width]) if len(chars) > width else "".join(chars)


def _g(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3e}"


def _format_pval(p: float) -> str:
    """R's format.pval(p, digits = 3, eps = 2e-16) as printCoefmat shows it."""
    if not np.isfinite(p):
        return "NA"
    if p < 2.2e-16:
        return "< 2e-16"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


def _component_rows(c) -> list[list[str]]:
    """Rows of one variance component as lme4 (2.x for structured terms) prints them.

    Unstructured: the lower triangle of the correlations. ``cs`` and ``ar1``: their ρ and
    the structure's name on the first row (``0.95 (ar1)``); ``toep``: the lag
    correlations r_1 … r_{p−1}; homogeneous ``cs``, ``ar1`` and ``toep`` terms show one
    row (their columns share the SD); ``diag`` terms no correlations.
    """
    structure = c.structure.partition("_")[0]
    corr = [""] * len(c.names)
    if structure in ("cs", "ar1") and len(c.names) > 1:
        corr[0] = f"{c.corr[1, 0]:.2f} ({structure})"
    elif structure == "toep" and len(c.names) > 1:
        corr[0] = " ".join(f"{c.corr[k, 0]:.2f}" for k in range(1, len(c.names))) + " (toep)"
    elif structure == "us":
        corr = [" ".join(f"{c.corr[i, k]:.2f}" for k in range(i)) for i in range(len(c.names))]
    shown = 1 if c.structure in ("cs_hom", "ar1", "toep_hom") else len(c.names)
    return [[c.group if i == 0 else "", c.names[i], _g(c.cov[i, i]), _g(c.sd[i]), corr[i]] for i in range(shown)]


class _Parts:
    """The pieces of a summary, laid out as text or HTML."""

    def __init__(self) -> None:
        self.title = ""
        self.formula = ""
        self.criterion = ""  # REML: one line; ML: a table in criterion_rows
        self.criterion_rows: list[list[str]] = []
        self.residual_rows: list[list[str]] = []
        self.random_rows: list[list[str]] = []
        self.groups = ""
        self.fixed_rows: list[list[str]] = []
        self.fixed_align: list[str] = []
        self.signif = False
        self.corr_rows: list[list[str]] = []
        self.notes: list[str] = []


def _parts(res, ddf: str | None) -> _Parts:
    out = _Parts()
    method = check_ddf(ddf)
    table = None
    note_ddf = None
    if method is not None:
        try:
            table = res.coef_table(method)
        except (ValueError, np.linalg.LinAlgError) as err:
            note_ddf = f"{method} degrees of freedom unavailable: {err}"
            method = None
    tests = f". t-tests use {method}'s method" if method else ""
    out.title = f"Linear mixed model fit by {'REML' if res.REML else 'maximum likelihood'}{tests}"
    out.formula = f"Formula: {res.formula}"
    if res.REML:
        out.criterion = f"REML criterion at convergence: {res.objective:.4f}"
    else:
        out.criterion_rows = [["AIC", "BIC", "logLik", "deviance", "df.resid"],
                              [f"{res.aic:.1f}", f"{res.bic:.1f}", f"{res.loglik:.1f}", f"{res.objective:.1f}",
                               str(res.nobs - res.npar)]]
    try:
        q = np.quantile(res.residuals(scaled=True, array=True), [0, 0.25, 0.5, 0.75, 1])
        out.residual_rows = [["Min", "1Q", "Median", "3Q", "Max"], [f"{v:.4f}" for v in q]]
    except NotImplementedError:  # (a model from chunks keeps no rows: no residuals to summarise)
        out.residual_rows = []
    rows = [["Groups", "Name", "Variance", "Std.Dev.", "Corr"]]
    for c in components(res.model.terms, res.solution.lambdas, res.sigma):
        rows += _component_rows(c)
    rows.append(["Residual", "", _g(res.sigma**2), _g(res.sigma), "(fixed)" if res.model.sigma is not None else ""])
    out.random_rows = rows
    out.groups = f"Number of obs: {res.nobs}, groups:  {', '.join(f'{k}, {v}' for k, v in res.ngroups.items())}"
    if table is None:
        se = res.se
        rows = [["", "Estimate", "Std. Error", "t value"]]
        for name in res.fixef.index:
            est, s = res.fixef[name], se[name]
            rows.append([name, _g(est, 6), _g(s, 5), f"{est / s:.3f}" if s > 0 else "NaN"])
        out.fixed_align = ["l", "r", "r", "r"]
    else:
        rows = [["", "Estimate", "Std. Error", "df", "t value", "Pr(>|t|)", ""]]
        columns = [table[c].to_numpy() for c in ("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)")]
        for name, est, s, df, t, pval in zip(table.index, *columns):
            rows.append([name, _g(est, 6), _g(s, 5), f"{df:.3f}", f"{t:.3f}", _format_pval(pval), _stars(pval)])
        out.fixed_align = ["l", "r", "r", "r", "r", "r", "l"]
        out.signif = True
    out.fixed_rows = rows
    xnames = res.model.design.xnames
    if len(xnames) > 1:
        v = np.array(res.solution.vcov)
        d = np.sqrt(np.diag(v))
        corr = v / np.outer(d, d)
        abbrev = [_abbreviate(n) for n in xnames]
        out.corr_rows = [[""] + abbrev[:-1]]
        for i, name in enumerate(xnames):
            if i:
                out.corr_rows.append([name] + [f"{corr[i, j]:.3f}" for j in range(i)] + [""] * (len(abbrev) - 1 - i))
    if res.singular:
        out.notes.append("boundary (singular) fit: see the variance components")
    if not res.converged:
        out.notes.append(f"the optimizer did not converge: {res.optinfo.message}")
    if note_ddf:
        out.notes.append(note_ddf)
    out.notes += res.fit_notes
    if table is not None and method == "Satterthwaite":
        out.notes += res.satterthwaite().notes
    if res.model.design.dropped_columns:
        out.notes.append(f"rank deficient X: dropped {res.model.design.dropped_columns}")
    return out


_SIGNIF = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def format_summary(res, ddf: str | None = "Satterthwaite") -> str:
    """Summary text as lmerTest's ``summary(fit, ddf = ...)`` (lme4's with ``ddf=None``).

    Args:
        res: the fitted result.
        ddf: ``"Satterthwaite"``, ``"Kenward-Roger"`` or None.

    Returns:
        The text.
    """
    s = _parts(res, ddf)
    lines = [s.title, s.formula, ""]
    lines += [s.criterion] if s.criterion else _table(s.criterion_rows, ["r"] * 5)
    if s.residual_rows:
        lines += ["", "Scaled residuals:"] + _table(s.residual_rows, ["r"] * 5)
    lines += ["", "Random effects:"] + [" " + r for r in _table(s.random_rows, ["l", "l", "r", "r", "l"])]
    lines += [s.groups, "", "Fixed effects:"] + _table(s.fixed_rows, s.fixed_align)
    if s.signif:
        lines += ["---", _SIGNIF]
    if s.corr_rows:
        lines += ["", "Correlation of Fixed Effects:"] + _table(s.corr_rows, ["l"] + ["r"] * (len(s.corr_rows[0]) - 1))
    if s.notes:
        lines += [""] + [f"note: {n}" for n in s.notes]
    return "\n".join(lines)


def _html_table(rows: list[list[str]], align: list[str], caption: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f'<td style="text-align:{"left" if a == "l" else "right"}">{html.escape(c)}</td>'
                                    for c, a in zip(r, align)) + "</tr>" for r in rows[1:])
    return (f"<table><caption style=\"text-align:left\"><b>{html.escape(caption)}</b></caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def format_summary_html(res, ddf: str | None = "Satterthwaite") -> str:
    """The summary as HTML tables (what a notebook shows for a result).

    Args:
        res: the fitted result.
        ddf: as :func:`format_summary`.
    """
    s = _parts(res, ddf)
    out = [f"<p><b>{html.escape(s.title)}</b><br>{html.escape(s.formula)}<br>"
           f"{html.escape(s.criterion) if s.criterion else ''}</p>"]
    if s.criterion_rows:
        out.append(_html_table(s.criterion_rows, ["r"] * 5, "Criteria"))
    out.append(_html_table(s.random_rows, ["l", "l", "r", "r", "l"], "Random effects"))
    out.append(f"<p>{html.escape(s.groups)}</p>")
    out.append(_html_table(s.fixed_rows, s.fixed_align, "Fixed effects"))
    if s.signif:
        out.append(f"<p><small>{html.escape(_SIGNIF)}</small></p>")
    out += [f"<p>note: {html.escape(n)}</p>" for n in s.notes]
    return "<div>" + "".join(out) + "</div>"

"""Fitted models: :class:`LmmResult` (``fit``), its printed summary (``summary``), tables
(``tidy``), predictions and simulation (``predict``)."""

from __future__ import annotations

from .fit import FixedTerms, LmmResult
from .predict import simulate_response

__all__ = ["FixedTerms", "LmmResult", "simulate_response"]

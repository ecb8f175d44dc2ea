"""What users see: the notebook summary and lmer's arguments."""

from __future__ import annotations

import re

import pytest

import lmm


@pytest.fixture(scope="module")
def res():
    return lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"))


def test_html_summary_has_the_text_summary_numbers(res):
    page = res._repr_html_()
    assert page.startswith("<div>") and page.endswith("</div>")
    assert page.count("<table>") == 2  # random and fixed effects (REML: the criterion is a line)
    text = str(res)
    for number in ("1743.6283", "612.1", "24.74", "251.405", "6.8246", "17.000", "3.26e-06"):
        assert number in text and number in page
    assert "Satterthwaite&#x27;s" in page  # text is escaped
    ml = lmm.lmer("Reaction ~ Days + (Days | Subject)", lmm.datasets.load("sleepstudy"), REML=False)
    assert re.search(r"<th>AIC</th>", ml._repr_html_())


def test_lme4_arguments_lmm_does_not_have_say_what_to_use():
    data = lmm.datasets.load("sleepstudy")
    with pytest.raises(NotImplementedError, match="Gaussian linear mixed models"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", data, family="poisson")
    with pytest.raises(NotImplementedError, match="select the rows first"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", data, subset="Days > 1")
    with pytest.raises(TypeError, match="unexpected keyword argument 'reml'"):
        lmm.lmer("Reaction ~ Days + (1 | Subject)", data, reml=False)

"""Data sets bundled with lmm.

Real data sets, exported unchanged from R's lme4 (1.1-31), nlme and geepack packages by
``tests/reference/export_datasets.R``; column names, values and factor level order
are lme4's, so fits compare directly with ``lmer``:

=============  ===========  ================================================
name           R object     citation
=============  ===========  ================================================
sleepstudy     sleepstudy   Belenky et al. (2003), J. Sleep Res. 12, 1-12
dyestuff       Dyestuff     Davies & Goldsmith (1972), section 6.4
dyestuff2      Dyestuff2    Box & Tiao (1973), section 5.1.2
penicillin     Penicillin   Davies & Goldsmith (1972), section 6.6
pastes         Pastes       Davies & Goldsmith (1972), section 6.5
insteval       InstEval     ETH Zurich lecture evaluations, from lme4
machines       Machines     Milliken & Johnson (1992), via nlme;
                            Pinheiro & Bates (2000), appendix A.14
orthodont      Orthodont    Potthoff & Roy (1964), via nlme;
                            Pinheiro & Bates (2000), appendix A.17
dietox         dietox       Lauridsen et al. (1999), via geepack
=============  ===========  ================================================

lme4 itself: Bates, D., Mächler, M., Bolker, B. and Walker, S. (2015). Fitting linear
mixed-effects models using lme4. Journal of Statistical Software 67(1), 1-48.
doi:10.18637/jss.v067.i01. lme4 and nlme are GPL-licensed R packages; the data
are included here as factual records, with their sources stated.

Simulated data sets, drawn by :mod:`lmm.datasets.simulate` from known models with
fixed seeds (``describe(name)`` gives the parameters):

- ``bloodpressure``: ``sbp ~ age + (1 + age | subject)``, longitudinal, unbalanced.
- ``geography``: ``bmi ~ 1 + (1 | state/city/neighborhood)``, nested; city and
  neighborhood labels repeat across parents, so the nesting syntax matters.
- ``emails``: ``emails ~ 1 + (1 | sender) + (1 | receiver)``, crossed, unbalanced.

Factor columns load as :class:`pandas.Categorical` with R's level order (``levels(x)``),
ordered where R's factor is ordered; numeric columns load as float64, or int64 where R
stores integers (InstEval's ``y``).

Example
-------
>>> from lmm import datasets
>>> df = datasets.load("sleepstudy")
>>> df["Subject"].cat.categories[:3].tolist()
['308', '309', '310']
"""

from __future__ import annotations

import builtins
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # simulate is imported only by describe() of a simulated data set
    from .simulate import BloodPressureParameters, EmailsParameters, GeographyParameters

__all__ = ["load", "list", "describe"]

_DATA_DIR = Path(__file__).resolve().parent / "data"

_LME4 = (
    "Bates, D., Mächler, M., Bolker, B. and Walker, S. (2015). Fitting linear "
    "mixed-effects models using lme4. Journal of Statistical Software 67(1), 1-48. "
    "doi:10.18637/jss.v067.i01"
)
_DAVIES = (
    "Davies, O. L. and Goldsmith, P. L. (eds) (1972). Statistical Methods in "
    "Research and Production, 4th ed. Oliver and Boyd, Edinburgh"
)
_BOOK = (
    "Bates, D. M. (2010). lme4: Mixed-effects modeling with R. Draft book, "
    "https://lme4.r-forge.r-project.org/book/, chapters 1-2"
)
_LME4_LICENCE = (
    "Exported from the R package lme4 (GPL-2 | GPL-3) with its column names, values "
    "and factor levels unchanged; the data are factual records reproduced with "
    "their source stated."
)

_REAL = {
    "sleepstudy": f"""\
sleepstudy: reaction times in a sleep deprivation study (180 rows).

The average reaction time per day (ms) for 18 subjects in the most sleep-deprived
group (3 hours time-in-bed) of a sleep restriction study, for the first 10 days,
up to the recovery period. Days 0-1 were adaptation and training, day 2 was
baseline; sleep deprivation started after day 2.

Columns:
  Reaction  float64      average reaction time (ms)
  Days      float64      number of days of sleep deprivation (0-9)
  Subject   categorical  subject number (18 levels, R's order "308", "309", ...)

Source: R package lme4, data set `sleepstudy`.
Citation: Belenky, G., Wesensten, N. J., Thorne, D. R., Thomas, M. L., Sing, H. C.,
  Redmond, D. P., Russo, M. B. and Balkin, T. J. (2003). Patterns of performance
  degradation and restoration during sleep restriction and subsequent recovery:
  a sleep dose-response study. Journal of Sleep Research 12, 1-12.
lme4: {_LME4}.
Licence: {_LME4_LICENCE}
Typical model: Reaction ~ Days + (Days | Subject)""",
    "dyestuff": f"""\
dyestuff: yield of dyestuff by batch of an intermediate product (30 rows).

Yield of dyestuff (Naphthalene Black 12B) from 5 preparations made from each of
6 batches of an intermediate product (H-acid).

Columns:
  Batch  categorical  batch of the intermediate product (levels A-F)
  Yield  float64      yield of the preparation (grams of standard colour)

Source: R package lme4, data set `Dyestuff`.
Citation: {_DAVIES}, section 6.4; as presented in {_BOOK}.
lme4: {_LME4}.
Licence: {_LME4_LICENCE}
Typical model: Yield ~ 1 + (1 | Batch)""",
    "dyestuff2": f"""\
dyestuff2: constructed data in the Dyestuff layout (30 rows).

Constructed data with the same structure as `dyestuff` but a residual variance
that is large relative to the batch variance: the between-batch mean square is
less than the within-batch mean square, so the ML/REML estimate of the batch
variance is zero (a singular fit).

Columns:
  Batch  categorical  batch (levels A-F)
  Yield  float64      simulated yield

Source: R package lme4, data set `Dyestuff2`.
Citation: Box, G. E. P. and Tiao, G. C. (1973). Bayesian Inference in Statistical
  Analysis. Addison-Wesley, section 5.1.2; as presented in {_BOOK}.
lme4: {_LME4}.
Licence: {_LME4_LICENCE}
Typical model: Yield ~ 1 + (1 | Batch)""",
    "penicillin": f"""\
penicillin: variation in penicillin testing (144 rows).

Six samples of penicillin were tested with the B. subtilis plate method on each
of 24 plates; the response is the diameter of the zone of inhibition of growth.
plate and sample are fully crossed.

Columns:
  diameter  float64      diameter (mm) of the zone of inhibition
  plate     categorical  assay plate (levels a-x)
  sample    categorical  penicillin sample (levels A-F)

Source: R package lme4, data set `Penicillin`.
Citation: {_DAVIES}, section 6.6; as presented in {_BOOK}.
lme4: {_LME4}.
Licence: {_LME4_LICENCE}
Typical model: diameter ~ 1 + (1 | plate) + (1 | sample)""",
    "pastes": f"""\
pastes: paste strength by delivery batch and cask (60 rows).

Strength of a chemical paste; three casks were sampled from each of 10 delivery
batches and two assays made on each of the 30 samples. cask is nested in batch
but its labels a-c repeat across batches; sample is the explicit batch:cask
factor.

Columns:
  strength  float64      paste strength
  batch     categorical  delivery batch (levels A-J)
  cask      categorical  cask within the batch (levels a-c, repeated per batch)
  sample    categorical  sample = batch:cask (30 levels "A:a" ... "J:c")

Source: R package lme4, data set `Pastes`.
Citation: {_DAVIES}, section 6.5; as presented in {_BOOK}.
lme4: {_LME4}.
Licence: {_LME4_LICENCE}
Typical models: strength ~ 1 + (1 | batch/cask);
  strength ~ 1 + (1 | batch) + (1 | sample)""",
    "insteval": f"""\
insteval: university lecture evaluations by students at ETH Zurich (73,421 rows).

Each row is one student's rating of one lecture (of one lecturer, in one past
semester), anonymized and slightly simplified by the data's providers. Students
and lecturers are partially crossed.

Columns:
  s        categorical          student (2972 levels)
  d        categorical          lecturer (1128 levels, R's order)
  studage  categorical ordered  student's semester of enrolment (2 < 4 < 6 < 8)
  lectage  categorical ordered  semesters since the lecture took place (1 < ... < 6)
  service  categorical          1 if the lecture was held for a department other
                                than the lecturer's own (levels "0", "1")
  dept     categorical          department of the lecture, random code (14 levels,
                                R's order "15", "5", "10", ...)
  y        int64                rating on the scale 1 (poor) to 5 (very good)

Source: R package lme4, data set `InstEval` (ETH Zurich lecture evaluations,
  contributed to lme4 by Martin Mächler).
lme4: {_LME4}.
Licence: {_LME4_LICENCE}
Typical model: y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)""",
    "machines": """\
machines: productivity scores for machines and workers (54 rows).

Six workers, chosen at random from a factory's employees, each operated each of
three machine brands three times. The response is an overall productivity score
taking into account the number and quality of components produced.

Columns:
  score    float64              productivity score
  Worker   categorical ordered  worker (nlme's order "6" < "2" < "4" < "1" < "3" < "5")
  Machine  categorical          machine brand (levels A, B, C)

Source: R package nlme, data set `Machines` (as a plain data frame).
Citation: Milliken, G. A. and Johnson, D. E. (1992). Analysis of Messy Data,
  Volume I: Designed Experiments. Chapman and Hall, London, p. 285.
  Pinheiro, J. C. and Bates, D. M. (2000). Mixed-Effects Models in S and S-PLUS.
  Springer, New York, appendix A.14.
Licence: Exported from the R package nlme (GPL-2 | GPL-3) with values and factor
  levels unchanged; the data are factual records reproduced with their source
  stated.
Typical models: score ~ Machine + (1 | Worker/Machine);
  score ~ Machine + (0 + Machine | Worker)""",
    "orthodont": """\
orthodont: growth of the distance from the pituitary to the pterygomaxillary fissure (108 rows).

Twenty-seven children (16 boys, 11 girls) were measured at ages 8, 10, 12 and 14 years
by x-ray of the skull; the distance is in millimetres.

Columns:
  distance  float64              distance (mm)
  age       float64              age (years: 8, 10, 12, 14)
  Subject   categorical ordered  child (nlme's order, by the mean distance within sex)
  Sex       categorical          Male or Female

Source: R package nlme, data set `Orthodont` (as a plain data frame).
Citation: Potthoff, R. F. and Roy, S. N. (1964). A generalized multivariate analysis of
  variance model useful especially for growth curve problems. Biometrika 51, 313-326.
  Pinheiro, J. C. and Bates, D. M. (2000). Mixed-Effects Models in S and S-PLUS.
  Springer, New York, appendix A.17.
Licence: Exported from the R package nlme (GPL-2 | GPL-3) with values and factor
  levels unchanged; the data are factual records reproduced with their source
  stated.
Typical models: distance ~ age + (age | Subject);
  distance ~ age + ar1(0 + factor(age) | Subject) (lme4 2.x's structured covariances)""",
    "dietox": """\
dietox: weights of slaughter pigs measured weekly for 12 weeks (861 rows).

72 pigs from 21 litters in a 3 x 3 factorial experiment on vitamin E and copper
added to the feed; the pigs' weights were recorded weekly. The example data of
statsmodels' MixedLM documentation.

Columns:
  Weight  float64      weight (kg)
  Time    int64        week of the measurement (1-12)
  Pig     categorical  pig (72 levels)
  Evit    categorical  vitamin E dose (Evit000, Evit100, Evit200)
  Cu      categorical  copper dose (Cu000, Cu035, Cu175)
  Litter  categorical  litter (21 levels)
  Start   float64      start weight, the weight at week 1 (kg)
  (geepack's Feed column, cumulated feed intake, has 72 missing values and is left out.)

Source: R package geepack (1.3.9), data set `dietox`.
Citation: Lauridsen, C., Højsgaard, S. and Sørensen, M. T. (1999). Influence of
  dietary rapeseed oil, vitamin E, and copper on performance and antioxidant and
  oxidative status of pigs. Journal of Animal Science 77, 906-916.
Licence: Exported from the R package geepack (GPL (>= 3)) with values and factor
  levels unchanged; the data are factual records reproduced with their source
  stated.
Typical models: Weight ~ Time + (1 | Pig); Weight ~ Time + (Time | Pig)""",
}


def _describe_simulated(name: str) -> str:
    from . import simulate as sim

    if name == "bloodpressure":
        return _describe_bloodpressure(sim.BLOODPRESSURE)
    if name == "geography":
        return _describe_geography(sim.GEOGRAPHY)
    return _describe_emails(sim.EMAILS)


def _describe_bloodpressure(p: BloodPressureParameters) -> str:
    return f"""\
bloodpressure: simulated longitudinal systolic blood pressure (unbalanced).

{p['n_subjects']} subjects, each seen at {p['visits'][0]}-{p['visits'][1]} visits (uniform). The first visit is at an
age drawn uniformly from 35 to 70 years; later visits follow after gaps drawn
uniformly from 0.3 to 3 years, so visit ages are irregular and differ between
subjects.

Columns:
  subject  categorical  subject id ("S001" ... "S{p['n_subjects']:03d}")
  age      float64      age at the visit minus 50, in years (age 0 = 50 years old;
                        ages rounded to 0.01 year)
  sbp      float64      systolic blood pressure (mmHg, rounded to 0.1)

Generating model:  sbp ~ age + (1 + age | subject)
  sbp_ij = b0 + b1 * age_ij + u0_i + u1_i * age_ij + e_ij
  fixed effects:            (Intercept) b0 = {p['intercept']}, age b1 = {p['slope']}
  subject intercept SD:     {p['sd_intercept']}
  subject slope (age) SD:   {p['sd_slope']}
  intercept-slope corr:     {p['corr']}
  residual SD (sigma):      {p['sigma']}
  (u0_i, u1_i) bivariate normal with the SDs and correlation above, independent
  across subjects; e_ij normal, independent of each other and of the u.
Seed: numpy.random.Generator(PCG64({p['seed']})); generated by lmm.datasets.simulate.
Licence: simulated by the lmm authors; no restrictions."""


def _describe_geography(p: GeographyParameters) -> str:
    c, nb, pp = p["cities_per_state"], p["neighborhoods_per_city"], p["people_per_neighborhood"]
    return f"""\
geography: simulated body-mass index, people nested in neighborhoods, cities, states.

{p['n_states']} states; each has {c[0]}-{c[1]} cities, each city {nb[0]}-{nb[1]} neighborhoods, each
neighborhood {pp[0]}-{pp[1]} people (counts uniform on those ranges). City labels "c1", "c2", ...
restart in every state and neighborhood labels "n01", "n02", ... restart in every city,
so `city` alone does not identify a city: use (1 | state/city/neighborhood), which
lme4 expands to (1 | state) + (1 | state:city) + (1 | state:city:neighborhood) and
whose groups lme4 names "state", "city:state" and "neighborhood:(city:state)"
(20, 104 and 704 levels).

Columns:
  state         categorical  state ("st01" ... "st{p['n_states']:02d}")
  city          categorical  city within state ("c1" ... "c{c[1]}", repeated across states)
  neighborhood  categorical  neighborhood within city ("n01" ... "n{nb[1]:02d}", repeated)
  bmi           float64      body-mass index (kg/m^2, rounded to 0.01)

Generating model:  bmi ~ 1 + (1 | state/city/neighborhood)
  fixed effect:          (Intercept) = {p['intercept']}
  state SD:              {p['sd_state']}
  city-in-state SD:      {p['sd_city']}
  neighborhood SD:       {p['sd_neighborhood']}
  residual SD (sigma):   {p['sigma']}
  All effects independent normal.
Seed: numpy.random.Generator(PCG64({p['seed']})); generated by lmm.datasets.simulate.
Licence: simulated by the lmm authors; no restrictions."""


def _describe_emails(p: EmailsParameters) -> str:
    return f"""\
emails: simulated e-mail volume between crossed senders and receivers (unbalanced).

{p['n_senders']} senders and {p['n_receivers']} receivers. Each sender writes to a random subset of
receivers: pair (i, j) is observed with probability share_i * popularity_j, with
share_i ~ Beta(2, 8) (mean 20%) and popularity_j ~ Uniform(0.5, 1.5); every sender
and receiver appears at least once. One row per observed pair.

Columns:
  sender    categorical  sender ("snd001" ... "snd{p['n_senders']:03d}")
  receiver  categorical  receiver ("rcv001" ... "rcv{p['n_receivers']:03d}")
  emails    float64      natural log of the average number of e-mails per week
                         from sender to receiver (continuous; rounded to 0.001;
                         negative values mean fewer than one per week)

Generating model:  emails ~ 1 + (1 | sender) + (1 | receiver)
  fixed effect:          (Intercept) = {p['intercept']}
  sender SD:             {p['sd_sender']}
  receiver SD:           {p['sd_receiver']}
  residual SD (sigma):   {p['sigma']}
  All effects independent normal.
Seed: numpy.random.Generator(PCG64({p['seed']})); generated by lmm.datasets.simulate.
Licence: simulated by the lmm authors; no restrictions."""


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    with open(_DATA_DIR / "schema.json", encoding="utf-8") as f:
        return json.load(f)


def _check_name(name: str) -> str:
    schema = _schema()
    if not isinstance(name, str) or name.lower() not in schema:
        raise ValueError(
            f"unknown data set {name!r}; available: {', '.join(sorted(schema))}"
        )
    return name.lower()


def list() -> builtins.list[str]:  # noqa: A001 - the public name is part of the API
    """Names of the bundled data sets, sorted.

    Returns
    -------
    list of str
        Lowercase names accepted by :func:`load` and :func:`describe`.

    Example
    -------
    >>> "sleepstudy" in list()
    True
    """
    return sorted(_schema())


@functools.lru_cache(maxsize=None)
def _read(name: str) -> pd.DataFrame:
    entry = _schema()[name]
    columns = entry["columns"]
    dtype = {
        c["name"]: (str if c["type"] == "factor" else c["type"]) for c in columns
    }
    # na_filter=False: no data set has missing values, and a level such as "NA"
    # must stay a label.
    df = pd.read_csv(_DATA_DIR / entry["file"], dtype=dtype, na_filter=False)
    if builtins.list(df.columns) != [c["name"] for c in columns] or len(df) != entry["nrow"]:
        raise RuntimeError(f"data file for {name!r} does not match its schema")
    for c in columns:
        if c["type"] == "factor":
            cat = pd.Categorical(df[c["name"]], categories=c["levels"], ordered=c["ordered"])
            if (cat.codes < 0).any():
                raise RuntimeError(f"{name}.{c['name']} has values outside its levels")
            df[c["name"]] = cat
    return df


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set.

    Parameters
    ----------
    name : str
        One of :func:`list` (case-insensitive), e.g. ``"sleepstudy"``.

    Returns
    -------
    pandas.DataFrame
        A fresh copy. Factor columns are ``Categorical`` with R's level order; numeric
        columns are float64, or int64 where R stores integers.

    Raises
    ------
    ValueError
        If ``name`` is not a bundled data set; the message lists the available names.

    Example
    -------
    >>> df = load("sleepstudy")
    >>> df.shape
    (180, 3)
    """
    return _read(_check_name(name)).copy()


def describe(name: str) -> str:
    """Describe a bundled data set: source, citation, licence, columns, and for
    simulated data the generating model, true parameters and seed.

    Parameters
    ----------
    name : str
        One of :func:`list` (case-insensitive).

    Returns
    -------
    str
        Plain-text description.

    Example
    -------
    >>> print(describe("dyestuff").splitlines()[0])
    dyestuff: yield of dyestuff by batch of an intermediate product (30 rows).
    """
    name = _check_name(name)
    if name in _REAL:
        return _REAL[name]
    return _describe_simulated(name)

"""Generate the three simulated data sets bundled with :mod:`lmm.datasets`.

Each data set is drawn from a known linear mixed model with a fixed seed, so that
fits can be compared with the true parameters as well as with lme4:

``bloodpressure``
    Longitudinal, correlated random intercept and slope:
    ``sbp ~ age + (1 + age | subject)``.
``geography``
    Three-level nesting with labels that repeat across parents:
    ``bmi ~ 1 + (1 | state/city/neighborhood)``.
``emails``
    Two crossed factors observed on an unbalanced subset of pairs:
    ``emails ~ 1 + (1 | sender) + (1 | receiver)``.

The CSV files under ``data/`` and their entries in ``data/schema.json`` were written
by running this module once::

    python python/lmm/datasets/simulate.py      # from the repository root

Re-running it reproduces them exactly (NumPy ``Generator(PCG64(seed))``). The true
parameters below are the single source of truth; :func:`lmm.datasets.describe` quotes
them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).resolve().parent / "data"


class BloodPressureParameters(TypedDict):
    """The parameters of ``bloodpressure``'s model (see :data:`BLOODPRESSURE`)."""

    seed: int
    n_subjects: int
    visits: tuple[int, int]
    intercept: float
    slope: float
    sd_intercept: float
    sd_slope: float
    corr: float
    sigma: float


class GeographyParameters(TypedDict):
    """The parameters of ``geography``'s model (see :data:`GEOGRAPHY`)."""

    seed: int
    n_states: int
    cities_per_state: tuple[int, int]
    neighborhoods_per_city: tuple[int, int]
    people_per_neighborhood: tuple[int, int]
    intercept: float
    sd_state: float
    sd_city: float
    sd_neighborhood: float
    sigma: float


class EmailsParameters(TypedDict):
    """The parameters of ``emails``' model (see :data:`EMAILS`)."""

    seed: int
    n_senders: int
    n_receivers: int
    intercept: float
    sd_sender: float
    sd_receiver: float
    sigma: float


# True parameters of each generating model.  Standard deviations are on the scale
# of the response; "corr" is the correlation of the random intercept and slope.
BLOODPRESSURE: BloodPressureParameters = {
    "seed": 20240501,
    "n_subjects": 200,
    "visits": (4, 8),          # visits per subject, uniform on this closed range
    "intercept": 128.0,        # mean SBP (mmHg) at age 50
    "slope": 0.9,              # mean change in SBP per year of age
    "sd_intercept": 11.0,      # SD of subject intercepts (mmHg)
    "sd_slope": 0.6,           # SD of subject slopes (mmHg / year)
    "corr": 0.35,              # correlation of subject intercept and slope
    "sigma": 6.0,              # residual SD (mmHg)
}

GEOGRAPHY: GeographyParameters = {
    "seed": 20240502,
    "n_states": 20,
    "cities_per_state": (3, 8),
    "neighborhoods_per_city": (3, 10),
    "people_per_neighborhood": (5, 30),
    "intercept": 27.0,         # mean BMI (kg/m^2)
    "sd_state": 1.0,
    "sd_city": 0.8,
    "sd_neighborhood": 0.6,
    "sigma": 4.0,              # residual (person-level) SD
}

EMAILS: EmailsParameters = {
    "seed": 20240503,
    "n_senders": 150,
    "n_receivers": 120,
    "intercept": 2.0,          # mean log weekly e-mail volume
    "sd_sender": 0.7,
    "sd_receiver": 0.5,
    "sigma": 0.6,              # residual SD (log scale)
}


def _ids(prefix: str, n: int) -> list[str]:
    """Zero-padded labels prefix01..prefixNN so that sorted order is numeric order."""
    width = max(2, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def simulate_bloodpressure() -> pd.DataFrame:
    """Systolic blood pressure measured at 4-8 irregularly spaced visits per subject."""
    p = BLOODPRESSURE
    rng = np.random.Generator(np.random.PCG64(p["seed"]))
    subjects = [f"S{i:03d}" for i in range(1, p["n_subjects"] + 1)]
    sd = np.array([p["sd_intercept"], p["sd_slope"]])
    cov = np.outer(sd, sd) * np.array([[1.0, p["corr"]], [p["corr"], 1.0]])
    b = rng.multivariate_normal(np.zeros(2), cov, size=p["n_subjects"], method="cholesky")
    rows = []
    for i, subj in enumerate(subjects):
        nvis = int(rng.integers(p["visits"][0], p["visits"][1] + 1))
        first = rng.uniform(35.0, 70.0)
        gaps = rng.uniform(0.3, 3.0, size=nvis - 1)
        ages = np.round(np.concatenate([[first], first + np.cumsum(gaps)]), 2)
        age = ages - 50.0
        mu = p["intercept"] + b[i, 0] + (p["slope"] + b[i, 1]) * age
        sbp = np.round(mu + rng.normal(0.0, p["sigma"], size=nvis), 1)
        rows.append(pd.DataFrame({"subject": subj, "age": np.round(age, 2), "sbp": sbp}))
    return pd.concat(rows, ignore_index=True)


def simulate_geography() -> pd.DataFrame:
    """Body-mass index of people in neighborhoods within cities within states."""
    p = GEOGRAPHY
    rng = np.random.Generator(np.random.PCG64(p["seed"]))
    states = _ids("st", p["n_states"])
    rows = []
    for state in states:
        u_state = rng.normal(0.0, p["sd_state"])
        ncity = int(rng.integers(p["cities_per_state"][0], p["cities_per_state"][1] + 1))
        for city in [f"c{j}" for j in range(1, ncity + 1)]:
            u_city = rng.normal(0.0, p["sd_city"])
            lo, hi = p["neighborhoods_per_city"]
            nnb = int(rng.integers(lo, hi + 1))
            for nb in _ids("n", 10)[:nnb]:
                u_nb = rng.normal(0.0, p["sd_neighborhood"])
                lo, hi = p["people_per_neighborhood"]
                npeople = int(rng.integers(lo, hi + 1))
                mu = p["intercept"] + u_state + u_city + u_nb
                bmi = np.round(mu + rng.normal(0.0, p["sigma"], size=npeople), 2)
                rows.append(pd.DataFrame(
                    {"state": state, "city": city, "neighborhood": nb, "bmi": bmi}))
    return pd.concat(rows, ignore_index=True)


def simulate_emails() -> pd.DataFrame:
    """Log e-mail volume for an unbalanced subset of sender-receiver pairs."""
    p = EMAILS
    rng = np.random.Generator(np.random.PCG64(p["seed"]))
    senders = _ids("snd", p["n_senders"])
    receivers = _ids("rcv", p["n_receivers"])
    u_s = rng.normal(0.0, p["sd_sender"], size=p["n_senders"])
    u_r = rng.normal(0.0, p["sd_receiver"], size=p["n_receivers"])
    # Each sender writes to a sender-specific share of receivers (Beta(2, 8), mean
    # 20%); receivers differ in popularity too.  Every sender and receiver is kept
    # in at least one pair so that no factor level is empty.
    share = rng.beta(2.0, 8.0, size=p["n_senders"])
    popularity = rng.uniform(0.5, 1.5, size=p["n_receivers"])
    prob = np.clip(np.outer(share, popularity), 0.0, 1.0)
    observed = rng.uniform(size=prob.shape) < prob
    for i in np.flatnonzero(~observed.any(axis=1)):
        observed[i, rng.integers(p["n_receivers"])] = True
    for j in np.flatnonzero(~observed.any(axis=0)):
        observed[rng.integers(p["n_senders"]), j] = True
    si, ri = np.nonzero(observed)
    mu = p["intercept"] + u_s[si] + u_r[ri]
    y = np.round(mu + rng.normal(0.0, p["sigma"], size=si.size), 3)
    return pd.DataFrame({
        "sender": np.asarray(senders)[si],
        "receiver": np.asarray(receivers)[ri],
        "emails": y,
    })


SIMULATORS = {
    "bloodpressure": (simulate_bloodpressure, ["subject"]),
    "geography": (simulate_geography, ["state", "city", "neighborhood"]),
    "emails": (simulate_emails, ["sender", "receiver"]),
}


def _column_schema(df: pd.DataFrame, factors: list[str]) -> list[dict]:
    cols = []
    for name in df.columns:
        if name in factors:
            # Labels are zero-padded (cities run c1..c8), so sorted order is the
            # natural order and also what R's factor() would choose.
            levels = sorted(str(v) for v in pd.unique(df[name]))
            cols.append({"name": name, "type": "factor", "levels": levels, "ordered": False})
        elif pd.api.types.is_integer_dtype(df[name]):
            cols.append({"name": name, "type": "int64"})
        else:
            cols.append({"name": name, "type": "float64"})
    return cols


def write_schema(schema: dict, path: Path) -> None:
    """Write schema.json with one line per data set (the layout the R exporter uses)."""
    names = sorted(schema)
    lines = ["{"]
    for k, name in enumerate(names):
        entry = json.dumps(schema[name], separators=(",", ":"), ensure_ascii=False)
        lines.append(f"{json.dumps(name)}: {entry}" + ("," if k < len(names) - 1 else ""))
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    """Simulate the three data sets and write their CSVs and schema entries."""
    schema_path = DATA_DIR / "schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8")) if schema_path.exists() else {}
    for name, (simulate, factors) in SIMULATORS.items():
        df = simulate()
        file = f"{name}.csv"
        # repr-style shortest round-trip formatting: R's read.csv gets the same doubles.
        df.to_csv(DATA_DIR / file, index=False, float_format=None, lineterminator="\n")
        schema[name] = {
            "file": file,
            "source": "simulated",
            "nrow": int(len(df)),
            "columns": _column_schema(df, factors),
        }
        print(f"{name:<14s}{len(df):6d} rows -> {file}")
    write_schema(schema, schema_path)


if __name__ == "__main__":
    main()

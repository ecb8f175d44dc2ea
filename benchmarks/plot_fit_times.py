"""Plot the fit benchmark: time per fit of lmm, lme4 and statsmodels on each model (log scale).

Reads a small table of measured times (default: results/fit_times.csv beside this script,
the numbers of README's benchmark table, from bench_fit.py runs) with one row per model and
system: status ``ok`` (``seconds``, or a range up to ``seconds_max``), ``timeout`` (a lower
bound: the limit), or a reason there is no time (``out of memory``, ``not expressible``).
The documentation draws it when it is built (docs/benchmarks.md); after a new bench_fit.py
run, update README's table and the CSV together (tests/test_docs.py checks they agree).

    python benchmarks/plot_fit_times.py --out fit_times.svg
    python benchmarks/plot_fit_times.py --data my_times.csv      # shows the figure
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import pandas as pd

# (under Sphinx's plot directive the script runs without __file__, with argv[0] its path)
HERE = pathlib.Path(sys.argv[0] if __name__ == "__main__" else __file__).resolve().parent
DATA = HERE / "results" / "fit_times.csv"
SYSTEMS = ["lmm", "lme4", "lme4 noderivs", "statsmodels"]
COLORS = {"lmm": "#1f77b4", "lme4": "#d62728", "lme4 noderivs": "#ff9896", "statsmodels": "#7f7f7f"}


def read_times(path: pathlib.Path = DATA) -> pd.DataFrame:
    """The table of times, checked: one row per model and system, a time for each ``ok`` and ``timeout``.

    Raises:
        ValueError: an unknown system, a missing time, or a model and system given twice.
    """
    times = pd.read_csv(path, dtype={"note": str}, keep_default_na=False, na_values={"seconds": [""],
                                                                                      "seconds_max": [""]})
    unknown = set(times["system"]) - set(SYSTEMS)
    if unknown:
        raise ValueError(f"{path}: unknown systems {sorted(unknown)}; expected {SYSTEMS}")
    timed = times["status"].isin(["ok", "timeout"])
    if times.loc[timed, "seconds"].isna().any():
        raise ValueError(f"{path}: rows with status ok or timeout need seconds")
    if times.duplicated(["model", "system"]).any():
        raise ValueError(f"{path}: a model and system appear twice")
    return times


def plot(times: pd.DataFrame):
    """Horizontal bars per model, one per system, on a log scale of seconds.

    Timeouts are hatched bars to the limit marked ``>``; a system without a time says why.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(times["model"]))
    height = 0.8 / len(SYSTEMS)
    fig, ax = plt.subplots(figsize=(8, 1.1 + 0.85 * len(models)))
    lowest = times["seconds"].min()
    for k, system in enumerate(SYSTEMS):
        rows = times[times["system"] == system].set_index("model")
        for i, model in enumerate(models):
            if model not in rows.index:
                continue
            r = rows.loc[model]
            y = i + (k - (len(SYSTEMS) - 1) / 2) * height
            if r["status"] == "ok":
                ax.barh(y, r["seconds"], height, color=COLORS[system], label=system if i == 0 else None)
                if pd.notna(r["seconds_max"]):
                    ax.plot([r["seconds"], r["seconds_max"]], [y, y], color="black", lw=1)
                label = f"{r['seconds']:g}" + (f"–{r['seconds_max']:g}" if pd.notna(r["seconds_max"]) else "")
                ax.text(r["seconds_max"] if pd.notna(r["seconds_max"]) else r["seconds"], y, f" {label} s",
                        va="center", fontsize=7)
            elif r["status"] == "timeout":
                ax.barh(y, r["seconds"], height, color=COLORS[system], hatch="///", edgecolor="white",
                        label=system if i == 0 else None)
                ax.text(r["seconds"], y, f" > {r['seconds']:g} s (stopped)", va="center", fontsize=7)
            else:
                ax.text(lowest / 2, y, f"{system}: {r['status']}", va="center", fontsize=7, color="dimgray")
    ax.set_xscale("log")
    ax.set_xlim(lowest / 2, times["seconds"].max() * 12)
    labels = times.drop_duplicates("model").set_index("model")
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels([f"{labels.loc[m, 'label']}\n{labels.loc[m, 'rows']:,} rows" for m in models], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per fit (log scale; REML, one thread)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(SYSTEMS), fontsize=8, frameon=False)
    ax.grid(axis="x", which="major", alpha=0.3)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=pathlib.Path, default=DATA, help="the table of times (CSV)")
    parser.add_argument("--out", type=pathlib.Path, help="write the figure here (.svg, .png, .pdf; default: show it)")
    args = parser.parse_args(argv)
    fig = plot(read_times(args.data))
    if args.out is not None:
        fig.savefig(args.out)
    else:
        import matplotlib.pyplot as plt

        plt.show()


if __name__ == "__main__":
    main()

"""Fit benchmark: lmm against lme4 (through Rscript) and statsmodels' MixedLM.

What a user waits for, each system in its own process with a time and memory limit: the
data are read from a CSV whose grouping columns hold string ids (``"s17"``), then the
whole fitting call is timed (``lmm.lmer`` from the frame: design, fit; lme4's ``lmer``;
statsmodels' ``MixedLM.from_formula(...).fit()``), and then the summary the user prints
(lmm: ``print(res)``, with lmerTest's Satterthwaite df; lme4: ``print(summary(fit))``,
without df; statsmodels: ``print(res.summary())``). The table gives both times, the
process's peak RSS, the final criterion — every system's θ evaluated by lmm's objective,
so the numbers compare — and each system's fitting time as a ratio to lmm's. For lmm,
"fit / budget" is the memory the fit adds to the loaded data (peak resident set during
the call minus the resident set before it) against 2 × the numeric columns used plus the
blocked factor L (see fit_lmm.py). Each process fits a small model first, so that
one-time costs of the process count for no system.

With ``--intervals`` each process then times the profile intervals of its fit (lmm's
``res.confint()``, lme4's ``confint(fit)``; both profile the ML deviance), reported
with the largest relative difference of the bounds from lmm's; a system that runs out of
time there keeps its fit's figures.

Threads: by default every system runs with the thread settings of the environment (a
user's default: OpenBLAS one thread per core), recorded in the table's header; ``--threads
N`` pins OMP, OpenBLAS and MKL to N for all.

    python benchmarks/bench_fit.py                              # all models and systems
    python benchmarks/bench_fit.py --models sleepstudy insteval --systems lmm lme4
    python benchmarks/bench_fit.py --format markdown --timeout 600 --threads 1
    python benchmarks/bench_fit.py --models sleepstudy insteval --systems lmm lme4 --intervals

Systems: lmm; lme4 (default lmerControl()); lme4_noderivs (calc.derivs = FALSE);
statsmodels (crossed models as one group with variance components); mixedlm (the
Rust-cored lme4 port on PyPI, ``pip install mixedlm==1.3.0``). A system that is not
installed is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import simulate  # noqa: E402

MODELS = {
    "sleepstudy": {
        "formula": "Reaction ~ Days + (Days | Subject)",
        "groups": ["Subject"],
        "statsmodels": {"fixed": "Reaction ~ Days", "groups": "Subject", "re_formula": "~Days"},
    },
    "insteval": {
        "formula": "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)",
        "groups": ["s", "d", "dept"],
        "statsmodels": {"fixed": "y ~ 1 + C(service)", "vc": {"s": "0 + C(s)", "d": "0 + C(d)", "dept": "0 + C(dept)"},
                        "vc_order": ["s", "d", "dept"]},
    },
    "sim_long": {
        "formula": "y ~ 1 + t + (1 + t | subj)",
        "groups": ["subj"],
        "statsmodels": {"fixed": "y ~ t", "groups": "subj", "re_formula": "~t"},
    },
    "sim_crossed": {
        "formula": "y ~ 1 + (1 | user) + (1 | item)",
        "groups": ["user", "item"],
        "statsmodels": {"fixed": "y ~ 1", "vc": {"user": "0 + C(user)", "item": "0 + C(item)"},
                        "vc_order": ["user", "item"]},
    },
    "maximal": {
        "formula": "y ~ 1 + a*b*c + (1 + a*b*c | subj) + (1 + a*b*c | item)",
        "groups": ["subj", "item"],
        "statsmodels": None,
    },
}
SYSTEMS = ["lmm", "lme4", "lme4_noderivs", "statsmodels", "mixedlm"]


def dataset_path(name: str, directory: pathlib.Path) -> pathlib.Path:
    """CSV of a model's data with string ids in its grouping columns (``"s17"``, as users'
    data have them), written once: bundled datasets from lmm, simulated ones generated."""
    path = directory / f"{name}_ids.csv"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        if name in ("sleepstudy", "insteval"):
            import lmm

            frame = lmm.datasets.load(name)
        else:
            frame = simulate.generate(name)
        for column in MODELS[name]["groups"]:
            frame[column] = column + frame[column].astype(str)
        frame.to_csv(path, index=False)
    return path


def command(system: str, model: str, data: pathlib.Path, reml: bool, intervals: bool = False) -> list[str] | str:
    """The command line for one fit (then its profile intervals), or a reason it cannot run."""
    spec = MODELS[model]
    if system == "lmm":
        return [sys.executable, str(HERE / "fit_lmm.py"), str(data), spec["formula"]] + \
            ([] if reml else ["--ml"]) + (["--intervals"] if intervals else [])
    if system.startswith("lme4"):
        if shutil.which("Rscript") is None:
            return "Rscript not found"
        check = subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True)
        if check.returncode != 0:
            return "R package lme4 not installed"
        derivs = "FALSE" if system == "lme4_noderivs" else "TRUE"
        return ["Rscript", str(HERE / "fit_lme4.R"), str(data), spec["formula"], "TRUE" if reml else "FALSE", derivs,
                ",".join(spec["groups"])] + (["intervals"] if intervals else [])
    if system == "statsmodels":
        if intervals:
            return "no profile intervals in MixedLM"
        if spec["statsmodels"] is None:
            return "model not expressible in MixedLM"
        try:
            import statsmodels  # noqa: F401
        except ImportError:
            return "statsmodels not installed"
        return [sys.executable, str(HERE / "fit_statsmodels.py"), str(data), json.dumps(spec["statsmodels"])] + (
            [] if reml else ["--ml"])
    if system == "mixedlm":
        if intervals:
            return "profile intervals not timed for mixedlm"
        try:
            import mixedlm  # noqa: F401
        except ImportError:
            return "mixedlm not installed"
        return [sys.executable, str(HERE / "fit_mixedlm.py"), str(data), spec["formula"]] + ([] if reml else ["--ml"])
    raise ValueError(system)


def run(cmd: list[str], env: dict, timeout: float, memory_gib: float) -> dict:
    """Run a command with limits; its JSON lines merged, plus peak RSS (MiB) and status
    (a process out of time keeps the lines it printed before)."""
    limit = int(memory_gib * 2**30)

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, preexec_fn=limits)
        start = time.monotonic()
        status = "ok"
        while True:
            pid, code, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                pid, code, usage = os.wait4(proc.pid, 0)
                status = f"timeout ({timeout:.0f} s)"
                break
            time.sleep(0.05)
        proc.returncode = code
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    result = {"status": status, "rss_mib": usage.ru_maxrss / 1024}
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    for line in lines:
        result.update(json.loads(line))
    if status == "ok":
        if not (os.WIFEXITED(code) and os.WEXITSTATUS(code) == 0 and lines):
            tail = (stderr.strip().splitlines() or ["no output"])[-1]
            result["status"] = "out of memory" if "MemoryError" in stderr or "cannot allocate" in stderr else \
                f"failed: {tail[:80]}"
    return result


def criterion(model: str, data: pathlib.Path, reml: bool, thetas: list) -> list:
    """lmm's objective at each θ (None where there is no θ), θ's diagonal entries of λ
    below 0 by rounding in another system's output taken as 0."""
    import numpy as np
    import pandas as pd

    import lmm

    m = lmm.LinearMixedModel(MODELS[model]["formula"], pd.read_csv(data), REML=reml)
    return [m.objective(np.maximum(t, m.theta_lower)) if t is not None and len(t) == m.ntheta else None
            for t in thetas]


def print_table(cols: list[str], table: list[list[str]], form: str) -> None:
    """A table as aligned text or markdown."""
    if form == "markdown":
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for row in table:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def fmt(value, spec):
    return "" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per fit")
    parser.add_argument("--memory", type=float, default=16.0, help="GiB of address space per fit")
    parser.add_argument("--threads", type=int, default=None,
                        help="pin the threads of every system (BLAS, OpenMP); default: the environment's")
    parser.add_argument("--data", type=pathlib.Path, default=HERE / "data", help="where simulated data are written")
    parser.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    parser.add_argument("--intervals", action="store_true", help="also time the profile intervals after each fit")
    args = parser.parse_args()

    env = dict(os.environ)
    if args.threads is not None:
        threads = str(args.threads)
        env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
                   R_DATATABLE_NUM_THREADS=threads)
    settings = {v: env.get(v, "unset") for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    reml = not args.ml
    rows = []
    for model in args.models:
        data = dataset_path(model, args.data)
        results = {}
        for system in args.systems:
            cmd = command(system, model, data, reml, args.intervals)
            results[system] = {"status": cmd} if isinstance(cmd, str) else run(cmd, env, args.timeout, args.memory)
            print(f"  {model} / {system}: {results[system]['status']}", file=sys.stderr, flush=True)
        thetas = [results[s].get("theta") for s in args.systems]
        for system, crit in zip(args.systems, criterion(model, data, reml, thetas)):
            results[system]["criterion"] = crit
        base = results.get("lmm", {})
        for system in args.systems:
            r = results[system]
            ratio = r["time"] / base["time"] if "time" in r and "time" in base else None
            dcrit = r["criterion"] - base["criterion"] if r.get("criterion") is not None and \
                base.get("criterion") is not None else None
            dbounds = None
            if "bounds" in r and "bounds" in base and len(r["bounds"]) == len(base["bounds"]):
                dbounds = max(abs(a - b) / max(abs(b), 1e-300) for a, b in zip(r["bounds"], base["bounds"]))
            rows.append({"model": model, "system": system, "status": r["status"], "time_s": r.get("time"),
                         "summary_s": r.get("summary"),
                         "peak_rss_mib": r.get("rss_mib"), "fit_mib": r.get("fit_mib"),
                         "budget_mib": r.get("budget_mib"), "criterion": r.get("criterion"),
                         "criterion_minus_lmm": dcrit, "time_ratio_vs_lmm": ratio, "nfev": r.get("nfev"),
                         "intervals_s": r.get("intervals"), "bounds_rel_diff_vs_lmm": dbounds})

    header = {"machine": platform.platform(), "cpus": os.cpu_count(), "threads": settings,
              "criterion": "REML" if reml else "ML deviance", "timeout_s": args.timeout}
    if args.format == "json":
        print(json.dumps({"settings": header, "rows": rows}, indent=2))
        return
    cols = ["model", "system", "status", "fit call (s)", "summary (s)", "peak RSS (MiB)", "fit / budget (MiB)",
            "criterion", "Δ vs lmm", "fit call / lmm"]
    table = [[r["model"], r["system"], r["status"], fmt(r["time_s"], ".3f"), fmt(r["summary_s"], ".3f"),
              fmt(r["peak_rss_mib"], ".0f"),
              f"{r['fit_mib']:.0f} / {r['budget_mib']:.0f}" if r["fit_mib"] is not None else "",
              fmt(r["criterion"], ".6f"), fmt(r["criterion_minus_lmm"], ".2e"), fmt(r["time_ratio_vs_lmm"], ".1f")]
             for r in rows]
    if args.intervals:
        cols += ["intervals (s)", "bounds rel. Δ vs lmm"]
        for row, r in zip(table, rows):
            row += [fmt(r["intervals_s"], ".2f") or ("not reached" if r["time_s"] is not None else ""),
                    fmt(r["bounds_rel_diff_vs_lmm"], ".1e")]
    threads = ", ".join(f"{k}={v}" for k, v in settings.items())
    print(f"# {header['criterion']}; {threads}; {header['machine']}, {header['cpus']} cpus")
    print_table(cols, table, args.format)


if __name__ == "__main__":
    main()

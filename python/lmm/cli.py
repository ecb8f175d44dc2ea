"""Command line: ``python -m lmm fit FORMULA (--dataset NAME | --data FILE.csv) [--ml] [--json] [--plots DIR]``.

With no arguments, fits the sleepstudy example and prints its summary.
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from . import datasets
from .model import lmer

EXAMPLE_FORMULA = "Reaction ~ Days + (Days | Subject)"
EXAMPLE_DATASET = "sleepstudy"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lmm", description="Fit linear mixed models as lme4's lmer.")
    sub = parser.add_subparsers(dest="command")
    fit = sub.add_parser("fit", help="fit a model and print its summary")
    fit.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help=f"a bundled dataset: {', '.join(datasets.list())}")
    source.add_argument("--data", help="a CSV file with a header row")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--json", action="store_true", help="print the fit as JSON")
    fit.add_argument("--ddf", default="Satterthwaite", choices=["Satterthwaite", "Kenward-Roger", "none"],
                     help="degrees of freedom of the fixed-effects t tests in the summary (default Satterthwaite)")
    fit.add_argument("--plots", metavar="DIR",
                     help="save diagnostic plots as PNG files in DIR (needs matplotlib: pip install 'lmm[plots]')")
    sub.add_parser("datasets", help="list the bundled datasets")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m lmm`` and the ``lmm`` script."""
    args = _parser().parse_args(argv)
    if args.command is None:
        print(f"lmm example: {EXAMPLE_FORMULA}  (dataset {EXAMPLE_DATASET})\n")
        print(lmer(EXAMPLE_FORMULA, datasets.load(EXAMPLE_DATASET)))
        return 0
    if args.command == "datasets":
        print("\n".join(datasets.list()))
        return 0
    try:
        data = datasets.load(args.dataset) if args.dataset else pd.read_csv(args.data)
        res = lmer(args.formula, data, REML=not args.ml)
    except (ValueError, NotImplementedError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ddf = None if args.ddf == "none" else args.ddf
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.summary(ddf=ddf))
    if args.plots:
        try:
            import matplotlib

            matplotlib.use("Agg")
            from .plots import save_all

            paths = save_all(res, args.plots)
        except (ImportError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"saved {len(paths)} plots: {', '.join(paths)}", file=sys.stderr)
    return 0

"""Maximal-model benchmark (the gradient issue's target): lmm against lme4 on a kb07-like design.

56 subjects × 32 items fully crossed, three two-level factors coded ±0.5,
``y ~ 1 + a*b*c + (1 + a*b*c | subj) + (1 + a*b*c | item)``: 72 covariance parameters.
lmm optimizes θ with the exact gradient (the core's L-BFGS-B); lme4 derivative-free (its default
nloptwrap BOBYQA). Both in separate processes, threads pinned; the criterion of each
is lmm's REML criterion at that system's θ.

    python benchmarks/bench_maximal.py [--timeout 1800] [--format markdown]
"""

from __future__ import annotations

import argparse
import sys

import bench_fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", default="1800", help="seconds per fit")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    args = parser.parse_args()
    sys.argv = [sys.argv[0], "--models", "maximal", "--systems", "lmm", "lme4", "--timeout", args.timeout,
                "--threads", args.threads, "--format", args.format]
    bench_fit.main()


if __name__ == "__main__":
    main()

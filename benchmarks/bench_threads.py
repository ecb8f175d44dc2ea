"""Both cores: the whole ``lmm.lmer`` call with the user's BLAS threads against one thread.

For each model, processes with the environment's thread settings (one thread per core by
default) and with ``OPENBLAS_NUM_THREADS=1`` (and OMP, MKL) run in turn, each reading the
model's CSV (string ids, as bench_fit.py makes them), fitting once to warm up and then
timing ``--calls`` whole ``lmm.lmer`` calls; so the machine's drift in speed hits both
settings alike. The table gives the medians over the processes of each setting, their
ratio and the median of the ratios of the pairs run one after the other (with their
range), beside the machine's own dgemm speed-up on the same threads measured in the same
run (bench_scaling's): the most a program of BLAS-3 products could gain there.
(Processes, not ``threadpool_limits`` in one process: limits entered and left around
every call made sleepstudy's 1.6 ms fits 15 % slower on their own.)

``--load K`` keeps K other processes busy (a spinning loop each) while timing: the
threads must then not make the call slower than one thread.

    python benchmarks/bench_threads.py                          # insteval, sim_crossed, sim_long, sleepstudy
    python benchmarks/bench_threads.py --models insteval --pairs 8 --format markdown
    python benchmarks/bench_threads.py --models insteval sim_long --load 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pathlib
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scaling import dgemm_rate  # noqa: E402

from bench_fit import MODELS, dataset_path, print_table  # noqa: E402

DEFAULT_MODELS = ["insteval", "sim_crossed", "sim_long", "sleepstudy"]
# Calls per process by default (the large models' calls take seconds).
DEFAULT_CALLS = {"sleepstudy": 200, "sim_long": 40, "insteval": 8, "sim_crossed": 2, "maximal": 3}
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def spin() -> None:
    """A busy loop (another user's work), until terminated."""
    while True:
        pass


def child(name: str, calls: int) -> None:
    """In a process of one setting: the median of `calls` whole lmm.lmer calls (s)."""
    import pandas as pd

    import lmm

    frame = pd.read_csv(dataset_path(name, HERE / "data"))
    formula = MODELS[name]["formula"]
    lmm.lmer(formula, frame)  # one-time costs (pages of the libraries, the thread pool)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        lmm.lmer(formula, frame)
        times.append(time.perf_counter() - t0)
    print(statistics.median(times))


def run_child(name: str, calls: int, one_thread: bool) -> float:
    env = dict(os.environ, **ONE_THREAD) if one_thread else dict(os.environ)
    out = subprocess.run([sys.executable, __file__, "--child", name, "--calls", str(calls)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(MODELS))
    parser.add_argument("--pairs", type=int, default=5, help="processes per setting, run in turn")
    parser.add_argument("--calls", type=int, default=None, help="timed calls per process (default per model)")
    parser.add_argument("--load", type=int, default=0, help="other busy processes while timing")
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.calls)

    from threadpoolctl import threadpool_info

    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    threads = max((lib["num_threads"] for lib in blas), default=1)
    busy = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.load)]
    for p in busy:
        p.start()
    try:
        one_rate, all_rate = dgemm_rate(1), dgemm_rate(threads)
        rows = []
        for name in args.models:
            calls = args.calls or DEFAULT_CALLS.get(name, 10)
            default, one = [], []
            for i in range(args.pairs):
                # In turn first and second within a pair: neither setting gains from going first.
                for one_thread in ((False, True) if i % 2 else (True, False)):
                    (one if one_thread else default).append(run_child(name, calls, one_thread))
            pairwise = [b / a for a, b in zip(default, one)]
            d, o = statistics.median(default), statistics.median(one)
            rows.append([name, f"{d:.4g}", f"{o:.4g}", f"{o / d:.2f}×",
                         f"{statistics.median(pairwise):.2f}× ({min(pairwise):.2f}–{max(pairwise):.2f})",
                         f"{args.pairs} × {calls}"])
            print(f"  {name}: done", file=sys.stderr)
    finally:
        for p in busy:
            p.terminate()
    env = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"))
    print(f"# BLAS threads by default: {threads} ({env}); {os.cpu_count()} cpus; {args.load} other busy "
          f"process(es); dgemm 2,000² {one_rate:.1f} GF/s on 1 thread, {all_rate:.1f} on {threads} "
          f"({all_rate / one_rate:.2f}×)")
    cols = ["model", "default threads (s)", "one thread (s)", "speed-up (medians)", "pairwise (range)",
            "processes × calls"]
    print_table(cols, rows, args.format)


if __name__ == "__main__":
    main()

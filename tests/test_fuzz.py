"""Fuzzing: the formula parser and the compiled core's entry points with hostile input.

- ``parse_formula`` on random token soup and on mutated valid formulas must either parse
  or raise :class:`lmm.FormulaError` (its subclasses included): no other exception, no hang.
- Formulas that parse are then evaluated on a small data frame through
  ``LinearMixedModel``: only ``FormulaError``/``ValueError`` (a ``FormulaError`` is a
  ``ValueError``) may come out.
- ``lmm._core.Model`` gets random shapes, dtypes and codes (out of range, negative,
  mismatched lengths, NaN, empty arrays, 0-column z) in a subprocess, so that a crash
  cannot take the test run with it: only Python exceptions are allowed.

Iteration counts are fixed and the random streams seeded, so failures reproduce.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import lmm
import lmm._core
from lmm.formula import FormulaError, parse_formula

N_RANDOM = 2500       # random token strings
N_MUTATED = 2500      # mutations of valid formulas
N_PIPELINE = 3000      # mutated formulas taken through LinearMixedModel (most do not parse)
N_CORE = 3000         # random lmm._core.Model constructions
MAX_SECONDS_PER_CALL = 1.0

VALID = [
    "y ~ x + (1 | g)",
    "y ~ x + (x | g)",
    "y ~ x + (x || g)",
    "y ~ 1 + (1 | g/h)",
    "y ~ 1 + (1 | g) + (1 | h)",
    "y ~ x * f + (1 | g:h)",
    "log(w) ~ poly(x, 2) + (0 + x | g)",
    "y ~ I(x^2) + scale(x) + (1 | g)",
    "y ~ 0 + f + (1 + x | g)",
    "y ~ factor(k) + C(f, sum) + (1 | g)",
    "y ~ relevel(f, ref = \"b\") + (1 | g)",
    "y ~ (x + k)^2 + (1 | g)",
    "y ~ f %in% g + (1 | h)",
    "y ~ x - 1 + (1 | g)",
    "`y` ~ `x` + (1 | `g`)",
    "sqrt(w) ~ exp(x / 10) + (1 | g) + (0 + x | g)",
    "y ~ x + (1 + x + I(x^2) || g)",
    "y ~ -1 + x:f + (1 | h)",
]

TOKENS = ["y", "x", "g", "h", "f", "k", "w", "~", "+", "-", "*", "/", ":", "|", "||", "(", ")", "(", ")", "1",
          "0", "2", "^", "%in%", "%%", ",", " ", " ", "log(", "I(", "poly(", "scale(", "factor(", "C(", "relevel(",
          "offset(", "cbind(", "ref", "=", "==", "!", "&", "@", "$", "[", "]", "{", "}", "\\", "#", "\n", "\t", "`",
          "\"", "'", ".", "...", "1e5", "-3", "0x1F", "2L", "3i", "Inf", "NA", "NaN", "TRUE", "NULL", "pi", "T",
          "function", "if", "<-", "->", "::", ";", "?", "é", "ß", "日本", "\x00", "\u200b", "..1", "_x", "x.y"]


def random_formula(rng: np.random.Generator) -> str:
    if rng.random() < 0.2:  # raw characters, printable and not
        return "".join(chr(int(c)) for c in rng.integers(0, 0x250, rng.integers(0, 30)))
    return "".join(TOKENS[i] for i in rng.integers(0, len(TOKENS), rng.integers(0, 25)))


def mutate(text: str, rng: np.random.Generator) -> str:
    for _ in range(int(rng.integers(1, 5))):
        i = int(rng.integers(0, len(text) + 1))
        op = rng.integers(0, 6)
        if op == 0 and text:                                   # delete a span
            text = text[:i] + text[i + int(rng.integers(1, 4)):]
        elif op == 1:                                          # insert a token
            text = text[:i] + TOKENS[int(rng.integers(len(TOKENS)))] + text[i:]
        elif op == 2 and text:                                 # replace a character
            text = text[:max(i - 1, 0)] + TOKENS[int(rng.integers(len(TOKENS)))] + text[i:]
        elif op == 3 and text:                                 # duplicate a span
            j = int(rng.integers(i, len(text) + 1))
            text = text[:j] + text[i:j] + text[j:]
        elif op == 4:                                          # truncate
            text = text[:i]
        else:                                                  # swap two characters
            if len(text) > 1:
                a, b = sorted(rng.integers(0, len(text), 2))
                text = text[:a] + text[b] + text[a + 1:b] + text[a] + text[b + 1:] if a != b else text
    return text


def _with_alarm(seconds: int):
    """Fail the test (TimeoutError) instead of hanging if a call never returns; returns the canceller."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"a fuzz iteration ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)

    def cancel():
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

    return cancel


def _parse_all(texts):
    """(outcome counts, offending inputs, slowest call in seconds) of parse_formula over texts."""
    counts = {"parsed": 0, "FormulaError": 0}
    bad, slowest = [], 0.0
    cancel = _with_alarm(120)
    try:
        for text in texts:
            t0 = time.perf_counter()
            try:
                parse_formula(text)
                counts["parsed"] += 1
            except FormulaError:
                counts["FormulaError"] += 1
            except TimeoutError:
                raise
            except Exception as err:  # noqa: BLE001 - the point of the test
                bad.append((text, f"{type(err).__name__}: {err}"))
            slowest = max(slowest, time.perf_counter() - t0)
    finally:
        cancel()
    return counts, bad, slowest


def test_parser_random_strings_raise_only_formula_error():
    rng = np.random.default_rng(20240501)
    counts, bad, slowest = _parse_all(random_formula(rng) for _ in range(N_RANDOM))
    assert not bad, bad[:5]
    assert slowest < MAX_SECONDS_PER_CALL
    assert counts["FormulaError"] > N_RANDOM // 2  # the fuzz mostly exercises the error paths


def test_parser_mutated_formulas_raise_only_formula_error():
    rng = np.random.default_rng(7)
    texts = [mutate(VALID[int(rng.integers(len(VALID)))], rng) for _ in range(N_MUTATED)]
    counts, bad, slowest = _parse_all(texts)
    assert not bad, bad[:5]
    assert slowest < MAX_SECONDS_PER_CALL
    assert counts["parsed"] > N_MUTATED // 20 and counts["FormulaError"] > N_MUTATED // 4, counts


def test_valid_corpus_parses():
    for text in VALID:
        parse_formula(text)


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 40
    return pd.DataFrame({
        "y": rng.standard_normal(n), "x": rng.standard_normal(n), "w": rng.uniform(0.5, 2, n),
        "g": np.array(["a", "b", "c", "d", "e"])[np.arange(n) % 5], "h": np.arange(n) % 4,
        "f": np.array(["p", "q", "r"])[rng.permutation(np.arange(n) % 3)], "k": rng.integers(0, 3, n),
    })


def test_mutated_formulas_through_the_model_raise_only_value_errors():
    """Anything that parses is evaluated on data: errors are FormulaError or ValueError, never others."""
    rng = np.random.default_rng(11)
    data = _frame()
    outcomes = {"model": 0, "FormulaError": 0, "ValueError": 0, "not parsed": 0}
    bad, slowest = [], 0.0
    cancel = _with_alarm(120)
    try:
        for _ in range(N_PIPELINE):
            text = mutate(VALID[int(rng.integers(len(VALID)))], rng)
            try:
                parse_formula(text)
            except FormulaError:
                outcomes["not parsed"] += 1
                continue
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                # Warnings about the data (rows dropped, aliased or badly scaled
                # columns) are expected here; numpy's RuntimeWarnings are not.
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("error", RuntimeWarning)
                try:
                    lmm.LinearMixedModel(text, data)
                    outcomes["model"] += 1
                except FormulaError:
                    outcomes["FormulaError"] += 1
                except ValueError:
                    outcomes["ValueError"] += 1
                except TimeoutError:
                    raise
                except Exception as err:  # noqa: BLE001
                    bad.append((text, f"{type(err).__name__}: {err}"))
            slowest = max(slowest, time.perf_counter() - t0)
    finally:
        cancel()
    assert not bad, bad[:5]
    assert slowest < MAX_SECONDS_PER_CALL
    assert outcomes["model"] > 20, outcomes


@pytest.mark.parametrize("text", ["y ~ ²", "¹ ~ x + (1 | g)", "y ~ x + .²", "y ~ ٣ + (1 | g)"])
def test_non_ascii_digits_are_formula_errors(text):
    with pytest.raises(FormulaError):
        parse_formula(text)


def test_wide_and_deep_formulas_give_formula_errors_not_recursion_errors():
    def outcome(text):
        try:
            return parse_formula(text)
        except RecursionError:  # reported without its ~1000-frame traceback
            return "RecursionError"
        except FormulaError as err:
            return err

    ok = outcome("y ~ " + " + ".join(f"x{i}" for i in range(200)) + " + (1 | g)")
    assert len(ok.fixed.split("+")) == 200
    wide = outcome("y ~ " + " + ".join(f"x{i}" for i in range(5000)) + " + (1 | g)")
    assert isinstance(wide, FormulaError) and "too deeply" in str(wide), wide
    deep = outcome("y ~ " + "(" * 5000 + "x" + ")" * 5000 + " + (1 | g)")
    assert isinstance(deep, FormulaError), deep


# --- the compiled core ---------------------------------------------------------------------------

# Load the compiled module alone (not the lmm package, which imports pandas and scipy):
# each subprocess then starts in a fraction of a second.
_LOADER = textwrap.dedent("""
    def _load_core(path):
        import importlib.machinery, importlib.util
        loader = importlib.machinery.ExtensionFileLoader("lmm._core", path)
        spec = importlib.util.spec_from_file_location("lmm._core", path, loader=loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        return module
""")

_CORE_FUZZ = _LOADER + textwrap.dedent(r"""
    import json, resource, sys
    import numpy as np
    limit = 2 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))   # a huge nlevels must fail, not swap
    _core = _load_core(sys.argv[3])

    seed, iterations = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(seed)
    ALLOWED = (ValueError, RuntimeError, TypeError, MemoryError, IndexError, OverflowError)
    counts = {"constructed": 0, "evaluated": 0, "nonfinite_objective": 0}
    by_exception = {}
    bad = []

    def maybe(p):
        return rng.random() < p

    def array(n, cols=None):
        shape = (n,) if cols is None else (n, cols)
        kind = rng.integers(0, 8) if maybe(0.35) else -1
        a = rng.standard_normal(shape)
        if kind == 0: a = a.astype(np.float32)
        if kind == 1: a = np.ascontiguousarray(a)
        if kind == 2 and a.size: a.flat[rng.integers(a.size)] = np.nan
        if kind == 3 and a.size: a.flat[rng.integers(a.size)] = np.inf
        if kind == 4: a = a.astype(int)
        if kind == 5 and a.ndim == 2 and maybe(0.5): a = a[:, :1].reshape(-1)   # wrong rank
        if kind == 6 and maybe(0.3): a = a.reshape(a.shape + (1,))
        if kind == 7 and maybe(0.2): a = a.astype(object)
        return a

    def codes(n, nlevels):
        kind = rng.integers(0, 9) if maybe(0.35) else -1
        c = rng.integers(0, max(int(nlevels), 1), n)
        if kind == 0 and n: c[rng.integers(n)] = -1                           # negative code
        if kind == 1 and n: c[rng.integers(n)] = int(nlevels) + rng.integers(0, 3)    # out of range
        if kind == 2: c = c.astype(np.int64)
        if kind == 3: c = c.astype(np.float64) + (0.5 if maybe(0.5) else 0.0)
        if kind == 4: c = c.astype(np.uint8)
        if kind == 5: c = np.array([str(v) for v in c], dtype=object)
        if kind == 6: c = c[: max(n - 1, 0)]                                  # length mismatch
        if kind == 7: c = c.reshape(-1, 1)
        return c if kind in (2, 3, 4, 5, 6, 7) else c.astype(np.int32)

    def nlevels_value(n):
        kind = rng.integers(0, 10) if maybe(0.3) else -1
        if kind == 0: return 0
        if kind == 1: return -int(rng.integers(1, 5))
        if kind == 2: return 2**int(rng.integers(31, 45))                     # huge: allocation must fail cleanly
        if kind == 3: return float(rng.integers(1, 6)) + 0.5
        if kind == 4: return "3"
        return int(rng.integers(1, max(n, 2) + 3))

    for it in range(iterations):
        n = int(rng.choice([0, 1, 2, 3, 5, 8, 13, 30, 30, 30]))
        K = int(rng.integers(0, 4)) if maybe(0.2) else int(rng.integers(1, 3))
        terms = []
        for _ in range(K):
            nl = nlevels_value(n)
            p = int(rng.integers(1, 4)) if not maybe(0.1) else 0                    # 0: no columns
            nz = n if not maybe(0.05) else n + 1
            z = array(nz, p)
            c = codes(n, nl if isinstance(nl, int) and 0 < nl < 2**20 else 1)
            structure = ([True, None, 1, "x", "cs_het"][rng.integers(5)] if maybe(0.1)
                         else _core.STRUCTURES[rng.integers(len(_core.STRUCTURES))])
            term = (c, z, nl, structure)
            if maybe(0.03): term = term[:3]
            if maybe(0.02): term = list(term)
            terms.append(term)
        p = int(rng.integers(0, 4))
        X = array(n if not maybe(0.05) else n + 1, p)
        y = array(n if not maybe(0.05) else max(n - 1, 0))
        args = [terms, X, y]
        if maybe(0.3): args.append(float(rng.choice([1e9, 0.0, -1.0, 64.0, np.nan, np.inf])))
        if maybe(0.02): args = [terms[0] if terms else None, X, y]
        try:
            m = _core.Model(*args)
            counts["constructed"] += 1
            theta = np.asarray(m.theta_start, dtype=float)
            if maybe(0.3) and theta.size:
                theta = theta + rng.standard_normal(theta.size) * rng.choice([0.1, 10.0, 1e8])
            if maybe(0.05):
                theta = np.append(theta, 1.0)
            for reml in (True, False):
                v, g = m.evaluate_with_gradient(theta, reml)
                counts["evaluated"] += 1
                if not (np.isfinite(v) and np.all(np.isfinite(g))):
                    counts["nonfinite_objective"] += 1
                u, beta = m.solve()
                m.sigma(reml); m.vcov_beta(reml); m.b(u)
                for k in range(m.nterms):
                    m.lambda_(k)
        except ALLOWED as err:
            name = type(err).__name__
            by_exception[name] = by_exception.get(name, 0) + 1
        except Exception as err:
            bad.append(f"{it}: {type(err).__name__}: {err}")
    print(json.dumps({"counts": counts, "exceptions": by_exception, "bad": bad[:10], "nbad": len(bad)}))
""")


def _run_core_fuzz(seed: int, iterations: int) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _CORE_FUZZ, str(seed), str(iterations), lmm._core.__file__],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"the core fuzz process died (status {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_core_entry_points_raise_python_exceptions():
    report = _run_core_fuzz(seed=12345, iterations=N_CORE)
    assert report["nbad"] == 0, report["bad"]
    # The fuzz reaches both the argument checks and the numerics.
    assert report["counts"]["evaluated"] > N_CORE // 20, report
    assert report["exceptions"].get("ValueError", 0) > N_CORE // 10, report


_UB_SCRIPT = _LOADER + textwrap.dedent(r"""
    import sys
    import numpy as np
    _core = _load_core(sys.argv[2])
    n = 20
    codes = (np.arange(n) % 4).astype(np.int32)
    m = _core.Model([(codes, np.ones((n, 1)), 4, "us")], np.ones((n, 1)), np.arange(n, dtype=float) % 7)
    m.set_theta(np.ones(1))
    what = sys.argv[1]
    try:
        if what == "lambda_":
            m.lambda_(5)
        elif what == "lambda_negative":
            m.lambda_(-1)
        elif what == "b":
            m.b(np.ones(2))
        elif what == "codes_int64":
            _core.Model([(codes.astype(np.int64) + 2**32, np.ones((n, 1)), 4, "us")], np.ones((n, 1)),
                        np.arange(n, dtype=float) % 7)
        elif what == "codes_fractional":
            _core.Model([(codes + 0.5, np.ones((n, 1)), 4, "us")], np.ones((n, 1)), np.arange(n, dtype=float) % 7)
        elif what == "nan_X":
            X = np.ones((n, 2)); X[3, 1] = np.nan
            _core.Model([(codes, np.ones((n, 1)), 4, "us")], X, np.arange(n, dtype=float) % 7)
        elif what == "nan_y":
            y = np.arange(n, dtype=float) % 7; y[0] = np.nan
            _core.Model([(codes, np.ones((n, 1)), 4, "us")], np.ones((n, 1)), y)
        elif what == "inf_z":
            z = np.ones((n, 1)); z[2, 0] = np.inf
            _core.Model([(codes, z, 4, "us")], np.ones((n, 1)), np.arange(n, dtype=float) % 7)
    except Exception as err:
        print(type(err).__name__, err)
        sys.exit(0)
    print("no error")
""")

# What each invalid call must raise once the bindings check their arguments.
_EXPECTED = {"lambda_": "IndexError", "lambda_negative": "IndexError", "b": "ValueError",
             "codes_int64": "ValueError", "codes_fractional": "TypeError", "nan_X": "ValueError",
             "nan_y": "ValueError", "inf_z": "ValueError"}


@pytest.fixture(scope="module")
def invalid_call_outcomes() -> dict:
    """(status, stdout, stderr) per case, each in its own process (these once read or wrote out of bounds)."""
    procs = {what: subprocess.Popen([sys.executable, "-c", _UB_SCRIPT, what, lmm._core.__file__],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for what in _EXPECTED}
    out = {}
    for what, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[what] = (proc.returncode, stdout, stderr)
    return out


@pytest.mark.parametrize("what", list(_EXPECTED))
def test_core_rejects_invalid_arguments(what, invalid_call_outcomes):
    status, stdout, stderr = invalid_call_outcomes[what]
    assert status == 0, stderr[-2000:]
    assert stdout.startswith(_EXPECTED[what]), stdout

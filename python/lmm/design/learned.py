"""The numeric transforms of a formula learned from row chunks, out of core or on a cluster.

``scale()``, ``poly()``, ``ns()`` and ``bs()`` learn their values from every row of the data
(R's model frame evaluates them before it drops incomplete rows;
:func:`~.evaluation.learned_on_all_rows`). From chunks of rows they are learned in
rounds of map and reduce: each round asks every chunk for a small statistic (never its
values), the statistics are merged (in any order, in a tree), and the merged one ends
the round. The result is the same ``preset`` dict as :func:`~.evaluation.learned_on_all_rows`
on all the rows:

- ``scale(x)``: count, mean and sum of squared deviations of the non-missing values,
  merged with Chan's update (one round).
- ``poly(x, d)``: R's recurrence coefficients (alpha, norm2) by Stieltjes' procedure,
  which is exact arithmetic of R's QR: round 0 gives count, mean and the central sums of
  squares and cubes (merged with Pébay's update), hence alpha_0, ‖z_1‖² and alpha_1; each
  later round k evaluates the recurrence's polynomial z_(k+1) with the coefficients
  known so far and sums z², (x − x̄)z² (d rounds in all). ``raw = TRUE`` learns nothing.
- ``ns(x)``, ``bs(x)``: the boundary knots are the range of the values; the interior knots
  R's type-7 quantiles, which need exact order statistics. Values are mapped to
  order-preserving 64-bit keys; a round counts the keys of each candidate interval in
  2^16 buckets of their next 16 bits (with the interval's smallest and largest key), the
  bucket holding the wanted rank becomes the next interval, and once it holds at most
  :data:`COLLECT_LIMIT` values they are collected and the rank picked. Every round fixes
  16 more bits, so a knot is exact after at most 4 rounds (the first also finds the
  range and counts), with ties and few distinct values (a constant interval ends at once).
  Knots or boundary knots given in the call are not learned.

A transform whose argument holds another (``scale(poly(x, 2))``, ``ns(scale(x), df = 3)``)
waits for it: its argument is evaluated with the inner one's learned value.

The protocol (the local driver, :func:`learn_over_chunks`, is this loop)::

    learner = TransformLearner(parsed, contrasts)
    while not learner.done:
        step = learner.round()          # picklable; step.map is a pure function of the chunk
        total = step.reduce([step.map(chunk) for chunk in chunks])   # or any tree of reduces
        learner.advance(total)
    preset = learner.preset()

With Dask, ``step`` is shipped to the workers: ``ddf.map_partitions``/``to_delayed`` with
``step.map`` per partition and ``step.reduce`` in a tree (``dask.bag.Bag.reduction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, cast

import numpy as np
import pandas as pd

from ..formula import FormulaError, ParsedFormula, TransformState
from ..formula.evaluate import Env, as_numeric, evaluate
from ..formula.functions import SIGNATURES, ParamValue, bind
from ..formula.splines import (
    SplineBasis,
    bs_basis,
    interior_knot_count,
    knot_probs,
    ns_basis,
    single_value_boundary,
    type7_from_order_statistics,
    type7_ranks,
)
from ..formula.syntax import BinOp, Call, Node, Paren, Unary, deparse
from ..formula.terms import bits

__all__ = ["TransformLearner", "LearningRound", "learn_over_chunks", "BUCKET_BITS", "COLLECT_LIMIT"]

#: Bits of the keys a histogram round resolves (2^16 buckets, 512 KB of counts a chunk).
BUCKET_BITS = 16
#: An interval holding at most this many values is collected (at most 512 KB over all chunks).
COLLECT_LIMIT = 1 << 16

_STATEFUL = ("scale", "poly", "ns", "bs")
_SIGN = np.uint64(1 << 63)
_MAXKEY = (1 << 64) - 1


# --- order-preserving keys of float64 values -------------------------------------------

def _keys(x: np.ndarray) -> np.ndarray:
    """Unsigned 64-bit keys of non-NaN values, in the values' order (k(a) < k(b) iff a < b;
    −0 is taken as +0): positive values get the sign bit set, negative ones all bits flipped."""
    u = (np.asarray(x, dtype=np.float64) + 0.0).view(np.uint64)
    return np.where((u & _SIGN) != 0, ~u, u | _SIGN)


def _key_values(keys: Sequence[int]) -> np.ndarray:
    """The float64 values of keys (the inverse of :func:`_keys`)."""
    k = np.asarray(keys, dtype=np.uint64)
    return np.where((k & _SIGN) != 0, k ^ _SIGN, ~k).view(np.float64)


def _bucketing(lo: int, hi: int) -> tuple[int, int, int]:
    """For the key interval [lo, hi] (lo < hi): the base of the longest prefix they share,
    the number of bits of the next bucket level and the shift that leaves them."""
    free = (lo ^ hi).bit_length()  # bits below the shared prefix
    nbits = min(BUCKET_BITS, free)
    return (lo >> free) << free, nbits, free - nbits


# --- what one chunk is asked: pure requests with their statistic and merge ---------------

def _smallest_distinct(v: np.ndarray, k: int) -> np.ndarray:
    """The k smallest distinct values of v (fewer when v has fewer), in k passes."""
    out: list[float] = []
    rest = v
    while len(out) < k and rest.size:
        m = rest.min()
        out.append(float(m))
        rest = rest[rest > m]
    return np.array(out, dtype=np.float64)


@dataclass(frozen=True)
class _Moments:
    """Count, mean and central sums of squares (and cubes) of the non-missing values, the
    number of missing ones and the ``distinct`` smallest distinct values."""

    cubes: bool = False
    distinct: int = 0

    def statistic(self, x: np.ndarray) -> tuple:
        nan = np.isnan(x)
        n_nan = int(np.count_nonzero(nan))
        v = x[~nan] if n_nan else x
        if not v.size:
            return (0, 0.0, 0.0, 0.0, n_nan, np.empty(0))
        mean = float(v.mean())
        d = v - mean
        d2 = d * d
        m3 = float(np.dot(d2, d)) if self.cubes else 0.0
        return (int(v.size), mean, float(d2.sum()), m3, n_nan, _smallest_distinct(v, self.distinct))

    def merge(self, parts: Sequence[tuple]) -> tuple:
        n, mean, m2, m3, n_nan = 0, 0.0, 0.0, 0.0, 0
        for nb, mb, m2b, m3b, nanb, _ in parts:
            n_nan += nanb
            if nb == 0:
                continue
            if n == 0:
                n, mean, m2, m3 = nb, mb, m2b, m3b
                continue
            # Chan's (and Pébay's, for the cubes) update of two groups' central sums (products,
            # not powers: a Python float's ** raises where numpy's sums give inf).
            tot = n + nb
            d = mb - mean
            m3 = m3 + m3b + d * d * d * n * nb * (n - nb) / tot / tot + 3.0 * d * (n * m2b - nb * m2) / tot
            m2 = m2 + m2b + d * d * n * nb / tot
            mean = mean + d * nb / tot
            n = tot
        dist = [p[5] for p in parts]
        return (n, mean, m2, m3, n_nan, _smallest_distinct(np.concatenate(dist) if dist else np.empty(0),
                                                            self.distinct))


@dataclass(frozen=True)
class _PolyStep:
    """Sums of z² and (x − alpha_0) z² for the next polynomial z of poly()'s three-term
    recurrence, from the coefficients learned so far (R's ``predict.poly`` recurrence)."""

    alpha: tuple[float, ...]
    norm2: tuple[float, ...]

    def statistic(self, x: np.ndarray) -> tuple:
        a, nrm = self.alpha, self.norm2
        xc = x - a[0]
        z_prev: np.ndarray | float = 1.0
        z = xc
        for j in range(1, len(a)):
            z_prev, z = z, (x - a[j]) * z - (nrm[j + 1] / nrm[j]) * z_prev
        zz = z * z
        return (float(zz.sum()), float(np.dot(xc, zz)))

    def merge(self, parts: Sequence[tuple]) -> tuple:
        return (float(sum(p[0] for p in parts)), float(sum(p[1] for p in parts)))


# A probe of the order statistics: (lo, hi, collect) — count the keys in [lo, hi] by
# buckets of their next bits (with their smallest and largest key), or collect them.
_Probe = tuple[int, int, bool]


@dataclass(frozen=True)
class _SplineValues:
    """For ns()/bs(): (survey) counts of the values, missing, infinite and within
    ``bounds``, their range; and each probe's statistic of the values within ``bounds``."""

    bounds: Optional[tuple[float, float]]
    survey: bool
    probes: tuple[_Probe, ...]

    def statistic(self, x: np.ndarray) -> tuple:
        v = x[~np.isnan(x)]
        inside = v if self.bounds is None else v[(v >= self.bounds[0]) & (v <= self.bounds[1])]
        survey = None
        if self.survey:
            survey = (int(v.size), int(np.count_nonzero(np.isinf(v))),
                      float(v.min()) if v.size else np.inf, float(v.max()) if v.size else -np.inf,
                      int(inside.size))
        if not self.probes:
            return (survey, ())
        keys = _keys(inside)
        out: list[Any] = []
        for lo, hi, collect in self.probes:
            sel = keys if (lo, hi) == (0, _MAXKEY) else keys[(keys >= np.uint64(lo)) & (keys <= np.uint64(hi))]
            if collect:
                out.append(np.sort(sel))
                continue
            base, nbits, shift = _bucketing(lo, hi)
            sub = ((sel - np.uint64(base)) >> np.uint64(shift)).astype(np.intp)
            counts = np.bincount(sub, minlength=1 << nbits).astype(np.int64)
            out.append((counts, int(sel.min()) if sel.size else _MAXKEY, int(sel.max()) if sel.size else 0))
        return (survey, tuple(out))

    def merge(self, parts: Sequence[tuple]) -> tuple:
        survey = None
        if self.survey:
            s = [p[0] for p in parts]
            survey = (sum(q[0] for q in s), sum(q[1] for q in s), min([np.inf] + [q[2] for q in s]),
                      max([-np.inf] + [q[3] for q in s]), sum(q[4] for q in s))
        out: list[Any] = []
        for i, (lo, hi, collect) in enumerate(self.probes):
            got = [p[1][i] for p in parts]
            if collect:
                out.append(np.sort(np.concatenate(got)) if got else np.empty(0, dtype=np.uint64))
                continue
            _, nbits, _ = _bucketing(lo, hi)
            counts = np.zeros(1 << nbits, dtype=np.int64)
            for c, _, _ in got:
                counts += c
            out.append((counts, min([_MAXKEY] + [g[1] for g in got]), max([0] + [g[2] for g in got])))
        return (survey, tuple(out))


# --- what the learner keeps per transform ------------------------------------------------

class _Task:
    """One transform to learn: its key, call, argument, the transforms inside the argument
    (learned first), and its own rounds."""

    def __init__(self, key: tuple[str, str], call: Call, arg: Node, text: str, deps: set) -> None:
        self.key = key
        self.call = call
        self.arg = arg
        self.text = text
        self.deps = deps
        self.value: Any = None

    @property
    def done(self) -> bool:
        return self.value is not None

    def error(self, message: str) -> FormulaError:
        return FormulaError(message, self.text, self.call.pos, self.call.end)

    def request(self) -> Any:
        raise NotImplementedError

    def advance(self, total: Any) -> None:
        raise NotImplementedError


class _ScaleTask(_Task):
    """``scale(x, center, scale)``: R's centre and scale, as the in-memory code records them."""

    def __init__(self, key: tuple[str, str], call: Call, arg: Node, text: str, deps: set,
                 params: dict[str, ParamValue]) -> None:
        super().__init__(key, call, arg, text, deps)
        self.center, self.scale = params["center"], params["scale"]
        if self.center is not True and self.scale is not True:  # nothing learned from the data
            self.value = (self._given_center(), float(self.scale) if isinstance(self.scale, float) else 1.0)

    def _given_center(self) -> float:
        return float(self.center) if isinstance(self.center, float) else 0.0

    def request(self) -> Any:
        return _Moments()

    def advance(self, total: Any) -> None:
        n, mean, m2 = total[0], total[1], total[2]
        c = (mean if n else 0.0) if self.center is True else self._given_center()
        if self.scale is not True:
            self.value = (c, float(self.scale) if isinstance(self.scale, float) else 1.0)
            return
        ss = (m2 if self.center is True else m2 + n * (mean - c) ** 2) if n else 0.0
        if ss == 0.0:
            # Every centred value is 0, so x / 0 is NaN on every row and the in-memory code
            # records from no valid value: centre 0 (or the given one), scale 0.
            self.value = (0.0 if self.center is True else c, 0.0)
            return
        self.value = (c, float(np.sqrt(ss / max(1, n - 1))))


class _PolyTask(_Task):
    """``poly(x, degree)``: R's (alpha, norm2), one round per degree."""

    def __init__(self, key: tuple[str, str], call: Call, arg: Node, text: str, deps: set, degree: int) -> None:
        super().__init__(key, call, arg, text, deps)
        if degree < 1:
            raise self.error("'degree' of poly() must be at least 1")
        self.degree = degree
        self.alpha: list[float] = []
        self.norm2: list[float] = [1.0]

    def request(self) -> Any:
        if not self.alpha:
            return _Moments(cubes=True, distinct=self.degree + 1)
        return _PolyStep(tuple(self.alpha), tuple(self.norm2))

    def advance(self, total: Any) -> None:
        if not self.alpha:
            n, mean, m2, m3, n_nan, distinct = total
            if n_nan:
                raise self.error("missing values are not allowed in poly(); drop those rows first")
            if self.degree >= distinct.size:
                raise self.error("'degree' of poly() must be less than the number of unique points")
            self.alpha = [mean] + ([m3 / m2 + mean] if self.degree >= 2 else [])
            self.norm2 += [float(n), m2]
        else:
            s, t = total
            self.norm2.append(s)
            if len(self.alpha) < self.degree:
                self.alpha.append(t / s + self.alpha[0])
        if len(self.norm2) == self.degree + 2:
            self.value = (np.array(self.alpha), np.array(self.norm2))


class _Target:
    """An order statistic being found: its rank among the values, the key interval it lies
    in, how many values lie below the interval and in it; its key once known."""

    __slots__ = ("rank", "lo", "hi", "below", "count", "key")

    def __init__(self, rank: int, count: int) -> None:
        self.rank, self.lo, self.hi, self.below, self.count = rank, 0, _MAXKEY, 0, count
        self.key: Optional[int] = None

    def probe(self) -> _Probe:
        return (self.lo, self.hi, self.count <= COLLECT_LIMIT)

    def descend(self, counts: np.ndarray, kmin: int, kmax: int) -> None:
        """Narrow the interval to the bucket holding the rank (or settle the key)."""
        if int(counts.sum()) != self.count:
            raise _changed()
        local = self.rank - self.below
        if kmin == kmax or local == 1:
            self.key = kmin
            return
        if local == self.count:
            self.key = kmax
            return
        base, _, shift = _bucketing(self.lo, self.hi)
        cum = np.cumsum(counts)
        j = int(np.searchsorted(cum, local))  # the first bucket whose cumulative count reaches the rank
        self.below += int(cum[j - 1]) if j else 0
        self.count = int(counts[j])
        self.lo = max(base + (j << shift), kmin)
        self.hi = min(base + ((j + 1) << shift) - 1, kmax)
        if self.lo == self.hi:
            self.key = self.lo

    def pick(self, keys: np.ndarray) -> None:
        """The key from the interval's collected keys, sorted."""
        if keys.size != self.count:
            raise _changed()
        self.key = int(keys[self.rank - self.below - 1])


def _changed() -> RuntimeError:
    return RuntimeError("the chunks gave different rows in different rounds of learning the transforms; "
                        "the source must give the same chunks every time")


class _SplineTask(_Task):
    """``ns()``/``bs()``: the boundary knots (range) and interior knots (exact type-7 quantiles)."""

    def __init__(self, key: tuple[str, str], call: Call, arg: Node, text: str, deps: set,
                 params: dict[str, ParamValue]) -> None:
        super().__init__(key, call, arg, text, deps)
        self.kind = key[1]
        self.df = None if params["df"] is None else int(cast(float, params["df"]))
        self.knots = cast(Optional[tuple], params["knots"])
        self.boundary = cast(Optional[tuple], params["Boundary.knots"])
        self.intercept = bool(params["intercept"])
        self.degree = int(cast(float, params["degree"])) if self.kind == "bs" else 3
        if self.kind == "bs" and self.degree < 1:
            self._basis(np.zeros(0))  # R's error for the degree
        self.bounds = (None if self.boundary is None or len(self.boundary) != 2
                       else (min(map(float, self.boundary)), max(map(float, self.boundary))))
        self.n_interior = (0 if self.df is None or self.knots is not None else
                           interior_knot_count(self.kind, self.df, self.degree, self.intercept, warn=False))
        self.survey: Optional[tuple] = None
        self.targets: dict[int, _Target] = {}
        if self.boundary is not None and self.n_interior == 0:  # nothing learned from the data
            self.value = self._finish()

    def _basis(self, x: np.ndarray, **given: Any) -> None:
        """Evaluate the in-memory basis (for its checks and R's messages), as a FormulaError."""
        args: dict[str, Any] = dict(df=self.df, knots=self.knots, intercept=self.intercept, boundary=self.boundary)
        args.update(given)
        try:
            if self.kind == "ns":
                ns_basis(x, **args)
            else:
                bs_basis(x, degree=self.degree, **args)
        except ValueError as err:
            raise self.error(f"{self.kind}(): {err}") from None

    def request(self) -> Any:
        if self.survey is None:
            return _SplineValues(self.bounds, True, ((0, _MAXKEY, False),) if self.n_interior else ())
        return _SplineValues(self.bounds, False, tuple(dict.fromkeys(t.probe() for t in self._open())))

    def _open(self) -> list[_Target]:
        return [t for t in self.targets.values() if t.key is None]

    def advance(self, total: Any) -> None:
        survey, probes = total
        if self.survey is None:
            self.survey = survey
            n_valid, n_inf, _, _, n_in = survey
            if n_inf:
                self._basis(np.array([np.inf]))
            if self.boundary is None and not n_valid:
                self._basis(np.zeros(0))
            if self.n_interior and n_in:
                lo, hi = type7_ranks(n_in, knot_probs(self.n_interior))
                self.targets = {int(r): _Target(int(r), n_in) for r in np.union1d(lo, hi)}
                for t in self.targets.values():
                    t.descend(*probes[0])
        else:
            asked = list(dict.fromkeys(t.probe() for t in self._open()))
            for t in self._open():
                probe = t.probe()
                got = probes[asked.index(probe)]
                if probe[2]:
                    t.pick(got)
                else:
                    t.descend(*got)
        if not self._open():
            self.value = self._finish()

    def _finish(self) -> SplineBasis:
        knots = self.knots
        if self.df is not None and knots is None:
            n_interior = interior_knot_count(self.kind, self.df, self.degree, self.intercept)  # R's warning
            knots = ()
            if n_interior:
                assert self.survey is not None
                n_in = self.survey[4]
                if not n_in:
                    self._basis(np.zeros(0))  # R's "no values within the boundary knots"
                probs = knot_probs(n_interior)
                lo, hi = type7_ranks(n_in, probs)
                at_lo = _key_values([cast(int, self.targets[int(r)].key) for r in lo])
                at_hi = _key_values([cast(int, self.targets[int(r)].key) for r in hi])
                knots = tuple(float(k) for k in type7_from_order_statistics(n_in, probs, at_lo, at_hi))
        knots = tuple(float(k) for k in (knots or ()))
        if self.boundary is not None:
            boundary: tuple = self.bounds if self.bounds is not None else tuple(self.boundary)
        else:
            assert self.survey is not None
            n_valid, _, vmin, vmax, _ = self.survey
            boundary = (single_value_boundary(vmin) if self.kind == "ns" and n_valid == 1
                        else (float(vmin), float(vmax)))
        # The in-memory basis at one point checks the knots as it does (and raises R's errors).
        self._basis(np.array([boundary[0]], dtype=np.float64), df=None, knots=knots, boundary=boundary)
        return SplineBasis(self.kind, knots, cast(tuple[float, float], boundary), self.intercept, self.degree)


# --- the transforms of a formula ---------------------------------------------------------

def _make_task(call: Call, data: list[Node], params: dict[str, ParamValue], text: str, deps: set) -> _Task:
    key = (deparse(call), call.func)
    if call.func == "scale":
        return _ScaleTask(key, call, data[0], text, deps, params)
    if call.func == "poly":
        return _PolyTask(key, call, data[0], text, deps, int(cast(float, params["degree"])))
    return _SplineTask(key, call, data[0], text, deps, params)


def _collect(node: Node, text: str, tasks: dict) -> set:
    """Add the learned transforms in node (innermost first) to tasks; their keys."""
    if isinstance(node, Call):
        if node.func not in _STATEFUL:
            return set().union(*[_collect(a, text, tasks) for a in node.args])
        data, params = bind(node, SIGNATURES[node.func], text)
        inner: set = set().union(*[_collect(d, text, tasks) for d in data])
        if node.func == "poly" and params["raw"]:
            return inner  # raw powers learn nothing
        key = (deparse(node), node.func)
        if key not in tasks:
            tasks[key] = _make_task(node, data, params, text, inner)
        return inner | {key}
    if isinstance(node, BinOp):
        return _collect(node.left, text, tasks) | _collect(node.right, text, tasks)
    if isinstance(node, Unary):
        return _collect(node.operand, text, tasks)
    if isinstance(node, Paren):
        return _collect(node.inner, text, tasks)
    return set()


def _tasks_of(parsed: ParsedFormula) -> list[_Task]:
    """The transforms :func:`~.evaluation.learned_on_all_rows` records: those in the variables
    of the terms kept, of the fixed part and of each random-effects term's model matrix."""
    tasks: dict[tuple[str, str], _Task] = {}
    for terms in [parsed.fixed_terms] + [rt.terms for rt in parsed.random]:
        used: set[int] = set()
        for t in terms.terms:
            used.update(bits(t))
        for i in sorted(used):
            _collect(terms.var_nodes[i], terms.text, tasks)
    return list(tasks.values())


# --- rounds and the learner --------------------------------------------------------------

@dataclass(frozen=True)
class LearningRound:
    """One round of learning: what each chunk is asked. Picklable and without reference to
    the learner, so it can be shipped to workers; :meth:`map` is a pure function of the chunk.

    Attributes:
        contrasts: the model's contrasts (for evaluating the transforms' arguments).
        preset: the values learned in earlier rounds that the arguments need (nested transforms).
        arguments: per request, the argument's node and the text its positions index.
        requests: per transform learned this round, what it asks of a chunk.
    """

    contrasts: dict
    preset: dict
    arguments: tuple[tuple[Node, str], ...]
    requests: tuple[Any, ...]

    def map(self, frame: pd.DataFrame) -> tuple:
        """This round's statistic of one chunk (all its rows, with the raw columns): a tuple
        of plain numbers and NumPy arrays, a few hundred KB at most per transform.

        Raises:
            FormulaError, FormulaTypeError: as the in-memory evaluation of the arguments.
        """
        state = TransformState(self.contrasts)
        state.preset = dict(self.preset)
        envs: dict[str, Env] = {}
        values: dict[str, np.ndarray] = {}
        out = []
        for (node, text), request in zip(self.arguments, self.requests):
            name = deparse(node)
            if name not in values:
                env = envs.setdefault(text, Env(frame, text, state)) if text not in envs else envs[text]
                x = as_numeric(evaluate(node, env), node, env)
                values[name] = np.full(env.n, x) if isinstance(x, float) else np.asarray(x, dtype=np.float64)
            with np.errstate(all="ignore"):  # infinite values: NaN sums, as in memory
                out.append(request.statistic(values[name]))
        return tuple(out)

    def reduce(self, parts: Iterable[tuple]) -> tuple:
        """Merge statistics of chunks (or merged ones): associative and independent of the
        order of the parts (to rounding of sums); ``reduce([])`` is the statistic of no rows."""
        parts = list(parts)
        return tuple(request.merge([p[i] for p in parts]) for i, request in enumerate(self.requests))


class TransformLearner:
    """Learns the numeric transforms of a formula from row chunks in rounds.

    Args:
        parsed: the parsed formula.
        contrasts: the model's contrasts (as for :func:`~.evaluation.learned_on_all_rows`).

    Raises:
        FormulaError: a transform's arguments that are wrong whatever the data
            (``poly(x, 0)``, ``bs(x, degree = 0)``).

    Example:
        >>> import pandas as pd
        >>> from lmm.formula import parse_formula
        >>> chunks = [pd.DataFrame({"y": [1.0, 2.0], "x": [1.0, 3.0]}), pd.DataFrame({"y": [0.0], "x": [2.0]})]
        >>> learn_over_chunks(parse_formula("y ~ scale(x)"), {}, lambda: iter(chunks))
        {('scale(x)', 'scale'): (2.0, 1.0)}
    """

    def __init__(self, parsed: ParsedFormula, contrasts: dict[str, str]) -> None:
        self._contrasts = dict(contrasts)
        self._tasks = _tasks_of(parsed)
        self._learned: dict[tuple[str, str], Any] = {}
        self._active: list[_Task] = []
        self._round: Optional[LearningRound] = None
        #: Rounds ended so far.
        self.rounds = 0
        self._schedule()

    def _schedule(self) -> None:
        for task in self._tasks:
            if task.done:
                self._learned[task.key] = task.value
        self._active = [t for t in self._tasks if not t.done and t.deps.issubset(self._learned)]
        self._round = None

    @property
    def done(self) -> bool:
        """No more rounds needed (True at once when the formula learns nothing from rows)."""
        return not self._active

    def round(self) -> LearningRound:
        """This round's request to the chunks (the same object until :meth:`advance`).

        Raises:
            RuntimeError: the learner is done.
        """
        if self.done:
            raise RuntimeError("the transforms are learned; no more rounds")
        if self._round is None:
            needed = set().union(*[t.deps for t in self._active])
            self._round = LearningRound(
                contrasts=self._contrasts, preset={k: self._learned[k] for k in needed},
                arguments=tuple((t.arg, t.text) for t in self._active),
                requests=tuple(t.request() for t in self._active))
        return self._round

    def map(self, frame: pd.DataFrame) -> Any:
        """``self.round().map(frame)``."""
        return self.round().map(frame)

    def reduce(self, parts: list) -> Any:
        """``self.round().reduce(parts)``."""
        return self.round().reduce(parts)

    def advance(self, total: Any) -> None:
        """End the round with the statistic merged over every chunk.

        Raises:
            FormulaError: as :func:`~.evaluation.learned_on_all_rows` on all the rows
                (``poly()`` of missing values or of too few distinct values, infinite
                values in a spline, knots outside the boundary knots, ...).
            RuntimeError: the chunks differ between rounds.
        """
        if len(total) != len(self.round().requests):
            raise ValueError(f"this round merges {len(self.round().requests)} statistics, not {len(total)}")
        for task, stat in zip(self._active, total):
            task.advance(stat)
        self.rounds += 1
        self._schedule()

    def preset(self) -> dict:
        """The learned values, keyed ``(deparse(node), kind)`` as ``TransformState.preset``.

        Raises:
            RuntimeError: rounds remain.
        """
        if not self.done:
            raise RuntimeError("rounds of learning remain; call round(), map, reduce and advance until done")
        return dict(self._learned)


def learn_over_chunks(parsed: ParsedFormula, contrasts: dict[str, str],
                      source: Callable[[], Iterator[pd.DataFrame]]) -> dict:
    """The numeric transforms' values learned from chunks of rows, one pass over them per
    round: equal to :func:`~.evaluation.learned_on_all_rows` on their concatenation.

    Args:
        parsed: the parsed formula.
        contrasts: the model's contrasts.
        source: called once per round; gives the same chunks (data frames of the raw
            columns, all rows) every time.

    Returns:
        The preset dict.
    """
    learner = TransformLearner(parsed, contrasts)
    while not learner.done:
        step = learner.round()
        total = step.reduce([])
        for chunk in source():
            total = step.reduce([total, step.map(chunk)])
        learner.advance(total)
    return learner.preset()

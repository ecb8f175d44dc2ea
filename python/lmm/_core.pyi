"""Type stub of lmm's compiled core (python/src/bindings.cpp)."""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: The optimizer's tolerances and lme4's singular tolerance (lmm::FitOptions defaults).
FIT_DEFAULTS: dict[str, float]

#: The covariance structures the core knows (lmm::covariance_names()).
STRUCTURES: tuple[str, ...]

def theta_positions(p: int, structure: str) -> list[tuple[int, int]]:
    """(row, col) of λ for each θ entry of a term with p columns (empty for structures whose θ are not λ's entries)."""

def parameterization(p: int, structure: str) -> dict[str, object]:
    """name, ntheta, lower, upper and start of the θ of a term with p columns and this structure."""

def theta_to_lambda(p: int, structure: str, theta: npt.ArrayLike) -> FloatArray:
    """λ (p × p, lower triangular) of a term at its θ."""

def within_level_residual(codes: npt.ArrayLike, z: npt.ArrayLike, nlevels: int, V: FloatArray) -> float:
    """Norm of the residual of V[:, 0] on V[:, 1:] and on z within each level (V is overwritten)."""

def code_strings(
    chunks: Sequence[tuple[npt.NDArray[Any], npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None, int, int]],
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Codes (int32, -1 where missing) of strings in Arrow's layout, numbered in order of first
    appearance, and each code's first row; a chunk is (offsets, data, valid, bit_offset, length)."""

def set_dense_backend(name: str) -> None:
    """Dense kernels of the crossed block: 'lapack' (SciPy's LAPACK) or 'eigen'."""

def dense_backend() -> str:
    """The current dense backend."""

def set_dense_threads(threads: int) -> None:
    """Threads of the dense kernels for blocks of order THREADED_ORDER and above (BLAS on one thread inside)."""

def dense_threads() -> int:
    """The dense kernels' threads."""

THREADED_ORDER: int
THREADED_ROWS: int

def trim_heap() -> None:
    """Give the heap's free memory back to the system (after a pass over chunks; a no-op off glibc)."""

class FitResult:
    """Outcome of Model.fit (see lmm::FitResult)."""

    @property
    def theta(self) -> FloatArray: ...
    @property
    def working_theta(self) -> FloatArray:
        """θ̃ at the optimum, in the model's working coordinates."""
    @property
    def criterion(self) -> float: ...
    @property
    def beta(self) -> FloatArray:
        """β̂ of the core's (shifted) X."""
    @property
    def vcov_beta(self) -> FloatArray:
        """Var(β̂) of the core's X."""
    @property
    def u(self) -> FloatArray:
        """û (q), as Model.solve gives it."""
    @property
    def gradient(self) -> FloatArray: ...
    @property
    def max_projected_gradient(self) -> float: ...
    @property
    def converged(self) -> bool: ...
    @property
    def singular(self) -> bool: ...
    @property
    def iterations(self) -> int: ...
    @property
    def evaluations(self) -> int: ...
    @property
    def gradient_evaluations(self) -> int: ...
    @property
    def restarts(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def message(self) -> str: ...
    @property
    def stop_reason(self) -> str: ...

Term = tuple[npt.ArrayLike, npt.ArrayLike, int, bool]

class TermColumnStats:
    """Mergeable statistics of a term's columns (lmm::TermColumnStats)."""

    def __init__(self) -> None: ...
    @staticmethod
    def of(z: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> TermColumnStats:
        """The statistics of the rows z (n, p), weights (n,) or None."""
    def merge(self, other: TermColumnStats) -> None:
        """Merge another chunk's statistics into these."""
    def append_columns(self, other: TermColumnStats) -> None:
        """Append the statistics of other columns of the same rows."""
    @property
    def n(self) -> int: ...
    @property
    def total(self) -> float: ...
    @property
    def mean(self) -> FloatArray: ...
    @property
    def centred2(self) -> FloatArray: ...
    @property
    def squares(self) -> FloatArray: ...
    @property
    def first_ones(self) -> bool: ...
    def __getstate__(self) -> tuple: ...
    def __setstate__(self, state: tuple) -> None: ...

class TermTransform:
    """A term's working coordinates z~ = z T."""

    @property
    def center(self) -> FloatArray: ...
    @property
    def scale(self) -> FloatArray: ...
    @property
    def offset(self) -> FloatArray: ...
    def __getstate__(self) -> tuple: ...
    def __setstate__(self, state: tuple) -> None: ...

def term_transform(stats: TermColumnStats, structure: str) -> TermTransform:
    """The working coordinates of a term from the statistics of all its rows."""

class Crossprod:
    """The crossproduct blocks A of some rows (a sum over rows)."""

    def __init__(self) -> None: ...
    @property
    def n(self) -> int: ...
    @property
    def p(self) -> int: ...
    @property
    def sum_log_weights(self) -> float: ...
    @property
    def nterms(self) -> int: ...
    def add(self, part: Crossprod) -> None:
        """Add another chunk's crossproducts (same terms, levels, shift and transforms)."""
    def __getstate__(self) -> tuple: ...
    def __setstate__(self, state: tuple) -> None: ...

class DenseLimitError(ValueError):
    """The exact method's dense block would exceed max_dense_bytes (lmm::DenseLimitError)."""

class MatrixFreeFit:
    """Outcome of fit_matrix_free (see lmm::MatrixFreeFit)."""

    @property
    def theta(self) -> FloatArray: ...
    @property
    def theta_se(self) -> FloatArray:
        """Monte Carlo SE of θ (0 with exact traces)."""
    @property
    def beta(self) -> FloatArray:
        """β̂ of the crossproducts' (shifted) X."""
    @property
    def vcov_beta(self) -> FloatArray: ...
    @property
    def u(self) -> FloatArray: ...
    @property
    def b(self) -> FloatArray: ...
    @property
    def sigma(self) -> float: ...
    @property
    def pwrss(self) -> float: ...
    @property
    def ldRX2(self) -> float: ...
    @property
    def ldL2(self) -> float:
        """log|M| (estimated unless exact_traces)."""
    @property
    def ldL2_se(self) -> float: ...
    @property
    def criterion(self) -> float: ...
    @property
    def criterion_se(self) -> float: ...
    @property
    def last_step(self) -> FloatArray: ...
    @property
    def converged(self) -> bool: ...
    @property
    def exact_traces(self) -> bool: ...
    @property
    def evaluations(self) -> int: ...
    @property
    def newton_iterations(self) -> int: ...
    @property
    def cg_iterations(self) -> int: ...
    @property
    def products(self) -> int: ...
    @property
    def seconds_iterations(self) -> float: ...
    @property
    def seconds_final(self) -> float: ...
    @property
    def seconds_logdet(self) -> float: ...
    @property
    def message(self) -> str: ...

def matrix_free_unsupported(A: Crossprod) -> str:
    """Why the matrix-free method cannot fit the model of A ('' when it can)."""

def fit_matrix_free(A: Crossprod, reml: bool = True, probes: int = 8, final_probes: int = 32,
                    logdet_probes: int = 16, lanczos_steps: int = 30, cg_tolerance: float = 1e-10,
                    step_tolerance: float = 1e-7, max_iterations: int = 60, exact_levels: int = 64, seed: int = 0,
                    theta_start: npt.ArrayLike | None = None) -> MatrixFreeFit:
    """Matrix-free REML/ML of two crossed scalar terms (see lmm::fit_matrix_free)."""

def matrix_free_score(A: Crossprod, theta: npt.ArrayLike, probes: int, reml: bool = True, seed: int = 0,
                      stream: int = 0, exact_levels: int = 64) -> tuple[FloatArray, FloatArray, float, float]:
    """(gradient, its SE, r², log|R_X|²) of the criterion at θ by the matrix-free estimator."""

def term_order(nlevels: Sequence[int]) -> list[int]:
    """lme4's order of terms with these numbers of levels: order[k] is the input index of term k."""

def chunk_crossprod(terms: Sequence[Term], X: npt.ArrayLike, y: npt.ArrayLike, x_center: npt.ArrayLike | None,
                    y_coef: npt.ArrayLike | None, weights: npt.ArrayLike | None,
                    transforms: Sequence[TermTransform]) -> Crossprod:
    """The crossproducts of one chunk of rows (terms in model order, the global shift and transforms)."""

def fit_scan(terms: Sequence[tuple], X: npt.ArrayLike, y: npt.ArrayLike, G: npt.ArrayLike, max_dense_bytes: float,
             weights: npt.ArrayLike | None = None, sigma: float = 0.0, reml: bool = True, threads: int = 1,
             block: int = ..., max_evaluations: int = ..., max_iterations: int = ..., gradient_tolerance: float = ...,
             gradient_tolerance_rel: float = ..., relative_decrease_tolerance: float = ..., memory: int = ...,
             progress: Callable[[int], object] | None = None, progress_interval: float = ...) -> dict:
    """A fit per candidate column of G (n × c) added to X last (lmm::fit_scan): Model.fit_many's dict."""

class Model:
    """A linear mixed model on its crossproduct blocks.

    terms: (codes int (n,), z float64 (n, p_k), nlevels, structure) per term, in
    any order (the model orders them as lme4, see ``order``); X (n, p); y (n,).
    x_center, y_coef (p,): the core works on X_c = X - x_center and
    y_c = y - X_c y_coef, formed row by row; beta and vcov_beta are those of X_c.
    weights (n,): prior weights (residual variance σ²/w_i, lme4's criterion); None: all 1.
    """

    def __init__(self, terms: Sequence[Term], X: npt.ArrayLike, y: npt.ArrayLike,
                 max_dense_bytes: float = ..., x_center: npt.ArrayLike | None = None,
                 y_coef: npt.ArrayLike | None = None, weights: npt.ArrayLike | None = None,
                 sigma: float = 0.0) -> None: ...
    @staticmethod
    def from_crossprod(A: Crossprod, order: Sequence[int], max_dense_bytes: float = ...,
                       sigma: float = 0.0) -> Model:
        """The model on finished crossproducts (terms in model order)."""
    def crossprod(self) -> Crossprod:
        """A copy of the model's crossproducts (its terms in model order)."""
    def set_response(self, terms: Sequence[Term], X: npt.ArrayLike, y: npt.ArrayLike) -> None:
        """Replace y (same terms, in the constructor's order, and X); θ must be set again."""
    @property
    def sigma_fixed(self) -> bool:
        """Whether the residual SD is known."""
    @property
    def order(self) -> list[int]:
        """order[k]: input index of model term k."""
    @property
    def nobs(self) -> int: ...
    @property
    def nfixed(self) -> int: ...
    @property
    def nterms(self) -> int: ...
    @property
    def ntheta(self) -> int: ...
    @property
    def theta_lower(self) -> FloatArray: ...
    @property
    def theta_upper(self) -> FloatArray: ...
    @property
    def theta_start(self) -> FloatArray: ...
    def theta_positions(self, k: int) -> list[tuple[int, int]]:
        """(row, col) of λ for each θ entry of model term k, in θ order."""
    def structure(self, k: int) -> str:
        """Covariance structure of model term k (one of STRUCTURES)."""
    def transform(self, k: int) -> dict[str, FloatArray]:
        """Working coordinates of term k, z̃ = z T: center, scale, matrix (T) and offset (|mean| / SD of
        columns a structured term leaves uncentred)."""
    def to_working(self, theta: npt.ArrayLike) -> FloatArray:
        """The working θ̃ of the caller's θ."""
    def to_user(self, working: npt.ArrayLike) -> FloatArray:
        """The caller's θ of a working θ̃."""
    def evaluate_working(self, working: npt.ArrayLike, reml: bool) -> float:
        """Set the working θ̃ and return the criterion."""
    def evaluate_working_with_gradient(self, working: npt.ArrayLike, reml: bool) -> tuple[float, FloatArray]:
        """Set the working θ̃ and return (criterion, gradient in θ̃)."""
    @property
    def working_theta(self) -> FloatArray: ...
    @property
    def working_start(self) -> FloatArray:
        """The θ̃ optimizers start from (lme4's start unless a column's scale or offset is extreme)."""
    @property
    def moment_start(self) -> FloatArray:
        """A θ̃ from moments of the crossproducts (the core's fit tries it too)."""
    @property
    def nprefix(self) -> int: ...
    @property
    def tail_size(self) -> int: ...
    @property
    def factor_bytes(self) -> float: ...
    def set_theta(self, theta: npt.ArrayLike) -> None: ...
    def objective(self, reml: bool) -> float: ...
    def evaluate(self, theta: npt.ArrayLike, reml: bool) -> float:
        """Set θ and return the ML deviance or REML criterion."""
    def gradient(self, reml: bool) -> FloatArray:
        """Exact gradient of the objective in θ at the current θ."""
    def gradient_parts(self, reml: bool, working: bool = False) -> tuple[FloatArray, FloatArray]:
        """(∂ log-determinants / ∂θ, ∂ r² / ∂θ) at the current θ (θ̃ when working).

        gradient = logdet + dof / r² · pwrss.
        """
    def evaluate_with_gradient(self, theta: npt.ArrayLike, reml: bool) -> tuple[float, FloatArray]:
        """Set θ and return (objective, gradient)."""
    @property
    def theta(self) -> FloatArray: ...
    def lambda_(self, k: int) -> FloatArray:
        """λ of model term k at the current θ."""
    @property
    def pwrss(self) -> float: ...
    @property
    def ldL2(self) -> float: ...
    @property
    def ldRX2(self) -> float: ...
    def solve(self) -> tuple[FloatArray, FloatArray]:
        """(u, beta): spherical random effects (model term order) and fixed effects."""
    def b(self, u: FloatArray) -> FloatArray:
        """Conditional modes Λu."""
    def sigma(self, reml: bool) -> float: ...
    def vcov_beta(self, reml: bool) -> FloatArray: ...
    def conditional_variances(self) -> list[FloatArray]:
        """Per model term, p × (p·ℓ): block j is λ W_jj λ' (W = (Λ'Z'ZΛ + I)⁻¹), condVar / σ²."""
    def fit(self, reml: bool, theta_start: npt.ArrayLike | None = None, theta_scale: npt.ArrayLike | None = None,
            max_evaluations: int = ..., max_iterations: int = ..., gradient_tolerance: float = ...,
            gradient_tolerance_rel: float = ..., relative_decrease_tolerance: float = ..., memory: int = ...,
            trace: Callable[[int, float], object] | None = None, trace_interval: float = 0.0) -> FitResult:
        """Minimize the criterion over θ (L-BFGS-B, exact gradient, restarts off the boundary);
        trace(evaluation, value) after each evaluation, at most once per trace_interval seconds."""
    def fit_many(self, terms: Sequence[tuple], X: npt.ArrayLike, Y: npt.ArrayLike, R: npt.ArrayLike, reml: bool,
                 threads: int = 1, block: int = ..., warm_start: bool = False,
                 theta_start: npt.ArrayLike | None = None, theta_scale: npt.ArrayLike | None = None,
                 max_evaluations: int = ..., max_iterations: int = ..., gradient_tolerance: float = ...,
                 gradient_tolerance_rel: float = ..., relative_decrease_tolerance: float = ..., memory: int = ...,
                 progress: Callable[[int], object] | None = None, progress_interval: float = ...) -> dict:
        """Fit each column of Y (n × m) as this design's response, in threads: a dict of per-response
        arrays (theta, beta, se, sigma, criterion, converged, singular, evaluations, error, ...)."""

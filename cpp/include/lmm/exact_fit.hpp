// The test behind "the response is fitted exactly": residual of a response on the
// fixed effects and one random-effects term's columns within each of its levels.
#pragma once

#include "terms.hpp"
#include "types.hpp"

namespace lmm {

/// Norm of the least-squares residual of V's first column on its other columns and
/// on the term's columns z within each level (one free coefficient vector per level).
///
/// V (n × m, the response then the regressors) is overwritten: each column loses its
/// least-squares fit on z within every level (a pseudo-inverse per level, so levels
/// with fewer rows than columns, or aliased columns, are fine). The residual of the
/// first column on the others is then found by a rank-revealing QR, refined once.
/// O(n·p·m) for the projection and O(n·m²) for the QR; one pass over the codes each.
double within_level_residual(const TermData& term, Eigen::Ref<Matrix> V);

}  // namespace lmm

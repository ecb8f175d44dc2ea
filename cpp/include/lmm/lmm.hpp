// Umbrella header of the lmm C++ library.
#pragma once

#include "blocks.hpp"
#include "cholesky.hpp"
#include "crossprod.hpp"
#include "dense.hpp"
#include "exact_fit.hpp"
#include "fit.hpp"
#include "lbfgsb.hpp"
#include "many.hpp"
#include "matrix_free.hpp"
#include "model.hpp"
#include "parameterization.hpp"
#include "terms.hpp"
#include "transform.hpp"
#include "types.hpp"

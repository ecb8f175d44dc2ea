## Code shared by make_reference.R and make_inference_reference.R: the data loader,
## the tightened lmer optimizer settings and the JSON writer.
##
## Sourced by both scripts, which are run from the repository root, e.g.
##   Rscript tests/reference/make_reference.R
## Defines: datadir, schema, load_dataset(), optimizers, optimizer_text, num(),
## scalar_json(), is_leaf_list(), to_json(), arr(), obj(), frame().
##
## This file attaches no packages: each script attaches its own (lme4 and jsonlite
## at least) before sourcing it, so the scripts keep their own attach order.

stopifnot(requireNamespace("lme4", quietly = TRUE),
          requireNamespace("jsonlite", quietly = TRUE))

## ---------------------------------------------------------------- data
## Read through schema.json exactly as lmm.datasets.load() reads the data (same
## values, same factor levels in the same order), so the Python tests and these
## scripts fit identical data.

datadir <- file.path("python", "lmm", "datasets", "data")
stopifnot(file.exists(file.path(datadir, "schema.json")))
schema <- jsonlite::fromJSON(file.path(datadir, "schema.json"), simplifyVector = FALSE)

load_dataset <- function(name) {
  entry <- schema[[name]]
  cols <- entry$columns
  classes <- vapply(cols, function(c) switch(c$type, factor = "character",
                                             float64 = "numeric", int64 = "integer"), "")
  names(classes) <- vapply(cols, `[[`, "", "name")
  df <- read.csv(file.path(datadir, entry$file), colClasses = classes,
                 na.strings = character(0), stringsAsFactors = FALSE)
  stopifnot(identical(names(df), names(classes)), nrow(df) == entry$nrow)
  for (c in cols) if (c$type == "factor") {
    lev <- unlist(c$levels)
    stopifnot(all(df[[c$name]] %in% lev))
    df[[c$name]] <- factor(df[[c$name]], levels = lev, ordered = c$ordered)
  }
  df
}

## ---------------------------------------------------------------- optimizers
## Tolerances far tighter than lme4's defaults (see README.md, "Optimizer").

optimizers <- list(
  nloptwrap = lme4::lmerControl(optimizer = "nloptwrap",
                          optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14,
                                         xtol_rel = 1e-12, ftol_rel = 1e-15,
                                         maxeval = 100000)),
  bobyqa = lme4::lmerControl(optimizer = "bobyqa",
                       optCtrl = list(rhoend = 1e-12, maxfun = 100000))
)
optimizer_text <- c(
  nloptwrap = paste("nloptwrap (NLOPT_LN_BOBYQA), xtol_abs=1e-12, ftol_abs=1e-14,",
                    "xtol_rel=1e-12, ftol_rel=1e-15, maxeval=1e5"),
  bobyqa = "minqa::bobyqa, rhoend=1e-12, maxfun=1e5"
)

## ---------------------------------------------------------------- JSON writer
## jsonlite rounds to 15 significant digits; this writer prints each double with
## the fewest digits (15-17) that read back to the same double.

num <- function(v) {
  if (is.na(v)) return("null")
  if (!is.finite(v)) stop("non-finite number in output")
  if (is.integer(v)) return(as.character(v))
  for (d in 15:17) {
    s <- sprintf(paste0("%.", d, "g"), v)
    if (as.numeric(s) == v) return(s)
  }
  s
}

scalar_json <- function(v) {
  stopifnot(length(v) == 1)
  if (is.logical(v)) return(if (is.na(v)) "null" else if (v) "true" else "false")
  if (is.numeric(v)) return(num(v))
  if (is.na(v)) return("null")
  as.character(jsonlite::toJSON(as.character(v), auto_unbox = TRUE))
}

is_leaf_list <- function(x) all(vapply(x, function(e) is.atomic(e) && length(e) == 1, TRUE))

to_json <- function(x, indent = 0) {
  pad <- strrep("  ", indent + 1)
  end <- strrep("  ", indent)
  if (is.null(x)) return("null")
  if (is.atomic(x)) return(scalar_json(x))
  nms <- names(x)
  if (!is.null(nms)) {
    stopifnot(!anyDuplicated(nms), all(nzchar(nms)))
    if (length(x) == 0) return("{}")
    if (is_leaf_list(x) && length(x) <= 8) {
      return(paste0("{", paste0(vapply(nms, scalar_json, ""), ": ",
                                vapply(x, scalar_json, ""), collapse = ", "), "}"))
    }
    body <- paste0(pad, vapply(nms, scalar_json, ""), ": ",
                   vapply(x, to_json, "", indent = indent + 1))
    return(paste0("{\n", paste(body, collapse = ",\n"), "\n", end, "}"))
  }
  if (length(x) == 0) return("[]")
  if (is_leaf_list(x)) return(paste0("[", paste(vapply(x, scalar_json, ""), collapse = ", "), "]"))
  body <- paste0(pad, vapply(x, to_json, "", indent = indent + 1))
  paste0("[\n", paste(body, collapse = ",\n"), "\n", end, "]")
}

arr <- function(x) as.list(unname(x))           # JSON array (also for length 1)
obj <- function(x) as.list(x)                   # JSON object from a named vector
## a data frame as {column: [values]} with its row names
frame <- function(df) {
  out <- lapply(as.list(df), function(col) arr(if (is.factor(col)) as.character(col) else col))
  c(list(rows = arr(rownames(df))), out)
}
